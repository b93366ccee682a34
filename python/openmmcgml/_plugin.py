"""Loading the plugin's libraries into OpenMM and reporting what loaded."""

import glob
import os
import re

import openmm
import openmm.version

#: The kernel every platform library of this plugin provides.
KERNEL_NAME = "CalcCGSchNetForce"
_PLATFORM_LIBRARY_GLOB = "libOpenMMCGML?*.so"

_load_failures = {}
_loaded_here = []


def plugin_directories():
    """Folders searched for the plugin's platform libraries, in order.

    ``OPENMM_CGML_PLUGIN_DIR`` (if set) comes first, then the ``plugins`` folder of the installed
    openmm package, where ``pip install openmm-cgml`` puts them.
    """
    folders = []
    if os.environ.get("OPENMM_CGML_PLUGIN_DIR"):
        folders.append(os.environ["OPENMM_CGML_PLUGIN_DIR"])
    folders.append(os.path.join(openmm.version.openmm_library_path, "plugins"))
    return folders


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


def plugin_status():
    """Report which platforms can run the plugin's forces, and why others cannot.

    Returns
    -------
    dict
        ``openmm_version``: the running OpenMM; ``built_for``: the OpenMM version the plugin was
        compiled against (None if the bindings are not built); ``platforms``: for each OpenMM
        platform, whether it has the plugin's kernels; ``libraries``: the plugin libraries loaded;
        ``failures``: load failures of plugin libraries (path -> message), from OpenMM's own
        plugin loading and from :func:`load_plugins`.
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
    failures = {path: message for path, message in _openmm_load_failures().items() if "OpenMMCGML" in path}
    failures.update(_load_failures)
    return {
        "openmm_version": openmm.version.short_version,
        "built_for": built_for,
        "platforms": platforms,
        "libraries": libraries,
        "failures": failures,
    }
