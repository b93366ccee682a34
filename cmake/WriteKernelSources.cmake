# Script mode helper of EmbedKernelSources.cmake.
set(_members "")
set(_definitions "")
foreach(_file ${KERNELS})
    get_filename_component(_stem "${_file}" NAME_WE)
    file(READ "${_file}" _text)
    string(APPEND _members "    static const std::string ${_stem};\n")
    # A raw string literal keeps the kernel text verbatim; the delimiter cannot occur in kernel code.
    string(APPEND _definitions "const std::string ${CLASS}::${_stem} = R\"CGMLKERNEL(${_text})CGMLKERNEL\";\n\n")
endforeach()
file(WRITE "${HEADER}.tmp" "#ifndef CGML_${CLASS}_H_\n#define CGML_${CLASS}_H_\n\n#include <string>\n\nnamespace OpenMMCGML {\n\nstruct ${CLASS} {\n${_members}};\n\n}\n\n#endif\n")
file(WRITE "${SOURCE}.tmp" "#include \"${CLASS}.h\"\n\nnamespace OpenMMCGML {\n\n${_definitions}}\n")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${HEADER}.tmp" "${HEADER}")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${SOURCE}.tmp" "${SOURCE}")
