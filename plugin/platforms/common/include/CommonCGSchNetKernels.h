#ifndef OPENMM_CGML_COMMONCGSCHNETKERNELS_H_
#define OPENMM_CGML_COMMONCGSCHNETKERNELS_H_

#include "CGSchNetKernels.h"
#include "openmm/Platform.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include "openmm/common/ComputeProgram.h"
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * Evaluates a CGSchNetForce with the Common-Compute kernels shared by the CUDA, OpenCL and HIP
 * platforms.
 *
 * Each step runs a forward pass over all candidate pairs (pairs beyond the cutoff are masked), keeps
 * the intermediates of every interaction block on the device, and then runs the reverse pass.  Sums
 * over neighbours are gathered per bead in a fixed order and forces go into OpenMM's fixed-point
 * buffer, so repeated evaluations give identical forces.  Nothing is downloaded during a step.
 */
class CommonCalcCGSchNetForceKernel : public CalcCGSchNetForceKernel {
public:
    CommonCalcCGSchNetForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ComputeContext& cc);
    ~CommonCalcCGSchNetForceKernel();
    void initialize(const OpenMM::System& system, const CGSchNetForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const CGSchNetForce& force);
private:
    class ForceInfo;
    void compileProgram();
    void createKernels();
    void uploadParameters(const CGSchNetForce& force);
    void initializeReal(OpenMM::ComputeArray& array, size_t size, const std::string& name);
    void uploadReal(OpenMM::ComputeArray& array, const std::vector<double>& values);
    void setRealArg(OpenMM::ComputeKernel& kernel, int index, double value);
    void setBoxArgs(OpenMM::ComputeKernel& kernel, int index);

    OpenMM::ComputeContext& cc;
    bool kernelsCreated;
    int numBeads, numPairs, numTypes, numRBF, numFilters, numFeatures, numBlocks;
    std::vector<int> outputSizes;     // the outputs of each output layer; the inputs of layer 0 are numFeatures
    double cutoff, lowerCutoff;
    CGSchNetForce::Activation activation;
    CGSchNetForce::RBFType rbfType;
    bool usePeriodic;
    std::string scaleParameterName;

    // Topology.
    OpenMM::ComputeArray particles, beadTypes, pairBeads, neighborStart, neighborPair, neighborOther;
    // Parameters: each block's nine arrays are packed into one array (offsets are compile-time constants).
    OpenMM::ComputeArray rbfCenters, rbfWidths, embedding;
    std::vector<OpenMM::ComputeArray> blockParams, outputWeights, outputBiases;
    // Per-pair geometry and basis, refreshed each step.
    OpenMM::ComputeArray pairGeometry, pairCutoff, pairActive, rbf, rbfDerivative;
    // What the reverse pass needs from each block.
    std::vector<OpenMM::ComputeArray> blockQ, blockW0, blockY, blockZ;
    std::vector<OpenMM::ComputeArray> outputPreActivation, outputActivated, outputGradient;
    // Work space shared by the blocks.
    OpenMM::ComputeArray features, featureGradient, beadFilterWork1, beadFilterWork2, beadFeatureWork;
    OpenMM::ComputeArray pairFilterWork1, pairFilterWork2, pairRBFWork, pairDerivative, ones;

    OpenMM::ComputeProgram program;
    OpenMM::ComputeKernel pairsKernel, embedKernel, energyKernel, forceKernel;
    std::vector<OpenMM::ComputeKernel> filter1Kernels, filter2Kernels, projectKernels, gatherKernels, update1Kernels, update2Kernels;
    std::vector<OpenMM::ComputeKernel> updateBackward2Kernels, updateBackward1Kernels, filterGradientKernels, filterBackward2Kernels,
                                       filterBackward1Kernels, pairDerivativeKernels, gatherGradientKernels, projectBackwardKernels;
    std::vector<OpenMM::ComputeKernel> outputKernels, outputBackwardKernels;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_COMMONCGSCHNETKERNELS_H_*/
