#ifndef OPENMM_CGML_REFERENCEDISCRIMINATORBIASKERNELS_H_
#define OPENMM_CGML_REFERENCEDISCRIMINATORBIASKERNELS_H_

#include "DiscriminatorBiasKernels.h"
#include "DiscriminatorBiasReferenceModel.h"
#include "openmm/Platform.h"
#include <memory>
#include <string>

namespace OpenMMCGML {

/** Evaluates a DiscriminatorBiasForce in double precision with DiscriminatorBiasReferenceModel. */
class ReferenceCalcDiscriminatorBiasForceKernel : public CalcDiscriminatorBiasForceKernel {
public:
    ReferenceCalcDiscriminatorBiasForceKernel(std::string name, const OpenMM::Platform& platform) :
            CalcDiscriminatorBiasForceKernel(name, platform), usePeriodic(false) {
    }
    void initialize(const OpenMM::System& system, const DiscriminatorBiasForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const DiscriminatorBiasForce& force);
private:
    std::unique_ptr<DiscriminatorBiasReferenceModel> model;
    std::string scaleParameterName;
    bool usePeriodic;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_REFERENCEDISCRIMINATORBIASKERNELS_H_*/
