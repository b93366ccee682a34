# Which platform plugins to build, and a record of what was built for openmmcgml.plugin_status().
#
# The GPU platforms (OpenCL, CUDA, HIP) each have a cache setting OPENMM_CGML_BUILD_<PLATFORM>:
#   AUTO  build it when its toolkit and OpenMM's platform library are found, otherwise skip it with
#         one status line saying what is missing and how to get it;
#   ON    it is required: stop with an error if anything is missing;
#   OFF   do not build it.
# Every platform's outcome (built, or why not) is recorded with cgml_record_platform() and written
# as JSON by cgml_write_platform_record(); the file is installed next to the Python package.

# cgml_record_platform(<name> <built: ON|OFF> <reason>)
function(cgml_record_platform name built reason)
    get_property(_names GLOBAL PROPERTY CGML_PLATFORM_NAMES)
    if(NOT name IN_LIST _names)
        set_property(GLOBAL APPEND PROPERTY CGML_PLATFORM_NAMES "${name}")
    endif()
    set_property(GLOBAL PROPERTY "CGML_PLATFORM_${name}_BUILT" "${built}")
    set_property(GLOBAL PROPERTY "CGML_PLATFORM_${name}_REASON" "${reason}")
endfunction()

# cgml_choose_platform(<name>
#     OPTION <cache variable: AUTO, ON or OFF>
#     PACKAGE <find_package name> [FIND_ARGS <extra find_package arguments>...]
#     PACKAGE_MISSING <what is missing when the package is not found, and how to get it: no ';'>
#     OPENMM_LIBRARY <path of OpenMM's platform library>
#     LIBRARY_HINT <how to get OpenMM's platform library>
#     RESULT <variable set to ON when the platform is to be built>)
# Looks for the toolkit (find_package, which honours CMAKE_DISABLE_FIND_PACKAGE_<PACKAGE>) and for
# OpenMM's platform library, prints one status line when the platform is skipped, and records the
# outcome.  The caller builds the library when RESULT is ON (and then records nothing more).
function(cgml_choose_platform name)
    cmake_parse_arguments(ARG "" "OPTION;PACKAGE;PACKAGE_MISSING;OPENMM_LIBRARY;LIBRARY_HINT;RESULT" "FIND_ARGS" ${ARGN})
    set(_mode "${${ARG_OPTION}}")
    string(TOUPPER "${_mode}" _mode_upper)
    set(_required OFF)
    set(_missing "")
    if(_mode_upper MATCHES "^(ON|YES|TRUE|Y|1)$")
        set(_required ON)
    elseif(_mode_upper MATCHES "^(OFF|NO|FALSE|N|0)$")
        set(_missing "switched off (${ARG_OPTION}=${_mode})")
    elseif(NOT _mode_upper STREQUAL "AUTO")
        message(FATAL_ERROR "${ARG_OPTION} is '${_mode}': it must be AUTO, ON or OFF")
    endif()

    if(_missing)
        # switched off: nothing to look for
    elseif(CMAKE_DISABLE_FIND_PACKAGE_${ARG_PACKAGE})
        set(_missing "find_package(${ARG_PACKAGE}) is disabled (CMAKE_DISABLE_FIND_PACKAGE_${ARG_PACKAGE}=ON)")
    else()
        find_package(${ARG_PACKAGE} QUIET ${ARG_FIND_ARGS})
        if(NOT ${ARG_PACKAGE}_FOUND)
            set(_missing "${ARG_PACKAGE_MISSING}")
        endif()
    endif()
    if(NOT _missing AND NOT EXISTS "${ARG_OPENMM_LIBRARY}")
        get_filename_component(_library_name "${ARG_OPENMM_LIBRARY}" NAME)
        get_filename_component(_library_dir "${ARG_OPENMM_LIBRARY}" DIRECTORY)
        set(_missing "OpenMM's ${name} platform library ${_library_name} is not in ${_library_dir} (${ARG_LIBRARY_HINT})")
    endif()

    if(_missing)
        if(_required)
            message(FATAL_ERROR "${ARG_OPTION}=${_mode} but ${_missing}")
        endif()
        message(STATUS "openmm-cgml ${name} platform: not built: ${_missing}")
        cgml_record_platform(${name} OFF "${_missing}")
        set(${ARG_RESULT} OFF PARENT_SCOPE)
        return()
    endif()
    message(STATUS "openmm-cgml ${name} platform: building against ${ARG_OPENMM_LIBRARY}")
    cgml_record_platform(${name} ON "")
    set(${ARG_RESULT} ON PARENT_SCOPE)
endfunction()

function(_cgml_json_string text out)
    string(REPLACE "\\" "\\\\" text "${text}")
    string(REPLACE "\"" "\\\"" text "${text}")
    string(REPLACE "\n" "\\n" text "${text}")
    string(REPLACE "\t" "\\t" text "${text}")
    set(${out} "\"${text}\"" PARENT_SCOPE)
endfunction()

# cgml_write_platform_record(<output file>)
# Writes {"openmm_version": ..., "platforms": {<name>: {"built": bool, "library": file name,
# "reason": text}}} (the file changes only when its content does).
function(cgml_write_platform_record output)
    get_property(_names GLOBAL PROPERTY CGML_PLATFORM_NAMES)
    _cgml_json_string("${OPENMM_VERSION}" _version)
    set(_entries "")
    foreach(_name IN LISTS _names)
        get_property(_built GLOBAL PROPERTY "CGML_PLATFORM_${_name}_BUILT")
        get_property(_reason GLOBAL PROPERTY "CGML_PLATFORM_${_name}_REASON")
        if(_built)
            set(_built_json true)
        else()
            set(_built_json false)
        endif()
        _cgml_json_string("${_name}" _key)
        _cgml_json_string("libOpenMMCGML${_name}${CMAKE_SHARED_LIBRARY_SUFFIX}" _library)
        _cgml_json_string("${_reason}" _reason_json)
        if(_entries)
            string(APPEND _entries ",\n")
        endif()
        string(APPEND _entries "    ${_key}: {\"built\": ${_built_json}, \"library\": ${_library}, \"reason\": ${_reason_json}}")
    endforeach()
    set(CGML_PLATFORM_RECORD "{\n  \"openmm_version\": ${_version},\n  \"platforms\": {\n${_entries}\n  }\n}\n")
    file(CONFIGURE OUTPUT "${output}" CONTENT "@CGML_PLATFORM_RECORD@" @ONLY)
endfunction()
