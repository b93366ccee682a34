#ifndef OPENMM_CGML_CUDACGMLKERNELFACTORY_H_
#define OPENMM_CGML_CUDACGMLKERNELFACTORY_H_

#include "openmm/KernelFactory.h"

namespace OpenMMCGML {

/**
 * Creates the openmm-cgml kernels of the CUDA platform.
 */
class CudaCGMLKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CUDACGMLKERNELFACTORY_H_*/
