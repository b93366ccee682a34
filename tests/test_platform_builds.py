"""The platform plugins that were built are installed, loaded and registered."""

import os
import subprocess
import sys

import openmm
import openmm.version
import pytest

import openmmcgml

PLUGIN_DIR = os.path.join(openmm.version.openmm_library_path, "plugins")


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
