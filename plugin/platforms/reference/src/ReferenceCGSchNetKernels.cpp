#include "ReferenceCGSchNetKernels.h"
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

CGSchNetReferenceParameters ReferenceCalcCGSchNetForceKernel::extractParameters(const CGSchNetForce& force) {
    CGSchNetReferenceParameters params;
    params.numTypes = force.getNumTypes();
    params.numFeatures = force.getNumFeatures();
    params.numFilters = force.getNumFilters();
    params.numRBF = force.getNumRBF();
    params.cutoff = force.getCutoff();
    params.activation = force.getActivation();
    params.rbfType = force.getRBFType();
    params.rbfCenters = force.getRBFCenters();
    params.rbfWidths = force.getRBFWidths();
    params.rbfLowerCutoff = force.getRBFLowerCutoff();
    params.embedding = force.getEmbedding();
    params.blocks.resize(force.getNumInteractionBlocks());
    for (int b = 0; b < force.getNumInteractionBlocks(); b++) {
        CGSchNetReferenceParameters::Block& block = params.blocks[b];
        block.filterWeights1 = force.getInteractionBlockArray(b, CGSchNetForce::FilterWeights1);
        block.filterBias1 = force.getInteractionBlockArray(b, CGSchNetForce::FilterBias1);
        block.filterWeights2 = force.getInteractionBlockArray(b, CGSchNetForce::FilterWeights2);
        block.filterBias2 = force.getInteractionBlockArray(b, CGSchNetForce::FilterBias2);
        block.messageWeights = force.getInteractionBlockArray(b, CGSchNetForce::MessageWeights);
        block.updateWeights1 = force.getInteractionBlockArray(b, CGSchNetForce::UpdateWeights1);
        block.updateBias1 = force.getInteractionBlockArray(b, CGSchNetForce::UpdateBias1);
        block.updateWeights2 = force.getInteractionBlockArray(b, CGSchNetForce::UpdateWeights2);
        block.updateBias2 = force.getInteractionBlockArray(b, CGSchNetForce::UpdateBias2);
    }
    for (int l = 0; l < force.getNumOutputLayers(); l++) {
        params.outputWeights.push_back(force.getOutputLayerWeights(l));
        params.outputBiases.push_back(force.getOutputLayerBias(l));
    }
    if (force.getFilterTabulationPoints() > 0)
        params.filterTable = make_shared<CGSchNetFilterTable>(force, force.getFilterTabulationPoints());
    return params;
}

void ReferenceCalcCGSchNetForceKernel::initialize(const System& system, const CGSchNetForce& force) {
    topology = CGSchNetTopology::build(force, system.getNumParticles());
    model.reset(new CGSchNetReferenceModel(topology, extractParameters(force)));
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
    model->setParameters(extractParameters(force));
    usePeriodic = force.usesPeriodicBoundaryConditions();
}
