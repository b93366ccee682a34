#ifndef OPENMM_CGML_CPUCGSCHNETMATH_H_
#define OPENMM_CGML_CPUCGSCHNETMATH_H_

/*
 * The arithmetic of the CPU CGSchNet kernel, as plain structs and function pointers.
 *
 * simd/CpuCGSchNetMath.cpp is compiled once per instruction set (a baseline x86-64 build and an
 * AVX2+FMA build; see CMakeLists.txt), each copy in its own namespace, and the kernel picks one at
 * run time.  This header is included by every copy, so it holds only plain data types and
 * functions with internal linkage: an inline function or template with external linkage, compiled
 * with AVX2 in one object and without in another, could be merged by the linker into the AVX2
 * copy and then run on a processor without AVX2.
 *
 * Layout conventions.  Every row-major float array has a row stride ("padded width") that is the
 * row length rounded up to a multiple of 16 floats (cgmlPadded); padding entries are finite and
 * never contribute, because matrix products run over the true inner dimension only.  Dense
 * weights (inputs x outputs) are packed in panels of 16 output columns: panel p holds, for each
 * input row k in order, the 16 values of columns 16p .. 16p+15 (zero beyond the last column).
 */

#include <stddef.h>

namespace OpenMMCGML {

/** Round a row length up to a multiple of 16 floats (64 bytes). */
static inline int cgmlPadded(int n) {
    return (n+15)&~15;
}

/** A weight matrix (inputs x outputs) packed in panels of 16 output columns. */
struct CpuCGSchNetPackedMatrix {
    const float* data;
    int inputs, outputs;
};

/** The weights of an interaction block; the transposes serve the backward pass. */
struct CpuCGSchNetBlockWeights {
    CpuCGSchNetPackedMatrix A1, A2, B, BT, C1, C1T, C2, C2T;
    /** Biases, padded with zeros. */
    const float *a1, *a2, *c1, *c2;
};

/** A layer of the output network. */
struct CpuCGSchNetLayerWeights {
    CpuCGSchNetPackedMatrix W, WT;
    const float* bias;
};

/** The model: sizes, settings and packed weights. */
struct CpuCGSchNetModel {
    int numFeatures, numFilters, numRBF, numBlocks, numLayers;
    /** A CGSchNetForce::Activation value. */
    int activation;
    /** A CGSchNetForce::RBFType value. */
    int rbfType;
    double cutoff, rbfLowerCutoff, rbfAlpha;
    const double *rbfCenters, *rbfWidths;
    /** numTypes rows of numFeatures values (padded). */
    const float* embedding;
    const CpuCGSchNetBlockWeights* blocks;
    const CpuCGSchNetLayerWeights* layers;
    /**
     * The tabulated filters, or NULL for exact filters: the coefficients of CGSchNetFilterTable in
     * float, ordered numIntervals x numBlocks x 4 x padded numFilters, so that the rows a pair
     * needs for all blocks are contiguous.
     */
    const float* table;
    int tableIntervals;
    double tableInverseSpacing;
};

/** The arrays of one evaluation. */
struct CpuCGSchNetState {
    int numBeads, numPairs;
    /** dU/du_i, the global scale s. */
    float scale;
    const int* types;
    /** Pairs inside the cutoff: beads, distance, cutoff function and its derivative. */
    const int *pairI, *pairJ;
    const double *pairR, *pairCutoff, *pairCutoffDeriv;
    /** dU/dr of each pair, accumulated over blocks. */
    double* pairEnergyDeriv;
    /** The pairs of bead i: entries beadStart[i] .. beadStart[i]+beadCount[i]-1 of beadPair/beadOther. */
    const int *beadStart, *beadCount, *beadPair, *beadOther;
    /** Filters W and dW/dr of each block and pair: block b starts at b*pairBlockStride. */
    float *pairW, *pairWDeriv;
    size_t pairBlockStride;
    /** Bead features h and the gradient g = dU/dh (numBeads rows). */
    float *h, *g;
    /** y = h B of each block (numBlocks x numBeads rows), kept for the backward pass. */
    float* y;
    /** act'(z) of each block's update network (numBlocks x numBeads rows). */
    float* updateDeriv;
    /** dU/dm, two buffers of numBeads rows: block b uses buffer b%2. */
    float* messageGrad;
    /** u_i of each bead. */
    double* beadEnergy;
};

/** The phases of an evaluation.  Each handles a range [first, last) of pairs or beads. */
struct CpuCGSchNetMath {
    /** The instruction set this copy was compiled for. */
    const char* name;
    /** The floats of scratch memory one thread needs. */
    size_t (*scratchSize)(const CpuCGSchNetModel& model);
    /** W and (if derivatives) dW/dr of every block for pairs [first, last); zeroes their dU/dr. */
    void (*computeFilters)(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int last,
                           bool derivatives, float* scratch);
    /** h = E[t] and y of block 0 for beads [first, last). */
    void (*embed)(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int last, float* scratch);
    /**
     * Block `block` for beads [first, last): messages, update, then y of the next block, or after
     * the last block the output network (u_i) and, if derivatives, its backward pass down to dU/dm
     * of the last block.
     */
    void (*forwardBlock)(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int block, int first, int last,
                         bool derivatives, float* scratch);
    /** The backward pass of block `block` for beads [first, last), ending in dU/dm of block-1. */
    void (*backwardBlock)(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int block, int first, int last,
                          float* scratch);
    /** Add block `block`'s contribution to dU/dr of pairs [first, last). */
    void (*pairDerivatives)(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int block, int first, int last);
    /**
     * y = act(x) and, if dy is not NULL, dy = act'(x) for `count` values (a multiple of 8), with
     * kind a CGSchNetForce::Activation value (used by the phases above; exposed for tests).
     */
    void (*activation)(int kind, const float* x, float* y, float* dy, size_t count);
};

namespace CpuGeneric {
const CpuCGSchNetMath& getMath();
}
namespace CpuAvx2 {
/** Available only where the build defines OPENMM_CGML_CPU_AVX2. */
const CpuCGSchNetMath& getMath();
}

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CPUCGSCHNETMATH_H_*/
