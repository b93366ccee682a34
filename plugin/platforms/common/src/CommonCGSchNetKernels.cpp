#include "CommonCGSchNetKernels.h"
#include "CommonCGMLKernelSources.h"
#include "CommonKernelDump.h"
#include "internal/CGMLKernelOptions.h"
#include "internal/CGMLMath.h"
#include "internal/CGSchNetFilterTable.h"
#include "internal/CGSchNetTopology.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ComputeForceInfo.h"
#include "openmm/common/ComputeVectorTypes.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
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

// The kernels' argument list (STAGE_PARAMETERS in cgschnet.cc, then two per-launch values).
enum KernelArgument {
    ArgPosq, ArgParticles, ArgBeadTypes, ArgCandidatePairs, ArgCandidateStart, ArgCandidatePair, ArgCandidateOther,
    ArgParams, ArgOutputLayout, ArgActiveMasks, ArgChunkCounts, ArgCounters, ArgPairSlot, ArgActiveGeometry,
    ArgFilterW, ArgFilterD, ArgNeighborCount, ArgNeighborEntries, ArgFeatures, ArgGradients,
    ArgProjected, ArgUpdates, ArgMessageGradients, ArgForceBuffers, ArgEnergyBuffer, ArgEnergyParamDerivs,
    ArgNumDerivs, ArgDerivIndex, ArgScale, ArgIncludeForces, ArgBox, ArgBlock = ArgBox+5, ArgBarrierBase
};

// Named offsets into the parameter array.
enum ParameterOffset {
    RBFCenters, RBFWidths, Embedding, FirstProjection, Blocks, BlockStride, OutputLayers, Table, Total,
    // within one block
    A1, A1B, A2, A2B, B, C1, C1B, C2, C2B, BT, C1T, C2T, NumOffsets
};
// Scalars at the start of the parameter array.
const int ScalarCutoff = 0, ScalarLowerCutoff = 1, ScalarAlpha = 2, ScalarTableInvSpacing = 3, NumScalars = 4;

// An array of at least one element: devices reject empty buffers.
size_t atLeastOne(size_t size) {
    return max(size, (size_t) 1);
}

int roundUp4(int n) {
    return max(4, 4*((n+3)/4));
}

template <class T>
void uploadPadded(ComputeArray& array, vector<T> values) {
    values.resize(array.getSize());
    array.upload(values);
}

} // namespace

CommonCalcCGSchNetForceKernel::CommonCalcCGSchNetForceKernel(string name, const Platform& platform, ComputeContext& cc, int computeUnits) :
        CalcCGSchNetForceKernel(name, platform), cc(cc), computeUnits(computeUnits), kernelsCreated(false), tablePoints(0),
        barrierBase(0) {
}

CommonCalcCGSchNetForceKernel::~CommonCalcCGSchNetForceKernel() {
}

void CommonCalcCGSchNetForceKernel::initializeReal(ComputeArray& array, size_t size, const string& name) {
    int elementSize = (cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float));
    array.initialize(cc, atLeastOne(size), elementSize, name);
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

void CommonCalcCGSchNetForceKernel::checkPrecisionRange(const CGSchNetWeights& weights) {
    // Single and mixed precision keep the force's weights in float; in double precision every
    // finite double (the force accepts no others) is representable.
    if (!cc.getUseDoublePrecision())
        weights.checkSinglePrecisionRange("the "+getPlatform().getName()+" platform with Precision="+
                                          (cc.getUseMixedPrecision() ? "mixed" : "single"));
}

void CommonCalcCGSchNetForceKernel::initialize(const System& system, const CGSchNetForce& force) {
    ContextSelector selector(cc);
    // The filter table is built only once chooseDecomposition() has checked that the kernels' 32-bit
    // indices reach all of it: a table too large for them may also be too large for host memory.
    CGSchNetWeights weights(force, false);
    checkPrecisionRange(weights);
    CGSchNetTopology topology = CGSchNetTopology::build(force, system.getNumParticles());
    numBeads = topology.particles.size();
    numCandidates = topology.pairs.size();
    numTypes = weights.numTypes;
    numRBF = weights.numRBF;
    numFilters = weights.numFilters;
    numFeatures = weights.numFeatures;
    numBlocks = weights.getNumBlocks();
    outputSizes.clear();
    for (const CGMLDenseLayer& layer : weights.outputLayers)
        outputSizes.push_back(layer.outputs);
    cutoff = weights.cutoff;
    activation = weights.activation;
    rbfType = weights.rbfType;
    usePeriodic = force.usesPeriodicBoundaryConditions();
    scaleParameterName = force.getScaleParameterName();
    tablePoints = force.getFilterTabulationPoints();

    // Every pair of a molecule may come inside the cutoff, so the per-pair arrays have room for all
    // candidates (only active pairs are written and read).  The kernels index them with 32-bit
    // integers.
    pairCapacity = numCandidates;
    long long largestPairArray = (long long) numBlocks*max(pairCapacity, 1)*numFilters;
    long long largestBeadArray = (long long) numBlocks*numBeads*max(numFilters, numFeatures);
    if (largestPairArray > INT_MAX || largestBeadArray > INT_MAX || 2LL*numCandidates > INT_MAX) {
        stringstream msg;
        msg << "CGSchNetForce: " << numCandidates << " candidate pairs (pairs of beads in the same molecule) and " << numBeads
            << " beads are too many for the GPU kernels; split the system into smaller molecules";
        throw OpenMMException(msg.str());
    }
    chooseDecomposition(CGMLKernelOptions::getCommonTuning(force.getProperties(), "CGSchNetForce"));
    weights.buildFilterTable(tablePoints);

    // Topology.
    particles.initialize<int>(cc, atLeastOne(numBeads), "cgschnetParticles");
    uploadPadded(particles, topology.particles);
    beadTypes.initialize<int>(cc, atLeastOne(numBeads), "cgschnetBeadTypes");
    uploadPadded(beadTypes, topology.types);
    vector<mm_int2> pairs;
    for (const auto& pair : topology.pairs)
        pairs.push_back(mm_int2(pair.first, pair.second));
    candidatePairs.initialize<mm_int2>(cc, atLeastOne(numCandidates), "cgschnetCandidatePairs");
    uploadPadded(candidatePairs, pairs);
    candidateStart.initialize<int>(cc, numBeads+1, "cgschnetCandidateStart");
    candidateStart.upload(topology.neighborStart);
    candidatePair.initialize<int>(cc, atLeastOne(2*numCandidates), "cgschnetCandidatePair");
    uploadPadded(candidatePair, topology.neighborPair);
    candidateOther.initialize<int>(cc, atLeastOne(2*numCandidates), "cgschnetCandidateOther");
    uploadPadded(candidateOther, topology.neighborOther);

    // Parameters.
    initializeReal(params, parameterOffsets[Total], "cgschnetParameters");
    outputLayout.initialize<int>(cc, 5*outputSizes.size(), "cgschnetOutputLayout");
    uploadParameters(weights);

    // Per-step arrays.
    int realSize = (cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float));
    activeMasks.initialize<unsigned long long>(cc, atLeastOne(numChunks > 1 ? numChunks*workGroupSize : 0), "cgschnetActiveMasks");
    chunkCounts.initialize<int>(cc, atLeastOne(numChunks), "cgschnetChunkCounts");
    counters.initialize<int>(cc, 2, "cgschnetCounters");
    counters.upload(vector<int>(2, 0));
    pairSlot.initialize<int>(cc, atLeastOne(numCandidates), "cgschnetPairSlot");
    activeGeometry.initialize(cc, atLeastOne(pairCapacity), 4*realSize, "cgschnetActiveGeometry");
    initializeReal(filterW, (size_t) numBlocks*pairCapacity*numFilters, "cgschnetFilterW");
    initializeReal(filterD, (size_t) numBlocks*pairCapacity*numFilters, "cgschnetFilterD");
    neighborCount.initialize<int>(cc, atLeastOne(numBeads), "cgschnetNeighborCount");
    neighborEntries.initialize<mm_int2>(cc, atLeastOne(2*numCandidates), "cgschnetNeighborEntries");
    initializeReal(features, numBeads*numFeatures, "cgschnetFeatures");
    initializeReal(gradients, numBeads*numFeatures, "cgschnetGradients");
    initializeReal(projected, numBlocks*numBeads*numFilters, "cgschnetProjected");
    initializeReal(updates, numBlocks*numBeads*numFeatures, "cgschnetUpdates");
    initializeReal(messageGradients, 2*numBeads*numFilters, "cgschnetMessageGradients");

    cc.addForce(new ForceInfo(topology, system.getNumParticles()));
    cc.addEnergyParameterDerivative(scaleParameterName);
    compileProgram();
}

void CommonCalcCGSchNetForceKernel::chooseDecomposition(const CGMLKernelOptions::CommonTuning& tuning) {
    int realSize = (cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float));
    workGroupSize = 128;
    // Local memory per work group, in reals: small enough for the 48 kB every supported device has.
    const int localBudget = (40*1024)/realSize;
    int rbfPad = roundUp4(numRBF), filterPad = roundUp4(numFilters), featurePad = roundUp4(numFeatures);
    int outputPad = 4, hiddenPad = 0;
    for (int i = 0; i < (int) outputSizes.size(); i++) {
        outputPad = max(outputPad, roundUp4(outputSizes[i]));
        if (i < (int) outputSizes.size()-1)
            hiddenPad += outputSizes[i];
    }
    hiddenPad = roundUp4(hiddenPad);

    // About how many work groups the device runs at once.
    int units = (computeUnits > 0 ? computeUnits : max(1, cc.getNumThreadBlocks()/6));

    // Beads per work-group item: spread small systems over many groups, and in large ones share
    // each weight load among a few beads while keeping several groups per compute unit.
    int beadRow = 2*featurePad+filterPad;
    auto beadScratch = [&] (int tile) {
        return max(tile*(beadRow+hiddenPad+2*outputPad), tile*(beadRow+3*workGroupSize));
    };
    tileBeads = min(8, max(1, (numBeads+4*units-1)/(4*units)));
    if (tuning.tileBeads > 0)
        tileBeads = tuning.tileBeads;
    while (tileBeads > 1 && beadScratch(tileBeads) > localBudget)
        tileBeads--;

    // Pairs per filter item: enough items for every compute unit, each weight load shared by up to
    // 16 pairs.
    auto filterScratch = [&] (int tile) {
        return (tablePoints > 0 ? 0 : tile*(2*rbfPad+2*filterPad+2));
    };
    tilePairs = min(16, max(1, (int) ((numBlocks*(long long) numCandidates+2*units-1)/(2*units))));
    if (tuning.tilePairs > 0)
        tilePairs = tuning.tilePairs;
    while (tilePairs > 1 && filterScratch(tilePairs) > localBudget)
        tilePairs--;
    scratchSize = roundUp4(max(beadScratch(tileBeads), filterScratch(tilePairs)));
    if (scratchSize > localBudget) {
        stringstream msg;
        msg << "CGSchNetForce: the model is too wide for the GPU kernels' local memory (" << numFeatures << " features, "
            << numFilters << " filters)";
        throw OpenMMException(msg.str());
    }

    // Candidate pairs per thread in the compaction: one chunk up to 64 per thread, else chunks of 16.
    int maxSingleChunk = 64*workGroupSize;
    if (numCandidates <= maxSingleChunk) {
        chunkItems = max(1, (numCandidates+workGroupSize-1)/workGroupSize);
        numChunks = (numCandidates > 0 ? 1 : 0);
    }
    else {
        chunkItems = 16;
        numChunks = (numCandidates+16*workGroupSize-1)/(16*workGroupSize);
    }

    // One launch with grid barriers pays off where launches, not arithmetic, take the time.
    double filterWork = 2.0*numBlocks*numCandidates*(numRBF+numFilters)*numFilters;
    double beadWork = 6.0*numBlocks*numBeads*numFeatures*numFilters;
    singleLaunch = (computeUnits > 0 && filterWork+beadWork < 2e8);
    if (tuning.singleLaunch >= 0)
        singleLaunch = (tuning.singleLaunch == 1 && (computeUnits > 0 || tuning.groups > 0));
    int numBeadTiles = (numBeads+tileBeads-1)/tileBeads;
    long long maxItems = max(max((long long) numBeadTiles, (long long) numChunks),
                             max((long long) numBeads, numBlocks*(long long) ((pairCapacity+tilePairs-1)/tilePairs)));
    singleLaunchGroups = (int) max(1LL, min((long long) max(computeUnits, 1), maxItems));
    if (tuning.groups > 0)
        singleLaunchGroups = tuning.groups;

    // The layout of the parameter array, which the kernels index with 32-bit integers.
    long long outputValues = 0;
    for (int l = 0; l < (int) outputSizes.size(); l++)
        outputValues += 2LL*(l == 0 ? numFeatures : outputSizes[l-1])*outputSizes[l]+outputSizes[l];
    long long totalValues = NumScalars+2LL*numRBF+(long long) numTypes*(numFeatures+numFilters)+outputValues+
            numBlocks*(numRBF*(long long) numFilters+(long long) numFilters*numFilters+4LL*numFeatures*numFilters+
                       2LL*numFeatures*numFeatures+2LL*numFilters+2LL*numFeatures)+
            (tablePoints > 0 ? numBlocks*(tablePoints-1LL)*4*numFilters : 0);
    if (totalValues > INT_MAX) {
        stringstream msg;
        msg << "CGSchNetForce: the model's " << totalValues << " parameters" << (tablePoints > 0 ? " (with the filter table)" : "")
            << " are too many for the GPU kernels' 32-bit indexing" << (tablePoints > 0 ? "; use fewer filter tabulation points" : "");
        throw OpenMMException(msg.str());
    }
    parameterOffsets.assign(NumOffsets, 0);
    int blockSizes[] = {numRBF*numFilters, numFilters, numFilters*numFilters, numFilters, numFeatures*numFilters,
                        numFilters*numFeatures, numFeatures, numFeatures*numFeatures, numFeatures,
                        numFilters*numFeatures, numFeatures*numFilters, numFeatures*numFeatures};
    int offset = 0;
    for (int i = 0; i < 12; i++) {
        parameterOffsets[A1+i] = offset;
        offset += blockSizes[i];
    }
    parameterOffsets[BlockStride] = offset;
    parameterOffsets[RBFCenters] = NumScalars;
    parameterOffsets[RBFWidths] = parameterOffsets[RBFCenters]+numRBF;
    parameterOffsets[Embedding] = parameterOffsets[RBFWidths]+numRBF;
    parameterOffsets[FirstProjection] = parameterOffsets[Embedding]+numTypes*numFeatures;
    parameterOffsets[Blocks] = parameterOffsets[FirstProjection]+numTypes*numFilters;
    parameterOffsets[OutputLayers] = parameterOffsets[Blocks]+numBlocks*parameterOffsets[BlockStride];
    offset = parameterOffsets[OutputLayers];
    for (int l = 0; l < (int) outputSizes.size(); l++) {
        int inputs = (l == 0 ? numFeatures : outputSizes[l-1]);
        offset += 2*inputs*outputSizes[l]+outputSizes[l];
    }
    parameterOffsets[Table] = offset;
    parameterOffsets[Total] = offset+(tablePoints > 0 ? numBlocks*(tablePoints-1)*4*numFilters : 0);
}

void CommonCalcCGSchNetForceKernel::uploadParameters(const CGSchNetWeights& weights) {
    vector<double> values(parameterOffsets[Total], 0.0);
    values[ScalarCutoff] = weights.cutoff;
    values[ScalarLowerCutoff] = weights.rbfLowerCutoff;
    values[ScalarAlpha] = weights.getRBFAlpha();
    auto place = [&] (const vector<double>& array, int offset) {
        copy(array.begin(), array.end(), values.begin()+offset);
    };
    place(weights.rbfCenters, parameterOffsets[RBFCenters]);
    place(weights.rbfWidths, parameterOffsets[RBFWidths]);
    place(weights.embedding, parameterOffsets[Embedding]);
    // y of the first block depends only on the bead type: E B_0, one row per type.
    place(weights.projectEmbedding(0), parameterOffsets[FirstProjection]);
    for (int b = 0; b < numBlocks; b++) {
        const CGSchNetWeights::Block& block = weights.blocks[b];
        int base = parameterOffsets[Blocks]+b*parameterOffsets[BlockStride];
        for (int a = 0; a < 9; a++)
            place(block.array((CGSchNetForce::BlockArray) a), base+parameterOffsets[A1+a]);
        // Transposed copies for the reverse pass.
        place(transposeMatrix(block.messageWeights, numFeatures, numFilters), base+parameterOffsets[BT]);
        place(transposeMatrix(block.updateWeights1, numFilters, numFeatures), base+parameterOffsets[C1T]);
        place(transposeMatrix(block.updateWeights2, numFeatures, numFeatures), base+parameterOffsets[C2T]);
    }
    // Each output layer: W, W transposed and the bias, and its row of the layout.
    vector<int> layout;
    int offset = parameterOffsets[OutputLayers];
    for (const CGMLDenseLayer& layer : weights.outputLayers) {
        int inputs = layer.inputs, outputs = layer.outputs;
        layout.push_back(inputs);
        layout.push_back(outputs);
        layout.push_back(offset);
        layout.push_back(offset+inputs*outputs);
        layout.push_back(offset+2*inputs*outputs);
        place(layer.weights, offset);
        place(layer.transposedWeights(), offset+inputs*outputs);
        place(layer.bias, offset+2*inputs*outputs);
        offset += 2*inputs*outputs+outputs;
    }
    if (weights.filterTable != nullptr) {
        // The opt-in fast mode: the filters' cubic Hermite table, built on the host as on every platform.
        place(weights.filterTable->getCoefficients(), parameterOffsets[Table]);
        values[ScalarTableInvSpacing] = 1.0/weights.filterTable->getSpacing();
    }
    params.upload(values, true);
    outputLayout.upload(layout);
}

void CommonCalcCGSchNetForceKernel::compileProgram() {
    map<string, string> defines;
    defines["WORK_GROUP_SIZE"] = cc.intToString(workGroupSize);
    defines["NUM_BEADS"] = cc.intToString(numBeads);
    defines["NUM_CANDIDATES"] = cc.intToString(numCandidates);
    defines["PAIR_CAPACITY"] = cc.intToString(pairCapacity);
    defines["NUM_RBF"] = cc.intToString(numRBF);
    defines["NUM_FILTERS"] = cc.intToString(numFilters);
    defines["NUM_FEATURES"] = cc.intToString(numFeatures);
    defines["NUM_BLOCKS"] = cc.intToString(numBlocks);
    defines["NUM_OUTPUT_LAYERS"] = cc.intToString(outputSizes.size());
    defines["PADDED_NUM_ATOMS"] = cc.intToString(cc.getPaddedNumAtoms());
    int outputPad = 4, hiddenPad = 0;
    for (int i = 0; i < (int) outputSizes.size(); i++) {
        outputPad = max(outputPad, roundUp4(outputSizes[i]));
        if (i < (int) outputSizes.size()-1)
            hiddenPad += outputSizes[i];
    }
    defines["RBF_PAD"] = cc.intToString(roundUp4(numRBF));
    defines["FILTER_PAD"] = cc.intToString(roundUp4(numFilters));
    defines["FEATURE_PAD"] = cc.intToString(roundUp4(numFeatures));
    defines["OUTPUT_PAD"] = cc.intToString(outputPad);
    defines["HIDDEN_PAD"] = cc.intToString(roundUp4(hiddenPad));
    defines["TILE_PAIRS"] = cc.intToString(tilePairs);
    defines["TILE_BEADS"] = cc.intToString(tileBeads);
    defines["NUM_BEAD_TILES"] = cc.intToString((numBeads+tileBeads-1)/tileBeads);
    defines["CHUNK_ITEMS"] = cc.intToString(chunkItems);
    defines["NUM_CHUNKS"] = cc.intToString(numChunks);
    defines["SCRATCH_SIZE"] = cc.intToString(scratchSize);
    defines["PARAM_CUTOFF"] = cc.intToString(ScalarCutoff);
    defines["PARAM_LOWER_CUTOFF"] = cc.intToString(ScalarLowerCutoff);
    defines["PARAM_ALPHA"] = cc.intToString(ScalarAlpha);
    defines["PARAM_TABLE_INV_SPACING"] = cc.intToString(ScalarTableInvSpacing);
    const char* names[] = {"PARAM_RBF_CENTERS", "PARAM_RBF_WIDTHS", "PARAM_EMBEDDING", "PARAM_FIRST_PROJECTION", "PARAM_BLOCKS",
                           "BLOCK_STRIDE", "PARAM_OUTPUT_LAYERS", "PARAM_TABLE", "PARAM_TOTAL",
                           "OFF_A1", "OFF_A1B", "OFF_A2", "OFF_A2B", "OFF_B", "OFF_C1", "OFF_C1B", "OFF_C2", "OFF_C2B",
                           "OFF_BT", "OFF_C1T", "OFF_C2T"};
    for (int i = 0; i < NumOffsets; i++)
        defines[names[i]] = cc.intToString(parameterOffsets[i]);
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
    if (tablePoints > 0) {
        defines["FILTER_TABLE"] = "1";
        defines["TABLE_INTERVALS"] = cc.intToString(tablePoints-1);
    }
    if (singleLaunch)
        defines["CGML_GRID_SYNC"] = "1";
    defines["CGML_LN2"] = cc.doubleToString(log(2.0));
    defines["CGML_PI"] = cc.doubleToString(M_PI);
    dumpKernelSourceIfAsked(cc, getPlatform().getName(), "cgschnet", CommonCGMLKernelSources::cgschnet, defines, "CGSchNetForce");
    program = cc.compileProgram(CommonCGMLKernelSources::cgschnet, defines);
    kernelsCreated = false;
}

void CommonCalcCGSchNetForceKernel::createKernels() {
    // Done at the first step: the energy and parameter derivative buffers exist only once every
    // force has been initialized, and only then is the number of parameter derivatives known.
    const vector<string>& derivNames = cc.getEnergyParamDerivNames();
    int derivIndex = find(derivNames.begin(), derivNames.end(), scaleParameterName)-derivNames.begin();
    auto create = [&] (const string& name) {
        ComputeKernel kernel = program->createKernel(name);
        ArrayInterface* arrays[] = {&cc.getPosq(), &particles, &beadTypes, &candidatePairs, &candidateStart, &candidatePair,
                                    &candidateOther, &params, &outputLayout, &activeMasks, &chunkCounts, &counters, &pairSlot,
                                    &activeGeometry, &filterW, &filterD, &neighborCount, &neighborEntries,
                                    &features, &gradients, &projected, &updates, &messageGradients, &cc.getLongForceBuffer(),
                                    &cc.getEnergyBuffer(), &cc.getEnergyParamDerivBuffer()};
        for (ArrayInterface* array : arrays)
            kernel->addArg(*array);
        kernel->addArg((int) derivNames.size());
        kernel->addArg(derivIndex);
        for (int i = ArgScale; i <= ArgBarrierBase; i++)
            kernel->addArg();
        setRealArg(kernel, ArgScale, 1.0);
        kernel->setArg(ArgIncludeForces, 1);
        setBoxArgs(kernel, ArgBox);
        kernel->setArg(ArgBlock, 0);
        kernel->setArg(ArgBarrierBase, 0);
        return kernel;
    };
    if (singleLaunch)
        singleKernel = create("runAllStages");
    else {
        countKernel = create("countActivePairs");
        compactKernel = create("compactActivePairs");
        filterKernel = create("computeFilters");
        forwardKernel = create("forwardBlock");
        lastForwardKernel = create("forwardLastBlock");
        backwardKernel = create("backwardBlock");
        firstBackwardKernel = create("backwardFirstBlock");
    }
    kernelsCreated = true;
}

double CommonCalcCGSchNetForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ContextSelector selector(cc);
    if (usePeriodic) {
        Vec3 a, b, c;
        cc.getPeriodicBoxVectors(a, b, c);
        CGMLMath::checkCutoffFitsBox(cutoff, a, b, c);
    }
    if (numBeads == 0)
        return 0.0;
    if (!kernelsCreated)
        createKernels();
    double scale = context.getParameter(scaleParameterName);
    int forces = (includeForces ? 1 : 0);
    if (singleLaunch) {
        setRealArg(singleKernel, ArgScale, scale);
        singleKernel->setArg(ArgIncludeForces, forces);
        singleKernel->setArg(ArgBarrierBase, barrierBase);
        if (usePeriodic)
            setBoxArgs(singleKernel, ArgBox);
        singleKernel->execute(singleLaunchGroups*workGroupSize, workGroupSize);
        // The barrier counter only grows: the next launch starts where this one left it.
        int numBarriers = (numChunks > 1 ? 1 : 0)+1+numBlocks+(includeForces ? numBlocks : 0);
        barrierBase += (unsigned int) (numBarriers*singleLaunchGroups);
        return 0.0;
    }
    if (usePeriodic) {
        setBoxArgs(countKernel, ArgBox);
        setBoxArgs(compactKernel, ArgBox);
    }
    if (numChunks > 1)
        countKernel->execute(numChunks*workGroupSize, workGroupSize);
    if (numChunks > 0)
        compactKernel->execute(numChunks*workGroupSize, workGroupSize);
    int filterItems = max(numBeads, numBlocks*((pairCapacity+tilePairs-1)/tilePairs));
    filterKernel->execute(filterItems*workGroupSize, workGroupSize);
    int beadThreads = ((numBeads+tileBeads-1)/tileBeads)*workGroupSize;
    for (int b = 0; b < numBlocks-1; b++) {
        forwardKernel->setArg(ArgBlock, b);
        forwardKernel->execute(beadThreads, workGroupSize);
    }
    setRealArg(lastForwardKernel, ArgScale, scale);
    lastForwardKernel->execute(beadThreads, workGroupSize);
    if (includeForces) {
        for (int b = numBlocks-1; b > 0; b--) {
            backwardKernel->setArg(ArgBlock, b);
            setRealArg(backwardKernel, ArgScale, scale);
            backwardKernel->execute(beadThreads, workGroupSize);
        }
        setRealArg(firstBackwardKernel, ArgScale, scale);
        firstBackwardKernel->execute(beadThreads, workGroupSize);
    }
    return 0.0;
}

map<string, string> CommonCalcCGSchNetForceKernel::getEffectiveProperties() const {
    CGMLKernelOptions::CommonTuning inUse;
    inUse.singleLaunch = (singleLaunch ? 1 : 0);
    inUse.groups = singleLaunchGroups;
    inUse.tilePairs = tilePairs;
    inUse.tileBeads = tileBeads;
    map<string, string> properties;
    properties[CGMLKernelOptions::CommonTuningProperty] = inUse.toString();
    return properties;
}

void CommonCalcCGSchNetForceKernel::copyParametersToContext(ContextImpl& context, const CGSchNetForce& force) {
    ContextSelector selector(cc);
    // Before anything is replaced: a refused update leaves the Context with its old weights.  The
    // activation and RBF form, compiled into the kernels, cannot change (CGSchNetForceImpl refuses it).
    CGSchNetWeights weights(force);
    checkPrecisionRange(weights);
    uploadParameters(weights);
    cutoff = weights.cutoff;
}
