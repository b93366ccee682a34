#ifndef OPENMM_CGML_REFERENCECGSCHNETKERNELS_H_
#define OPENMM_CGML_REFERENCECGSCHNETKERNELS_H_

#include "CGSchNetKernels.h"
#include "CGSchNetReferenceModel.h"
#include "internal/CGSchNetTopology.h"
#include "openmm/Platform.h"
#include "openmm/Vec3.h"
#include <memory>
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * Evaluates a CGSchNetForce in double precision on the Reference platform, with
 * CGSchNetReferenceModel.  It is the correctness check for the other platforms, including the
 * tabulated-filter mode.
 */
class ReferenceCalcCGSchNetForceKernel : public CalcCGSchNetForceKernel {
public:
    ReferenceCalcCGSchNetForceKernel(std::string name, const OpenMM::Platform& platform);
    ~ReferenceCalcCGSchNetForceKernel();
    void initialize(const OpenMM::System& system, const CGSchNetForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const CGSchNetForce& force);
private:
    CGSchNetTopology topology;
    std::unique_ptr<CGSchNetReferenceModel> model;
    std::string scaleParameterName;
    bool usePeriodic;
    std::vector<OpenMM::Vec3> beadPositions, beadGradient;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_REFERENCECGSCHNETKERNELS_H_*/
