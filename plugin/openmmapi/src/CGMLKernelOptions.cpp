#include "internal/CGMLKernelOptions.h"
#include "openmm/OpenMMException.h"
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <sstream>
#include <string>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

const char* const CGMLKernelOptions::CpuSimdProperty = "CpuSimd";
const char* const CGMLKernelOptions::CommonTuningProperty = "CommonTuning";

namespace {

const char* const tuningKeys[] = {"singleLaunch", "groups", "tilePairs", "tileBeads"};

void invalid(const string& forceName, const string& source, const string& value, const string& why) {
    throw OpenMMException(forceName+": "+source+" = '"+value+"' is not valid: "+why);
}

CGMLKernelOptions::CpuInstructionSet parseCpuSimd(const string& value, const string& source, const string& forceName) {
    if (value == "auto" || value.empty())
        return CGMLKernelOptions::CpuAuto;
    if (value == "avx2")
        return CGMLKernelOptions::CpuAvx2;
    if (value == "generic")
        return CGMLKernelOptions::CpuGeneric;
    invalid(forceName, source, value, "use auto, avx2 or generic");
    return CGMLKernelOptions::CpuAuto;
}

string trim(const string& text) {
    size_t first = text.find_first_not_of(" \t");
    if (first == string::npos)
        return "";
    return text.substr(first, text.find_last_not_of(" \t")-first+1);
}

CGMLKernelOptions::CommonTuning parseCommonTuning(const string& value, const string& source, const string& forceName) {
    CGMLKernelOptions::CommonTuning tuning;
    stringstream stream(value);
    string item;
    // Empty items are skipped, and a later key overrides an earlier one, so that settings can be
    // appended ("$OPENMM_CGML_COMMON_TUNING,tileBeads=2").
    while (getline(stream, item, ',')) {
        item = trim(item);
        if (item.empty())
            continue;
        size_t equals = item.find('=');
        if (equals == string::npos)
            invalid(forceName, source, value, "'"+item+"' is not of the form key=value");
        string key = trim(item.substr(0, equals)), number = trim(item.substr(equals+1));
        int* target = nullptr;
        if (key == "singleLaunch")
            target = &tuning.singleLaunch;
        else if (key == "groups")
            target = &tuning.groups;
        else if (key == "tilePairs")
            target = &tuning.tilePairs;
        else if (key == "tileBeads")
            target = &tuning.tileBeads;
        else
            invalid(forceName, source, value, "unknown key '"+key+"' (the keys are singleLaunch, groups, tilePairs and tileBeads)");
        errno = 0;
        char* end = nullptr;
        long parsed = strtol(number.c_str(), &end, 10);
        bool isInteger = (!number.empty() && *end == '\0' && errno == 0 && parsed <= INT_MAX && parsed >= INT_MIN);
        if (key == "singleLaunch") {
            if (!isInteger || (parsed != 0 && parsed != 1))
                invalid(forceName, source, value, "singleLaunch must be 0 or 1 (got '"+number+"')");
        }
        else {
            // No tile of more than 1024 items fits the kernels' local memory (the kernel shrinks a
            // tile to what fits), and a single launch keeps every work group resident at once.
            const long largest = (key == "groups" ? 65536 : 1024);
            if (!isInteger || parsed < 1 || parsed > largest)
                invalid(forceName, source, value, key+" must be an integer from 1 to "+to_string(largest)+" (got '"+number+"')");
        }
        *target = (int) parsed;
    }
    return tuning;
}

} // namespace

string CGMLKernelOptions::CommonTuning::toString() const {
    const int values[] = {singleLaunch, groups, tilePairs, tileBeads};
    const int unset[] = {-1, 0, 0, 0};
    stringstream text;
    bool first = true;
    for (int i = 0; i < 4; i++)
        if (values[i] != unset[i]) {
            text << (first ? "" : ",") << tuningKeys[i] << "=" << values[i];
            first = false;
        }
    return text.str();
}

vector<string> CGMLKernelOptions::getPropertyNames() {
    return {CpuSimdProperty, CommonTuningProperty};
}

string CGMLKernelOptions::getEnvironmentVariable(const string& property) {
    if (property == CpuSimdProperty)
        return "OPENMM_CGML_CPU_SIMD";
    if (property == CommonTuningProperty)
        return "OPENMM_CGML_COMMON_TUNING";
    return "";
}

void CGMLKernelOptions::checkProperty(const string& name, const string& value, const string& forceName) {
    string source = "property "+name;
    if (name == CpuSimdProperty)
        parseCpuSimd(value, source, forceName);
    else if (name == CommonTuningProperty)
        parseCommonTuning(value, source, forceName);
    else {
        string known;
        for (const string& property : getPropertyNames())
            known += (known.empty() ? "" : ", ")+property;
        throw OpenMMException(forceName+": unknown property '"+name+"' (the properties are "+known+")");
    }
}

string CGMLKernelOptions::resolve(const map<string, string>& properties, const string& name, string& source) {
    auto found = properties.find(name);
    if (found != properties.end()) {
        source = "property "+name;
        return found->second;
    }
    string variable = getEnvironmentVariable(name);
    const char* value = (variable.empty() ? nullptr : getenv(variable.c_str()));
    if (value != nullptr && value[0] != '\0') {
        source = "environment variable "+variable;
        return value;
    }
    source = "default";
    return "";
}

CGMLKernelOptions::CpuInstructionSet CGMLKernelOptions::getCpuInstructionSet(const map<string, string>& properties,
                                                                            const string& forceName) {
    string source;
    string value = resolve(properties, CpuSimdProperty, source);
    return parseCpuSimd(value, source, forceName);
}

CGMLKernelOptions::CommonTuning CGMLKernelOptions::getCommonTuning(const map<string, string>& properties, const string& forceName) {
    string source;
    string value = resolve(properties, CommonTuningProperty, source);
    return parseCommonTuning(value, source, forceName);
}
