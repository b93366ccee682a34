"""Loading the plugin's libraries into OpenMM and reporting what loaded."""

import glob
import json
import os
import re

import openmm
import openmm.version

#: The kernel every platform library of this plugin provides.
KERNEL_NAME = "CalcCGSchNetForce"
#: The plugin's platforms, in the order they are reported when there is no build record.
PLUGIN_PLATFORMS = ("Reference", "CPU", "OpenCL", "CUDA", "HIP")
#: The file the CMake build writes next to this module: which platform libraries it built, and why
#: any was not.
BUILD_RECORD_NAME = "_platform_build.json"

#: States of a platform in ``plugin_status()["plugin_platforms"]``.
HAS_KERNELS = "has kernels"
LOAD_FAILED = "load failed"
NOT_BUILT = "not built"
UNAVAILABLE = "unavailable"

_PLATFORM_LIBRARY_GLOB = "libOpenMMCGML?*.so"

_load_failures = {}
_loaded_here = []


def plugin_directories():
    """Folders searched for the plugin's platform libraries, in order.

    The ``plugins`` folder of the installed openmm package, where ``pip install openmm-cgml`` puts
    them; or, if ``OPENMM_CGML_PLUGIN_DIR`` is set, the folders it lists (separated by
    ``os.pathsep``) instead, so that the libraries of a build tree are never mixed with installed
    ones.
    """
    if os.environ.get("OPENMM_CGML_PLUGIN_DIR"):
        return [folder for folder in os.environ["OPENMM_CGML_PLUGIN_DIR"].split(os.pathsep) if folder]
    return [os.path.join(openmm.version.openmm_library_path, "plugins")]


def _library_name(platform_name):
    return f"libOpenMMCGML{platform_name}.so"


def build_record():
    """What the CMake build recorded about the platform libraries it built.

    The record is read from this package's folder; if that has none (the package imported from a
    source tree), from the installed ``openmm-cgml`` distribution, whose libraries are the ones in
    OpenMM's plugin folder.

    Returns
    -------
    dict or None
        ``path``: the record file; ``openmm_version``: the OpenMM the plugin was built against;
        ``platforms``: for each platform, ``built`` (bool), ``library`` (file name) and ``reason``
        (why it was not built, empty if it was). None if no record is found.
    """
    candidates = [os.path.join(os.path.dirname(os.path.abspath(__file__)), BUILD_RECORD_NAME)]
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        candidates.append(str(distribution("openmm-cgml").locate_file(f"openmmcgml/{BUILD_RECORD_NAME}")))
    except (ImportError, PackageNotFoundError):
        pass
    for path in candidates:
        try:
            with open(path) as stream:
                record = json.load(stream)
        except (OSError, ValueError):
            continue
        record["path"] = path
        return record
    return None


def _openmm_load_failures():
    """OpenMM's own plugin load failures, by library path."""
    failures = {}
    for message in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S+?): ", message)
        failures[match.group(1) if match else message] = message
    return failures


def _already_tried():
    names = {os.path.basename(name) for name in getattr(openmm, "pluginLoadedLibNames", [])}
    names.update(os.path.basename(path) for path in _loaded_here)
    # A library OpenMM failed to load (say the CUDA plugin without an NVIDIA driver) would fail again.
    names.update(os.path.basename(path) for path in _openmm_load_failures())
    return names


def load_plugins():
    """Load any of the plugin's platform libraries that OpenMM has not loaded yet.

    ``import openmm`` loads every library in OpenMM's plugin folder, ours included, unless
    ``OPENMM_PLUGIN_DIR`` points elsewhere. A library is never loaded twice: loading it again would
    register its kernel factories a second time.

    Returns
    -------
    list of str
        The libraries loaded by this call.
    """
    loaded = _already_tried()
    newly_loaded = []
    for folder in plugin_directories():
        for path in sorted(glob.glob(os.path.join(folder, _PLATFORM_LIBRARY_GLOB))):
            name = os.path.basename(path)
            if name in loaded:
                continue
            try:
                openmm.Platform.loadPluginLibrary(path)
            except Exception as error:  # OpenMM raises its own exception type
                _load_failures[path] = str(error)
                continue
            loaded.add(name)
            _loaded_here.append(path)
            newly_loaded.append(path)
    return newly_loaded


def _platform_report(name, platforms, loaded, failures, openmm_failures, record, built_for):
    """The state of one of the plugin's platforms, with what explains it (see :func:`plugin_status`)."""
    library_name = _library_name(name)
    loaded_path = next((path for path in loaded if os.path.basename(path) == library_name), None)
    failure = next((message for path, message in failures.items() if os.path.basename(path) == library_name), None)
    entry = (record or {}).get("platforms", {}).get(name)
    if platforms.get(name):
        return {"state": HAS_KERNELS, "detail": "", "library": loaded_path}
    if failure is not None:
        return {"state": LOAD_FAILED, "detail": failure, "library": None}
    if entry is not None and not entry.get("built"):
        return {"state": NOT_BUILT, "detail": entry.get("reason", ""), "library": None}
    if loaded_path is not None:
        if name not in platforms:
            openmm_library = f"libOpenMM{name}.so"
            openmm_failure = next((message for path, message in openmm_failures.items()
                                   if os.path.basename(path) == openmm_library), None)
            detail = f"the library loaded, but OpenMM has no {name} platform here"
            if openmm_failure:
                detail += f": {openmm_failure}"
        else:
            detail = (f"the library loaded but registered no kernels (built for OpenMM {built_for}, "
                      f"running OpenMM {openmm.version.short_version})")
        return {"state": UNAVAILABLE, "detail": detail, "library": loaded_path}
    folders = ", ".join(plugin_directories())
    if entry is not None:
        detail = f"the build includes it, but {library_name} is in none of the plugin folders ({folders})"
    else:
        detail = f"{library_name} is in none of the plugin folders ({folders}) and there is no build record"
    return {"state": UNAVAILABLE, "detail": detail, "library": None}


def plugin_status():
    """Report which platforms can run the plugin's forces, and why others cannot.

    Returns
    -------
    dict
        ``openmm_version``: the running OpenMM; ``built_for``: the OpenMM version the plugin was
        compiled against (None if the bindings are not built); ``platforms``: for each OpenMM
        platform, whether it has the plugin's kernels; ``libraries``: the plugin libraries loaded;
        ``failures``: load failures of plugin libraries (path -> message), from OpenMM's own
        plugin loading and from :func:`load_plugins`; ``plugin_platforms``: for each of the
        plugin's platforms, ``state`` (``"has kernels"``, ``"load failed"``: the library was built
        but did not load, ``"not built"``, or ``"unavailable"``), ``detail`` (OpenMM's load
        error, the reason the build recorded for skipping it, or what else is missing) and
        ``library`` (the loaded library's path, or None); ``build_record``: the file the build
        wrote its platform record to (None if not found).
    """
    try:
        from .cgmlswig import getBuiltForOpenMMVersion

        built_for = getBuiltForOpenMMVersion()
    except ImportError:
        built_for = None
    platforms = {}
    for index in range(openmm.Platform.getNumPlatforms()):
        platform = openmm.Platform.getPlatform(index)
        platforms[platform.getName()] = bool(platform.supportsKernels([KERNEL_NAME]))
    libraries = sorted(
        name
        for name in list(getattr(openmm, "pluginLoadedLibNames", [])) + _loaded_here
        if os.path.basename(name).startswith("libOpenMMCGML")
    )
    openmm_failures = _openmm_load_failures()
    failures = {path: message for path, message in openmm_failures.items() if "OpenMMCGML" in path}
    failures.update(_load_failures)
    record = build_record()
    names = list((record or {}).get("platforms", PLUGIN_PLATFORMS))
    plugin_platforms = {
        name: _platform_report(name, platforms, libraries, failures, openmm_failures, record, built_for)
        for name in names
    }
    return {
        "openmm_version": openmm.version.short_version,
        "built_for": built_for,
        "platforms": platforms,
        "libraries": libraries,
        "failures": failures,
        "plugin_platforms": plugin_platforms,
        "build_record": None if record is None else record["path"],
    }
