#include "CGSchNetForce.h"
#include "internal/CGMLKernelOptions.h"
#include "internal/CGSchNetFilterTable.h"
#include "internal/CGSchNetForceImpl.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <new>
#include <set>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

void fail(const string& message) {
    throw OpenMMException("CGSchNetForce: "+message);
}

void checkArray(const vector<double>& values, size_t expectedSize, const string& name) {
    if (values.size() != expectedSize) {
        stringstream msg;
        msg << name << " has " << values.size() << " values but " << expectedSize << " are required";
        fail(msg.str());
    }
    for (size_t i = 0; i < values.size(); i++)
        if (!isfinite(values[i])) {
            stringstream msg;
            msg << name << " contains a non-finite value (" << values[i] << ") at index " << i;
            fail(msg.str());
        }
}

void checkIndex(int index, int size, const string& what) {
    if (index < 0 || index >= size) {
        stringstream msg;
        msg << what << " index " << index << " is out of range [0, " << size << ")";
        fail(msg.str());
    }
}

} // namespace

CGSchNetForce::CGSchNetForce(int numTypes, int numFeatures, int numFilters, int numRBF, double cutoff) :
        numTypes(numTypes), numFeatures(numFeatures), numFilters(numFilters), numRBF(numRBF), cutoff(cutoff),
        rbfLowerCutoff(0.0), defaultScale(1.0), activation(ShiftedSoftplus), rbfType(Gaussian), periodic(false),
        filterTabulationPoints(0), scaleName("cgmlScale") {
    if (numTypes <= 0 || numFeatures <= 0 || numFilters <= 0 || numRBF <= 0) {
        stringstream msg;
        msg << "numTypes, numFeatures, numFilters and numRBF must be positive (got " << numTypes << ", " << numFeatures
            << ", " << numFilters << ", " << numRBF << ")";
        fail(msg.str());
    }
    setCutoff(cutoff);
    try {
        rbfCenters.resize(numRBF);
        rbfWidths.resize(numRBF);
        embedding.resize((size_t) numTypes*numFeatures, 0.0);
    }
    catch (const bad_alloc&) {
        stringstream msg;
        msg << "numTypes x numFeatures = " << numTypes << " x " << numFeatures << " and numRBF = " << numRBF
            << " are too large to allocate";
        fail(msg.str());
    }
    double spacing = (numRBF > 1 ? cutoff/(numRBF-1) : cutoff);
    for (int k = 0; k < numRBF; k++) {
        rbfCenters[k] = (numRBF > 1 ? k*spacing : 0.0);
        rbfWidths[k] = 0.5/(spacing*spacing);
    }
}

void CGSchNetForce::setCutoff(double distance) {
    if (!(distance > 0.0) || !isfinite(distance)) {
        stringstream msg;
        msg << "the cutoff must be positive and finite (got " << distance << ")";
        fail(msg.str());
    }
    if (rbfType == ExpNormal && rbfLowerCutoff >= distance) {
        stringstream msg;
        msg << "the cutoff (" << distance << ") must be larger than the RBF lower cutoff (" << rbfLowerCutoff << ")";
        fail(msg.str());
    }
    cutoff = distance;
}

void CGSchNetForce::setActivation(Activation act) {
    if (act != ShiftedSoftplus && act != Tanh && act != SiLU)
        fail("unknown activation");
    activation = act;
}

void CGSchNetForce::setRBFParameters(RBFType type, const vector<double>& centers, const vector<double>& widths, double lowerCutoff) {
    if (type != Gaussian && type != ExpNormal)
        fail("unknown RBF type");
    checkArray(centers, numRBF, "RBF centers");
    checkArray(widths, numRBF, "RBF widths");
    for (int k = 0; k < numRBF; k++)
        if (!(widths[k] > 0.0)) {
            stringstream msg;
            msg << "RBF width " << k << " must be positive (got " << widths[k] << ")";
            fail(msg.str());
        }
    if (type == ExpNormal && !(lowerCutoff >= 0.0 && lowerCutoff < cutoff)) {
        stringstream msg;
        msg << "the RBF lower cutoff must lie in [0, cutoff) (got " << lowerCutoff << " with cutoff " << cutoff << ")";
        fail(msg.str());
    }
    rbfType = type;
    rbfCenters = centers;
    rbfWidths = widths;
    rbfLowerCutoff = (type == ExpNormal ? lowerCutoff : 0.0);
}

void CGSchNetForce::setEmbedding(const vector<double>& values) {
    checkArray(values, (size_t) numTypes*numFeatures, "embedding");
    embedding = values;
}

namespace {

vector<vector<double> > makeBlock(int F, int NF, int K,
                                  const vector<double>& A1, const vector<double>& a1, const vector<double>& A2, const vector<double>& a2,
                                  const vector<double>& B, const vector<double>& C1, const vector<double>& c1,
                                  const vector<double>& C2, const vector<double>& c2) {
    vector<vector<double> > block = {A1, a1, A2, a2, B, C1, c1, C2, c2};
    const size_t sizes[] = {(size_t) K*NF, (size_t) NF, (size_t) NF*NF, (size_t) NF, (size_t) F*NF,
                            (size_t) NF*F, (size_t) F, (size_t) F*F, (size_t) F};
    for (int i = 0; i < 9; i++)
        checkArray(block[i], sizes[i], string("interaction block ")+CGSchNetWeights::getBlockArrayName((CGSchNetForce::BlockArray) i));
    return block;
}

} // namespace

int CGSchNetForce::addInteractionBlock(const vector<double>& A1, const vector<double>& a1, const vector<double>& A2,
                                       const vector<double>& a2, const vector<double>& B, const vector<double>& C1,
                                       const vector<double>& c1, const vector<double>& C2, const vector<double>& c2) {
    blocks.push_back(makeBlock(numFeatures, numFilters, numRBF, A1, a1, A2, a2, B, C1, c1, C2, c2));
    return (int) blocks.size()-1;
}

void CGSchNetForce::setInteractionBlockParameters(int index, const vector<double>& A1, const vector<double>& a1,
                                                  const vector<double>& A2, const vector<double>& a2, const vector<double>& B,
                                                  const vector<double>& C1, const vector<double>& c1,
                                                  const vector<double>& C2, const vector<double>& c2) {
    checkIndex(index, blocks.size(), "interaction block");
    blocks[index] = makeBlock(numFeatures, numFilters, numRBF, A1, a1, A2, a2, B, C1, c1, C2, c2);
}

vector<double> CGSchNetForce::getInteractionBlockArray(int index, BlockArray array) const {
    checkIndex(index, blocks.size(), "interaction block");
    checkIndex((int) array, 9, "block array");
    return blocks[index][array];
}

int CGSchNetForce::addOutputLayer(const vector<double>& weights, const vector<double>& bias) {
    int inputs = (outputBiases.empty() ? numFeatures : (int) outputBiases.back().size());
    if (bias.empty())
        fail("an output layer needs at least one output");
    stringstream name;
    name << "output layer " << outputWeights.size();
    checkArray(weights, (size_t) inputs*bias.size(), name.str()+" weights");
    checkArray(bias, bias.size(), name.str()+" bias");
    outputWeights.push_back(weights);
    outputBiases.push_back(bias);
    return (int) outputWeights.size()-1;
}

void CGSchNetForce::setOutputLayerParameters(int index, const vector<double>& weights, const vector<double>& bias) {
    checkIndex(index, outputWeights.size(), "output layer");
    stringstream name;
    name << "output layer " << index;
    checkArray(weights, outputWeights[index].size(), name.str()+" weights");
    checkArray(bias, outputBiases[index].size(), name.str()+" bias");
    outputWeights[index] = weights;
    outputBiases[index] = bias;
}

vector<double> CGSchNetForce::getOutputLayerWeights(int index) const {
    checkIndex(index, outputWeights.size(), "output layer");
    return outputWeights[index];
}

vector<double> CGSchNetForce::getOutputLayerBias(int index) const {
    checkIndex(index, outputBiases.size(), "output layer");
    return outputBiases[index];
}

int CGSchNetForce::getOutputLayerSize(int index) const {
    checkIndex(index, outputBiases.size(), "output layer");
    return (int) outputBiases[index].size();
}

void CGSchNetForce::setParticles(const vector<int>& values) {
    for (size_t i = 0; i < values.size(); i++)
        if (values[i] < 0) {
            stringstream msg;
            msg << "particle index " << values[i] << " (entry " << i << ") is negative";
            fail(msg.str());
        }
    particles = values;
}

void CGSchNetForce::setBeadTypes(const vector<int>& types) {
    for (size_t i = 0; i < types.size(); i++)
        if (types[i] < 0 || types[i] >= numTypes) {
            stringstream msg;
            msg << "bead type " << types[i] << " of bead " << i << " is out of range [0, " << numTypes << ")";
            fail(msg.str());
        }
    beadTypes = types;
}

void CGSchNetForce::setMolecules(const vector<int>& values) {
    for (size_t i = 0; i < values.size(); i++)
        if (values[i] < 0) {
            stringstream msg;
            msg << "molecule id " << values[i] << " of bead " << i << " is negative";
            fail(msg.str());
        }
    molecules = values;
}

int CGSchNetForce::addExclusion(int particle1, int particle2) {
    if (particle1 < 0 || particle2 < 0) {
        stringstream msg;
        msg << "exclusion (" << particle1 << ", " << particle2 << ") has a negative index";
        fail(msg.str());
    }
    exclusions.push_back(make_pair(particle1, particle2));
    return (int) exclusions.size()-1;
}

void CGSchNetForce::getExclusionParticles(int index, int& particle1, int& particle2) const {
    checkIndex(index, exclusions.size(), "exclusion");
    particle1 = exclusions[index].first;
    particle2 = exclusions[index].second;
}

void CGSchNetForce::setExclusionParticles(int index, int particle1, int particle2) {
    checkIndex(index, exclusions.size(), "exclusion");
    if (particle1 < 0 || particle2 < 0) {
        stringstream msg;
        msg << "exclusion (" << particle1 << ", " << particle2 << ") has a negative index";
        fail(msg.str());
    }
    exclusions[index] = make_pair(particle1, particle2);
}

void CGSchNetForce::setScaleParameterName(const string& name) {
    if (name.empty())
        fail("the scale parameter name must not be empty");
    scaleName = name;
}

void CGSchNetForce::setDefaultScale(double scale) {
    if (!isfinite(scale))
        fail("the default scale must be finite");
    defaultScale = scale;
}

void CGSchNetForce::setUsesPeriodicBoundaryConditions(bool usePeriodic) {
    periodic = usePeriodic;
}

void CGSchNetForce::setFilterTabulationPoints(int numPoints) {
    // At 10^4 points the interpolation error of a typical model is far below double rounding
    // (docs/cgschnet.md), so the upper limit only catches corrupt values, before a table of
    // blocks x points x 4 x filters values is allocated from them.
    if (numPoints < 0 || numPoints == 1 || numPoints > 1000000) {
        stringstream msg;
        msg << "the number of filter tabulation points must be 0 (exact filters) or between 2 and 1000000 (got " << numPoints << ")";
        fail(msg.str());
    }
    filterTabulationPoints = numPoints;
}

vector<double> CGSchNetForce::computeFilterTabulationError(int numPoints) const {
    if (numPoints < 2) {
        stringstream msg;
        msg << "computeFilterTabulationError needs at least 2 points (got " << numPoints << ")";
        fail(msg.str());
    }
    if (blocks.empty())
        fail("the model has no interaction blocks");
    return CGSchNetFilterTable::measureError(CGSchNetWeights(*this, false), numPoints);
}

void CGSchNetForce::setProperty(const string& name, const string& value) {
    CGMLKernelOptions::checkProperty(name, value, "CGSchNetForce");
    if (value.empty())
        properties.erase(name);
    else
        properties[name] = value;
}

map<string, string> CGSchNetForce::getEffectiveProperties(const Context& context) const {
    return dynamic_cast<const CGSchNetForceImpl&>(getImplInContext(context)).getEffectiveProperties();
}

void CGSchNetForce::validate(int numSystemParticles) const {
    int numBeads = (particles.empty() ? numSystemParticles : (int) particles.size());
    set<int> seen;
    for (size_t i = 0; i < particles.size(); i++) {
        if (particles[i] >= numSystemParticles) {
            stringstream msg;
            msg << "particle index " << particles[i] << " (entry " << i << ") is out of range for a System of "
                << numSystemParticles << " particles";
            fail(msg.str());
        }
        if (!seen.insert(particles[i]).second) {
            stringstream msg;
            msg << "particle " << particles[i] << " is listed more than once";
            fail(msg.str());
        }
    }
    if ((int) beadTypes.size() != numBeads) {
        stringstream msg;
        msg << "there are " << beadTypes.size() << " bead types but the force acts on " << numBeads << " particles";
        fail(msg.str());
    }
    for (size_t i = 0; i < beadTypes.size(); i++)
        checkIndex(beadTypes[i], numTypes, "bead type");
    if (!molecules.empty() && (int) molecules.size() != numBeads) {
        stringstream msg;
        msg << "there are " << molecules.size() << " molecule ids but the force acts on " << numBeads << " particles";
        fail(msg.str());
    }
    set<pair<int, int> > excluded;
    for (size_t e = 0; e < exclusions.size(); e++) {
        int i = exclusions[e].first, j = exclusions[e].second;
        stringstream where;
        where << "exclusion " << e << " (" << i << ", " << j << ")";
        if (i >= numBeads || j >= numBeads) {
            stringstream msg;
            msg << where.str() << " refers to a bead out of range [0, " << numBeads << ")";
            fail(msg.str());
        }
        if (i == j)
            fail(where.str()+" pairs a bead with itself");
        if (!molecules.empty() && molecules[i] != molecules[j])
            fail(where.str()+" joins two different molecules");
        if (!excluded.insert(make_pair(min(i, j), max(i, j))).second)
            fail(where.str()+" is a duplicate");
    }
    if (blocks.empty())
        fail("the model has no interaction blocks");
    if (outputWeights.empty())
        fail("the model has no output layers");
    if (outputBiases.back().size() != 1) {
        stringstream msg;
        msg << "the last output layer must have exactly one output (it has " << outputBiases.back().size() << ")";
        fail(msg.str());
    }
}

ForceImpl* CGSchNetForce::createImpl() const {
    return new CGSchNetForceImpl(*this);
}

void CGSchNetForce::updateParametersInContext(Context& context) {
    dynamic_cast<CGSchNetForceImpl&>(getImplInContext(context)).updateParametersInContext(getContextImpl(context));
}
