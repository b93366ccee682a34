#ifndef OPENMM_CGML_CGSCHNETWEIGHTS_H_
#define OPENMM_CGML_CGSCHNETWEIGHTS_H_

#include "CGSchNetForce.h"
#include "internal/CGMLExport.h"
#include <memory>
#include <string>
#include <vector>

namespace OpenMMCGML {

class CGSchNetFilterTable;

/**
 * A dense layer y = x W + b of a network on the host: W is inputs x outputs, row-major, so that a
 * row vector x maps to x W.  The output network of CGSchNetForce is a list of these, and so is
 * every network of the DiscriminatorBiasForce.
 */
struct OPENMM_EXPORT_CGML CGMLDenseLayer {
    int inputs = 0, outputs = 0;
    /** inputs x outputs, row-major */
    std::vector<double> weights;
    /** outputs values */
    std::vector<double> bias;
    CGMLDenseLayer() {
    }
    CGMLDenseLayer(int inputs, int outputs, const std::vector<double>& weights, const std::vector<double>& bias) :
            inputs(inputs), outputs(outputs), weights(weights), bias(bias) {
    }
    /** W transposed (outputs x inputs, row-major), the matrix of the backward pass. */
    std::vector<double> transposedWeights() const;
};

/** A row-major rows x columns matrix transposed (columns x rows, row-major). */
OPENMM_EXPORT_CGML std::vector<double> transposeMatrix(const std::vector<double>& matrix, int rows, int columns);

/**
 * Throw an OpenMMException if a value does not fit in a float: a finite double whose magnitude
 * rounds beyond the largest float.  The message names the force, the array and the element: with
 * columns > 0 the values are a row-major matrix (name[row][column]), with columns == 0 a vector
 * (name[index]), and with columns < 0 a single setting (name alone).
 *
 * @param computedBy  says what computes in single precision (e.g. "the CPU platform")
 */
OPENMM_EXPORT_CGML void checkFloatRange(const std::vector<double>& values, int columns, const std::string& name,
                                        const std::string& computedBy, const std::string& forceName="CGSchNetForce");

/**
 * The weights and scalar settings of a CGSchNetForce, read from the force once, in the form every
 * platform starts from: the Reference kernel computes with it directly, and the CPU and Common
 * kernels convert it to their own precision and memory layout.  Nothing else reads a force's
 * weights.  (The DiscriminatorBiasForce has the same kind of class: its networks are lists of
 * CGMLDenseLayer, checked by the same functions.)
 *
 * Every matrix is row-major with shape inputs x outputs, as in CGSchNetForce.  The members are
 * plain data, so a test can also fill them by hand; validate() then checks that they fit together.
 */
struct OPENMM_EXPORT_CGML CGSchNetWeights {
    /** The nine arrays of one interaction block, named and shaped as in CGSchNetForce::BlockArray. */
    struct OPENMM_EXPORT_CGML Block {
        std::vector<double> filterWeights1, filterBias1, filterWeights2, filterBias2, messageWeights,
                            updateWeights1, updateBias1, updateWeights2, updateBias2;
        /** One array by its CGSchNetForce::BlockArray index. */
        const std::vector<double>& array(CGSchNetForce::BlockArray which) const;
        std::vector<double>& array(CGSchNetForce::BlockArray which);
    };

    int numTypes = 0, numFeatures = 0, numFilters = 0, numRBF = 0;
    double cutoff = 0.0;
    CGSchNetForce::Activation activation = CGSchNetForce::ShiftedSoftplus;
    CGSchNetForce::RBFType rbfType = CGSchNetForce::Gaussian;
    /** numRBF centres mu_k and widths gamma_k */
    std::vector<double> rbfCenters, rbfWidths;
    /** r_lo of the ExpNormal basis (0 for Gaussian) */
    double rbfLowerCutoff = 0.0;
    /**
     * The default value of the scale parameter s.  Kernels read s from the Context at every
     * evaluation; this copy is only checked (checkSinglePrecisionRange).
     */
    double defaultScale = 1.0;
    /** numTypes x numFeatures */
    std::vector<double> embedding;
    std::vector<Block> blocks;
    /** The output network: layer 0 takes numFeatures inputs, the last gives one output. */
    std::vector<CGMLDenseLayer> outputLayers;
    /**
     * The tabulated filters of the fast mode (CGSchNetForce::setFilterTabulationPoints()), or NULL
     * for the exact filters.  When set, a kernel interpolates w0(r) and dw0/dr of every block from
     * it and does not use the filter weights and radial basis.
     */
    std::shared_ptr<const CGSchNetFilterTable> filterTable;

    /** Empty weights, to be filled in by hand. */
    CGSchNetWeights();
    /**
     * Read the weights and scalar settings of a force, and (if buildFilterTable) build its filter
     * table if the force tabulates its filters.
     */
    explicit CGSchNetWeights(const CGSchNetForce& force, bool buildFilterTable=true);
    /**
     * Build the filter table of the fast mode with the given number of points (0: exact filters,
     * no table).  For a kernel that must check the table's size against its own limits before a
     * table of that size is allocated.
     */
    void buildFilterTable(int points);

    int getNumBlocks() const {
        return (int) blocks.size();
    }
    /** alpha = 5 / (cutoff - rbfLowerCutoff), the scale of the ExpNormal basis. */
    double getRBFAlpha() const {
        return 5.0/(cutoff-rbfLowerCutoff);
    }
    /**
     * The embedding projected by a block's message weights, E B: numTypes x numFilters, row-major.
     * For block 0 it is y = h B of every bead type, since h = E[t] there.
     */
    std::vector<double> projectEmbedding(int block) const;
    /**
     * Throw an OpenMMException naming the first inconsistency: sizes that are not positive, an
     * array of the wrong length, output layers that do not chain from numFeatures to one output,
     * or a filter table that does not match the weights.
     */
    void validate() const;
    /** Whether two sets of weights have the same dimensions, blocks and output layer shapes. */
    bool hasSameShape(const CGSchNetWeights& other) const;
    /**
     * Throw an OpenMMException naming the first weight or setting (array and index) that single
     * precision cannot represent.  Kernels that keep the weights in float call it when a Context
     * is created and before they copy updated weights, so that a refused update leaves the old
     * ones in use.
     *
     * @param computedBy  says what computes in single precision, for the message (e.g. "the CPU platform")
     */
    void checkSinglePrecisionRange(const std::string& computedBy) const;
    /** The name of a block array in messages, e.g. "filterWeights1 (A1)". */
    static const char* getBlockArrayName(CGSchNetForce::BlockArray which);
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETWEIGHTS_H_*/
