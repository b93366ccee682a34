# cgml_embed_kernel_sources(OUTPUT_DIR dir CLASS name SOURCES files...)
# Writes dir/NAME.h and dir/NAME.cpp defining `struct NAME { static const std::string <stem>; }`
# in namespace OpenMMCGML, one member per kernel file, holding the file's text.  The files are
# re-embedded whenever they change.
function(cgml_embed_kernel_sources)
    cmake_parse_arguments(ARG "" "OUTPUT_DIR;CLASS" "SOURCES" ${ARGN})
    file(MAKE_DIRECTORY "${ARG_OUTPUT_DIR}")
    set(_header "${ARG_OUTPUT_DIR}/${ARG_CLASS}.h")
    set(_source "${ARG_OUTPUT_DIR}/${ARG_CLASS}.cpp")
    # "|" joins the files: a ";" would split the command line in the shell
    string(REPLACE ";" "|" _kernels "${ARG_SOURCES}")
    add_custom_command(
        OUTPUT "${_header}" "${_source}"
        COMMAND "${CMAKE_COMMAND}" -DCLASS=${ARG_CLASS} -DHEADER=${_header} -DSOURCE=${_source}
                "-DKERNELS=${_kernels}" -P "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/WriteKernelSources.cmake"
        VERBATIM
        DEPENDS ${ARG_SOURCES} "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/WriteKernelSources.cmake"
        COMMENT "Embedding kernel sources in ${ARG_CLASS}")
endfunction()
