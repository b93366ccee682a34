#include "HipCGMLKernelFactory.h"
#include "CommonCGSchNetKernels.h"
#include "CommonDiscriminatorBiasKernels.h"
#include "internal/CGMLPluginUtilities.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/internal/ContextImpl.h"
#include "internal/CGMLExport.h"
#include "openmm/hip/HipContext.h"
#include "openmm/hip/HipPlatform.h"

using namespace OpenMM;
using namespace OpenMMCGML;

// The entry points that OpenMM's plugin loader looks up by name.

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerPlatforms() {
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerCGMLHIPKernelFactories() {
    checkOpenMMVersion();
    Platform* platform;
    try {
        platform = &Platform::getPlatformByName("HIP");
    }
    catch (const OpenMMException&) {
        // OpenMM's HIP platform is not available here.
        return;
    }
    HipCGMLKernelFactory* factory = new HipCGMLKernelFactory();
    platform->registerKernelFactory(CalcCGSchNetForceKernel::Name(), factory);
    platform->registerKernelFactory(CalcDiscriminatorBiasForceKernel::Name(), factory);
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerKernelFactories() {
    registerCGMLHIPKernelFactories();
}

KernelImpl* HipCGMLKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    HipContext& cc = *static_cast<HipPlatform::PlatformData*>(context.getPlatformData())->contexts[0];
    if (name == CalcCGSchNetForceKernel::Name()) {
        // One resident work group per compute unit lets the kernels synchronize the whole grid.
        int computeUnits = 0;
        if (hipDeviceGetAttribute(&computeUnits, hipDeviceAttributeMultiprocessorCount, cc.getDevice()) != hipSuccess)
            computeUnits = 0;
        return new CommonCalcCGSchNetForceKernel(name, platform, cc, computeUnits);
    }
    if (name == CalcDiscriminatorBiasForceKernel::Name())
        return new CommonCalcDiscriminatorBiasForceKernel(name, platform, cc);
    throw OpenMMException("Tried to create kernel with illegal kernel name '"+name+"'");
}
