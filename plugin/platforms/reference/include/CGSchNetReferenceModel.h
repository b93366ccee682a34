#ifndef OPENMM_CGML_CGSCHNETREFERENCEMODEL_H_
#define OPENMM_CGML_CGSCHNETREFERENCEMODEL_H_

#include "CGSchNetForce.h"
#include "internal/CGSchNetFilterTable.h"
#include "internal/CGSchNetTopology.h"
#include "openmm/Vec3.h"
#include <memory>
#include <vector>

// Symbol visibility of the Reference kernel library (libOpenMMCGMLReference).
#if defined(_MSC_VER)
    #if defined(OPENMM_CGML_BUILDING_REFERENCE_LIBRARY)
        #define OPENMM_EXPORT_CGML_REFERENCE __declspec(dllexport)
    #else
        #define OPENMM_EXPORT_CGML_REFERENCE __declspec(dllimport)
    #endif
#else
    #define OPENMM_EXPORT_CGML_REFERENCE __attribute__((visibility("default")))
#endif

namespace OpenMMCGML {

/**
 * The weights and scalar settings of a CGSchNet model, as plain arrays (row-major, inputs x outputs).
 */
struct OPENMM_EXPORT_CGML_REFERENCE CGSchNetReferenceParameters {
    /** The nine arrays of one interaction block, named as in CGSchNetForce::BlockArray. */
    struct Block {
        std::vector<double> filterWeights1, filterBias1, filterWeights2, filterBias2, messageWeights,
                            updateWeights1, updateBias1, updateWeights2, updateBias2;
    };
    int numTypes = 0, numFeatures = 0, numFilters = 0, numRBF = 0;
    double cutoff = 0.0;
    CGSchNetForce::Activation activation = CGSchNetForce::ShiftedSoftplus;
    CGSchNetForce::RBFType rbfType = CGSchNetForce::Gaussian;
    std::vector<double> rbfCenters, rbfWidths;
    double rbfLowerCutoff = 0.0;
    /** numTypes x numFeatures */
    std::vector<double> embedding;
    std::vector<Block> blocks;
    /** Layer l maps (previous width) -> outputBiases[l].size(); the last layer has one output. */
    std::vector<std::vector<double> > outputWeights, outputBiases;
    /**
     * The tabulated filters of the fast mode, or NULL (the default) for the exact filters.  When
     * set, the filters w0(r) and dw0/dr of every block are interpolated from it, and the filter
     * weights and radial basis are not used.
     */
    std::shared_ptr<const CGSchNetFilterTable> filterTable;
};

/**
 * The exact CGSchNet function (energy and its analytic gradient by reverse-mode differentiation),
 * in double precision.  It knows nothing about Contexts, so every CPU-side platform can share it;
 * the caller gathers the bead positions and scatters the gradient.
 */
class OPENMM_EXPORT_CGML_REFERENCE CGSchNetReferenceModel {
public:
    /**
     * @param topology    the beads and candidate pairs; only particles, types and pairs are used
     * @param parameters  the weights; their shapes are checked against each other and the topology
     */
    CGSchNetReferenceModel(const CGSchNetTopology& topology, const CGSchNetReferenceParameters& parameters);
    /**
     * Replace the weights and scalar settings.  The shapes must match those given to the constructor.
     */
    void setParameters(const CGSchNetReferenceParameters& parameters);
    const CGSchNetReferenceParameters& getParameters() const {
        return params;
    }
    int getNumBeads() const {
        return numBeads;
    }
    /**
     * Throw an OpenMMException if the cutoff is larger than half the smallest width of a reduced
     * periodic box (the minimum image convention would then miss interactions).
     */
    void checkPeriodicBox(const OpenMM::Vec3* boxVectors) const;
    /**
     * Evaluate the model.
     *
     * @param positions        the position of each bead (local order), in nm
     * @param boxVectors       the three periodic box vectors, or NULL for no periodic boundary conditions
     * @param scale            the energy scale s
     * @param includeGradient  whether to compute the gradient
     * @param outputSum        on exit, sum_i u_i, which is dU/ds
     * @param gradient         on exit (if includeGradient), dU/dx of each bead, in kJ/mol/nm
     * @return the energy U = s * sum_i u_i, in kJ/mol; NaN (with NaN outputSum and gradient) if
     *         a coordinate of any bead is NaN or infinite
     */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* boxVectors, double scale,
                   bool includeGradient, double& outputSum, std::vector<OpenMM::Vec3>& gradient);
private:
    void checkShapes(const CGSchNetReferenceParameters& parameters) const;
    void activate(const double* x, double* result, int n) const;
    void activationDerivative(const double* x, double* result, int n) const;
    int numBeads;
    std::vector<int> particles, types;
    std::vector<std::pair<int, int> > candidatePairs;
    CGSchNetReferenceParameters params;
    std::vector<int> layerWidths;
    // Workspace of the last evaluation, kept to avoid reallocation.  Pair quantities are for the
    // pairs inside the cutoff, in the order of pairI/pairJ.
    std::vector<int> pairI, pairJ;
    std::vector<double> pairR, pairCutoff, pairCutoffDeriv, pairRBF, pairRBFDeriv, pairEnergyDeriv;
    std::vector<OpenMM::Vec3> pairDelta;
    std::vector<std::vector<double> > blockQ, blockW0, blockY, blockZ, layerInput, layerPre;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETREFERENCEMODEL_H_*/
