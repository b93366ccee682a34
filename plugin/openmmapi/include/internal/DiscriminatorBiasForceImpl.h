#ifndef OPENMM_CGML_DISCRIMINATORBIASFORCEIMPL_H_
#define OPENMM_CGML_DISCRIMINATORBIASFORCEIMPL_H_

#include "DiscriminatorBiasForce.h"
#include "openmm/Kernel.h"
#include "openmm/internal/ForceImpl.h"
#include <map>
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * The internal implementation of DiscriminatorBiasForce: it validates the force, owns the platform
 * kernel and forwards each force evaluation to it.
 */
class OPENMM_EXPORT_CGML DiscriminatorBiasForceImpl : public OpenMM::ForceImpl {
public:
    DiscriminatorBiasForceImpl(const DiscriminatorBiasForce& owner);
    ~DiscriminatorBiasForceImpl();
    void initialize(OpenMM::ContextImpl& context);
    const DiscriminatorBiasForce& getOwner() const {
        return owner;
    }
    void updateContextState(OpenMM::ContextImpl& context, bool& forcesInvalid) {
    }
    double calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, int groups);
    std::map<std::string, double> getDefaultParameters();
    std::vector<std::string> getKernelNames();
    void updateParametersInContext(OpenMM::ContextImpl& context);
    /** Throw an OpenMMException unless the two forces differ only in weights and scalar settings. */
    static void checkSameStructure(const DiscriminatorBiasForce& initial, const DiscriminatorBiasForce& updated);
private:
    const DiscriminatorBiasForce& owner;
    OpenMM::Kernel kernel;
    DiscriminatorBiasForce initialStructure;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_DISCRIMINATORBIASFORCEIMPL_H_*/
