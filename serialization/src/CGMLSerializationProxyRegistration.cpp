#include "CGSchNetForce.h"
#include "CGSchNetForceProxy.h"
#include "DiscriminatorBiasForce.h"
#include "DiscriminatorBiasForceProxy.h"
#include "openmm/serialization/SerializationProxy.h"

#if defined(WIN32)
    #include <windows.h>
    extern "C" OPENMM_EXPORT_CGML void registerCGMLSerializationProxies();
    BOOL WINAPI DllMain(HANDLE hModule, DWORD ul_reason_for_call, LPVOID lpReserved) {
        if (ul_reason_for_call == DLL_PROCESS_ATTACH)
            registerCGMLSerializationProxies();
        return TRUE;
    }
#else
    extern "C" void __attribute__((constructor)) registerCGMLSerializationProxies();
#endif

using namespace OpenMM;
using namespace OpenMMCGML;

// Runs when libOpenMMCGML is loaded, so that XmlSerializer knows the plugin's forces as soon as
// OpenMM has loaded the plugin libraries (which depend on it).
extern "C" OPENMM_EXPORT_CGML void registerCGMLSerializationProxies() {
    SerializationProxy::registerProxy(typeid(CGSchNetForce), new CGSchNetForceProxy());
    SerializationProxy::registerProxy(typeid(DiscriminatorBiasForce), new DiscriminatorBiasForceProxy());
}
