#include "ReferenceCGMLKernelFactory.h"
#include "ReferenceCGSchNetKernels.h"
#include "ReferenceDiscriminatorBiasKernels.h"
#include "internal/CGMLExport.h"
#include "internal/CGMLPluginUtilities.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/internal/ContextImpl.h"

using namespace OpenMM;
using namespace OpenMMCGML;

// The entry points that OpenMM's plugin loader looks up by name.
extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerPlatforms() {
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerCGMLReferenceKernelFactories() {
    checkOpenMMVersion();
    Platform* platform;
    try {
        platform = &Platform::getPlatformByName("Reference");
    }
    catch (const OpenMMException&) {
        return;
    }
    ReferenceCGMLKernelFactory* factory = new ReferenceCGMLKernelFactory();
    platform->registerKernelFactory(CalcCGSchNetForceKernel::Name(), factory);
    platform->registerKernelFactory(CalcDiscriminatorBiasForceKernel::Name(), factory);
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerKernelFactories() {
    registerCGMLReferenceKernelFactories();
}

KernelImpl* ReferenceCGMLKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    if (name == CalcCGSchNetForceKernel::Name())
        return new ReferenceCalcCGSchNetForceKernel(name, platform);
    if (name == CalcDiscriminatorBiasForceKernel::Name())
        return new ReferenceCalcDiscriminatorBiasForceKernel(name, platform);
    throw OpenMMException("Tried to create kernel with illegal kernel name '"+name+"'");
}
