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
    /**
     * Throw an OpenMMException unless the two forces differ only in weights and scalar settings.
     */
    static void checkSameStructure(const CGSchNetForce& initial, const CGSchNetForce& updated);
    /**
     * Throw an OpenMMException naming the first weight or setting of the force (array and index)
     * that single precision cannot represent: a finite double whose magnitude rounds beyond the
     * largest float.  Kernels that store the weights in float call it when a Context is created
     * and before they copy updated weights, so that a refused update leaves the old ones in use.
     *
     * @param force      the force to check
     * @param precision  says what computes in single precision, for the message (e.g. "the CPU platform")
     */
    static void checkSinglePrecisionRange(const CGSchNetForce& force, const std::string& precision);
private:
    const CGSchNetForce& owner;
    OpenMM::Kernel kernel;
    CGSchNetForce initialStructure;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETFORCEIMPL_H_*/
