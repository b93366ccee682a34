#include "ReferenceCGSchNetKernels.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

static ReferencePlatform::PlatformData& getPlatformData(ContextImpl& context) {
    return *reinterpret_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
}

ReferenceCalcCGSchNetForceKernel::ReferenceCalcCGSchNetForceKernel(string name, const Platform& platform) :
        CalcCGSchNetForceKernel(name, platform), usePeriodic(false) {
}

ReferenceCalcCGSchNetForceKernel::~ReferenceCalcCGSchNetForceKernel() {
}

void ReferenceCalcCGSchNetForceKernel::initialize(const System& system, const CGSchNetForce& force) {
    topology = CGSchNetTopology::build(force, system.getNumParticles());
    model.reset(new CGSchNetReferenceModel(topology, CGSchNetWeights(force)));
    scaleParameterName = force.getScaleParameterName();
    usePeriodic = force.usesPeriodicBoundaryConditions();
    beadPositions.resize(topology.particles.size());
}

double ReferenceCalcCGSchNetForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ReferencePlatform::PlatformData& data = getPlatformData(context);
    const vector<Vec3>& positions = *data.positions;
    for (size_t i = 0; i < beadPositions.size(); i++)
        beadPositions[i] = positions[topology.particles[i]];
    const double scale = context.getParameter(scaleParameterName);
    double outputSum;
    double energy = model->compute(beadPositions, usePeriodic ? data.periodicBoxVectors : NULL, scale, includeForces, outputSum, beadGradient);
    if (includeForces) {
        vector<Vec3>& forces = *data.forces;
        for (size_t i = 0; i < beadGradient.size(); i++)
            forces[topology.particles[i]] -= beadGradient[i];
    }
    // dU/ds; added rather than assigned because other forces may use the same parameter.
    (*data.energyParameterDerivatives)[scaleParameterName] += outputSum;
    return includeEnergy ? energy : 0.0;
}

void ReferenceCalcCGSchNetForceKernel::copyParametersToContext(ContextImpl& context, const CGSchNetForce& force) {
    if (model == NULL)
        throw OpenMMException("CGSchNetForce: updateParametersInContext() called before the kernel was initialized");
    model->setParameters(CGSchNetWeights(force));
}
