#!/usr/bin/env bash
# Build the plugin on a bare GPU machine without network access, run the tests on CUDA and the GPU
# benchmark.
#
#   bash benchmarks/gpu_build_and_bench.sh                 # install, build, test, bench
#   STEPS="build bench" bash benchmarks/gpu_build_and_bench.sh
#   BENCH_ARGS="--systems 1x10 --min-time 2" bash benchmarks/gpu_build_and_bench.sh
#
# Expects on the machine: python3 with a CUDA build of torch (and numpy), a CUDA toolkit (nvcc and
# headers), a C++ compiler, and in $WHEELS (default .whl/ in the source tree) the wheels
#   openmm 8.6.1, openmm-cuda-13 8.6.1, acellera-openmmtorch-cu13 1.10 (optional)
# plus wheels of any of cmake, ninja, swig, pytest (with its dependencies) that the machine lacks.
# Everything is installed under $PREFIX (default /tmp/cgml-gpu): the wheels and the plugin into
# $PREFIX/site, the build in $PREFIX/build, logs and the benchmark table in $OUT (default
# $PREFIX/out).  Nothing is installed system-wide and the source tree is not written to.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="${WHEELS:-$ROOT/.whl}"
PREFIX="${PREFIX:-/tmp/cgml-gpu}"
PYTHON="${PYTHON:-python3}"
STEPS="${STEPS:-install build test bench}"
BENCH_ARGS="${BENCH_ARGS:-}"
SITE="$PREFIX/site"
BUILD="$PREFIX/build"
OUT="${OUT:-$PREFIX/out}"
mkdir -p "$SITE" "$BUILD" "$OUT"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"
# OpenMM's CUDA library looks for NVRTC and cuFFT beside its own package (nvidia/cu13/lib), and
# openmm-torch needs libtorch: take both from the machine's torch installation.
NVIDIA_DIR="$("$PYTHON" -c "import nvidia; print(list(nvidia.__path__)[0])" 2>/dev/null || true)"
if [ -n "$NVIDIA_DIR" ] && [ ! -e "$SITE/nvidia" ]; then ln -s "$NVIDIA_DIR" "$SITE/nvidia"; fi
TORCH_LIB="$("$PYTHON" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")"
NVIDIA_LIBS="$(find "${NVIDIA_DIR:-/nonexistent}" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd: - || true)"
export LD_LIBRARY_PATH="$TORCH_LIB${NVIDIA_LIBS:+:$NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step() { [[ " $STEPS " == *" $1 "* ]]; }
pip_install() { "$PYTHON" -m pip install --no-index --no-deps --find-links "$WHEELS" --target "$SITE" --upgrade "$@"; }
have_wheel() { ls "$WHEELS"/$1-*.whl >/dev/null 2>&1; }

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, torch.cuda.is_available())"

if step install; then
    echo "== install wheels from $WHEELS into $SITE"
    pip_install "openmm==8.6.1" "openmm-cuda-13==8.6.1"
    if have_wheel acellera_openmmtorch_cu13; then
        pip_install acellera-openmmtorch-cu13
    else
        echo "no openmm-torch wheel: the benchmark leaves out its rows"
    fi
    # Build and test tools, only where the machine has none.
    for tool in cmake ninja swig; do
        if ! command -v "$tool" >/dev/null && have_wheel "$tool"; then
            pip_install "$tool"
        fi
    done
    if ! "$PYTHON" -c "import pytest" 2>/dev/null && have_wheel pytest; then
        pip_install pytest pluggy iniconfig packaging
    fi
    "$PYTHON" -c "import openmm; print('openmm', openmm.version.full_version, openmm.version.openmm_library_path)"
fi

if step build; then
    echo "== build the plugin (CUDA) and install it into $SITE"
    generator=()
    if command -v ninja >/dev/null; then generator=(-G Ninja); fi
    # CUDA only (OPENCL=ON adds the OpenCL kernels where OpenCL headers and libraries exist);
    # without them OpenMM's OpenCL platform is set aside, so that no test meets a platform that
    # lacks this plugin's kernels.
    opencl="${OPENCL:-OFF}"
    plugins="$SITE/OpenMM.libs/lib/plugins"
    if [ "$opencl" = OFF ] && [ -e "$plugins/libOpenMMOpenCL.so" ]; then
        # OpenMM loads every file of its plugin folder: move it out.
        mkdir -p "$SITE/disabled-plugins"
        mv "$plugins/libOpenMMOpenCL.so" "$SITE/disabled-plugins/"
    fi
    cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DPython3_EXECUTABLE="$(command -v "$PYTHON")" \
        -DOPENMM_CGML_BUILD_CUDA=ON -DOPENMM_CGML_BUILD_OPENCL=$opencl -DOPENMM_CGML_BUILD_TESTS=OFF \
        -DSKBUILD_PLATLIB_DIR="$SITE" 2>&1 | tee "$OUT/cmake.log"
    if ! cmake --build "$BUILD" -j "$(nproc)" > "$OUT/build.log" 2>&1; then
        tail -n 60 "$OUT/build.log"
        exit 1
    fi
    tail -n 3 "$OUT/build.log"
    cmake --install "$BUILD" > "$OUT/install.log"
    # The pure-Python package beside the compiled module that the install put there.
    (cd "$ROOT/python" && find openmmcgml -name '*.py' -o -name '*.json' -o -name '*.yaml' | \
        grep -v -e __pycache__ -e cgmlswig.py | while read -r file; do
            mkdir -p "$SITE/$(dirname "$file")"
            cp "$file" "$SITE/$file"
        done)
    "$PYTHON" -c "import openmmcgml, pprint; pprint.pprint(openmmcgml.plugin_status())" | tee "$OUT/plugin_status.txt"
fi

if step test; then
    echo "== tests on CUDA"
    if "$PYTHON" -c "import pytest" 2>/dev/null; then
        (cd "$ROOT" && "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" \
            tests/test_cgschnet_force.py tests/test_bad_input.py tests/test_common_kernels.py 2>&1 | tee "$OUT/pytest.log") || true
    else
        echo "pytest is not installed (add its wheels to $WHEELS): tests skipped" | tee "$OUT/pytest.log"
    fi
fi

if step bench; then
    echo "== benchmark"
    # shellcheck disable=SC2086
    "$PYTHON" "$ROOT/benchmarks/bench_gpu.py" --platform CUDA $BENCH_ARGS 2>&1 | grep -v "^WARNING" | tee "$OUT/bench_gpu.txt"
fi
