#ifndef OPENMM_CGML_CGSCHNETKERNELS_H_
#define OPENMM_CGML_CGSCHNETKERNELS_H_

#include "CGSchNetForce.h"
#include "openmm/KernelImpl.h"
#include "openmm/System.h"
#include "openmm/internal/ContextImpl.h"
#include <map>
#include <string>

namespace OpenMMCGML {

/**
 * The kernel that evaluates a CGSchNetForce.  Each platform provides one implementation.
 */
class CalcCGSchNetForceKernel : public OpenMM::KernelImpl {
public:
    static std::string Name() {
        return "CalcCGSchNetForce";
    }
    CalcCGSchNetForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {
    }
    /**
     * Prepare the kernel.  The force has already been validated against the System.
     */
    virtual void initialize(const OpenMM::System& system, const CGSchNetForce& force) = 0;
    /**
     * Compute the forces and/or the energy.
     *
     * @return the potential energy, if includeEnergy is true
     */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    /**
     * Copy changed weights and scalar settings into the kernel.  The caller has already checked
     * that nothing structural changed.
     */
    virtual void copyParametersToContext(OpenMM::ContextImpl& context, const CGSchNetForce& force) = 0;
    /**
     * The settings in effect, by property name (CGSchNetForce::getEffectiveProperties()): only the
     * properties this kernel reads, every automatic choice resolved.
     */
    virtual std::map<std::string, std::string> getEffectiveProperties() const {
        return std::map<std::string, std::string>();
    }
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETKERNELS_H_*/
