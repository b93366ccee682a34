"""Run the C++ tests (ctest) of the build that scripts/install.sh made, and check how the kernels
read a force's weights."""

import glob
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIRS = sorted(glob.glob(os.path.join(ROOT, "build", "*", "CTestTestfile.cmake")), key=os.path.getmtime)


def test_ctest():
    assert BUILD_DIRS, "no CMake build directory with C++ tests: run scripts/install.sh (it builds in build/<wheel tag>)"
    ctest = shutil.which("ctest")
    if ctest is None:  # the cmake PyPI package puts ctest beside cmake
        import cmake

        ctest = os.path.join(cmake.CMAKE_BIN_DIR, "ctest")
    build = os.path.dirname(BUILD_DIRS[-1])
    result = subprocess.run([ctest, "--output-on-failure", "--test-dir", build], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests passed" in result.stdout


# The force's getters of weights and scalar settings that only the shared weights layer
# (plugin/openmmapi/src/CGSchNetWeights.cpp) may call on behalf of a kernel.
WEIGHT_GETTERS = ["getInteractionBlockArray", "getOutputLayerWeights", "getOutputLayerBias", "getEmbedding", "getRBFCenters",
                  "getRBFWidths", "getRBFLowerCutoff", "getCutoff", "getActivation", "getRBFType", "getDefaultScale"]
KERNEL_SOURCES = {
    "Reference": "plugin/platforms/reference/src/ReferenceCGSchNetKernels.cpp",
    "CPU": "plugin/platforms/cpu/src/CpuCGSchNetKernels.cpp",
    "Common": "plugin/platforms/common/src/CommonCGSchNetKernels.cpp",
}


def test_kernels_build_their_parameters_through_the_weights_class():
    """The Reference, CPU and Common kernels read a force's weights only through CGSchNetWeights
    (tested on its own by TestCGSchNetWeights): each constructs one from the force, and no file of
    a platform calls the force's weight getters or builds a filter table itself."""
    platform_files = glob.glob(os.path.join(ROOT, "plugin", "platforms", "**", "*.*"), recursive=True)
    assert len(platform_files) > 10
    for path in platform_files:
        text = open(path).read()
        for getter in WEIGHT_GETTERS:
            assert re.search(rf"\.\s*{getter}\s*\(", text) is None, f"{os.path.relpath(path, ROOT)} calls {getter}"
        assert re.search(r"CGSchNetFilterTable\s*(\w+\s*)?\(|make_shared<CGSchNetFilterTable>", text) is None, path
    for platform, source in KERNEL_SOURCES.items():
        text = open(os.path.join(ROOT, source)).read()
        assert re.search(r"CGSchNetWeights\s*(\w+\s*)?\(\s*force\s*\)", text), f"the {platform} kernel does not read CGSchNetWeights(force)"
