#ifndef OPENMM_CGML_DISCRIMINATORBIASKERNELS_H_
#define OPENMM_CGML_DISCRIMINATORBIASKERNELS_H_

#include "DiscriminatorBiasForce.h"
#include "openmm/KernelImpl.h"
#include "openmm/System.h"
#include "openmm/internal/ContextImpl.h"
#include <string>

namespace OpenMMCGML {

/**
 * The kernel that evaluates a DiscriminatorBiasForce.  Each platform provides one implementation.
 */
class CalcDiscriminatorBiasForceKernel : public OpenMM::KernelImpl {
public:
    static std::string Name() {
        return "CalcDiscriminatorBiasForce";
    }
    CalcDiscriminatorBiasForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {
    }
    /** Prepare the kernel.  The force has already been validated against the System. */
    virtual void initialize(const OpenMM::System& system, const DiscriminatorBiasForce& force) = 0;
    /**
     * Compute the forces and/or the energy.
     *
     * @return the potential energy, if includeEnergy is true
     */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    /** Copy changed weights and scalar settings; the caller has checked that nothing structural changed. */
    virtual void copyParametersToContext(OpenMM::ContextImpl& context, const DiscriminatorBiasForce& force) = 0;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_DISCRIMINATORBIASKERNELS_H_*/
