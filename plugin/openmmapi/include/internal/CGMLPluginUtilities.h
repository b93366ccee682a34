#ifndef OPENMM_CGML_PLUGINUTILITIES_H_
#define OPENMM_CGML_PLUGINUTILITIES_H_

#include "internal/CGMLExport.h"
#include <string>

namespace OpenMMCGML {

/** The OpenMM version ("major.minor") this plugin was compiled against. */
OPENMM_EXPORT_CGML std::string getBuiltForOpenMMVersion();

/**
 * Throw an OpenMMException if the OpenMM library loaded at run time has a different major.minor
 * version than the one the plugin was compiled against: kernel and platform classes are not
 * binary compatible across minor versions.
 */
OPENMM_EXPORT_CGML void checkOpenMMVersion();

} // namespace OpenMMCGML

#endif
