# Locate OpenMM: from OPENMM_DIR if given, else from the Python environment's openmm package
# (the PyPI wheel keeps headers and libraries in site-packages/OpenMM.libs), else from CONDA_PREFIX.
# Defines the imported target OpenMM::OpenMM and OPENMM_INCLUDE_DIR, OPENMM_LIBRARY_DIR,
# OPENMM_VERSION, OPENMM_VERSION_MAJOR_MINOR.

# OpenMM's plugin interface changes between minor versions, so the plugin is built for exactly one.
# The openmm pins of pyproject.toml and recipe/meta.yaml say the same (tests/test_recipe.py checks).
set(OPENMM_CGML_REQUIRED_OPENMM "8.6")
string(REPLACE "." ";" _cgml_required_parts "${OPENMM_CGML_REQUIRED_OPENMM}")
list(GET _cgml_required_parts 1 _cgml_required_minor)
math(EXPR _cgml_next_minor "${_cgml_required_minor} + 1")
list(GET _cgml_required_parts 0 _cgml_required_major)
set(_cgml_openmm_pip_spec "openmm>=${OPENMM_CGML_REQUIRED_OPENMM},<${_cgml_required_major}.${_cgml_next_minor}")

if(NOT OPENMM_DIR AND DEFINED ENV{OPENMM_DIR})
    set(OPENMM_DIR "$ENV{OPENMM_DIR}")
endif()
if(NOT OPENMM_DIR)
    execute_process(
        COMMAND "${Python3_EXECUTABLE}" -c "import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))"
        OUTPUT_VARIABLE _cgml_openmm_root OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE _cgml_status ERROR_QUIET)
    if(_cgml_status EQUAL 0 AND EXISTS "${_cgml_openmm_root}/include/OpenMM.h")
        set(OPENMM_DIR "${_cgml_openmm_root}")
    elseif(DEFINED ENV{CONDA_PREFIX})
        set(OPENMM_DIR "$ENV{CONDA_PREFIX}")
    endif()
endif()
if(NOT OPENMM_DIR OR NOT EXISTS "${OPENMM_DIR}/include/OpenMM.h")
    message(FATAL_ERROR "OpenMM was not found: install the openmm Python package (pip install '${_cgml_openmm_pip_spec}') "
                        "or set OPENMM_DIR to a folder with include/OpenMM.h and lib/libOpenMM.so")
endif()
set(OPENMM_INCLUDE_DIR "${OPENMM_DIR}/include")
set(OPENMM_LIBRARY_DIR "${OPENMM_DIR}/lib")
find_library(OPENMM_LIBRARY OpenMM PATHS "${OPENMM_LIBRARY_DIR}" NO_DEFAULT_PATH REQUIRED)

execute_process(
    COMMAND "${Python3_EXECUTABLE}" -c "import openmm.version as v; print(v.short_version)"
    OUTPUT_VARIABLE OPENMM_VERSION OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _cgml_status ERROR_QUIET)
if(NOT _cgml_status EQUAL 0 OR NOT OPENMM_VERSION)
    # Without the Python package, read the version from the headers' Platform library name.
    message(FATAL_ERROR "Could not read the OpenMM version from Python (import openmm.version)")
endif()
string(REGEX MATCH "^[0-9]+\\.[0-9]+" OPENMM_VERSION_MAJOR_MINOR "${OPENMM_VERSION}")
if(NOT OPENMM_VERSION_MAJOR_MINOR VERSION_EQUAL OPENMM_CGML_REQUIRED_OPENMM)
    message(FATAL_ERROR "OpenMM ${OPENMM_VERSION} was found (${OPENMM_DIR}), but this plugin is built for OpenMM "
                        "${OPENMM_CGML_REQUIRED_OPENMM}: install '${_cgml_openmm_pip_spec}' or point OPENMM_DIR at one")
endif()
message(STATUS "OpenMM ${OPENMM_VERSION} in ${OPENMM_DIR}")

add_library(OpenMM::OpenMM SHARED IMPORTED)
set_target_properties(OpenMM::OpenMM PROPERTIES
    IMPORTED_LOCATION "${OPENMM_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OPENMM_INCLUDE_DIR};${OPENMM_INCLUDE_DIR}/openmm/reference;${OPENMM_INCLUDE_DIR}/openmm/common")
