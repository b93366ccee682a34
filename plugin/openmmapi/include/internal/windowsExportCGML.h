#ifndef OPENMM_CGML_WINDOWSEXPORT_H_
#define OPENMM_CGML_WINDOWSEXPORT_H_

// Symbol visibility of the API library (libOpenMMCGML).
#if defined(_MSC_VER)
    #if defined(OPENMM_CGML_BUILDING_SHARED_LIBRARY)
        #define OPENMM_EXPORT_CGML __declspec(dllexport)
    #else
        #define OPENMM_EXPORT_CGML __declspec(dllimport)
    #endif
#else
    #define OPENMM_EXPORT_CGML __attribute__((visibility("default")))
#endif

#endif
