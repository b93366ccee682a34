#include "ReferenceDiscriminatorBiasKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

void ReferenceCalcDiscriminatorBiasForceKernel::initialize(const System& system, const DiscriminatorBiasForce& force) {
    model.reset(new DiscriminatorBiasReferenceModel(force, system.getNumParticles()));
    scaleParameterName = force.getScaleParameterName();
    usePeriodic = force.usesPeriodicBoundaryConditions();
}

double ReferenceCalcDiscriminatorBiasForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ReferencePlatform::PlatformData& data = *reinterpret_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
    const double scale = context.getParameter(scaleParameterName);
    double logitSum;
    double energy = model->compute(*data.positions, usePeriodic ? data.periodicBoxVectors : NULL, scale,
                                   includeForces ? data.forces : NULL, logitSum);
    // dE/dlambda = -kT sum of logits; added because other forces may share the parameter
    (*data.energyParameterDerivatives)[scaleParameterName] += -model->getKT()*logitSum;
    return includeEnergy ? energy : 0.0;
}

void ReferenceCalcDiscriminatorBiasForceKernel::copyParametersToContext(ContextImpl& context, const DiscriminatorBiasForce& force) {
    if (model == NULL)
        throw OpenMMException("DiscriminatorBiasForce: updateParametersInContext() called before the kernel was initialized");
    model->setParameters(force);
}
