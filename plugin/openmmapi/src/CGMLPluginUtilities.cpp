#include "internal/CGMLPluginUtilities.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"

#ifndef OPENMM_CGML_OPENMM_VERSION
#error "OPENMM_CGML_OPENMM_VERSION must be defined by the build"
#endif

using namespace std;

namespace OpenMMCGML {

string getBuiltForOpenMMVersion() {
    return OPENMM_CGML_OPENMM_VERSION;
}

static string majorMinor(const string& version) {
    size_t first = version.find('.');
    if (first == string::npos)
        return version;
    size_t second = version.find('.', first+1);
    return version.substr(0, second);
}

void checkOpenMMVersion() {
    string running = majorMinor(OpenMM::Platform::getOpenMMVersion());
    string built = majorMinor(getBuiltForOpenMMVersion());
    if (running != built)
        throw OpenMM::OpenMMException("openmm-cgml was built for OpenMM "+built+" but OpenMM "+running+
                                      " is loaded; reinstall openmm-cgml against this OpenMM");
}

} // namespace OpenMMCGML
