#include "internal/CGSchNetForceImpl.h"
#include "CGSchNetKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <cmath>
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
}

namespace {

/**
 * Throw if a value of a row-major array (columns > 0), vector (columns == 0) or scalar
 * (columns < 0) does not fit in a float.  The largest float is 2^128 - 2^104; a double rounds to it, not to infinity, if its
 * magnitude is below the midpoint 2^128 - 2^103 (a tie rounds to even, which is infinity).
 */
void checkFloatRange(const vector<double>& values, int columns, const string& name, const string& precision) {
    const double limit = ldexp(33554431.0, 103);
    for (size_t i = 0; i < values.size(); i++)
        if (!(fabs(values[i]) < limit)) {
            stringstream msg;
            msg << "CGSchNetForce: " << name;
            if (columns > 0)
                msg << "[" << i/columns << "][" << i%columns << "]";
            else if (columns == 0)
                msg << "[" << i << "]";
            msg << " = " << values[i] << " is outside the range of single precision (magnitudes up to 3.4e+38), in which "
                << precision << " computes";
            throw OpenMMException(msg.str());
        }
}

} // namespace

void CGSchNetForceImpl::checkSinglePrecisionRange(const CGSchNetForce& force, const string& precision) {
    const int F = force.getNumFeatures(), NF = force.getNumFilters();
    checkFloatRange(vector<double>(1, force.getCutoff()), -1, "the cutoff", precision);
    checkFloatRange(vector<double>(1, force.getRBFLowerCutoff()), -1, "the RBF lower cutoff", precision);
    checkFloatRange(vector<double>(1, force.getDefaultScale()), -1, "the default scale", precision);
    checkFloatRange(force.getRBFCenters(), 0, "RBF centers", precision);
    checkFloatRange(force.getRBFWidths(), 0, "RBF widths", precision);
    checkFloatRange(force.getEmbedding(), F, "embedding", precision);
    const char* names[] = {"filterWeights1 (A1)", "filterBias1 (a1)", "filterWeights2 (A2)", "filterBias2 (a2)",
                           "messageWeights (B)", "updateWeights1 (C1)", "updateBias1 (c1)", "updateWeights2 (C2)",
                           "updateBias2 (c2)"};
    // The number of columns of each block array (0 for the biases).
    const int columns[] = {NF, 0, NF, 0, NF, F, 0, F, 0};
    for (int b = 0; b < force.getNumInteractionBlocks(); b++)
        for (int a = 0; a < 9; a++) {
            stringstream name;
            name << "interaction block " << b << " " << names[a];
            checkFloatRange(force.getInteractionBlockArray(b, (CGSchNetForce::BlockArray) a), columns[a], name.str(), precision);
        }
    for (int l = 0; l < force.getNumOutputLayers(); l++) {
        stringstream name;
        name << "output layer " << l;
        checkFloatRange(force.getOutputLayerWeights(l), force.getOutputLayerSize(l), name.str()+" weights", precision);
        checkFloatRange(force.getOutputLayerBias(l), 0, name.str()+" bias", precision);
    }
}
