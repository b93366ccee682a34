#ifndef OPENMM_CGML_CGSCHNETFORCEIMPL_H_
#define OPENMM_CGML_CGSCHNETFORCEIMPL_H_

#include "CGSchNetForce.h"
#include "openmm/Kernel.h"
#include "openmm/internal/ForceImpl.h"
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace OpenMMCGML {

/**
 * The internal implementation of CGSchNetForce: it validates the force, owns the platform kernel
 * and forwards each force evaluation to it.
 */
class OPENMM_EXPORT_CGML CGSchNetForceImpl : public OpenMM::ForceImpl {
public:
    CGSchNetForceImpl(const CGSchNetForce& owner);
    ~CGSchNetForceImpl();
    void initialize(OpenMM::ContextImpl& context);
    const CGSchNetForce& getOwner() const {
        return owner;
    }
    void updateContextState(OpenMM::ContextImpl& context, bool& forcesInvalid) {
    }
    double calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, int groups);
    std::map<std::string, double> getDefaultParameters();
    std::vector<std::string> getKernelNames();
    void updateParametersInContext(OpenMM::ContextImpl& context);
    /** The kernel's settings in effect (CGSchNetForce::getEffectiveProperties()). */
    std::map<std::string, std::string> getEffectiveProperties() const;
    /**
     * Throw an OpenMMException unless the two forces differ only in weights and scalar settings.
     */
    static void checkSameStructure(const CGSchNetForce& initial, const CGSchNetForce& updated);
private:
    const CGSchNetForce& owner;
    OpenMM::Kernel kernel;
    CGSchNetForce initialStructure;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETFORCEIMPL_H_*/
