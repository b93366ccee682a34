#ifndef OPENMM_CGML_COMMONDISCRIMINATORBIASKERNELS_H_
#define OPENMM_CGML_COMMONDISCRIMINATORBIASKERNELS_H_

#include "DiscriminatorBiasKernels.h"
#include "openmm/Platform.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * Evaluates a DiscriminatorBiasForce on CUDA, OpenCL or HIP (kernels/discriminator.cc): one work
 * group per molecule, forces in OpenMM's fixed-point buffer.
 */
class CommonCalcDiscriminatorBiasForceKernel : public CalcDiscriminatorBiasForceKernel {
public:
    CommonCalcDiscriminatorBiasForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ComputeContext& cc) :
            CalcDiscriminatorBiasForceKernel(name, platform), cc(cc), hasKernel(false) {
    }
    void initialize(const OpenMM::System& system, const DiscriminatorBiasForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const DiscriminatorBiasForce& force);
private:
    class ForceInfo;
    /** The parameter array (means, 1/stds, layers) and the clamps of a force, in the kernel's layout. */
    void packParameters(const DiscriminatorBiasForce& force, std::vector<double>& values, std::vector<double>& clampValues,
                        std::vector<int>* layoutValues) const;
    void upload(OpenMM::ComputeArray& array, const std::vector<double>& values);
    OpenMM::ComputeContext& cc;
    bool hasKernel, usePeriodic;
    int numMolecules, workGroupSize;
    double temperature;
    std::string scaleParameterName;
    OpenMM::ComputeArray molecules, definitions, featureIndex, params, layout, clamps;
    OpenMM::ComputeKernel kernel;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_COMMONDISCRIMINATORBIASKERNELS_H_*/
