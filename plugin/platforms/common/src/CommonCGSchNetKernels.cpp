#include "CommonCGSchNetKernels.h"
#include "CommonCGMLKernelSources.h"
#include "internal/CGSchNetTopology.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ComputeForceInfo.h"
#include "openmm/common/ComputeVectorTypes.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

/**
 * Tells OpenMM's atom reordering which particles it may exchange.  A bead is interchangeable only
 * with a bead of the same type in the same molecule, and each molecule is a particle group identical
 * only to itself, so reordering never moves a bead to another molecule (or at all): the kernels can
 * read positions at each bead's System index.
 */
class CommonCalcCGSchNetForceKernel::ForceInfo : public ComputeForceInfo {
public:
    ForceInfo(const CGSchNetTopology& topology, int numSystemParticles) : types(topology.types), molecules(topology.molecules) {
        beadIndex.resize(numSystemParticles, -1);
        for (int i = 0; i < (int) topology.particles.size(); i++)
            beadIndex[topology.particles[i]] = i;
        for (const vector<int>& beads : topology.moleculeBeads) {
            vector<int> group;
            for (int bead : beads)
                group.push_back(topology.particles[bead]);
            groups.push_back(group);
        }
    }
    bool areParticlesIdentical(int particle1, int particle2) {
        int bead1 = beadIndex[particle1], bead2 = beadIndex[particle2];
        if (bead1 == -1 || bead2 == -1)
            return (bead1 == bead2);
        return (types[bead1] == types[bead2] && molecules[bead1] == molecules[bead2]);
    }
    int getNumParticleGroups() {
        return groups.size();
    }
    void getParticlesInGroup(int index, vector<int>& particles) {
        particles = groups[index];
    }
    bool areGroupsIdentical(int group1, int group2) {
        return (group1 == group2);
    }
private:
    vector<int> beadIndex, types, molecules;
    vector<vector<int> > groups;
};

namespace {

// Offsets of the nine arrays of one interaction block inside its packed parameter array, in the
// order of CGSchNetForce::BlockArray.
vector<int> blockOffsets(int numRBF, int numFilters, int numFeatures) {
    int sizes[9] = {numRBF*numFilters, numFilters, numFilters*numFilters, numFilters, numFeatures*numFilters,
                    numFilters*numFeatures, numFeatures, numFeatures*numFeatures, numFeatures};
    vector<int> offsets(10, 0);
    for (int i = 0; i < 9; i++)
        offsets[i+1] = offsets[i]+sizes[i];
    return offsets;
}

// An array of at least one element: devices reject empty buffers.
size_t atLeastOne(size_t size) {
    return max(size, (size_t) 1);
}

template <class T>
void uploadPadded(ComputeArray& array, vector<T> values) {
    values.resize(array.getSize());
    array.upload(values);
}

} // namespace

CommonCalcCGSchNetForceKernel::CommonCalcCGSchNetForceKernel(string name, const Platform& platform, ComputeContext& cc) :
        CalcCGSchNetForceKernel(name, platform), cc(cc), kernelsCreated(false) {
}

CommonCalcCGSchNetForceKernel::~CommonCalcCGSchNetForceKernel() {
}

void CommonCalcCGSchNetForceKernel::initializeReal(ComputeArray& array, size_t size, const string& name) {
    int elementSize = (cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float));
    array.initialize(cc, atLeastOne(size), elementSize, name);
}

void CommonCalcCGSchNetForceKernel::uploadReal(ComputeArray& array, const vector<double>& values) {
    vector<double> padded(values);
    padded.resize(array.getSize(), 0.0);
    array.upload(padded, true);
}

void CommonCalcCGSchNetForceKernel::setRealArg(ComputeKernel& kernel, int index, double value) {
    if (cc.getUseDoublePrecision())
        kernel->setArg(index, value);
    else
        kernel->setArg(index, (float) value);
}

void CommonCalcCGSchNetForceKernel::setBoxArgs(ComputeKernel& kernel, int index) {
    Vec3 a, b, c;
    cc.getPeriodicBoxVectors(a, b, c);
    if (cc.getUseDoublePrecision()) {
        kernel->setArg(index++, mm_double4(a[0], b[1], c[2], 0.0));
        kernel->setArg(index++, mm_double4(1.0/a[0], 1.0/b[1], 1.0/c[2], 0.0));
        kernel->setArg(index++, mm_double4(a[0], a[1], a[2], 0.0));
        kernel->setArg(index++, mm_double4(b[0], b[1], b[2], 0.0));
        kernel->setArg(index, mm_double4(c[0], c[1], c[2], 0.0));
    }
    else {
        kernel->setArg(index++, mm_float4((float) a[0], (float) b[1], (float) c[2], 0.0f));
        kernel->setArg(index++, mm_float4((float) (1.0/a[0]), (float) (1.0/b[1]), (float) (1.0/c[2]), 0.0f));
        kernel->setArg(index++, mm_float4((float) a[0], (float) a[1], (float) a[2], 0.0f));
        kernel->setArg(index++, mm_float4((float) b[0], (float) b[1], (float) b[2], 0.0f));
        kernel->setArg(index, mm_float4((float) c[0], (float) c[1], (float) c[2], 0.0f));
    }
}

void CommonCalcCGSchNetForceKernel::initialize(const System& system, const CGSchNetForce& force) {
    ContextSelector selector(cc);
    CGSchNetTopology topology = CGSchNetTopology::build(force, system.getNumParticles());
    numBeads = topology.particles.size();
    numPairs = topology.pairs.size();
    numTypes = force.getNumTypes();
    numRBF = force.getNumRBF();
    numFilters = force.getNumFilters();
    numFeatures = force.getNumFeatures();
    numBlocks = force.getNumInteractionBlocks();
    outputSizes.clear();
    for (int i = 0; i < force.getNumOutputLayers(); i++)
        outputSizes.push_back(force.getOutputLayerSize(i));
    cutoff = force.getCutoff();
    lowerCutoff = force.getRBFLowerCutoff();
    activation = force.getActivation();
    rbfType = force.getRBFType();
    usePeriodic = force.usesPeriodicBoundaryConditions();
    scaleParameterName = force.getScaleParameterName();

    // The kernels index per-pair and per-bead arrays with 32-bit integers.
    long long largestPairArray = (long long) numPairs*max(max(numFilters, numRBF), 1);
    long long largestBeadArray = (long long) numBeads*max(max(numFilters, numFeatures), *max_element(outputSizes.begin(), outputSizes.end()));
    if (largestPairArray > INT_MAX || largestBeadArray > INT_MAX) {
        stringstream msg;
        msg << "CGSchNetForce: " << numPairs << " candidate pairs and " << numBeads << " beads are too many for the GPU kernels";
        throw OpenMMException(msg.str());
    }

    // Topology.
    particles.initialize<int>(cc, atLeastOne(numBeads), "cgschnetParticles");
    uploadPadded(particles, topology.particles);
    beadTypes.initialize<int>(cc, atLeastOne(numBeads), "cgschnetBeadTypes");
    uploadPadded(beadTypes, topology.types);
    vector<mm_int2> beadPairs;
    for (const auto& pair : topology.pairs)
        beadPairs.push_back(mm_int2(pair.first, pair.second));
    pairBeads.initialize<mm_int2>(cc, atLeastOne(numPairs), "cgschnetPairBeads");
    uploadPadded(pairBeads, beadPairs);
    neighborStart.initialize<int>(cc, numBeads+1, "cgschnetNeighborStart");
    neighborStart.upload(topology.neighborStart);
    neighborPair.initialize<int>(cc, atLeastOne(2*numPairs), "cgschnetNeighborPair");
    uploadPadded(neighborPair, topology.neighborPair);
    neighborOther.initialize<int>(cc, atLeastOne(2*numPairs), "cgschnetNeighborOther");
    uploadPadded(neighborOther, topology.neighborOther);

    // Parameters.
    initializeReal(rbfCenters, numRBF, "cgschnetRBFCenters");
    initializeReal(rbfWidths, numRBF, "cgschnetRBFWidths");
    initializeReal(embedding, numTypes*numFeatures, "cgschnetEmbedding");
    int blockSize = blockOffsets(numRBF, numFilters, numFeatures)[9];
    blockParams.resize(numBlocks);
    for (int b = 0; b < numBlocks; b++)
        initializeReal(blockParams[b], blockSize, "cgschnetBlockParameters");
    int numLayers = outputSizes.size();
    outputWeights.resize(numLayers);
    outputBiases.resize(numLayers);
    for (int l = 0; l < numLayers; l++) {
        int inputs = (l == 0 ? numFeatures : outputSizes[l-1]);
        initializeReal(outputWeights[l], inputs*outputSizes[l], "cgschnetOutputWeights");
        initializeReal(outputBiases[l], outputSizes[l], "cgschnetOutputBias");
    }
    uploadParameters(force);

    // Per-pair geometry, the stored intermediates and work space.
    int realSize = (cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float));
    pairGeometry.initialize(cc, atLeastOne(numPairs), 4*realSize, "cgschnetPairGeometry");
    pairCutoff.initialize(cc, atLeastOne(numPairs), 2*realSize, "cgschnetPairCutoff");
    pairActive.initialize<int>(cc, atLeastOne(numPairs), "cgschnetPairActive");
    initializeReal(rbf, numPairs*numRBF, "cgschnetRBF");
    initializeReal(rbfDerivative, numPairs*numRBF, "cgschnetRBFDerivative");
    blockQ.resize(numBlocks);
    blockW0.resize(numBlocks);
    blockY.resize(numBlocks);
    blockZ.resize(numBlocks);
    for (int b = 0; b < numBlocks; b++) {
        initializeReal(blockQ[b], numPairs*numFilters, "cgschnetFilterQ");
        initializeReal(blockW0[b], numPairs*numFilters, "cgschnetFilterW0");
        initializeReal(blockY[b], numBeads*numFilters, "cgschnetProjectedFeatures");
        initializeReal(blockZ[b], numBeads*numFeatures, "cgschnetUpdateZ");
    }
    outputPreActivation.resize(numLayers);
    outputActivated.resize(numLayers-1);
    outputGradient.resize(numLayers-1);
    for (int l = 0; l < numLayers; l++)
        initializeReal(outputPreActivation[l], numBeads*outputSizes[l], "cgschnetOutputPreActivation");
    for (int l = 0; l < numLayers-1; l++) {
        initializeReal(outputActivated[l], numBeads*outputSizes[l], "cgschnetOutputActivated");
        initializeReal(outputGradient[l], numBeads*outputSizes[l], "cgschnetOutputGradient");
    }
    initializeReal(features, numBeads*numFeatures, "cgschnetFeatures");
    initializeReal(featureGradient, numBeads*numFeatures, "cgschnetFeatureGradient");
    initializeReal(beadFilterWork1, numBeads*numFilters, "cgschnetBeadFilterWork1");
    initializeReal(beadFilterWork2, numBeads*numFilters, "cgschnetBeadFilterWork2");
    initializeReal(beadFeatureWork, numBeads*numFeatures, "cgschnetBeadFeatureWork");
    initializeReal(pairFilterWork1, numPairs*numFilters, "cgschnetPairFilterWork1");
    initializeReal(pairFilterWork2, numPairs*numFilters, "cgschnetPairFilterWork2");
    initializeReal(pairRBFWork, numPairs*numRBF, "cgschnetPairRBFWork");
    initializeReal(pairDerivative, numPairs, "cgschnetPairDerivative");
    // dU/du_i = 1 seeds the reverse pass (the scale is applied to the forces at the end).
    initializeReal(ones, numBeads, "cgschnetOnes");
    uploadReal(ones, vector<double>(numBeads, 1.0));

    cc.addForce(new ForceInfo(topology, system.getNumParticles()));
    cc.addEnergyParameterDerivative(scaleParameterName);
    compileProgram();
}

void CommonCalcCGSchNetForceKernel::uploadParameters(const CGSchNetForce& force) {
    uploadReal(rbfCenters, force.getRBFCenters());
    uploadReal(rbfWidths, force.getRBFWidths());
    uploadReal(embedding, force.getEmbedding());
    for (int b = 0; b < numBlocks; b++) {
        vector<double> packed;
        for (int a = 0; a < 9; a++) {
            vector<double> values = force.getInteractionBlockArray(b, (CGSchNetForce::BlockArray) a);
            packed.insert(packed.end(), values.begin(), values.end());
        }
        uploadReal(blockParams[b], packed);
    }
    for (int l = 0; l < (int) outputSizes.size(); l++) {
        uploadReal(outputWeights[l], force.getOutputLayerWeights(l));
        uploadReal(outputBiases[l], force.getOutputLayerBias(l));
    }
}

void CommonCalcCGSchNetForceKernel::compileProgram() {
    map<string, string> defines;
    defines["NUM_BEADS"] = cc.intToString(numBeads);
    defines["NUM_PAIRS"] = cc.intToString(numPairs);
    defines["NUM_RBF"] = cc.intToString(numRBF);
    defines["NUM_FILTERS"] = cc.intToString(numFilters);
    defines["NUM_FEATURES"] = cc.intToString(numFeatures);
    defines["PADDED_NUM_ATOMS"] = cc.intToString(cc.getPaddedNumAtoms());
    if (activation == CGSchNetForce::ShiftedSoftplus)
        defines["ACT_SHIFTED_SOFTPLUS"] = "1";
    else if (activation == CGSchNetForce::Tanh)
        defines["ACT_TANH"] = "1";
    else
        defines["ACT_SILU"] = "1";
    if (rbfType == CGSchNetForce::ExpNormal)
        defines["RBF_EXPNORMAL"] = "1";
    if (usePeriodic)
        defines["USE_PERIODIC"] = "1";
    vector<int> offsets = blockOffsets(numRBF, numFilters, numFeatures);
    const char* offsetNames[9] = {"OFFSET_A1", "OFFSET_A1B", "OFFSET_A2", "OFFSET_A2B", "OFFSET_B", "OFFSET_C1", "OFFSET_C1B", "OFFSET_C2", "OFFSET_C2B"};
    for (int i = 0; i < 9; i++)
        defines[offsetNames[i]] = cc.intToString(offsets[i]);
    defines["CGML_LN2"] = cc.doubleToString(log(2.0));
    defines["CGML_PI"] = cc.doubleToString(M_PI);
    program = cc.compileProgram(CommonCGMLKernelSources::cgschnet, defines);
    kernelsCreated = false;
}

void CommonCalcCGSchNetForceKernel::createKernels() {
    // Done at the first step: the energy and parameter derivative buffers exist only once every
    // force has been initialized, and only then is the number of parameter derivatives known.
    pairsKernel = program->createKernel("computePairs");
    pairsKernel->addArg(cc.getPosq());
    pairsKernel->addArg(particles);
    pairsKernel->addArg(pairBeads);
    pairsKernel->addArg(rbfCenters);
    pairsKernel->addArg(rbfWidths);
    for (int i = 0; i < 3; i++)
        pairsKernel->addArg();  // cutoff, lower cutoff, alpha
    pairsKernel->addArg(pairGeometry);
    pairsKernel->addArg(pairCutoff);
    pairsKernel->addArg(pairActive);
    pairsKernel->addArg(rbf);
    pairsKernel->addArg(rbfDerivative);
    pairsKernel->addArg(cc.getEnergyBuffer());
    for (int i = 0; i < 5; i++)
        pairsKernel->addArg();  // the periodic box, set each step
    setRealArg(pairsKernel, 5, cutoff);
    setRealArg(pairsKernel, 6, lowerCutoff);
    setRealArg(pairsKernel, 7, 5.0/(cutoff-lowerCutoff));

    embedKernel = program->createKernel("embedBeads");
    embedKernel->addArg(beadTypes);
    embedKernel->addArg(embedding);
    embedKernel->addArg(features);

    filter1Kernels.clear();
    filter2Kernels.clear();
    projectKernels.clear();
    gatherKernels.clear();
    update1Kernels.clear();
    update2Kernels.clear();
    updateBackward2Kernels.clear();
    updateBackward1Kernels.clear();
    filterGradientKernels.clear();
    filterBackward2Kernels.clear();
    filterBackward1Kernels.clear();
    pairDerivativeKernels.clear();
    gatherGradientKernels.clear();
    projectBackwardKernels.clear();
    for (int b = 0; b < numBlocks; b++) {
        ComputeArray& params = blockParams[b];
        ComputeKernel kernel = program->createKernel("filterLayer1");
        kernel->addArg(pairActive);
        kernel->addArg(rbf);
        kernel->addArg(params);
        kernel->addArg(blockQ[b]);
        kernel->addArg(pairFilterWork1);
        filter1Kernels.push_back(kernel);

        kernel = program->createKernel("filterLayer2");
        kernel->addArg(pairActive);
        kernel->addArg(pairFilterWork1);
        kernel->addArg(params);
        kernel->addArg(blockW0[b]);
        filter2Kernels.push_back(kernel);

        kernel = program->createKernel("projectFeatures");
        kernel->addArg(features);
        kernel->addArg(params);
        kernel->addArg(blockY[b]);
        projectKernels.push_back(kernel);

        kernel = program->createKernel("gatherMessages");
        kernel->addArg(neighborStart);
        kernel->addArg(neighborPair);
        kernel->addArg(neighborOther);
        kernel->addArg(pairActive);
        kernel->addArg(pairCutoff);
        kernel->addArg(blockW0[b]);
        kernel->addArg(blockY[b]);
        kernel->addArg(beadFilterWork1);
        gatherKernels.push_back(kernel);

        kernel = program->createKernel("updateLayer1");
        kernel->addArg(beadFilterWork1);
        kernel->addArg(params);
        kernel->addArg(blockZ[b]);
        kernel->addArg(beadFeatureWork);
        update1Kernels.push_back(kernel);

        kernel = program->createKernel("updateLayer2");
        kernel->addArg(beadFeatureWork);
        kernel->addArg(params);
        kernel->addArg(features);
        update2Kernels.push_back(kernel);

        // Reverse pass.  beadFeatureWork holds dz, beadFilterWork1 dm, beadFilterWork2 dy,
        // pairFilterWork1 dw0 and pairFilterWork2 dq.
        kernel = program->createKernel("updateBackward2");
        kernel->addArg(featureGradient);
        kernel->addArg(params);
        kernel->addArg(blockZ[b]);
        kernel->addArg(beadFeatureWork);
        updateBackward2Kernels.push_back(kernel);

        kernel = program->createKernel("updateBackward1");
        kernel->addArg(beadFeatureWork);
        kernel->addArg(params);
        kernel->addArg(beadFilterWork1);
        updateBackward1Kernels.push_back(kernel);

        kernel = program->createKernel("filterGradient");
        kernel->addArg(pairBeads);
        kernel->addArg(pairActive);
        kernel->addArg(pairCutoff);
        kernel->addArg(beadFilterWork1);
        kernel->addArg(blockY[b]);
        kernel->addArg(pairFilterWork1);
        filterGradientKernels.push_back(kernel);

        kernel = program->createKernel("filterBackward2");
        kernel->addArg(pairActive);
        kernel->addArg(pairFilterWork1);
        kernel->addArg(params);
        kernel->addArg(blockQ[b]);
        kernel->addArg(pairFilterWork2);
        filterBackward2Kernels.push_back(kernel);

        kernel = program->createKernel("filterBackward1");
        kernel->addArg(pairActive);
        kernel->addArg(pairFilterWork2);
        kernel->addArg(params);
        kernel->addArg(rbfDerivative);
        kernel->addArg(pairRBFWork);
        filterBackward1Kernels.push_back(kernel);

        kernel = program->createKernel("pairDerivative");
        kernel->addArg(pairBeads);
        kernel->addArg(pairActive);
        kernel->addArg(pairCutoff);
        kernel->addArg(pairRBFWork);
        kernel->addArg(beadFilterWork1);
        kernel->addArg(blockY[b]);
        kernel->addArg(blockW0[b]);
        kernel->addArg((int) (b == numBlocks-1 ? 0 : 1));  // the last block is the first one the reverse pass visits
        kernel->addArg(pairDerivative);
        pairDerivativeKernels.push_back(kernel);

        kernel = program->createKernel("gatherMessageGradient");
        kernel->addArg(neighborStart);
        kernel->addArg(neighborPair);
        kernel->addArg(neighborOther);
        kernel->addArg(pairActive);
        kernel->addArg(pairCutoff);
        kernel->addArg(blockW0[b]);
        kernel->addArg(beadFilterWork1);
        kernel->addArg(beadFilterWork2);
        gatherGradientKernels.push_back(kernel);

        kernel = program->createKernel("projectFeaturesBackward");
        kernel->addArg(beadFilterWork2);
        kernel->addArg(params);
        kernel->addArg(featureGradient);
        projectBackwardKernels.push_back(kernel);
    }

    int numLayers = outputSizes.size();
    outputKernels.clear();
    outputBackwardKernels.clear();
    for (int l = 0; l < numLayers; l++) {
        bool hidden = (l < numLayers-1);
        ComputeKernel kernel = program->createKernel("outputLayer");
        kernel->addArg(l == 0 ? numFeatures : outputSizes[l-1]);
        kernel->addArg(outputSizes[l]);
        kernel->addArg(l == 0 ? features : outputActivated[l-1]);
        kernel->addArg(outputWeights[l]);
        kernel->addArg(outputBiases[l]);
        kernel->addArg(outputPreActivation[l]);
        kernel->addArg(hidden ? outputActivated[l] : ones);  // not written for the last layer
        kernel->addArg((int) hidden);
        outputKernels.push_back(kernel);
    }
    for (int l = 0; l < numLayers; l++) {
        ComputeKernel kernel = program->createKernel("outputLayerBackward");
        kernel->addArg(l == 0 ? numFeatures : outputSizes[l-1]);
        kernel->addArg(outputSizes[l]);
        kernel->addArg(l == numLayers-1 ? ones : outputGradient[l]);
        kernel->addArg(outputWeights[l]);
        kernel->addArg(l == 0 ? ones : outputPreActivation[l-1]);  // not read for the first layer
        kernel->addArg((int) (l > 0));
        kernel->addArg(l == 0 ? featureGradient : outputGradient[l-1]);
        outputBackwardKernels.push_back(kernel);
    }

    const vector<string>& derivNames = cc.getEnergyParamDerivNames();
    int derivIndex = find(derivNames.begin(), derivNames.end(), scaleParameterName)-derivNames.begin();
    energyKernel = program->createKernel("computeEnergy");
    energyKernel->addArg(outputPreActivation[numLayers-1]);
    energyKernel->addArg();  // the scale, set each step
    energyKernel->addArg(cc.getEnergyBuffer());
    energyKernel->addArg(cc.getEnergyParamDerivBuffer());
    energyKernel->addArg((int) derivNames.size());
    energyKernel->addArg(derivIndex);

    forceKernel = program->createKernel("applyForces");
    forceKernel->addArg(particles);
    forceKernel->addArg(neighborStart);
    forceKernel->addArg(neighborPair);
    forceKernel->addArg(neighborOther);
    forceKernel->addArg(pairActive);
    forceKernel->addArg(pairGeometry);
    forceKernel->addArg(pairDerivative);
    forceKernel->addArg();  // the scale, set each step
    forceKernel->addArg(cc.getLongForceBuffer());
    kernelsCreated = true;
}

double CommonCalcCGSchNetForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ContextSelector selector(cc);
    if (usePeriodic) {
        Vec3 a, b, c;
        cc.getPeriodicBoxVectors(a, b, c);
        double minWidth = min(a[0], min(b[1], c[2]));
        if (cutoff > 0.5*minWidth) {
            stringstream msg;
            msg << "CGSchNetForce: the cutoff (" << cutoff << " nm) is larger than half the smallest periodic box width ("
                << minWidth << " nm, half of it " << 0.5*minWidth << " nm)";
            throw OpenMMException(msg.str());
        }
    }
    if (numBeads == 0)
        return 0.0;
    if (!kernelsCreated)
        createKernels();
    double scale = context.getParameter(scaleParameterName);

    // Forward pass.
    if (numPairs > 0) {
        setBoxArgs(pairsKernel, 14);
        pairsKernel->execute(numPairs*numRBF);
    }
    embedKernel->execute(numBeads*numFeatures);
    for (int b = 0; b < numBlocks; b++) {
        if (numPairs > 0) {
            filter1Kernels[b]->execute(numPairs*numFilters);
            filter2Kernels[b]->execute(numPairs*numFilters);
        }
        projectKernels[b]->execute(numBeads*numFilters);
        gatherKernels[b]->execute(numBeads*numFilters);
        update1Kernels[b]->execute(numBeads*numFeatures);
        update2Kernels[b]->execute(numBeads*numFeatures);
    }
    int numLayers = outputSizes.size();
    for (int l = 0; l < numLayers; l++)
        outputKernels[l]->execute(numBeads*outputSizes[l]);
    // The parameter derivative is wanted with forces as well as with the energy, and costs one
    // small reduction, so this runs every step.
    setRealArg(energyKernel, 1, scale);
    energyKernel->execute(numBeads);
    if (!includeForces || numPairs == 0)
        return 0.0;

    // Reverse pass.
    for (int l = numLayers-1; l >= 0; l--)
        outputBackwardKernels[l]->execute(numBeads*(l == 0 ? numFeatures : outputSizes[l-1]));
    for (int b = numBlocks-1; b >= 0; b--) {
        updateBackward2Kernels[b]->execute(numBeads*numFeatures);
        updateBackward1Kernels[b]->execute(numBeads*numFilters);
        filterGradientKernels[b]->execute(numPairs*numFilters);
        filterBackward2Kernels[b]->execute(numPairs*numFilters);
        filterBackward1Kernels[b]->execute(numPairs*numRBF);
        pairDerivativeKernels[b]->execute(numPairs);
        if (b > 0) {
            // The gradient with respect to the first block's input features is not needed.
            gatherGradientKernels[b]->execute(numBeads*numFilters);
            projectBackwardKernels[b]->execute(numBeads*numFeatures);
        }
    }
    setRealArg(forceKernel, 7, scale);
    forceKernel->execute(numBeads);
    return 0.0;
}

void CommonCalcCGSchNetForceKernel::copyParametersToContext(ContextImpl& context, const CGSchNetForce& force) {
    ContextSelector selector(cc);
    uploadParameters(force);
    bool recompile = (force.getActivation() != activation || force.getRBFType() != rbfType);
    cutoff = force.getCutoff();
    lowerCutoff = force.getRBFLowerCutoff();
    activation = force.getActivation();
    rbfType = force.getRBFType();
    if (recompile)
        compileProgram();
    else if (kernelsCreated) {
        setRealArg(pairsKernel, 5, cutoff);
        setRealArg(pairsKernel, 6, lowerCutoff);
        setRealArg(pairsKernel, 7, 5.0/(cutoff-lowerCutoff));
    }
}
