# The CUDA platform plugin.  It only compiles and links host code against OpenMM's CUDA platform
# (the kernels are compiled at run time by OpenMM), so a CUDA toolkit's headers and the driver
# stub are all that is needed: it builds on machines without a GPU too.
set(_cgml_cuda_library "${OPENMM_LIBRARY_DIR}/plugins/libOpenMMCUDA.so")
cgml_choose_platform(CUDA
    OPTION OPENMM_CGML_BUILD_CUDA
    PACKAGE CUDAToolkit
    PACKAGE_MISSING "no CUDA toolkit was found (nvcc and its headers): install NVIDIA's CUDA toolkit or set CUDAToolkit_ROOT"
    OPENMM_LIBRARY "${_cgml_cuda_library}"
    LIBRARY_HINT "install OpenMM's CUDA platform without its GPU runtime: pip install --no-deps openmm-cuda-13"
    RESULT CGML_BUILD_CUDA)

if(CGML_BUILD_CUDA)
    file(GLOB CGML_CUDA_SOURCES plugin/platforms/cuda/src/*.cpp)
    add_library(OpenMMCGMLCUDA SHARED ${CGML_CUDA_SOURCES})
    target_link_libraries(OpenMMCGMLCUDA PRIVATE CGMLCommon OpenMMCGML CUDA::toolkit "${_cgml_cuda_library}")
    # Resolve libcuda at run time from the driver; at link time the toolkit's stub stands in.
    target_link_options(OpenMMCGMLCUDA PRIVATE "-Wl,--allow-shlib-undefined")
    set_target_properties(OpenMMCGMLCUDA PROPERTIES INSTALL_RPATH "${CGML_PLUGIN_RPATH}")
    install(TARGETS OpenMMCGMLCUDA LIBRARY DESTINATION "${CGML_PLUGIN_DESTINATION}")
endif()
