// The Common-Compute evaluation of a CGSchNetForce (energy and forces), shared by CUDA, OpenCL and
// HIP.  The host (CommonCGSchNetKernels.cpp) runs these stages in order, each either as its own
// kernel launch or, where every work group of a grid can wait for the others (CUDA, HIP), all of
// them in one launch of runAllStages() with a grid-wide barrier between them:
//
//   countActivePairs     (only with several chunks of candidate pairs)  active pairs per chunk
//   compactActivePairs   the pairs inside the cutoff, in candidate order, with their geometry
//   computeFilters       per (tile of active pairs, block): the filter W(r) of every block and its
//                        derivative dW/dr (forward-mode), so the filter networks of all blocks run
//                        at once, spread over many work groups; and per bead its list of active
//                        neighbours in candidate order (and a NaN energy if its position is not
//                        finite)
//   forwardBlock b       per tile of beads, b = 0 .. L-2: m = sum_j y_j W_ij, z, h, and y of the
//                        next block
//   forwardLastBlock     the same for the last block, then the output network, the energy and the
//                        start of the reverse pass (dU/dh, then dm of the last block)
//   backwardBlock b      per tile of beads, b = L-1 .. 1: dy = sum_j dm_j W_ij and the force from
//                        this block's filters, sum over neighbours of
//                        (dm_i y_j + dm_j y_i) . dW/dr (r_j - r_i)/r; then dU/dh and dm of block b-1
//   backwardFirstBlock   the force from the first block's filters
//
// Each work group loops over its items with a stride of the number of groups, so any grid size is
// valid.  Per-pair intermediates are stored only for active pairs; everything per bead and feature
// lives in global memory between stages and in local memory within one.  Every sum over
// neighbours is gathered per bead in a fixed order, reductions inside a work group use fixed
// trees, and forces go into OpenMM's fixed-point buffer, so repeated evaluations give identical
// results.  Nothing is copied to the host.
//
// Compile-time constants set by the host:
//   WORK_GROUP_SIZE (a power of two), NUM_BEADS, NUM_CANDIDATES, PAIR_CAPACITY, NUM_RBF,
//   NUM_FILTERS, NUM_FEATURES, NUM_BLOCKS, NUM_OUTPUT_LAYERS, PADDED_NUM_ATOMS
//   RBF_PAD, FILTER_PAD, FEATURE_PAD, OUTPUT_PAD, HIDDEN_PAD   row strides in local memory
//   TILE_PAIRS, TILE_BEADS, NUM_BEAD_TILES                     work per item
//   CHUNK_ITEMS, NUM_CHUNKS                                    candidates per thread, chunks
//   PARAM_*, OFF_*                                             layout of the parameter array
//   ACT_SHIFTED_SOFTPLUS | ACT_TANH | ACT_SILU, RBF_EXPNORMAL, USE_PERIODIC, CGML_PI, CGML_LN2
//   FILTER_TABLE, TABLE_INTERVALS                              tabulated filters (opt-in mode)
//
// Matrices are row-major with shape inputs x outputs.  Transposed copies (B^T, C1^T, C2^T and of
// the output layers) make the reverse pass read its weights with the same coalesced pattern.

#define CHUNK_SIZE (WORK_GROUP_SIZE*CHUNK_ITEMS)
#define BLOCK_PARAMS(b) (params+PARAM_BLOCKS+(b)*BLOCK_STRIDE)

DEVICE real activation(real x) {
#if defined(ACT_SHIFTED_SOFTPLUS)
    // ln(0.5 e^x + 0.5), written so that neither branch overflows.
    return (x > 0 ? x : (real) 0) + log1p(exp(-fabs(x))) - CGML_LN2;
#elif defined(ACT_TANH)
    return tanh(x);
#else
    return x/(1+exp(-x));
#endif
}

/**
 * The derivative of the activation, as a function of its input.
 */
DEVICE real activationDerivative(real x) {
#if defined(ACT_SHIFTED_SOFTPLUS)
    return 1/(1+exp(-x));
#elif defined(ACT_TANH)
    const real t = tanh(x);
    return 1-t*t;
#else
    const real s = 1/(1+exp(-x));
    return s*(1+x*(1-s));
#endif
}

/**
 * Exclusive prefix sum of one value per thread over the work group.  Returns this thread's prefix
 * and stores the group's total in *total.  Every thread must call it.
 */
DEVICE int scanWorkGroup(int value, LOCAL_ARG int* buffer, int* total) {
    buffer[LOCAL_ID] = value;
    SYNC_THREADS;
    for (int offset = 1; offset < WORK_GROUP_SIZE; offset *= 2) {
        const int add = (LOCAL_ID >= offset ? buffer[LOCAL_ID-offset] : 0);
        SYNC_THREADS;
        buffer[LOCAL_ID] += add;
        SYNC_THREADS;
    }
    const int inclusive = buffer[LOCAL_ID];
    *total = buffer[WORK_GROUP_SIZE-1];
    SYNC_THREADS;
    return inclusive-value;
}

/**
 * One output column of a layer applied to a tile of rows in local memory:
 * acc[t] = sum_i in[t*inStride+i] weights[i*numOut+column], for t < rows.  Each thread computes whole
 * columns, so a caller can finish column `column` without synchronizing.  The inputs are read four
 * at a time (inStride and the local array are multiples of four), each weight once per tile.
 */
#define TILE_COLUMN(ROWS, in, inStride, numIn, weights, numOut, column, acc) { \
    for (int t_ = 0; t_ < ROWS; t_++) \
        acc[t_] = 0; \
    int i_ = 0; \
    for (; i_+4 <= (numIn); i_ += 4) { \
        const real w0_ = (weights)[(i_+0)*(numOut)+(column)]; \
        const real w1_ = (weights)[(i_+1)*(numOut)+(column)]; \
        const real w2_ = (weights)[(i_+2)*(numOut)+(column)]; \
        const real w3_ = (weights)[(i_+3)*(numOut)+(column)]; \
        for (int t_ = 0; t_ < ROWS; t_++) { \
            const real4 x_ = *((LOCAL_ARG const real4*) ((in)+t_*(inStride)+i_)); \
            acc[t_] += x_.x*w0_ + x_.y*w1_ + x_.z*w2_ + x_.w*w3_; \
        } \
    } \
    for (; i_ < (numIn); i_++) { \
        const real wi_ = (weights)[i_*(numOut)+(column)]; \
        for (int t_ = 0; t_ < ROWS; t_++) \
            acc[t_] += (in)[t_*(inStride)+i_]*wi_; \
    } \
}

/**
 * The same for two inputs that share the weights: a value and its derivative with respect to r,
 * propagated through a linear layer together (forward-mode differentiation).
 */
#define TILE_COLUMN_DUAL(ROWS, in, din, inStride, numIn, weights, numOut, column, acc, dacc) { \
    for (int t_ = 0; t_ < ROWS; t_++) { \
        acc[t_] = 0; \
        dacc[t_] = 0; \
    } \
    int i_ = 0; \
    for (; i_+4 <= (numIn); i_ += 4) { \
        const real w0_ = (weights)[(i_+0)*(numOut)+(column)]; \
        const real w1_ = (weights)[(i_+1)*(numOut)+(column)]; \
        const real w2_ = (weights)[(i_+2)*(numOut)+(column)]; \
        const real w3_ = (weights)[(i_+3)*(numOut)+(column)]; \
        for (int t_ = 0; t_ < ROWS; t_++) { \
            const real4 x_ = *((LOCAL_ARG const real4*) ((in)+t_*(inStride)+i_)); \
            const real4 dx_ = *((LOCAL_ARG const real4*) ((din)+t_*(inStride)+i_)); \
            acc[t_] += x_.x*w0_ + x_.y*w1_ + x_.z*w2_ + x_.w*w3_; \
            dacc[t_] += dx_.x*w0_ + dx_.y*w1_ + dx_.z*w2_ + dx_.w*w3_; \
        } \
    } \
    for (; i_ < (numIn); i_++) { \
        const real wi_ = (weights)[i_*(numOut)+(column)]; \
        for (int t_ = 0; t_ < ROWS; t_++) { \
            acc[t_] += (in)[t_*(inStride)+i_]*wi_; \
            dacc[t_] += (din)[t_*(inStride)+i_]*wi_; \
        } \
    } \
}

// The arguments every stage receives (the host passes them to every kernel in this order).
// Buffers written by some stage are neither const nor RESTRICT: in the single-launch mode a work
// group reads them after other groups wrote them in the same launch.
#define STAGE_PARAMETERS \
    GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT particles, GLOBAL const int* RESTRICT beadTypes, \
    GLOBAL const int2* RESTRICT candidatePairs, GLOBAL const int* RESTRICT candidateStart, \
    GLOBAL const int* RESTRICT candidatePair, GLOBAL const int* RESTRICT candidateOther, \
    GLOBAL const real* RESTRICT params, GLOBAL const int* RESTRICT outputLayout, \
    GLOBAL mm_ulong* activeMasks, GLOBAL int* chunkCounts, GLOBAL int* counters, GLOBAL int* pairSlot, \
    GLOBAL real4* activeGeometry, GLOBAL real* filterW, GLOBAL real* filterD, \
    GLOBAL int* neighborCount, GLOBAL int2* neighborEntries, \
    GLOBAL real* features, GLOBAL real* gradients, GLOBAL real* projected, GLOBAL real* updates, GLOBAL real* messageGradients, \
    GLOBAL mm_ulong* forceBuffers, GLOBAL mixed* energyBuffer, GLOBAL mixed* energyParamDerivs, \
    int numDerivs, int derivIndex, real scale, int includeForces, \
    real4 periodicBoxSize, real4 invPeriodicBoxSize, real4 periodicBoxVecX, real4 periodicBoxVecY, real4 periodicBoxVecZ
#define STAGE_ARGUMENTS \
    posq, particles, beadTypes, candidatePairs, candidateStart, candidatePair, candidateOther, params, outputLayout, \
    activeMasks, chunkCounts, counters, pairSlot, activeGeometry, filterW, filterD, neighborCount, neighborEntries, \
    features, gradients, projected, updates, messageGradients, forceBuffers, energyBuffer, energyParamDerivs, \
    numDerivs, derivIndex, scale, includeForces, \
    periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ

// ------------------------------------------------------------------------------------------------
// Undefined results
// ------------------------------------------------------------------------------------------------

/**
 * Make this work group's entry of the energy buffer NaN, for an evaluation whose result is
 * undefined.  The bits of a quiet NaN are written directly: arithmetic cannot be trusted to make
 * one under fast-math compilation.  The later stages only add to the entry, which keeps it NaN.
 */
DEVICE void markEnergyNaN(GLOBAL mixed* energyBuffer) {
#if defined(USE_DOUBLE_PRECISION) || defined(USE_MIXED_PRECISION)
    ((GLOBAL mm_long*) energyBuffer)[GROUP_ID] = (mm_long) 0x7ff8000000000000;
#else
    ((GLOBAL int*) energyBuffer)[GROUP_ID] = 0x7fc00000;
#endif
}

/**
 * Whether x is NaN or infinite, read from its exponent bits (fast-math compilation may assume that
 * no value is either, and fold isfinite() to true).
 */
DEVICE bool isNonFinite(real x) {
#if defined(USE_DOUBLE_PRECISION)
#ifdef __OPENCL_VERSION__
    const mm_ulong bits = as_ulong(x);
#else
    const mm_ulong bits = (mm_ulong) __double_as_longlong(x);
#endif
    return (bits & (mm_ulong) 0x7ff0000000000000) == (mm_ulong) 0x7ff0000000000000;
#else
#ifdef __OPENCL_VERSION__
    const unsigned int bits = as_uint(x);
#else
    const unsigned int bits = __float_as_uint(x);
#endif
    return (bits & 0x7f800000u) == 0x7f800000u;
#endif
}

// ------------------------------------------------------------------------------------------------
// Active pairs
// ------------------------------------------------------------------------------------------------

/**
 * The displacement of candidate pair p (from its lower-numbered bead to the higher one) and its
 * squared length.
 */
DEVICE real4 candidateDelta(int p, GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT particles,
        GLOBAL const int2* RESTRICT candidatePairs, real4 periodicBoxSize, real4 invPeriodicBoxSize,
        real4 periodicBoxVecX, real4 periodicBoxVecY, real4 periodicBoxVecZ) {
    const int2 beads = candidatePairs[p];
    const real4 pos1 = posq[particles[beads.x]];
    const real4 pos2 = posq[particles[beads.y]];
    real3 delta = make_real3(pos2.x-pos1.x, pos2.y-pos1.y, pos2.z-pos1.z);
#ifdef USE_PERIODIC
    APPLY_PERIODIC_TO_DELTA(delta)
#endif
    return make_real4(delta.x, delta.y, delta.z, delta.x*delta.x + delta.y*delta.y + delta.z*delta.z);
}

/**
 * Which of this thread's CHUNK_ITEMS consecutive candidates of a chunk are inside the cutoff, as a
 * bit mask.  Computed once per step: both passes of the compaction use the same bits.
 */
DEVICE mm_ulong findActive(int chunk, STAGE_PARAMETERS) {
    const real cutoff = params[PARAM_CUTOFF];
    const int first = chunk*CHUNK_SIZE+LOCAL_ID*CHUNK_ITEMS;
    mm_ulong mask = 0;
    for (int k = 0; k < CHUNK_ITEMS; k++) {
        const int p = first+k;
        if (p < NUM_CANDIDATES) {
            const real4 delta = candidateDelta(p, posq, particles, candidatePairs, periodicBoxSize, invPeriodicBoxSize,
                                               periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
            if (delta.w < cutoff*cutoff)
                mask |= ((mm_ulong) 1) << k;
        }
    }
    return mask;
}

DEVICE int countBits(mm_ulong mask) {
    int count = 0;
    for (int k = 0; k < CHUNK_ITEMS; k++)
        count += (int) ((mask >> k) & 1);
    return count;
}

/**
 * With several chunks: the number of active pairs of each chunk, and the masks they came from.
 */
DEVICE void countActivePairsStage(STAGE_PARAMETERS, LOCAL_ARG int* iscratch) {
    for (int chunk = GROUP_ID; chunk < NUM_CHUNKS; chunk += NUM_GROUPS) {
        const mm_ulong mask = findActive(chunk, STAGE_ARGUMENTS);
        activeMasks[chunk*WORK_GROUP_SIZE+LOCAL_ID] = mask;
        int total;
        scanWorkGroup(countBits(mask), iscratch, &total);
        if (LOCAL_ID == 0)
            chunkCounts[chunk] = total;
    }
}

/**
 * Number the active pairs 0, 1, ... in candidate order: pairSlot[p] is the slot of candidate p
 * (-1 when inactive), activeGeometry[slot] its displacement and distance, counters[0] the number
 * of active pairs.
 *
 * Two interacting beads at distance 0 have no force direction.  Their force comes out NaN, which
 * the fixed-point force buffer cannot hold (the conversion is device dependent), so such a pair
 * makes the energy NaN instead, where it can be seen.
 */
DEVICE void compactActivePairsStage(STAGE_PARAMETERS, LOCAL_ARG int* iscratch) {
    for (int chunk = GROUP_ID; chunk < NUM_CHUNKS; chunk += NUM_GROUPS) {
#if NUM_CHUNKS > 1
        const mm_ulong mask = activeMasks[chunk*WORK_GROUP_SIZE+LOCAL_ID];
        int before = 0;
        for (int c = LOCAL_ID; c < chunk; c += WORK_GROUP_SIZE)
            before += chunkCounts[c];
        int base;
        scanWorkGroup(before, iscratch, &base);
#else
        const mm_ulong mask = findActive(chunk, STAGE_ARGUMENTS);
        const int base = 0;
#endif
        int total;
        int slot = base+scanWorkGroup(countBits(mask), iscratch, &total);
        const int first = chunk*CHUNK_SIZE+LOCAL_ID*CHUNK_ITEMS;
        for (int k = 0; k < CHUNK_ITEMS; k++) {
            const int p = first+k;
            if (p >= NUM_CANDIDATES)
                break;
            if ((mask >> k) & 1) {
                const real4 delta = candidateDelta(p, posq, particles, candidatePairs, periodicBoxSize, invPeriodicBoxSize,
                                                   periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
                const real r = SQRT(delta.w);
                pairSlot[p] = slot;
                activeGeometry[slot] = make_real4(delta.x, delta.y, delta.z, r);
                if (r == 0)
                    markEnergyNaN(energyBuffer);
                slot++;
            }
            else
                pairSlot[p] = -1;
        }
        if (chunk == NUM_CHUNKS-1 && LOCAL_ID == 0)
            counters[0] = base+total;
    }
}

// ------------------------------------------------------------------------------------------------
// Filters and neighbour lists
// ------------------------------------------------------------------------------------------------

/**
 * The active neighbours of a bead, in candidate order: entries candidateStart[bead] ..
 * +neighborCount[bead]-1 of neighborEntries, each (slot of the pair, other bead).
 */
DEVICE void buildNeighborList(int bead, STAGE_PARAMETERS, LOCAL_ARG int* iscratch) {
    const int start = candidateStart[bead];
    const int end = candidateStart[bead+1];
    int count = 0;
    for (int base = start; base < end; base += WORK_GROUP_SIZE) {
        const int entry = base+LOCAL_ID;
        const int slot = (entry < end ? pairSlot[candidatePair[entry]] : -1);
        int total;
        const int offset = scanWorkGroup(slot >= 0 ? 1 : 0, iscratch, &total);
        if (slot >= 0)
            neighborEntries[start+count+offset] = make_int2(slot, candidateOther[entry]);
        count += total;
    }
    if (LOCAL_ID == 0)
        neighborCount[bead] = count;
}

/**
 * The cutoff function f_c(r) = 0.5 (cos(pi r / r_c) + 1) and its derivative.
 */
DEVICE real2 cutoffFunction(real r, real cutoff) {
    const real angle = CGML_PI*r/cutoff;
    return make_real2(0.5f*(COS(angle)+1), -0.5f*(CGML_PI/cutoff)*SIN(angle));
}

#ifndef FILTER_TABLE
/**
 * W(r) = (act(e(r) A1 + a1) A2 + a2) f_c(r) and dW/dr of one block for a tile of active pairs,
 * with the derivative carried through the network in forward mode next to the value.
 */
DEVICE void filterTile(int tile, int block, int numActive, STAGE_PARAMETERS, LOCAL_ARG real* scratch) {
    LOCAL_ARG real* basis = scratch;                               // [TILE_PAIRS][RBF_PAD]    e_k(r)
    LOCAL_ARG real* basisDeriv = basis+TILE_PAIRS*RBF_PAD;         // [TILE_PAIRS][RBF_PAD]    de_k/dr
    LOCAL_ARG real* hidden = basisDeriv+TILE_PAIRS*RBF_PAD;        // [TILE_PAIRS][FILTER_PAD] act(q)
    LOCAL_ARG real* hiddenDeriv = hidden+TILE_PAIRS*FILTER_PAD;    // [TILE_PAIRS][FILTER_PAD] d act(q)/dr
    LOCAL_ARG real* cutoffValues = hiddenDeriv+TILE_PAIRS*FILTER_PAD;  // [TILE_PAIRS][2]      f_c(r), f_c'(r)
    GLOBAL const real* RESTRICT p = BLOCK_PARAMS(block);
    const real cutoff = params[PARAM_CUTOFF];
    const int first = tile*TILE_PAIRS;
    const int count = min(TILE_PAIRS, numActive-first);
    SYNC_THREADS;
    for (int index = LOCAL_ID; index < TILE_PAIRS*RBF_PAD; index += WORK_GROUP_SIZE) {
        const int pair = index/RBF_PAD;
        const int k = index-pair*RBF_PAD;
        real value = 0, derivative = 0;
        if (pair < count && k < NUM_RBF) {
            const real r = activeGeometry[first+pair].w;
            const real mu = params[PARAM_RBF_CENTERS+k];
            const real gamma = params[PARAM_RBF_WIDTHS+k];
#ifdef RBF_EXPNORMAL
            const real alpha = params[PARAM_ALPHA];
            const real t = EXP(-alpha*(r-params[PARAM_LOWER_CUTOFF]));
            value = EXP(-gamma*(t-mu)*(t-mu));
            derivative = 2*gamma*alpha*t*(t-mu)*value;
#else
            value = EXP(-gamma*(r-mu)*(r-mu));
            derivative = -2*gamma*(r-mu)*value;
#endif
        }
        basis[index] = value;
        basisDeriv[index] = derivative;
    }
    for (int pair = LOCAL_ID; pair < count; pair += WORK_GROUP_SIZE) {
        const real2 fc = cutoffFunction(activeGeometry[first+pair].w, cutoff);
        cutoffValues[2*pair] = fc.x;
        cutoffValues[2*pair+1] = fc.y;
    }
    SYNC_THREADS;
    real acc[TILE_PAIRS], dacc[TILE_PAIRS];
    for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE) {
        TILE_COLUMN_DUAL(TILE_PAIRS, basis, basisDeriv, RBF_PAD, NUM_RBF, p+OFF_A1, NUM_FILTERS, n, acc, dacc)
        const real bias = p[OFF_A1B+n];
        for (int pair = 0; pair < TILE_PAIRS; pair++) {
            const real q = acc[pair]+bias;
            hidden[pair*FILTER_PAD+n] = activation(q);
            hiddenDeriv[pair*FILTER_PAD+n] = activationDerivative(q)*dacc[pair];
        }
    }
    SYNC_THREADS;
    for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE) {
        TILE_COLUMN_DUAL(TILE_PAIRS, hidden, hiddenDeriv, FILTER_PAD, NUM_FILTERS, p+OFF_A2, NUM_FILTERS, n, acc, dacc)
        const real bias = p[OFF_A2B+n];
        for (int pair = 0; pair < TILE_PAIRS; pair++) {
            if (pair < count) {
                const real fc = cutoffValues[2*pair], dfc = cutoffValues[2*pair+1];
                const real w0 = acc[pair]+bias;
                const int index = (block*PAIR_CAPACITY+first+pair)*NUM_FILTERS+n;
                filterW[index] = w0*fc;
                filterD[index] = dacc[pair]*fc + w0*dfc;
            }
        }
    }
}
#else
/**
 * The tabulated filters: w0(r) and dw0/dr from the cubic on r's interval of the table (stored in
 * the parameter array at PARAM_TABLE), times the exact cutoff function.
 */
DEVICE void filterTile(int tile, int block, int numActive, STAGE_PARAMETERS, LOCAL_ARG real* scratch) {
    const real cutoff = params[PARAM_CUTOFF];
    const real invSpacing = params[PARAM_TABLE_INV_SPACING];
    const int first = tile*TILE_PAIRS;
    const int count = min(TILE_PAIRS, numActive-first);
    for (int pair = 0; pair < count; pair++) {
        const real r = activeGeometry[first+pair].w;
        const real x = r*invSpacing;
        const int interval = min((int) x, TABLE_INTERVALS-1);
        const real t = x-interval;
        const real2 fc = cutoffFunction(r, cutoff);
        GLOBAL const real* RESTRICT c = params+PARAM_TABLE+(block*TABLE_INTERVALS+interval)*4*NUM_FILTERS;
        for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE) {
            const real c0 = c[n], c1 = c[NUM_FILTERS+n], c2 = c[2*NUM_FILTERS+n], c3 = c[3*NUM_FILTERS+n];
            const real w0 = c0+t*(c1+t*(c2+t*c3));
            const real dw0 = (c1+t*(2*c2+3*t*c3))*invSpacing;
            const int index = (block*PAIR_CAPACITY+first+pair)*NUM_FILTERS+n;
            filterW[index] = w0*fc.x;
            filterD[index] = dw0*fc.x + w0*fc.y;
        }
    }
}
#endif

/**
 * Bead items: neighbour lists, the check that the bead's position is finite, and y of the first
 * block (E[t_i] B_0 is tabulated per type).  Pair items: the filters of (tile of active pairs,
 * block).
 */
DEVICE void computeFiltersStage(STAGE_PARAMETERS, LOCAL_ARG real* scratch, LOCAL_ARG int* iscratch) {
    for (int bead = GROUP_ID; bead < NUM_BEADS; bead += NUM_GROUPS) {
        buildNeighborList(bead, STAGE_ARGUMENTS, iscratch);
        if (LOCAL_ID == 0) {
            // A non-finite distance is never inside the cutoff, so a bead at a NaN or infinite
            // position would silently drop out of every pair: make the energy NaN instead, as
            // OpenMM's own forces do (its forces stay finite, see compactActivePairsStage).
            const real4 pos = posq[particles[bead]];
            if (isNonFinite(pos.x) || isNonFinite(pos.y) || isNonFinite(pos.z))
                markEnergyNaN(energyBuffer);
        }
        const int type = beadTypes[bead];
        for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE)
            projected[bead*NUM_FILTERS+n] = params[PARAM_FIRST_PROJECTION+type*NUM_FILTERS+n];
    }
    const int numActive = counters[0];
    const int numItems = NUM_BLOCKS*((numActive+TILE_PAIRS-1)/TILE_PAIRS);
    for (int item = GROUP_ID; item < numItems; item += NUM_GROUPS)
        filterTile(item/NUM_BLOCKS, item%NUM_BLOCKS, numActive, STAGE_ARGUMENTS, scratch);
}

// ------------------------------------------------------------------------------------------------
// Message passing
// ------------------------------------------------------------------------------------------------

/**
 * Given the gradient g = dU/dh of the output of block c (rows of x), the reverse pass through the
 * update network of that block: dz = (g C2^T) (.) act'(z) into dz, then dm = dz C1^T, stored for
 * the next stage.  Also stores g, which the stage of block c needs.
 */
DEVICE void updateBackward(int c, int firstBead, int count, LOCAL_ARG real* x, LOCAL_ARG real* dz, STAGE_PARAMETERS) {
    GLOBAL const real* RESTRICT p = BLOCK_PARAMS(c);
    real acc[TILE_BEADS];
    for (int f = LOCAL_ID; f < NUM_FEATURES; f += WORK_GROUP_SIZE) {
        TILE_COLUMN(TILE_BEADS, x, FEATURE_PAD, NUM_FEATURES, p+OFF_C2T, NUM_FEATURES, f, acc)
        for (int t = 0; t < TILE_BEADS; t++) {
            const real z = (t < count ? updates[(c*NUM_BEADS+firstBead+t)*NUM_FEATURES+f] : 0);
            dz[t*FEATURE_PAD+f] = acc[t]*activationDerivative(z);
        }
        if (c > 0)
            for (int t = 0; t < count; t++)
                gradients[(firstBead+t)*NUM_FEATURES+f] = x[t*FEATURE_PAD+f];
    }
    SYNC_THREADS;
    GLOBAL real* dm = messageGradients+(c%2)*NUM_BEADS*NUM_FILTERS;
    for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE) {
        TILE_COLUMN(TILE_BEADS, dz, FEATURE_PAD, NUM_FEATURES, p+OFF_C1T, NUM_FILTERS, n, acc)
        for (int t = 0; t < count; t++)
            dm[(firstBead+t)*NUM_FILTERS+n] = acc[t];
    }
}

/**
 * The output network on the final features (rows of x, replaced by dU/dh) and the energy of the
 * tile's beads.
 */
DEVICE void outputNetwork(int firstBead, int count, LOCAL_ARG real* x, LOCAL_ARG real* work, STAGE_PARAMETERS) {
    LOCAL_ARG real* hiddenPre = work;                             // [TILE_BEADS][HIDDEN_PAD]  pre-activations
    LOCAL_ARG real* buffer0 = hiddenPre+TILE_BEADS*HIDDEN_PAD;    // [TILE_BEADS][OUTPUT_PAD]
    LOCAL_ARG real* buffer1 = buffer0+TILE_BEADS*OUTPUT_PAD;      // [TILE_BEADS][OUTPUT_PAD]
    real acc[TILE_BEADS];
    LOCAL_ARG real* in = x;
    int inStride = FEATURE_PAD;
    int hiddenOffset = 0;
    for (int layer = 0; layer < NUM_OUTPUT_LAYERS; layer++) {
        const int numIn = outputLayout[5*layer];
        const int numOut = outputLayout[5*layer+1];
        GLOBAL const real* RESTRICT w = params+outputLayout[5*layer+2];
        GLOBAL const real* RESTRICT bias = params+outputLayout[5*layer+4];
        LOCAL_ARG real* out = (layer%2 == 0 ? buffer0 : buffer1);
        const bool last = (layer == NUM_OUTPUT_LAYERS-1);
        for (int o = LOCAL_ID; o < numOut; o += WORK_GROUP_SIZE) {
            TILE_COLUMN(TILE_BEADS, in, inStride, numIn, w, numOut, o, acc)
            for (int t = 0; t < TILE_BEADS; t++) {
                const real pre = acc[t]+bias[o];
                if (last)
                    out[t*OUTPUT_PAD+o] = pre;
                else {
                    hiddenPre[t*HIDDEN_PAD+hiddenOffset+o] = pre;
                    out[t*OUTPUT_PAD+o] = activation(pre);
                }
            }
        }
        SYNC_THREADS;
        in = out;
        inStride = OUTPUT_PAD;
        if (!last)
            hiddenOffset += numOut;
    }
    if (LOCAL_ID == 0) {
        // U = s sum_i u_i, and dU/ds = sum_i u_i, summed in a fixed order.
        mixed sum = 0;
        for (int t = 0; t < count; t++)
            sum += in[t*OUTPUT_PAD];
        energyBuffer[GROUP_ID] += scale*sum;
        energyParamDerivs[GROUP_ID*numDerivs+derivIndex] += sum;
    }
    // Reverse pass: delta is dU/d(pre-activation) of the layer, 1 for the single output.
    LOCAL_ARG real* delta = (in == buffer0 ? buffer1 : buffer0);
    for (int t = LOCAL_ID; t < TILE_BEADS; t += WORK_GROUP_SIZE)
        delta[t*OUTPUT_PAD] = 1;
    SYNC_THREADS;
    for (int layer = NUM_OUTPUT_LAYERS-1; layer >= 0; layer--) {
        const int numIn = outputLayout[5*layer];
        const int numOut = outputLayout[5*layer+1];
        GLOBAL const real* RESTRICT wt = params+outputLayout[5*layer+3];
        LOCAL_ARG real* next = (layer == 0 ? x : (delta == buffer0 ? buffer1 : buffer0));
        const int nextStride = (layer == 0 ? FEATURE_PAD : OUTPUT_PAD);
        if (layer > 0)
            hiddenOffset -= numIn;
        for (int i = LOCAL_ID; i < numIn; i += WORK_GROUP_SIZE) {
            TILE_COLUMN(TILE_BEADS, delta, OUTPUT_PAD, numOut, wt, numIn, i, acc)
            for (int t = 0; t < TILE_BEADS; t++)
                next[t*nextStride+i] = (layer == 0 ? acc[t] : acc[t]*activationDerivative(hiddenPre[t*HIDDEN_PAD+hiddenOffset+i]));
        }
        SYNC_THREADS;
        delta = next;
    }
}

/**
 * sum over the active neighbours j of a bead (entries start .. end-1) of v_j[n] W_ij[n], in entry
 * order; v is y (forward) or dm (reverse).  Four entries at a time keep several loads in flight.
 */
DEVICE real gatherMessages(int start, int end, int n, GLOBAL const int2* entries, GLOBAL const real* v, GLOBAL const real* w) {
    real sum = 0;
    int entry = start;
    for (; entry+4 <= end; entry += 4) {
        const int2 e0 = entries[entry], e1 = entries[entry+1], e2 = entries[entry+2], e3 = entries[entry+3];
        sum += (v[e0.y*NUM_FILTERS+n]*w[e0.x*NUM_FILTERS+n] + v[e1.y*NUM_FILTERS+n]*w[e1.x*NUM_FILTERS+n]) +
               (v[e2.y*NUM_FILTERS+n]*w[e2.x*NUM_FILTERS+n] + v[e3.y*NUM_FILTERS+n]*w[e3.x*NUM_FILTERS+n]);
    }
    for (; entry < end; entry++) {
        const int2 e = entries[entry];
        sum += v[e.y*NUM_FILTERS+n]*w[e.x*NUM_FILTERS+n];
    }
    return sum;
}

/**
 * One neighbour (entry = (slot, j)) of bead i in the reverse pass of a block, filter channel n:
 * adds dm_j W_ij to dy_i and the channel's share of the force on i,
 * (dm_i y_j + dm_j y_i) dW/dr (r_j - r_i)/|r_j - r_i|.
 */
DEVICE void backwardEntry(int i, int2 entry, int n, real dmi, real yi, GLOBAL const real* dm, GLOBAL const real* y,
        GLOBAL const real* w, GLOBAL const real* dw, GLOBAL const real4* activeGeometry, real* dy, real* force) {
    const int slot = entry.x;
    const int j = entry.y;
    const real dmj = dm[j*NUM_FILTERS+n];
    *dy += dmj*w[slot*NUM_FILTERS+n];
    const real4 delta = activeGeometry[slot];
    // The stored displacement points from the lower-numbered bead to the higher one.
    const real coefficient = (dmi*y[j*NUM_FILTERS+n] + dmj*yi)*dw[slot*NUM_FILTERS+n]*(i < j ? 1 : -1)/delta.w;
    force[0] += coefficient*delta.x;
    force[1] += coefficient*delta.y;
    force[2] += coefficient*delta.z;
}

/**
 * Interaction block b for one tile of beads, up to the new features: m_i = sum_j y_j (.) W_ij,
 * z = m C1 + c1 (stored), h += act(z) C2 + c2, leaving h in the rows of x.
 */
DEVICE void blockForward(int block, int firstBead, int count, LOCAL_ARG real* x, LOCAL_ARG real* m, LOCAL_ARG real* a,
        STAGE_PARAMETERS) {
    GLOBAL const real* RESTRICT p = BLOCK_PARAMS(block);
    GLOBAL const real* y = projected+block*NUM_BEADS*NUM_FILTERS;
    GLOBAL const real* w = filterW+block*PAIR_CAPACITY*NUM_FILTERS;
    real acc[TILE_BEADS];
    SYNC_THREADS;
    for (int index = LOCAL_ID; index < TILE_BEADS*NUM_FEATURES; index += WORK_GROUP_SIZE) {
        const int t = index/NUM_FEATURES;
        const int f = index-t*NUM_FEATURES;
        real value = 0;
        if (t < count)
            value = (block == 0 ? params[PARAM_EMBEDDING+beadTypes[firstBead+t]*NUM_FEATURES+f] : features[(firstBead+t)*NUM_FEATURES+f]);
        x[t*FEATURE_PAD+f] = value;
    }
    for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE)
        for (int t = 0; t < TILE_BEADS; t++) {
            real sum = 0;
            if (t < count) {
                const int start = candidateStart[firstBead+t];
                sum = gatherMessages(start, start+neighborCount[firstBead+t], n, neighborEntries, y, w);
            }
            m[t*FILTER_PAD+n] = sum;
        }
    SYNC_THREADS;
    for (int f = LOCAL_ID; f < NUM_FEATURES; f += WORK_GROUP_SIZE) {
        TILE_COLUMN(TILE_BEADS, m, FILTER_PAD, NUM_FILTERS, p+OFF_C1, NUM_FEATURES, f, acc)
        const real bias = p[OFF_C1B+f];
        for (int t = 0; t < TILE_BEADS; t++) {
            const real z = acc[t]+bias;
            if (t < count)
                updates[(block*NUM_BEADS+firstBead+t)*NUM_FEATURES+f] = z;
            a[t*FEATURE_PAD+f] = activation(z);
        }
    }
    SYNC_THREADS;
    for (int f = LOCAL_ID; f < NUM_FEATURES; f += WORK_GROUP_SIZE) {
        TILE_COLUMN(TILE_BEADS, a, FEATURE_PAD, NUM_FEATURES, p+OFF_C2, NUM_FEATURES, f, acc)
        const real bias = p[OFF_C2B+f];
        for (int t = 0; t < TILE_BEADS; t++)
            x[t*FEATURE_PAD+f] += acc[t]+bias;
    }
    SYNC_THREADS;
}

/**
 * Forward through interaction block b < L-1 for every tile of beads: the new features and y = h B
 * of the next block.
 */
DEVICE void forwardBlockStage(int block, STAGE_PARAMETERS, LOCAL_ARG real* scratch) {
    LOCAL_ARG real* x = scratch;                                 // [TILE_BEADS][FEATURE_PAD] h
    LOCAL_ARG real* m = x+TILE_BEADS*FEATURE_PAD;                // [TILE_BEADS][FILTER_PAD]  m
    LOCAL_ARG real* a = m+TILE_BEADS*FILTER_PAD;                 // [TILE_BEADS][FEATURE_PAD] act(z)
    GLOBAL const real* RESTRICT next = BLOCK_PARAMS(block+1);
    GLOBAL real* nextY = projected+(block+1)*NUM_BEADS*NUM_FILTERS;
    real acc[TILE_BEADS];
    for (int tile = GROUP_ID; tile < NUM_BEAD_TILES; tile += NUM_GROUPS) {
        const int firstBead = tile*TILE_BEADS;
        const int count = min(TILE_BEADS, NUM_BEADS-firstBead);
        blockForward(block, firstBead, count, x, m, a, STAGE_ARGUMENTS);
        for (int index = LOCAL_ID; index < count*NUM_FEATURES; index += WORK_GROUP_SIZE) {
            const int t = index/NUM_FEATURES;
            const int f = index-t*NUM_FEATURES;
            features[(firstBead+t)*NUM_FEATURES+f] = x[t*FEATURE_PAD+f];
        }
        for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE) {
            TILE_COLUMN(TILE_BEADS, x, FEATURE_PAD, NUM_FEATURES, next+OFF_B, NUM_FILTERS, n, acc)
            for (int t = 0; t < count; t++)
                nextY[(firstBead+t)*NUM_FILTERS+n] = acc[t];
        }
    }
}

/**
 * Forward through the last interaction block, the output network with the energy, and the start of
 * the reverse pass: dU/dh, and dm of the last block for the next stage.  (An energy-only
 * evaluation does this small part of the reverse pass too: it keeps the stage free of branches
 * around barriers.)
 */
DEVICE void lastBlockStage(STAGE_PARAMETERS, LOCAL_ARG real* scratch) {
    LOCAL_ARG real* x = scratch;                                 // [TILE_BEADS][FEATURE_PAD] h, then dU/dh
    LOCAL_ARG real* m = x+TILE_BEADS*FEATURE_PAD;                // [TILE_BEADS][FILTER_PAD]  m
    LOCAL_ARG real* a = m+TILE_BEADS*FILTER_PAD;                 // [TILE_BEADS][FEATURE_PAD] act(z), then dz
    LOCAL_ARG real* work = a+TILE_BEADS*FEATURE_PAD;
    for (int tile = GROUP_ID; tile < NUM_BEAD_TILES; tile += NUM_GROUPS) {
        const int firstBead = tile*TILE_BEADS;
        const int count = min(TILE_BEADS, NUM_BEADS-firstBead);
        blockForward(NUM_BLOCKS-1, firstBead, count, x, m, a, STAGE_ARGUMENTS);
        outputNetwork(firstBead, count, x, work, STAGE_ARGUMENTS);
        updateBackward(NUM_BLOCKS-1, firstBead, count, x, a, STAGE_ARGUMENTS);
    }
}

/**
 * The part of the reverse pass through block b that needs dm_b of every bead (from the previous
 * stage), for one tile: dy_i = sum_j dm_j (.) W_ij into the rows of dy, and the force on bead i from
 * this block's filters,
 *
 *   F_i += s sum_j [sum_n (dm_i y_j + dm_j y_i)_n dW_n/dr] (r_j - r_i)/|r_j - r_i|,
 *
 * reduced over the filter channels with a fixed tree and added to the fixed-point buffer.
 */
DEVICE void blockBackwardPairs(int block, int firstBead, int count, LOCAL_ARG real* dy, LOCAL_ARG real* partial,
        STAGE_PARAMETERS) {
    GLOBAL const real* y = projected+block*NUM_BEADS*NUM_FILTERS;
    GLOBAL const real* dm = messageGradients+(block%2)*NUM_BEADS*NUM_FILTERS;
    GLOBAL const real* w = filterW+block*PAIR_CAPACITY*NUM_FILTERS;
    GLOBAL const real* dw = filterD+block*PAIR_CAPACITY*NUM_FILTERS;
    real force[3*TILE_BEADS];
    for (int k = 0; k < 3*TILE_BEADS; k++)
        force[k] = 0;
    for (int n = LOCAL_ID; n < NUM_FILTERS; n += WORK_GROUP_SIZE)
        for (int t = 0; t < TILE_BEADS; t++) {
            real sum = 0;
            if (t < count) {
                const int bead = firstBead+t;
                const real dmi = dm[bead*NUM_FILTERS+n];
                const real yi = y[bead*NUM_FILTERS+n];
                const int start = candidateStart[bead];
                const int end = start+neighborCount[bead];
                // Four entries at a time keep several loads in flight.
                int entry = start;
                for (; entry+4 <= end; entry += 4) {
                    const int2 e0 = neighborEntries[entry], e1 = neighborEntries[entry+1];
                    const int2 e2 = neighborEntries[entry+2], e3 = neighborEntries[entry+3];
                    backwardEntry(bead, e0, n, dmi, yi, dm, y, w, dw, activeGeometry, &sum, force+3*t);
                    backwardEntry(bead, e1, n, dmi, yi, dm, y, w, dw, activeGeometry, &sum, force+3*t);
                    backwardEntry(bead, e2, n, dmi, yi, dm, y, w, dw, activeGeometry, &sum, force+3*t);
                    backwardEntry(bead, e3, n, dmi, yi, dm, y, w, dw, activeGeometry, &sum, force+3*t);
                }
                for (; entry < end; entry++)
                    backwardEntry(bead, neighborEntries[entry], n, dmi, yi, dm, y, w, dw, activeGeometry, &sum, force+3*t);
            }
            dy[t*FILTER_PAD+n] = sum;
        }
    SYNC_THREADS;
    for (int k = 0; k < 3*TILE_BEADS; k++)
        partial[k*WORK_GROUP_SIZE+LOCAL_ID] = force[k];
    SYNC_THREADS;
    for (int stride = WORK_GROUP_SIZE/2; stride > 0; stride /= 2) {
        if (LOCAL_ID < stride)
            for (int k = 0; k < 3*TILE_BEADS; k++)
                partial[k*WORK_GROUP_SIZE+LOCAL_ID] += partial[k*WORK_GROUP_SIZE+LOCAL_ID+stride];
        SYNC_THREADS;
    }
    if (LOCAL_ID < 3*count) {
        const int t = LOCAL_ID/3;
        const int component = LOCAL_ID-3*t;
        ATOMIC_ADD(&forceBuffers[particles[firstBead+t]+component*PADDED_NUM_ATOMS],
                   (mm_ulong) realToFixedPoint(scale*partial[LOCAL_ID*WORK_GROUP_SIZE]));
    }
}

/**
 * The reverse pass through block b > 0 for every tile of beads: dy and the force from this block's
 * filters, then g += dy B^T and the update network of block b-1, which gives dm_{b-1}.
 */
DEVICE void backwardBlockStage(int block, STAGE_PARAMETERS, LOCAL_ARG real* scratch) {
    LOCAL_ARG real* x = scratch;                                 // [TILE_BEADS][FEATURE_PAD] dU/dh
    LOCAL_ARG real* dy = x+TILE_BEADS*FEATURE_PAD;               // [TILE_BEADS][FILTER_PAD]
    LOCAL_ARG real* dz = dy+TILE_BEADS*FILTER_PAD;               // [TILE_BEADS][FEATURE_PAD]
    LOCAL_ARG real* partial = dz+TILE_BEADS*FEATURE_PAD;         // [3*TILE_BEADS][WORK_GROUP_SIZE]
    GLOBAL const real* RESTRICT p = BLOCK_PARAMS(block);
    real acc[TILE_BEADS];
    for (int tile = GROUP_ID; tile < NUM_BEAD_TILES; tile += NUM_GROUPS) {
        const int firstBead = tile*TILE_BEADS;
        const int count = min(TILE_BEADS, NUM_BEADS-firstBead);
        SYNC_THREADS;
        for (int index = LOCAL_ID; index < TILE_BEADS*NUM_FEATURES; index += WORK_GROUP_SIZE) {
            const int t = index/NUM_FEATURES;
            const int f = index-t*NUM_FEATURES;
            x[t*FEATURE_PAD+f] = (t < count ? gradients[(firstBead+t)*NUM_FEATURES+f] : 0);
        }
        blockBackwardPairs(block, firstBead, count, dy, partial, STAGE_ARGUMENTS);
        for (int f = LOCAL_ID; f < NUM_FEATURES; f += WORK_GROUP_SIZE) {
            TILE_COLUMN(TILE_BEADS, dy, FILTER_PAD, NUM_FILTERS, p+OFF_BT, NUM_FEATURES, f, acc)
            for (int t = 0; t < TILE_BEADS; t++)
                x[t*FEATURE_PAD+f] += acc[t];
        }
        SYNC_THREADS;
        updateBackward(block-1, firstBead, count, x, dz, STAGE_ARGUMENTS);
    }
}

/**
 * The reverse pass through the first block: only the force from its filters remains.
 */
DEVICE void firstBlockBackwardStage(STAGE_PARAMETERS, LOCAL_ARG real* scratch) {
    LOCAL_ARG real* dy = scratch;                                // [TILE_BEADS][FILTER_PAD] (not needed)
    LOCAL_ARG real* partial = dy+TILE_BEADS*FILTER_PAD;          // [3*TILE_BEADS][WORK_GROUP_SIZE]
    for (int tile = GROUP_ID; tile < NUM_BEAD_TILES; tile += NUM_GROUPS) {
        const int firstBead = tile*TILE_BEADS;
        const int count = min(TILE_BEADS, NUM_BEADS-firstBead);
        SYNC_THREADS;
        blockBackwardPairs(0, firstBead, count, dy, partial, STAGE_ARGUMENTS);
    }
}

// ------------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------------

// Local memory of the stages: reals (aligned for real4 reads) and ints.
#define DECLARE_SCRATCH \
    LOCAL real4 scratch4[SCRATCH_SIZE/4]; \
    LOCAL_ARG real* scratch = (LOCAL_ARG real*) scratch4;
#define DECLARE_INT_SCRATCH \
    LOCAL int iscratch[WORK_GROUP_SIZE];

KERNEL void countActivePairs(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_INT_SCRATCH
    countActivePairsStage(STAGE_ARGUMENTS, iscratch);
}

KERNEL void compactActivePairs(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_INT_SCRATCH
    compactActivePairsStage(STAGE_ARGUMENTS, iscratch);
}

KERNEL void computeFilters(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_SCRATCH
    DECLARE_INT_SCRATCH
    computeFiltersStage(STAGE_ARGUMENTS, scratch, iscratch);
}

KERNEL void forwardBlock(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_SCRATCH
    forwardBlockStage(block, STAGE_ARGUMENTS, scratch);
}

KERNEL void forwardLastBlock(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_SCRATCH
    lastBlockStage(STAGE_ARGUMENTS, scratch);
}

KERNEL void backwardBlock(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_SCRATCH
    backwardBlockStage(block, STAGE_ARGUMENTS, scratch);
}

KERNEL void backwardFirstBlock(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_SCRATCH
    firstBlockBackwardStage(STAGE_ARGUMENTS, scratch);
}

#ifdef CGML_GRID_SYNC
/**
 * Wait until every work group of the grid has arrived: the count-th barrier of a launch completes
 * when the counter, which only grows, reaches barrierBase + count*NUM_GROUPS.  All groups must be
 * resident at once, which the host guarantees by launching at most one group per compute unit.
 */
DEVICE void gridBarrier(GLOBAL int* counter, unsigned int target) {
    SYNC_THREADS;
    if (LOCAL_ID == 0) {
#ifdef __OPENCL_VERSION__
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        atomic_inc(counter);
        while ((int) (((unsigned int) atomic_add(counter, 0))-target) < 0)
            ;
        mem_fence(CLK_GLOBAL_MEM_FENCE);
#else
        __threadfence();
        atomicAdd((unsigned int*) counter, 1u);
        while ((int) (*((volatile unsigned int*) counter)-target) < 0)
            ;
        __threadfence();
#endif
    }
    SYNC_THREADS;
}

/**
 * Ask for count reals from address on to be brought into this compute unit's L1 cache (CUDA; a
 * no-op elsewhere).  Called before a grid barrier with the weights of the next stage, so their
 * transfer overlaps the wait.
 */
DEVICE void prefetchWeights(GLOBAL const real* address, int count) {
#ifdef __CUDA_ARCH__
    const int line = 128/sizeof(real);
    // The pointer is a generic address: the .global form of the instruction takes a global-space
    // address (after cvta.to.global), the unqualified form a generic one.
    for (int i = LOCAL_ID*line; i < count; i += WORK_GROUP_SIZE*line)
        asm volatile("prefetch.L1 [%0];" :: "l"(address+i));
#endif
}

/**
 * Every stage of one evaluation in a single launch, with a grid barrier between stages.
 */
KERNEL void runAllStages(STAGE_PARAMETERS, int block, unsigned int barrierBase) {
    DECLARE_SCRATCH
    DECLARE_INT_SCRATCH
    GLOBAL int* barrierCounter = counters+1;
    unsigned int target = barrierBase;
#if NUM_CHUNKS > 1
    countActivePairsStage(STAGE_ARGUMENTS, iscratch);
    target += NUM_GROUPS;
    gridBarrier(barrierCounter, target);
#endif
    compactActivePairsStage(STAGE_ARGUMENTS, iscratch);
    prefetchWeights(BLOCK_PARAMS(GROUP_ID%NUM_BLOCKS)+OFF_A1, OFF_B-OFF_A1);
    target += NUM_GROUPS;
    gridBarrier(barrierCounter, target);
    computeFiltersStage(STAGE_ARGUMENTS, scratch, iscratch);
    for (int b = 0; b < NUM_BLOCKS; b++) {
        prefetchWeights(BLOCK_PARAMS(b)+OFF_C1, OFF_BT-OFF_C1);
        if (b < NUM_BLOCKS-1)
            prefetchWeights(BLOCK_PARAMS(b+1)+OFF_B, OFF_C1-OFF_B);
        target += NUM_GROUPS;
        gridBarrier(barrierCounter, target);
        if (b < NUM_BLOCKS-1)
            forwardBlockStage(b, STAGE_ARGUMENTS, scratch);
        else
            lastBlockStage(STAGE_ARGUMENTS, scratch);
    }
    if (includeForces) {
        for (int b = NUM_BLOCKS-1; b > 0; b--) {
            prefetchWeights(BLOCK_PARAMS(b)+OFF_BT, OFF_C1T-OFF_BT);
            prefetchWeights(BLOCK_PARAMS(b-1)+OFF_C1T, BLOCK_STRIDE-OFF_C1T);
            target += NUM_GROUPS;
            gridBarrier(barrierCounter, target);
            backwardBlockStage(b, STAGE_ARGUMENTS, scratch);
        }
        target += NUM_GROUPS;
        gridBarrier(barrierCounter, target);
        firstBlockBackwardStage(STAGE_ARGUMENTS, scratch);
    }
}
#endif
