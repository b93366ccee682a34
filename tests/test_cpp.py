"""Run the C++ tests (ctest) of the build that scripts/install.sh made."""

import glob
import os
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
