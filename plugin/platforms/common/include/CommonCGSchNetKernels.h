#ifndef OPENMM_CGML_COMMONCGSCHNETKERNELS_H_
#define OPENMM_CGML_COMMONCGSCHNETKERNELS_H_

#include "CGSchNetKernels.h"
#include "internal/CGMLKernelOptions.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/Platform.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include "openmm/common/ComputeProgram.h"
#include <map>
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * Evaluates a CGSchNetForce with the Common-Compute kernels (kernels/cgschnet.cc) shared by the
 * CUDA, OpenCL and HIP platforms.
 *
 * An evaluation is a fixed sequence of stages (see the kernel source): compaction of the pairs
 * inside the cutoff, the filters of every block for all active pairs at once, one stage per
 * interaction block forward and one per block in reverse, 2L+2 stages for L blocks (one more for
 * more than 8192 candidate pairs).  Each stage is one kernel launch, or, where the platform lets
 * every work group of a grid wait for the others (CUDA and HIP), all stages run in a single launch
 * separated by grid-wide barriers.  Nothing is downloaded during an evaluation, sums are gathered
 * in a fixed order and forces go into OpenMM's fixed-point buffer, so repeated evaluations give
 * identical results.
 *
 * Developer settings (tuning on a new device) come from the force's CommonTuning property, or
 * else the environment variable OPENMM_CGML_COMMON_TUNING, when a Context is created, as
 * comma-separated key=value pairs (CGMLKernelOptions): singleLaunch=0|1 (use the grid-barrier
 * single launch where the platform allows it; the default picks it for small systems), groups=N
 * (work groups of the single launch), tilePairs=N, tileBeads=N (pairs and beads per work-group
 * item).
 *
 * Debugging: with OPENMM_CGML_DUMP_KERNEL_SOURCE=<directory> each compilation of the kernels first
 * writes the source (cgschnet-N.cc) and the platform, precision and defines it is compiled with
 * (cgschnet-N.json) into that existing directory.
 */
class CommonCalcCGSchNetForceKernel : public CalcCGSchNetForceKernel {
public:
    /**
     * @param computeUnits  the number of compute units (multiprocessors) on which every work group
     *                      of a grid can be resident at once and wait for the others, or 0 where
     *                      the platform gives no such guarantee (OpenCL): then every stage is its
     *                      own launch
     */
    CommonCalcCGSchNetForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ComputeContext& cc, int computeUnits=0);
    ~CommonCalcCGSchNetForceKernel();
    void initialize(const OpenMM::System& system, const CGSchNetForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const CGSchNetForce& force);
    /** CommonTuning: all four settings in use (singleLaunch, groups, tilePairs, tileBeads). */
    std::map<std::string, std::string> getEffectiveProperties() const;
private:
    class ForceInfo;
    /** Refuse weights that the platform's precision cannot represent (see CGSchNetWeights). */
    void checkPrecisionRange(const CGSchNetWeights& weights);
    void chooseDecomposition(const CGMLKernelOptions::CommonTuning& tuning);
    void compileProgram();
    void createKernels();
    /** Lay out the weights in the parameter array (see chooseDecomposition()) and upload them. */
    void uploadParameters(const CGSchNetWeights& weights);
    void initializeReal(OpenMM::ComputeArray& array, size_t size, const std::string& name);
    void setRealArg(OpenMM::ComputeKernel& kernel, int index, double value);
    void setBoxArgs(OpenMM::ComputeKernel& kernel, int index);

    OpenMM::ComputeContext& cc;
    int computeUnits;
    bool kernelsCreated;
    int numBeads, numCandidates, pairCapacity, numTypes, numRBF, numFilters, numFeatures, numBlocks, tablePoints;
    std::vector<int> outputSizes;     // the outputs of each output layer; the inputs of layer 0 are numFeatures
    double cutoff;
    CGSchNetForce::Activation activation;
    CGSchNetForce::RBFType rbfType;
    bool usePeriodic;
    std::string scaleParameterName;

    // How the work is split: items per work group and the launch mode.
    int workGroupSize, tilePairs, tileBeads, chunkItems, numChunks, scratchSize;
    bool singleLaunch;
    int singleLaunchGroups, numStageBarriers;
    unsigned int barrierBase;
    std::vector<int> parameterOffsets;   // named offsets into the parameter array, see uploadParameters()

    // Topology.
    OpenMM::ComputeArray particles, beadTypes, candidatePairs, candidateStart, candidatePair, candidateOther;
    // All weights and scalar settings in one array, and the layout of the output network.
    OpenMM::ComputeArray params, outputLayout;
    // Per step: compaction, per-pair filters, neighbour lists and per-bead intermediates.
    OpenMM::ComputeArray activeMasks, chunkCounts, counters, pairSlot, activeGeometry, filterW, filterD;
    OpenMM::ComputeArray neighborCount, neighborEntries;
    OpenMM::ComputeArray features, gradients, projected, updates, messageGradients;

    OpenMM::ComputeProgram program;
    OpenMM::ComputeKernel countKernel, compactKernel, filterKernel, forwardKernel, lastForwardKernel, backwardKernel, firstBackwardKernel;
    OpenMM::ComputeKernel singleKernel;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_COMMONCGSCHNETKERNELS_H_*/
