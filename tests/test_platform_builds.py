"""The platform plugins that were built are installed, loaded and registered; a build without
OpenCL skips that platform, and the rest builds, loads and says why OpenCL is missing."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import openmm
import openmm.version
import pytest

import openmmcgml

PLUGIN_DIR = os.path.join(openmm.version.openmm_library_path, "plugins")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plugin_status_reports_the_kernels():
    status = openmmcgml.plugin_status()
    assert status["built_for"] == ".".join(status["openmm_version"].split(".")[:2])
    assert status["platforms"]["Reference"] and status["platforms"]["CPU"]
    for name in ("Reference", "CPU"):
        assert any(path.endswith(f"libOpenMMCGML{name}.so") for path in status["libraries"])


def test_opencl_kernels_present_whenever_opencl_is():
    try:
        openmm.Platform.getPlatformByName("OpenCL")
    except Exception:
        pytest.skip("no OpenCL platform (no OpenCL runtime on this machine)")
    assert openmmcgml.plugin_status()["platforms"]["OpenCL"], openmmcgml.plugin_status()["failures"]


def test_plugins_are_not_registered_twice():
    before = openmmcgml.plugin_status()["libraries"]
    assert openmmcgml.load_plugins() == []
    assert openmmcgml.plugin_status()["libraries"] == before


@pytest.mark.skipif(not os.environ.get("OPENMM_CGML_EXPECT_CUDA_BUILD"),
                    reason="the CUDA plugin is only built where a CUDA toolkit and openmm-cuda are installed (CI sets OPENMM_CGML_EXPECT_CUDA_BUILD)")
def test_cuda_plugin_is_built_and_linked():
    """No GPU here: check the library exists, exports the plugin entry points and links against
    OpenMM's CUDA platform (it cannot be loaded without the NVIDIA driver)."""
    library = os.path.join(PLUGIN_DIR, "libOpenMMCGMLCUDA.so")
    assert os.path.exists(library)
    symbols = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True, check=True).stdout
    for entry in ("registerKernelFactories", "registerPlatforms"):
        assert f" T {entry}" in symbols
    needed = subprocess.run(["readelf", "-d", library], capture_output=True, text=True, check=True).stdout
    assert "libOpenMMCUDA.so" in needed and "libOpenMMCGML.so" in needed


def test_import_loads_plugins_that_openmm_did_not(tmp_path):
    """With OPENMM_PLUGIN_DIR pointing elsewhere, `import openmm` loads none of our libraries;
    `import openmmcgml` must load them itself (once) so the kernels are there."""
    script = (
        "import openmm, openmmcgml\n"
        "assert not any('CGML' in n for n in openmm.pluginLoadedLibNames)\n"
        "status = openmmcgml.plugin_status()\n"
        "assert status['platforms']['Reference'], status\n"
        "assert openmmcgml.load_plugins() == []\n"
        "print(len(status['libraries']))\n"
    )
    env = dict(os.environ, OPENMM_PLUGIN_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 1


def test_installed_build_record_matches_the_libraries():
    """Every platform the build recorded as built has its library in OpenMM's plugin folder, and
    `cgml status` gives every platform that lacks kernels a reason."""
    status = openmmcgml.plugin_status()
    record = openmmcgml._plugin.build_record()
    assert record is not None, "no _platform_build.json: the package was not installed by its CMake build"
    assert record["openmm_version"] == status["openmm_version"]
    assert record["platforms"]["Reference"]["built"] and record["platforms"]["CPU"]["built"]
    for name, entry in record["platforms"].items():
        assert entry["library"] == f"libOpenMMCGML{name}.so"
        assert os.path.exists(os.path.join(PLUGIN_DIR, entry["library"])) == entry["built"], (name, entry)
        assert entry["built"] or entry["reason"], (name, entry)
    for name, report in status["plugin_platforms"].items():
        assert report["state"] in ("has kernels", "load failed", "not built", "unavailable"), report
        assert (report["state"] == "has kernels") == bool(status["platforms"].get(name)), (name, report)
        assert report["state"] == "has kernels" or report["detail"], (name, report)
        if not record["platforms"][name]["built"]:
            assert report == {"state": "not built", "detail": record["platforms"][name]["reason"], "library": None}


# ---------------------------------------------------------------- a build without OpenCL
# What a machine without OpenCL headers or ICD loader gets: CMake is told not to look for OpenCL.
# Only the targets that the Python package needs are built (about 15 s of compiling on two cores).
NO_OPENCL_SKIP_LINE = ("-- openmm-cgml OpenCL platform: not built: find_package(OpenCL) is disabled "
                       "(CMAKE_DISABLE_FIND_PACKAGE_OpenCL=ON)")
NO_OPENCL_TARGETS = ["OpenMMCGMLReference", "OpenMMCGMLCPU", "_cgmlswig"]

# Run in a fresh interpreter that loads nothing from the installed plugin: OpenMM's own CPU and
# OpenCL platforms are loaded by hand (OPENMM_PLUGIN_DIR keeps `import openmm` from loading its
# plugin folder, where the installed openmm-cgml libraries are too), then the built package.
NO_OPENCL_SCRIPT = """
import io, json, os, contextlib
import numpy as np, openmm, openmm.version, torch
from openmm import unit
for name in ("libOpenMMCPU.so", "libOpenMMOpenCL.so"):
    try:
        openmm.Platform.loadPluginLibrary(os.path.join(openmm.version.openmm_library_path, "plugins", name))
    except Exception:
        pass  # no OpenCL runtime: OpenMM has no OpenCL platform, and the report must still say "not built"
import openmmcgml
from openmmcgml.cli import main
from openmmcgml.models import CGSchNet

torch.manual_seed(0)
model = CGSchNet(n_types=2, n_features=8, n_filters=8, n_rbf=6, n_interactions=1, cutoff=1.0).double()
types = [0, 1, 0, 1, 0]
positions = np.array([[0, 0, 0], [0.38, 0, 0], [0.5, 0.35, 0], [0.3, 0.6, 0.2], [0.1, 0.4, 0.5]])
expected = float(model.energy_and_forces(torch.tensor(positions), types)[0])
energies = {}
for platform in ("Reference", "CPU"):
    system = openmm.System()
    for _ in types:
        system.addParticle(100.0)
    system.addForce(model.to_force(bead_types=types))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    energies[platform] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
text = io.StringIO()
with contextlib.redirect_stdout(text):
    exit_code = main(["status"])
with open("/proc/self/maps") as maps:
    mapped = sorted({line.split()[-1] for line in maps if "libOpenMMCGML" in line})
print(json.dumps({"status": openmmcgml.plugin_status(), "cli": text.getvalue(), "exit_code": exit_code,
                  "expected": expected, "energies": energies, "mapped": mapped,
                  "package": os.path.dirname(openmmcgml.__file__)}))
"""


def _cmake():
    cmake = shutil.which("cmake")
    if cmake is None:  # the cmake PyPI package
        import cmake as cmake_package

        cmake = os.path.join(cmake_package.CMAKE_BIN_DIR, "cmake")
    return cmake


@pytest.fixture(scope="module")
def build_without_opencl(tmp_path_factory):
    """Configure and build the project with OpenCL hidden from CMake; returns (build dir, configure output)."""
    build = tmp_path_factory.mktemp("build-without-opencl")
    # Build type None: no optimisation flags, which halves the compile time (the CPU kernel's
    # arithmetic keeps its own -O3); what this checks does not depend on them.
    configure = [_cmake(), "-S", ROOT, "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
                 "-DCMAKE_BUILD_TYPE=None", "-DOPENMM_CGML_BUILD_TESTS=OFF", "-DCMAKE_DISABLE_FIND_PACKAGE_OpenCL=ON"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    result = subprocess.run(configure, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    configure_output = result.stdout + result.stderr
    result = subprocess.run([_cmake(), "--build", str(build), "-j2", "--target", *NO_OPENCL_TARGETS],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return build, configure_output


def test_build_without_opencl_skips_it_with_one_line(build_without_opencl):
    build, configure_output = build_without_opencl
    opencl_lines = [line for line in configure_output.splitlines() if "OpenCL platform" in line]
    assert opencl_lines == [NO_OPENCL_SKIP_LINE], configure_output
    # HIP (AUTO) is decided without breaking the configure step on machines with no ROCm.
    assert len(re.findall(r"openmm-cgml HIP platform: (not built|building)", configure_output)) == 1, configure_output
    with open(build / "python" / "_platform_build.json") as stream:
        record = json.load(stream)
    assert record["openmm_version"] == openmm.version.short_version
    assert record["platforms"]["OpenCL"] == {
        "built": False, "library": "libOpenMMCGMLOpenCL.so",
        "reason": "find_package(OpenCL) is disabled (CMAKE_DISABLE_FIND_PACKAGE_OpenCL=ON)"}
    assert record["platforms"]["Reference"]["built"] and record["platforms"]["CPU"]["built"]
    # No OpenCL library, and no target that could build one.
    assert glob.glob(str(build / "**" / "*OpenCL*.so"), recursive=True) == []
    result = subprocess.run([_cmake(), "--build", str(build), "--target", "OpenMMCGMLOpenCL"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    for name in ("Reference", "CPU"):
        assert (build / f"libOpenMMCGML{name}.so").exists()
    assert glob.glob(str(build / "python" / "_cgmlswig*.so")) and (build / "python" / "cgmlswig.py").exists()


def test_build_without_opencl_loads_and_reports_why(build_without_opencl, tmp_path):
    build, _ = build_without_opencl
    # The Python package as the wheel would hold it: the sources with this build's compiled module
    # and platform record (not the ones of the installed build).
    package = tmp_path / "site" / "openmmcgml"
    shutil.copytree(os.path.join(ROOT, "python", "openmmcgml"), package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "cgmlswig.py", "_platform_build.json"))
    for path in glob.glob(str(build / "python" / "_cgmlswig*.so")) + [str(build / "python" / "cgmlswig.py"),
                                                                      str(build / "python" / "_platform_build.json")]:
        shutil.copy(path, package)
    empty = tmp_path / "no-openmm-plugins"
    empty.mkdir()
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), OPENMM_PLUGIN_DIR=str(empty),
               OPENMM_CGML_PLUGIN_DIR=str(build))
    result = subprocess.run([sys.executable, "-c", NO_OPENCL_SCRIPT], capture_output=True, text=True, env=env,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"] == str(package)
    # Only this build's libraries are loaded, once each.
    assert report["mapped"] and all(path.startswith(str(build)) for path in report["mapped"]), report["mapped"]
    status = report["status"]
    assert status["platforms"]["Reference"] and status["platforms"]["CPU"]
    assert not status["platforms"].get("OpenCL", False)
    assert status["build_record"] == str(package / "_platform_build.json")
    assert status["plugin_platforms"]["OpenCL"] == {
        "state": "not built", "library": None,
        "detail": "find_package(OpenCL) is disabled (CMAKE_DISABLE_FIND_PACKAGE_OpenCL=ON)"}
    for name in ("Reference", "CPU"):
        assert status["plugin_platforms"][name]["state"] == "has kernels"
        assert status["plugin_platforms"][name]["library"] == str(build / f"libOpenMMCGML{name}.so")
    # `cgml status` says the same to a person.
    assert report["exit_code"] == 0
    assert "OpenCL     not built: find_package(OpenCL) is disabled (CMAKE_DISABLE_FIND_PACKAGE_OpenCL=ON)" in report["cli"]
    # The built kernels compute the model: Reference to rounding, CPU (single precision) to 1e-5.
    expected = report["expected"]
    assert abs(expected) > 1e-3
    assert abs(report["energies"]["Reference"] - expected) <= 1e-9 * abs(expected)
    assert abs(report["energies"]["CPU"] - expected) <= 1e-5 * abs(expected)
