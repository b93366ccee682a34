#include "CudaCGMLKernelFactory.h"
#include "CommonCGSchNetKernels.h"
#include "CommonDiscriminatorBiasKernels.h"
#include "internal/CGMLPluginUtilities.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/internal/ContextImpl.h"
#include "internal/CGMLExport.h"
#include "openmm/cuda/CudaContext.h"
#include "openmm/cuda/CudaPlatform.h"

using namespace OpenMM;
using namespace OpenMMCGML;

// The entry points that OpenMM's plugin loader looks up by name.

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerPlatforms() {
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerCGMLCUDAKernelFactories() {
    checkOpenMMVersion();
    Platform* platform;
    try {
        platform = &Platform::getPlatformByName("CUDA");
    }
    catch (const OpenMMException&) {
        // OpenMM's CUDA platform is not available here.
        return;
    }
    CudaCGMLKernelFactory* factory = new CudaCGMLKernelFactory();
    platform->registerKernelFactory(CalcCGSchNetForceKernel::Name(), factory);
    platform->registerKernelFactory(CalcDiscriminatorBiasForceKernel::Name(), factory);
}

extern "C" OPENMM_CGML_PLUGIN_ENTRY void registerKernelFactories() {
    registerCGMLCUDAKernelFactories();
}

KernelImpl* CudaCGMLKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    CudaContext& cc = *static_cast<CudaPlatform::PlatformData*>(context.getPlatformData())->contexts[0];
    if (name == CalcCGSchNetForceKernel::Name()) {
        // One resident work group per multiprocessor lets the kernels synchronize the whole grid.
        int multiprocessors = 0;
        if (cuDeviceGetAttribute(&multiprocessors, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, cc.getDevice()) != CUDA_SUCCESS)
            multiprocessors = 0;
        return new CommonCalcCGSchNetForceKernel(name, platform, cc, multiprocessors);
    }
    if (name == CalcDiscriminatorBiasForceKernel::Name())
        return new CommonCalcDiscriminatorBiasForceKernel(name, platform, cc);
    throw OpenMMException("Tried to create kernel with illegal kernel name '"+name+"'");
}
