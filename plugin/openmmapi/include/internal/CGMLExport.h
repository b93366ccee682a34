#ifndef OPENMM_CGML_EXPORT_H_
#define OPENMM_CGML_EXPORT_H_

/*
 * Symbol visibility of every openmm-cgml library.
 *
 * OPENMM_EXPORT_CGML marks the classes and functions of the API library (libOpenMMCGML), which the
 * platform plugins, the Python module and the C++ tests link against: exported while that library
 * is built (OPENMM_CGML_BUILDING_SHARED_LIBRARY), imported by everything else.
 *
 * OPENMM_CGML_PLUGIN_ENTRY marks the entry points of the platform plugins (registerPlatforms,
 * registerKernelFactories), which OpenMM's plugin loader looks up by name: they are always
 * exported, also when a plugin is built with hidden symbols.  Nothing else of a platform plugin is
 * used from outside it.
 */

#if defined(_MSC_VER)
    #if defined(OPENMM_CGML_BUILDING_SHARED_LIBRARY)
        #define OPENMM_EXPORT_CGML __declspec(dllexport)
    #else
        #define OPENMM_EXPORT_CGML __declspec(dllimport)
    #endif
    #define OPENMM_CGML_PLUGIN_ENTRY __declspec(dllexport)
#else
    #define OPENMM_EXPORT_CGML __attribute__((visibility("default")))
    #define OPENMM_CGML_PLUGIN_ENTRY __attribute__((visibility("default")))
#endif

#endif /*OPENMM_CGML_EXPORT_H_*/
