#!/bin/bash
# conda-build: compile the plugin against the host environment's OpenMM and install it with pip, so
# that the package's metadata and entry points (the cgml command, openmm-ml's "cgml" potential) are
# registered.  Against an OpenMM in the Python prefix, CMakeLists.txt puts the plugin libraries in
# the wheel's data folder, which pip unpacks into $PREFIX/lib and $PREFIX/lib/plugins, beside
# OpenMM's own libraries, where `import openmm` loads plugins from.
set -euxo pipefail

if [[ "${cuda_compiler_version:-None}" != "None" ]]; then
    build_cuda=ON
else
    build_cuda=OFF
fi
build_dir="${SRC_DIR}/build/conda"
rm -rf "${build_dir}"

# conda-build's CMAKE_ARGS (toolchain, search roots) reach CMake through scikit-build-core.
"${PYTHON}" -m pip install . -vv --no-deps --no-build-isolation \
    -Cbuild-dir="${build_dir}" \
    -Ccmake.define.OPENMM_DIR="${PREFIX}" \
    -Ccmake.define.OPENMM_CGML_BUILD_TESTS=ON \
    -Ccmake.define.OPENMM_CGML_BUILD_OPENCL=ON \
    -Ccmake.define.OPENMM_CGML_BUILD_CUDA="${build_cuda}" \
    -Ccmake.define.OPENMM_CGML_BUILD_HIP=OFF

# Fail here, not in a user's environment, if the libraries missed OpenMM's folders.
expected="lib/libOpenMMCGML.so lib/plugins/libOpenMMCGMLReference.so lib/plugins/libOpenMMCGMLCPU.so"
expected+=" lib/plugins/libOpenMMCGMLOpenCL.so"
if [[ "${build_cuda}" == ON ]]; then
    expected+=" lib/plugins/libOpenMMCGMLCUDA.so"
fi
for library in ${expected}; do
    if [[ ! -f "${PREFIX}/${library}" ]]; then
        echo "the build did not install ${PREFIX}/${library}" >&2
        exit 1
    fi
done

# The C++ test programs, run by run_test.py in the test section.
mkdir -p "${PREFIX}/share/${PKG_NAME}/tests"
find "${build_dir}/tests/cpp" -maxdepth 1 -name 'Test*' -type f -executable \
    -exec cp {} "${PREFIX}/share/${PKG_NAME}/tests/" \;
ls -l "${PREFIX}/share/${PKG_NAME}/tests"
