#include "CGSchNetKernels.h"
#include "CpuCGSchNetKernels.h"
#include "CpuDiscriminatorBiasKernels.h"
#include "internal/CGMLExport.h"
#include "internal/CGMLPluginUtilities.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/internal/ContextImpl.h"
#include <string>

using namespace OpenMM;
using namespace OpenMMCGML;

namespace OpenMMCGML {

/**
 * Creates the openmm-cgml kernels of the CPU platform: threaded single-precision kernels that use
 * the platform's thread pool (for DiscriminatorBiasForce the features in double precision, with
 * the Reference kernel's code).
 */
class CpuCGMLKernelFactory : public KernelFactory {
public:
    KernelImpl* createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
        if (name == CalcCGSchNetForceKernel::Name())
            return new CpuCalcCGSchNetForceKernel(name, platform, CpuPlatform::getPlatformData(context));
        if (name == CalcDiscriminatorBiasForceKernel::Name())
            return new CpuCalcDiscriminatorBiasForceKernel(name, platform, CpuPlatform::getPlatformData(context));
        throw OpenMMException("Tried to create kernel with illegal kernel name '"+name+"'");
    }
};

} // namespace OpenMMCGML

// The entry points that OpenMM's plugin loader looks up by name.

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerPlatforms() {
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerCGMLCpuKernelFactories() {
    checkOpenMMVersion();
    Platform* platform;
    try {
        platform = &Platform::getPlatformByName("CPU");
    }
    catch (const OpenMMException&) {
        // The CPU platform is absent (for example, the processor is not supported).
        return;
    }
    CpuCGMLKernelFactory* factory = new CpuCGMLKernelFactory();
    platform->registerKernelFactory(CalcCGSchNetForceKernel::Name(), factory);
    platform->registerKernelFactory(CalcDiscriminatorBiasForceKernel::Name(), factory);
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerKernelFactories() {
    registerCGMLCpuKernelFactories();
}
