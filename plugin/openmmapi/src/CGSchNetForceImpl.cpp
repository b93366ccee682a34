#include "internal/CGSchNetForceImpl.h"
#include "CGSchNetKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

CGSchNetForceImpl::CGSchNetForceImpl(const CGSchNetForce& owner) : owner(owner), initialStructure(owner) {
}

CGSchNetForceImpl::~CGSchNetForceImpl() {
}

void CGSchNetForceImpl::initialize(ContextImpl& context) {
    const System& system = context.getSystem();
    owner.validate(system.getNumParticles());
    initialStructure = owner;
    kernel = context.getPlatform().createKernel(CalcCGSchNetForceKernel::Name(), context);
    kernel.getAs<CalcCGSchNetForceKernel>().initialize(system, owner);
}

double CGSchNetForceImpl::calcForcesAndEnergy(ContextImpl& context, bool includeForces, bool includeEnergy, int groups) {
    if ((groups&(1<<owner.getForceGroup())) != 0)
        return kernel.getAs<CalcCGSchNetForceKernel>().execute(context, includeForces, includeEnergy);
    return 0.0;
}

map<string, double> CGSchNetForceImpl::getDefaultParameters() {
    map<string, double> parameters;
    parameters[owner.getScaleParameterName()] = owner.getDefaultScale();
    return parameters;
}

vector<string> CGSchNetForceImpl::getKernelNames() {
    vector<string> names;
    names.push_back(CalcCGSchNetForceKernel::Name());
    return names;
}

map<string, string> CGSchNetForceImpl::getEffectiveProperties() const {
    return kernel.getAs<CalcCGSchNetForceKernel>().getEffectiveProperties();
}

void CGSchNetForceImpl::updateParametersInContext(ContextImpl& context) {
    checkSameStructure(initialStructure, owner);
    owner.validate(context.getSystem().getNumParticles());
    kernel.getAs<CalcCGSchNetForceKernel>().copyParametersToContext(context, owner);
    context.systemChanged();
}

namespace {

void structureChanged(const string& what) {
    throw OpenMMException("CGSchNetForce.updateParametersInContext: "+what+
                          " changed; only weights, the cutoff and the radial basis can be updated in a Context (reinitialize it for other changes)");
}

} // namespace

void CGSchNetForceImpl::checkSameStructure(const CGSchNetForce& a, const CGSchNetForce& b) {
    if (a.getNumTypes() != b.getNumTypes() || a.getNumFeatures() != b.getNumFeatures() ||
            a.getNumFilters() != b.getNumFilters() || a.getNumRBF() != b.getNumRBF())
        structureChanged("the network dimensions");
    if (a.getNumInteractionBlocks() != b.getNumInteractionBlocks())
        structureChanged("the number of interaction blocks");
    if (a.getNumOutputLayers() != b.getNumOutputLayers())
        structureChanged("the number of output layers");
    for (int i = 0; i < a.getNumOutputLayers(); i++)
        if (a.getOutputLayerSize(i) != b.getOutputLayerSize(i))
            structureChanged("the size of an output layer");
    if (a.getActivation() != b.getActivation())
        structureChanged("the activation");
    if (a.getRBFType() != b.getRBFType())
        structureChanged("the RBF type");
    if (a.getParticles() != b.getParticles())
        structureChanged("the particle list");
    if (a.getBeadTypes() != b.getBeadTypes())
        structureChanged("the bead types");
    if (a.getMolecules() != b.getMolecules())
        structureChanged("the molecule ids");
    if (a.getNumExclusions() != b.getNumExclusions())
        structureChanged("the exclusions");
    for (int i = 0; i < a.getNumExclusions(); i++) {
        int a1, a2, b1, b2;
        a.getExclusionParticles(i, a1, a2);
        b.getExclusionParticles(i, b1, b2);
        if (a1 != b1 || a2 != b2)
            structureChanged("the exclusions");
    }
    if (a.usesPeriodicBoundaryConditions() != b.usesPeriodicBoundaryConditions())
        structureChanged("the periodicity");
    if (a.getScaleParameterName() != b.getScaleParameterName())
        structureChanged("the scale parameter name");
    // The table size (and exact vs tabulated mode) fixes the kernels' buffers and code paths.
    if (a.getFilterTabulationPoints() != b.getFilterTabulationPoints())
        structureChanged("the number of filter tabulation points");
    // The properties are read when the kernel is created.
    if (a.getProperties() != b.getProperties())
        structureChanged("the properties");
}
