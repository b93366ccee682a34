#include "OpenCLCGMLKernelFactory.h"
#include "CommonCGSchNetKernels.h"
#include "CommonDiscriminatorBiasKernels.h"
#include "internal/CGMLPluginUtilities.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/internal/ContextImpl.h"
#include "internal/CGMLExport.h"
#include "openmm/opencl/OpenCLContext.h"
#include "openmm/opencl/OpenCLPlatform.h"

using namespace OpenMM;
using namespace OpenMMCGML;

// The entry points that OpenMM's plugin loader looks up by name.

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerPlatforms() {
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerCGMLOpenCLKernelFactories() {
    checkOpenMMVersion();
    Platform* platform;
    try {
        platform = &Platform::getPlatformByName("OpenCL");
    }
    catch (const OpenMMException&) {
        // OpenMM's OpenCL platform is not available here.
        return;
    }
    OpenCLCGMLKernelFactory* factory = new OpenCLCGMLKernelFactory();
    platform->registerKernelFactory(CalcCGSchNetForceKernel::Name(), factory);
    platform->registerKernelFactory(CalcDiscriminatorBiasForceKernel::Name(), factory);
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerKernelFactories() {
    registerCGMLOpenCLKernelFactories();
}

KernelImpl* OpenCLCGMLKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    OpenCLContext& cc = *static_cast<OpenCLPlatform::PlatformData*>(context.getPlatformData())->contexts[0];
    if (name == CalcCGSchNetForceKernel::Name())
        return new CommonCalcCGSchNetForceKernel(name, platform, cc);
    if (name == CalcDiscriminatorBiasForceKernel::Name())
        return new CommonCalcDiscriminatorBiasForceKernel(name, platform, cc);
    throw OpenMMException("Tried to create kernel with illegal kernel name '"+name+"'");
}
