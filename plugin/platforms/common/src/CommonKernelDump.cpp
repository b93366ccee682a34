#include "CommonKernelDump.h"
#include "openmm/OpenMMException.h"
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace OpenMM;
using namespace std;

namespace {

// A JSON string literal.
string jsonString(const string& text) {
    stringstream out;
    out << '"';
    for (char c : text) {
        if (c == '"' || c == '\\')
            out << '\\' << c;
        else if (c == '\n')
            out << "\\n";
        else if ((unsigned char) c < 0x20) {
            const char* hex = "0123456789abcdef";
            out << "\\u00" << hex[(c >> 4) & 0xf] << hex[c & 0xf];
        }
        else
            out << c;
    }
    out << '"';
    return out.str();
}

} // namespace

void OpenMMCGML::dumpKernelSourceIfAsked(ComputeContext& cc, const string& platformName, const string& stem, const string& text,
                                         const map<string, string>& defines, const string& forceName) {
    const char* variable = getenv("OPENMM_CGML_DUMP_KERNEL_SOURCE");
    if (variable == NULL || variable[0] == '\0')
        return;
    string directory = variable, base;
    for (int index = 0; ; index++) {
        base = directory+"/"+stem+"-"+cc.intToString(index);
        if (!ifstream((base+".json").c_str()).good())
            break;
    }
    ofstream source((base+".cc").c_str());
    source << text;
    source.close();
    ofstream description((base+".json").c_str());
    string precision = (cc.getUseDoublePrecision() ? "double" : cc.getUseMixedPrecision() ? "mixed" : "single");
    description << "{\n  \"platform\": " << jsonString(platformName) << ",\n  \"precision\": " << jsonString(precision)
                << ",\n  \"source\": " << jsonString(base.substr(directory.size()+1)+".cc") << ",\n  \"defines\": {";
    bool first = true;
    for (const auto& define : defines) {
        description << (first ? "\n" : ",\n") << "    " << jsonString(define.first) << ": " << jsonString(define.second);
        first = false;
    }
    description << "\n  }\n}\n";
    description.close();
    if (source.fail() || description.fail())
        throw OpenMMException(forceName+": could not write the kernel source to "+base+".cc and .json "
                              "(OPENMM_CGML_DUMP_KERNEL_SOURCE="+directory+")");
}
