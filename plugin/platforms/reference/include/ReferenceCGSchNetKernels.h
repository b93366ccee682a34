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
 * Evaluates a CGSchNetForce in double precision on the Reference platform.  It is the correctness
 * oracle for the other platforms, including the tabulated-filter mode.
 */
class OPENMM_EXPORT_CGML_REFERENCE ReferenceCalcCGSchNetForceKernel : public CalcCGSchNetForceKernel {
public:
    ReferenceCalcCGSchNetForceKernel(std::string name, const OpenMM::Platform& platform);
    ~ReferenceCalcCGSchNetForceKernel();
    void initialize(const OpenMM::System& system, const CGSchNetForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const CGSchNetForce& force);
    /**
     * Copy the weights and scalar settings of a force into plain arrays.
     */
    static CGSchNetReferenceParameters extractParameters(const CGSchNetForce& force);
private:
    CGSchNetTopology topology;
    std::unique_ptr<CGSchNetReferenceModel> model;
    std::string scaleParameterName;
    bool usePeriodic;
    std::vector<OpenMM::Vec3> beadPositions, beadGradient;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_REFERENCECGSCHNETKERNELS_H_*/
