/*
 * The arithmetic of the CPU CGSchNet kernel (see CpuCGSchNetMath.h), in single precision.
 *
 * This file is compiled once per instruction set, with CGML_CPU_VARIANT naming the namespace of
 * the copy (CpuGeneric: baseline x86-64; CpuAvx2: -mavx2 -mfma).  It deliberately uses no C++
 * standard library templates or inline functions and keeps everything else in an anonymous
 * namespace, so no code compiled for one instruction set can be shared with another copy.
 *
 * Vectors are GCC/Clang vector extensions of 8 floats: with AVX2 they are ymm registers, on the
 * baseline the compiler splits them into SSE pairs.
 */

#include "../CpuCGSchNetMath.h"
#include <stddef.h>
#include <stdint.h>

#ifndef CGML_CPU_VARIANT
#error "CGML_CPU_VARIANT must name the instruction set variant (CpuGeneric or CpuAvx2)"
#endif

namespace OpenMMCGML {
namespace CGML_CPU_VARIANT {
namespace {

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// Rows per register tile of the matrix product: 6 x 16 floats fill 12 of the 16 ymm registers;
// the baseline build has half the register width, so it takes fewer rows.
#if defined(__AVX__)
#define CGML_MR 6
#else
#define CGML_MR 2
#endif
const int MR = CGML_MR;
// Pairs and beads handled together (rows of the matrix products); the kernel's work chunks are
// split into tiles of at most these sizes.
const int PAIR_TILE = 32;
const int BEAD_TILE = 16;

const int ShiftedSoftplus = 0, Tanh = 1, SiLU = 2;
const int Gaussian = 0;

inline v8 load(const float* p) {
    v8 v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

inline void store(float* p, v8 v) {
    __builtin_memcpy(p, &v, sizeof(v));
}

inline v8 splat(float s) {
    return (v8) {s, s, s, s, s, s, s, s};
}

inline v8 vmax(v8 a, v8 b) {
    return a > b ? a : b;
}

inline v8 vmin(v8 a, v8 b) {
    return a < b ? a : b;
}

inline v8 vabs(v8 x) {
    return (v8) ((v8i) x & 0x7fffffff);
}

inline float horizontalSum(v8 v) {
    return ((v[0]+v[4])+(v[1]+v[5]))+((v[2]+v[6])+(v[3]+v[7]));
}

inline int imin(int a, int b) {
    return a < b ? a : b;
}

inline size_t smax(size_t a, size_t b) {
    return a > b ? a : b;
}

/**
 * exp(x), relative error about 1e-7.  x = n ln2 + r with |r| <= ln2/2 (n rounded with the
 * 1.5*2^23 trick, ln2 split so n*LN2_HI is exact), e^r by its Taylor polynomial of degree 7
 * (truncation error below 6e-9), and 2^n added to the exponent bits.  x is clamped to
 * [-87, 88], where the result stays a normal float.
 */
inline v8 vexp(v8 x) {
    const float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440054690583e-4f;
    const float SHIFT = 12582912.0f;
    x = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
    v8 shifted = x*LOG2E+SHIFT;
    v8 n = shifted-SHIFT;
    v8i exponent = (v8i) shifted-(v8i) splat(SHIFT);
    v8 r = x-n*LN2_HI;
    r = r-n*LN2_LO;
    v8 p = splat(1.0f/5040.0f);
    p = p*r+1.0f/720.0f;
    p = p*r+1.0f/120.0f;
    p = p*r+1.0f/24.0f;
    p = p*r+1.0f/6.0f;
    p = p*r+0.5f;
    p = p*r+1.0f;
    p = p*r+1.0f;
    return (v8) ((v8i) p+(exponent<<23));
}

/**
 * log(1+u) for 0 <= u <= 1 from s = u/(2+u) <= 1/3, as 2 atanh(s), so that 1+u is never rounded:
 * 2 s (1 + s^2/3 + s^4/5 + ... + s^14/15), truncation error below 2e-9 relative.
 */
inline v8 vlog1pUnit(v8 s) {
    v8 s2 = s*s;
    v8 p = splat(1.0f/15.0f);
    p = p*s2+1.0f/13.0f;
    p = p*s2+1.0f/11.0f;
    p = p*s2+1.0f/9.0f;
    p = p*s2+1.0f/7.0f;
    p = p*s2+1.0f/5.0f;
    p = p*s2+1.0f/3.0f;
    p = p*s2+1.0f;
    return 2.0f*s*p;
}

/** act(x) and act'(x), from u = exp(-|x|) (or exp(-2|x|) for tanh), never overflowing. */
inline void activate8(int kind, v8 x, v8& value, v8& derivative) {
    const v8 zero = splat(0.0f);
    if (kind == Tanh) {
        v8 u = vexp(-2.0f*vabs(x));
        v8 t = (1.0f-u)/(1.0f+u);
        t = x < zero ? -t : t;
        value = t;
        derivative = 1.0f-t*t;
        return;
    }
    v8 u = vexp(-vabs(x));
    if (kind == ShiftedSoftplus) {
        // One division gives both 1/(1+u) and s = u/(2+u), the argument of vlog1pUnit.
        v8 both = 1.0f/((1.0f+u)*(2.0f+u));
        v8 inverse = (2.0f+u)*both;
        value = vmax(x, zero)+vlog1pUnit(u*(1.0f+u)*both)-0.69314718055994531f;
        derivative = x < zero ? u*inverse : inverse;
        return;
    }
    // SiLU; 1 - sigmoid is formed from u too, as 1 - sigmoid would lose its digits for large x.
    v8 inverse = 1.0f/(1.0f+u);
    v8 sigmoid = x < zero ? u*inverse : inverse;
    v8 complement = x < zero ? inverse : u*inverse;
    value = x*sigmoid;
    derivative = sigmoid*(1.0f+x*complement);
}

/** y = act(x) and, if dy is not NULL, dy = act'(x), for count values (a multiple of 8). */
void activation(int kind, const float* x, float* y, float* dy, size_t count) {
    for (size_t i = 0; i < count; i += 8) {
        v8 value, derivative;
        activate8(kind, load(x+i), value, derivative);
        store(y+i, value);
        if (dy != NULL)
            store(dy+i, derivative);
    }
}

/**
 * C[0..M) x 16 (+)= A[0..M) x k . B, with B one packed panel (k x 16), plus bias (16 values) if
 * not NULL.  A has row stride lda, C row stride ldc.
 */
template <int M>
inline void microKernel(const float* A, int lda, int k, const float* B, float* C, int ldc, const float* bias, bool accumulate) {
    v8 c0[M], c1[M];
#pragma GCC unroll 8
    for (int r = 0; r < M; r++) {
        c0[r] = splat(0.0f);
        c1[r] = splat(0.0f);
    }
    for (int kk = 0; kk < k; kk++) {
        v8 b0 = load(B+16*kk), b1 = load(B+16*kk+8);
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) {
            v8 a = splat(A[r*lda+kk]);
            c0[r] += a*b0;
            c1[r] += a*b1;
        }
    }
    v8 bias0 = splat(0.0f), bias1 = splat(0.0f);
    if (bias != NULL) {
        bias0 = load(bias);
        bias1 = load(bias+8);
    }
#pragma GCC unroll 8
    for (int r = 0; r < M; r++) {
        float* out = C+r*ldc;
        v8 o0 = c0[r]+bias0, o1 = c1[r]+bias1;
        if (accumulate) {
            o0 += load(out);
            o1 += load(out+8);
        }
        store(out, o0);
        store(out+8, o1);
    }
}

/**
 * C (+)= A B (+ bias): A is rows x B.inputs (row stride lda), C is rows x B.outputs written over
 * whole panels (row stride ldc, at least the padded width), bias padded or NULL.
 */
void gemm(const float* A, int lda, int rows, const CpuCGSchNetPackedMatrix& B, const float* bias, float* C, int ldc,
          bool accumulate) {
    const int k = B.inputs, panels = (B.outputs+15)/16;
    // Rows go in near-equal groups of at most MR (13 rows: 4+4+5 rather than 6+6+1), because a
    // tile of few rows has too few independent accumulators to hide the latency of the FMAs.
    const int groups = (rows+MR-1)/MR;
    for (int panel = 0; panel < panels; panel++) {
        const float* Bp = B.data+(size_t) panel*k*16;
        const float* bp = (bias == NULL ? NULL : bias+16*panel);
        float* Cp = C+16*panel;
        for (int group = 0, r = 0; group < groups; group++) {
            const int m = (rows-r)/(groups-group);
            const float* Ar = A+(size_t) r*lda;
            float* Cr = Cp+(size_t) r*ldc;
            switch (m) {
                case 1: microKernel<1>(Ar, lda, k, Bp, Cr, ldc, bp, accumulate); break;
                case 2: microKernel<2>(Ar, lda, k, Bp, Cr, ldc, bp, accumulate); break;
#if CGML_MR > 2
                case 3: microKernel<3>(Ar, lda, k, Bp, Cr, ldc, bp, accumulate); break;
                case 4: microKernel<4>(Ar, lda, k, Bp, Cr, ldc, bp, accumulate); break;
                case 5: microKernel<5>(Ar, lda, k, Bp, Cr, ldc, bp, accumulate); break;
                case 6: microKernel<6>(Ar, lda, k, Bp, Cr, ldc, bp, accumulate); break;
#endif
                default: break;
            }
            r += m;
        }
    }
}

/** out = sum over the pairs of bead i of source[other] (.) filter[pair], width values. */
void gatherMessages(const CpuCGSchNetState& state, int i, const float* source, const float* filter, int width, float* out) {
    for (int c = 0; c < width; c += 8)
        store(out+c, splat(0.0f));
    const int start = state.beadStart[i], end = start+state.beadCount[i];
    for (int e = start; e < end; e++) {
        const float* s = source+(size_t) state.beadOther[e]*width;
        const float* w = filter+(size_t) state.beadPair[e]*width;
        for (int c = 0; c < width; c += 8)
            store(out+c, load(out+c)+load(s+c)*load(w+c));
    }
}

void multiplyInPlace(float* x, const float* y, size_t count) {
    for (size_t i = 0; i < count; i += 8)
        store(x+i, load(x+i)*load(y+i));
}

// ---------------------------------------------------------------- scratch layout

struct PairScratch {
    float *rbf, *rbfDeriv, *q, *qDeriv, *s, *sDeriv;
};

struct BeadScratch {
    float *message, *z, *act, *temp, *back0, *back1;
    // Per output layer: the input (layer 0 reads h directly), pre-activation and act'.
    float *layerData;
};

int maxLayerWidth(const CpuCGSchNetModel& model) {
    int width = cgmlPadded(model.numFeatures);
    if (cgmlPadded(model.numFilters) > width)
        width = cgmlPadded(model.numFilters);
    for (int l = 0; l < model.numLayers; l++)
        if (cgmlPadded(model.layers[l].W.outputs) > width)
            width = cgmlPadded(model.layers[l].W.outputs);
    return width;
}

size_t pairScratchSize(const CpuCGSchNetModel& model) {
    return (size_t) PAIR_TILE*(2*cgmlPadded(model.numRBF)+4*cgmlPadded(model.numFilters));
}

PairScratch pairScratch(const CpuCGSchNetModel& model, float* scratch) {
    const size_t K = cgmlPadded(model.numRBF), NF = cgmlPadded(model.numFilters);
    PairScratch s;
    s.rbf = scratch;
    s.rbfDeriv = s.rbf+PAIR_TILE*K;
    s.q = s.rbfDeriv+PAIR_TILE*K;
    s.qDeriv = s.q+PAIR_TILE*NF;
    s.s = s.qDeriv+PAIR_TILE*NF;
    s.sDeriv = s.s+PAIR_TILE*NF;
    return s;
}

size_t layerDataSize(const CpuCGSchNetModel& model) {
    size_t size = 0;
    for (int l = 0; l < model.numLayers; l++)
        size += (size_t) BEAD_TILE*(cgmlPadded(model.layers[l].W.inputs)+2*cgmlPadded(model.layers[l].W.outputs));
    return size;
}

size_t beadScratchSize(const CpuCGSchNetModel& model) {
    const size_t width = maxLayerWidth(model);
    return (size_t) BEAD_TILE*6*width+layerDataSize(model);
}

BeadScratch beadScratch(const CpuCGSchNetModel& model, float* scratch) {
    const size_t width = maxLayerWidth(model);
    BeadScratch s;
    s.message = scratch;
    s.z = s.message+BEAD_TILE*width;
    s.act = s.z+BEAD_TILE*width;
    s.temp = s.act+BEAD_TILE*width;
    s.back0 = s.temp+BEAD_TILE*width;
    s.back1 = s.back0+BEAD_TILE*width;
    s.layerData = s.back1+BEAD_TILE*width;
    return s;
}

size_t scratchSize(const CpuCGSchNetModel& model) {
    return smax(pairScratchSize(model), beadScratchSize(model));
}

// ---------------------------------------------------------------- filters

void tabulatedFilters(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int last, bool derivatives) {
    const int NF = cgmlPadded(model.numFilters), intervals = model.tableIntervals;
    const double inverseSpacing = model.tableInverseSpacing;
    const v8 inverseH = splat((float) inverseSpacing);
    for (int p = first; p < last; p++) {
        double x = state.pairR[p]*inverseSpacing;
        int n = (int) x;
        if (n > intervals-1)
            n = intervals-1;
        if (n < 0)
            n = 0;
        const v8 t = splat((float) (x-n));
        const v8 fc = splat((float) state.pairCutoff[p]), dfc = splat((float) state.pairCutoffDeriv[p]);
        for (int b = 0; b < model.numBlocks; b++) {
            const float* coeff = model.table+((size_t) n*model.numBlocks+b)*4*NF;
            float* W = state.pairW+b*state.pairBlockStride+(size_t) p*NF;
            float* WDeriv = state.pairWDeriv+b*state.pairBlockStride+(size_t) p*NF;
            for (int c = 0; c < NF; c += 8) {
                v8 c0 = load(coeff+c), c1 = load(coeff+NF+c), c2 = load(coeff+2*NF+c), c3 = load(coeff+3*NF+c);
                v8 w = c0+t*(c1+t*(c2+t*c3));
                if (derivatives) {
                    v8 dw = (c1+t*(2.0f*c2+3.0f*t*c3))*inverseH;
                    store(WDeriv+c, dw*fc+w*dfc);
                }
                store(W+c, w*fc);
            }
        }
    }
}

/** The radial basis e(r) and de/dr of a tile of pairs, rows of padded width. */
void radialBasis(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int count, float* rbf, float* rbfDeriv) {
    const int K = model.numRBF, KP = cgmlPadded(K);
    for (int row = 0; row < count; row++) {
        const double r = state.pairR[first+row];
        float* e = rbf+(size_t) row*KP;
        float* de = rbfDeriv+(size_t) row*KP;
        // The exponent and the factor of de/dr = factor * e in double precision, the exponential
        // in single precision.
        if (model.rbfType == Gaussian)
            for (int k = 0; k < K; k++) {
                double d = r-model.rbfCenters[k];
                e[k] = (float) (-model.rbfWidths[k]*d*d);
                de[k] = (float) (-2.0*model.rbfWidths[k]*d);
            }
        else {
            const double v = __builtin_exp(-model.rbfAlpha*(r-model.rbfLowerCutoff));
            for (int k = 0; k < K; k++) {
                double d = v-model.rbfCenters[k];
                e[k] = (float) (-model.rbfWidths[k]*d*d);
                de[k] = (float) (2.0*model.rbfWidths[k]*d*model.rbfAlpha*v);
            }
        }
        for (int k = K; k < KP; k++) {
            e[k] = -100.0f;
            de[k] = 0.0f;
        }
        for (int k = 0; k < KP; k += 8) {
            v8 value = vexp(load(e+k));
            store(e+k, value);
            store(de+k, load(de+k)*value);
        }
    }
}

void exactFilters(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int last, bool derivatives, float* scratch) {
    const int NF = cgmlPadded(model.numFilters), KP = cgmlPadded(model.numRBF);
    PairScratch s = pairScratch(model, scratch);
    for (int p0 = first; p0 < last; p0 += PAIR_TILE) {
        const int rows = imin(PAIR_TILE, last-p0);
        radialBasis(model, state, p0, rows, s.rbf, s.rbfDeriv);
        for (int b = 0; b < model.numBlocks; b++) {
            const CpuCGSchNetBlockWeights& block = model.blocks[b];
            float* W = state.pairW+b*state.pairBlockStride+(size_t) p0*NF;
            float* WDeriv = state.pairWDeriv+b*state.pairBlockStride+(size_t) p0*NF;
            // q = e A1 + a1, s = act(q), w0 = s A2 + a2; forward mode: q' = e' A1,
            // s' = act'(q) q', w0' = s' A2.
            gemm(s.rbf, KP, rows, block.A1, block.a1, s.q, NF, false);
            activation(model.activation, s.q, s.s, derivatives ? s.sDeriv : NULL, (size_t) rows*NF);
            gemm(s.s, NF, rows, block.A2, block.a2, W, NF, false);
            if (derivatives) {
                gemm(s.rbfDeriv, KP, rows, block.A1, NULL, s.qDeriv, NF, false);
                multiplyInPlace(s.sDeriv, s.qDeriv, (size_t) rows*NF);
                gemm(s.sDeriv, NF, rows, block.A2, NULL, WDeriv, NF, false);
            }
            for (int row = 0; row < rows; row++) {
                const v8 fc = splat((float) state.pairCutoff[p0+row]), dfc = splat((float) state.pairCutoffDeriv[p0+row]);
                float* w = W+(size_t) row*NF;
                float* dw = WDeriv+(size_t) row*NF;
                for (int c = 0; c < NF; c += 8) {
                    v8 value = load(w+c);
                    if (derivatives)
                        store(dw+c, load(dw+c)*fc+value*dfc);
                    store(w+c, value*fc);
                }
            }
        }
    }
}

void computeFilters(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int last, bool derivatives, float* scratch) {
    for (int p = first; p < last; p++)
        state.pairEnergyDeriv[p] = 0.0;
    if (model.table != NULL)
        tabulatedFilters(model, state, first, last, derivatives);
    else
        exactFilters(model, state, first, last, derivatives, scratch);
}

// ---------------------------------------------------------------- beads

void embed(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int last, float* scratch) {
    const int F = cgmlPadded(model.numFeatures), NF = cgmlPadded(model.numFilters);
    for (int i = first; i < last; i++) {
        const float* row = model.embedding+(size_t) state.types[i]*F;
        float* h = state.h+(size_t) i*F;
        for (int f = 0; f < F; f += 8)
            store(h+f, load(row+f));
    }
    gemm(state.h+(size_t) first*F, F, last-first, model.blocks[0].B, NULL, state.y+(size_t) first*NF, NF, false);
}

/** dU/dm of block b for `rows` beads from their dU/dh: ((g C2^T) (.) act'(z)) C1^T. */
void messageGradient(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int b, int first, int rows, float* temp) {
    const int F = cgmlPadded(model.numFeatures), NF = cgmlPadded(model.numFilters), N = state.numBeads;
    const CpuCGSchNetBlockWeights& block = model.blocks[b];
    gemm(state.g+(size_t) first*F, F, rows, block.C2T, NULL, temp, F, false);
    multiplyInPlace(temp, state.updateDeriv+((size_t) b*N+first)*F, (size_t) rows*F);
    gemm(temp, F, rows, block.C1T, NULL, state.messageGrad+((size_t) (b%2)*N+first)*NF, NF, false);
}

/**
 * The scratch of output layer l: its input (layer 0 reads h instead), its pre-activation and
 * act' of the pre-activation, each BEAD_TILE rows.
 */
float* layerScratch(const CpuCGSchNetModel& model, const BeadScratch& s, int l, int which) {
    float* cursor = s.layerData;
    for (int k = 0; k <= l; k++) {
        const size_t in = (size_t) BEAD_TILE*cgmlPadded(model.layers[k].W.inputs);
        const size_t out = (size_t) BEAD_TILE*cgmlPadded(model.layers[k].W.outputs);
        if (k == l)
            return cursor+(which == 0 ? 0 : which == 1 ? in : in+out);
        cursor += in+2*out;
    }
    return NULL;
}

/** The output network for `rows` beads: u_i and, if derivatives, g = dU/dh. */
void outputNetwork(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int first, int rows, bool derivatives, const BeadScratch& s) {
    const int F = cgmlPadded(model.numFeatures), L = model.numLayers;
    const float* x = state.h+(size_t) first*F;
    int ldx = F;
    for (int l = 0; l < L; l++) {
        const CpuCGSchNetLayerWeights& layer = model.layers[l];
        const int out = cgmlPadded(layer.W.outputs);
        gemm(x, ldx, rows, layer.W, layer.bias, layerScratch(model, s, l, 1), out, false);
        if (l+1 < L) {
            activation(model.activation, layerScratch(model, s, l, 1), layerScratch(model, s, l+1, 0), derivatives ? layerScratch(model, s, l, 2) : NULL, (size_t) rows*out);
            x = layerScratch(model, s, l+1, 0);
            ldx = out;
        }
    }
    // The last layer has one output: u_i is column 0.
    const int lastWidth = cgmlPadded(model.layers[L-1].W.outputs);
    for (int row = 0; row < rows; row++)
        state.beadEnergy[first+row] = layerScratch(model, s, L-1, 1)[(size_t) row*lastWidth];
    if (!derivatives)
        return;
    // Backward: dU/du_i = s, then through each layer's transpose and the activations.
    float* dout = s.back0;
    float* din = s.back1;
    for (int row = 0; row < rows; row++) {
        for (int c = 0; c < lastWidth; c++)
            dout[(size_t) row*lastWidth+c] = 0.0f;
        dout[(size_t) row*lastWidth] = state.scale;
    }
    for (int l = L-1; l >= 0; l--) {
        const CpuCGSchNetLayerWeights& layer = model.layers[l];
        const int in = cgmlPadded(layer.W.inputs), out = cgmlPadded(layer.W.outputs);
        float* target = (l == 0 ? state.g+(size_t) first*F : din);
        gemm(dout, out, rows, layer.WT, NULL, target, in, false);
        if (l > 0) {
            multiplyInPlace(target, layerScratch(model, s, l-1, 2), (size_t) rows*in);
            float* swap = dout;
            dout = din;
            din = swap;
        }
    }
}

void forwardBlock(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int b, int first, int last, bool derivatives, float* scratch) {
    const int F = cgmlPadded(model.numFeatures), NF = cgmlPadded(model.numFilters), N = state.numBeads;
    const CpuCGSchNetBlockWeights& block = model.blocks[b];
    BeadScratch s = beadScratch(model, scratch);
    const float* y = state.y+(size_t) b*N*NF;
    const float* W = state.pairW+b*state.pairBlockStride;
    for (int i0 = first; i0 < last; i0 += BEAD_TILE) {
        const int rows = imin(BEAD_TILE, last-i0);
        for (int row = 0; row < rows; row++)
            gatherMessages(state, i0+row, y, W, NF, s.message+(size_t) row*NF);
        // h <- h + act(m C1 + c1) C2 + c2
        gemm(s.message, NF, rows, block.C1, block.c1, s.z, F, false);
        activation(model.activation, s.z, s.act, derivatives ? state.updateDeriv+((size_t) b*N+i0)*F : NULL, (size_t) rows*F);
        float* h = state.h+(size_t) i0*F;
        gemm(s.act, F, rows, block.C2, block.c2, h, F, true);
        if (b+1 < model.numBlocks)
            gemm(h, F, rows, model.blocks[b+1].B, NULL, state.y+((size_t) (b+1)*N+i0)*NF, NF, false);
        else {
            outputNetwork(model, state, i0, rows, derivatives, s);
            if (derivatives)
                messageGradient(model, state, b, i0, rows, s.temp);
        }
    }
}

void backwardBlock(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int b, int first, int last, float* scratch) {
    const int F = cgmlPadded(model.numFeatures), NF = cgmlPadded(model.numFilters), N = state.numBeads;
    BeadScratch s = beadScratch(model, scratch);
    const float* dm = state.messageGrad+(size_t) (b%2)*N*NF;
    const float* W = state.pairW+b*state.pairBlockStride;
    for (int i0 = first; i0 < last; i0 += BEAD_TILE) {
        const int rows = imin(BEAD_TILE, last-i0);
        // dU/dy_i = sum over pairs of dU/dm_j (.) W_ij, and through y = h B into g.
        for (int row = 0; row < rows; row++)
            gatherMessages(state, i0+row, dm, W, NF, s.message+(size_t) row*NF);
        gemm(s.message, NF, rows, model.blocks[b].BT, NULL, state.g+(size_t) i0*F, F, true);
        if (b > 0)
            messageGradient(model, state, b-1, i0, rows, s.temp);
    }
}

void pairDerivatives(const CpuCGSchNetModel& model, const CpuCGSchNetState& state, int b, int first, int last) {
    const int NF = cgmlPadded(model.numFilters), N = state.numBeads;
    const float* y = state.y+(size_t) b*N*NF;
    const float* dm = state.messageGrad+(size_t) (b%2)*N*NF;
    const float* WDeriv = state.pairWDeriv+b*state.pairBlockStride;
    for (int p = first; p < last; p++) {
        const float* yi = y+(size_t) state.pairI[p]*NF;
        const float* yj = y+(size_t) state.pairJ[p]*NF;
        const float* dmi = dm+(size_t) state.pairI[p]*NF;
        const float* dmj = dm+(size_t) state.pairJ[p]*NF;
        const float* dw = WDeriv+(size_t) p*NF;
        // dU/dr = sum_c dW_c/dr (dU/dm_i,c y_j,c + dU/dm_j,c y_i,c)
        v8 sum = splat(0.0f);
        for (int c = 0; c < NF; c += 8)
            sum += load(dw+c)*(load(dmi+c)*load(yj+c)+load(dmj+c)*load(yi+c));
        state.pairEnergyDeriv[p] += horizontalSum(sum);
    }
}

#define CGML_STRINGIFY2(x) #x
#define CGML_STRINGIFY(x) CGML_STRINGIFY2(x)

const CpuCGSchNetMath math = {
    CGML_STRINGIFY(CGML_CPU_VARIANT),
    scratchSize,
    computeFilters,
    embed,
    forwardBlock,
    backwardBlock,
    pairDerivatives,
    activation
};

} // namespace

const CpuCGSchNetMath& getMath() {
    return math;
}

} // namespace CGML_CPU_VARIANT
} // namespace OpenMMCGML
