// Kernels that evaluate a CGSchNetForce: a forward pass that stores every intermediate the
// gradient needs, then a hand-written reverse pass.
//
// Compile-time constants set by the host:
//   NUM_BEADS, NUM_PAIRS, NUM_RBF, NUM_FILTERS, NUM_FEATURES, PADDED_NUM_ATOMS
//   ACT_SHIFTED_SOFTPLUS | ACT_TANH | ACT_SILU       the activation
//   RBF_EXPNORMAL                                    defined for the exponential-normal basis
//   USE_PERIODIC                                     defined for minimum-image distances
//   OFFSET_A1 ... OFFSET_C2B                         layout of one interaction block's parameters
//   CGML_LN2, CGML_PI                                constants at working precision
//
// Matrices are row-major with shape inputs x outputs.  A pair p joins beads pairBeads[p].x <
// pairBeads[p].y; its displacement is x[y] - x[x].  Every kernel loops over its work items with a
// grid stride, so any launch size is valid.  Pairs at or beyond the cutoff are marked inactive, and
// every kernel that reads per-pair data skips them, so their stale values are never used.

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
    real t = tanh(x);
    return 1-t*t;
#else
    real s = 1/(1+exp(-x));
    return s*(1+x*(1-s));
#endif
}

/**
 * Per pair and radial basis function: the displacement, distance, cutoff function and its
 * derivative (written once per pair), and each basis function with its distance derivative.
 *
 * Two interacting beads at distance 0 have no force direction.  Their force comes out NaN, which
 * the fixed-point force buffer cannot hold (the conversion is device dependent and may give 0), so
 * such a pair also makes the energy NaN, where it can be seen.
 */
KERNEL void computePairs(GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT particles,
        GLOBAL const int2* RESTRICT pairBeads, GLOBAL const real* RESTRICT rbfCenters, GLOBAL const real* RESTRICT rbfWidths,
        real cutoff, real lowerCutoff, real alpha, GLOBAL real4* RESTRICT pairGeometry, GLOBAL real2* RESTRICT pairCutoff,
        GLOBAL int* RESTRICT pairActive, GLOBAL real* RESTRICT rbf, GLOBAL real* RESTRICT rbfDerivative,
        GLOBAL mixed* RESTRICT energyBuffer, real4 periodicBoxSize, real4 invPeriodicBoxSize, real4 periodicBoxVecX, real4 periodicBoxVecY, real4 periodicBoxVecZ) {
    for (int index = GLOBAL_ID; index < NUM_PAIRS*NUM_RBF; index += GLOBAL_SIZE) {
        const int p = index/NUM_RBF;
        const int k = index-p*NUM_RBF;
        const int2 beads = pairBeads[p];
        const real4 pos1 = posq[particles[beads.x]];
        const real4 pos2 = posq[particles[beads.y]];
        real3 delta = make_real3(pos2.x-pos1.x, pos2.y-pos1.y, pos2.z-pos1.z);
#ifdef USE_PERIODIC
        APPLY_PERIODIC_TO_DELTA(delta)
#endif
        const real r = sqrt(delta.x*delta.x + delta.y*delta.y + delta.z*delta.z);
        const bool active = (r < cutoff);
        if (k == 0) {
            pairGeometry[p] = make_real4(delta.x, delta.y, delta.z, r);
            pairActive[p] = (active ? 1 : 0);
            if (active) {
                const real angle = CGML_PI*r/cutoff;
                pairCutoff[p] = make_real2(0.5f*(cos(angle)+1), -0.5f*(CGML_PI/cutoff)*sin(angle));
            }
            else
                pairCutoff[p] = make_real2(0, 0);
            if (r == 0) {
                // Store the bits of a quiet NaN: arithmetic cannot be trusted to produce one under
                // fast-math compilation.
#if defined(USE_DOUBLE_PRECISION) || defined(USE_MIXED_PRECISION)
                ((GLOBAL mm_long*) energyBuffer)[GLOBAL_ID] = (mm_long) 0x7ff8000000000000;
#else
                ((GLOBAL int*) energyBuffer)[GLOBAL_ID] = 0x7fc00000;
#endif
            }
        }
        real value = 0, derivative = 0;
        if (active) {
            const real mu = rbfCenters[k];
            const real gamma = rbfWidths[k];
#ifdef RBF_EXPNORMAL
            const real t = exp(-alpha*(r-lowerCutoff));
            value = exp(-gamma*(t-mu)*(t-mu));
            derivative = -2*gamma*(t-mu)*value*(-alpha*t);
#else
            value = exp(-gamma*(r-mu)*(r-mu));
            derivative = -2*gamma*(r-mu)*value;
#endif
        }
        rbf[index] = value;
        rbfDerivative[index] = derivative;
    }
}

/**
 * h_i = E[t_i]
 */
KERNEL void embedBeads(GLOBAL const int* RESTRICT beadTypes, GLOBAL const real* RESTRICT embedding, GLOBAL real* RESTRICT features) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FEATURES; index += GLOBAL_SIZE) {
        const int i = index/NUM_FEATURES;
        const int f = index-i*NUM_FEATURES;
        features[index] = embedding[beadTypes[i]*NUM_FEATURES+f];
    }
}

/**
 * q = e(r) A1 + a1, stored with act(q).
 */
KERNEL void filterLayer1(GLOBAL const int* RESTRICT pairActive, GLOBAL const real* RESTRICT rbf, GLOBAL const real* RESTRICT params,
        GLOBAL real* RESTRICT q, GLOBAL real* RESTRICT activatedQ) {
    for (int index = GLOBAL_ID; index < NUM_PAIRS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int p = index/NUM_FILTERS;
        const int n = index-p*NUM_FILTERS;
        if (!pairActive[p])
            continue;
        real sum = params[OFFSET_A1B+n];
        for (int k = 0; k < NUM_RBF; k++)
            sum += rbf[p*NUM_RBF+k]*params[OFFSET_A1+k*NUM_FILTERS+n];
        q[index] = sum;
        activatedQ[index] = activation(sum);
    }
}

/**
 * w0 = act(q) A2 + a2.  The filter is W = w0 f_c(r).
 */
KERNEL void filterLayer2(GLOBAL const int* RESTRICT pairActive, GLOBAL const real* RESTRICT activatedQ, GLOBAL const real* RESTRICT params,
        GLOBAL real* RESTRICT w0) {
    for (int index = GLOBAL_ID; index < NUM_PAIRS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int p = index/NUM_FILTERS;
        const int n = index-p*NUM_FILTERS;
        if (!pairActive[p])
            continue;
        real sum = params[OFFSET_A2B+n];
        for (int m = 0; m < NUM_FILTERS; m++)
            sum += activatedQ[p*NUM_FILTERS+m]*params[OFFSET_A2+m*NUM_FILTERS+n];
        w0[index] = sum;
    }
}

/**
 * y = h B
 */
KERNEL void projectFeatures(GLOBAL const real* RESTRICT features, GLOBAL const real* RESTRICT params, GLOBAL real* RESTRICT y) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int i = index/NUM_FILTERS;
        const int n = index-i*NUM_FILTERS;
        real sum = 0;
        for (int f = 0; f < NUM_FEATURES; f++)
            sum += features[i*NUM_FEATURES+f]*params[OFFSET_B+f*NUM_FILTERS+n];
        y[index] = sum;
    }
}

/**
 * m_i = sum over the pairs of i of y_j (.) W_ij, gathered in a fixed order.
 */
KERNEL void gatherMessages(GLOBAL const int* RESTRICT neighborStart, GLOBAL const int* RESTRICT neighborPair,
        GLOBAL const int* RESTRICT neighborOther, GLOBAL const int* RESTRICT pairActive, GLOBAL const real2* RESTRICT pairCutoff,
        GLOBAL const real* RESTRICT w0, GLOBAL const real* RESTRICT y, GLOBAL real* RESTRICT messages) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int i = index/NUM_FILTERS;
        const int n = index-i*NUM_FILTERS;
        real sum = 0;
        for (int entry = neighborStart[i]; entry < neighborStart[i+1]; entry++) {
            const int p = neighborPair[entry];
            if (pairActive[p])
                sum += y[neighborOther[entry]*NUM_FILTERS+n]*w0[p*NUM_FILTERS+n]*pairCutoff[p].x;
        }
        messages[index] = sum;
    }
}

/**
 * z = m C1 + c1, stored with act(z).
 */
KERNEL void updateLayer1(GLOBAL const real* RESTRICT messages, GLOBAL const real* RESTRICT params, GLOBAL real* RESTRICT z,
        GLOBAL real* RESTRICT activatedZ) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FEATURES; index += GLOBAL_SIZE) {
        const int i = index/NUM_FEATURES;
        const int f = index-i*NUM_FEATURES;
        real sum = params[OFFSET_C1B+f];
        for (int n = 0; n < NUM_FILTERS; n++)
            sum += messages[i*NUM_FILTERS+n]*params[OFFSET_C1+n*NUM_FEATURES+f];
        z[index] = sum;
        activatedZ[index] = activation(sum);
    }
}

/**
 * h += act(z) C2 + c2
 */
KERNEL void updateLayer2(GLOBAL const real* RESTRICT activatedZ, GLOBAL const real* RESTRICT params, GLOBAL real* RESTRICT features) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FEATURES; index += GLOBAL_SIZE) {
        const int i = index/NUM_FEATURES;
        const int f = index-i*NUM_FEATURES;
        real sum = params[OFFSET_C2B+f];
        for (int g = 0; g < NUM_FEATURES; g++)
            sum += activatedZ[i*NUM_FEATURES+g]*params[OFFSET_C2+g*NUM_FEATURES+f];
        features[index] += sum;
    }
}

/**
 * One layer of the output network: pre = x W + b, and act(pre) for a hidden layer.
 */
KERNEL void outputLayer(int inputSize, int outputSize, GLOBAL const real* RESTRICT input, GLOBAL const real* RESTRICT weights,
        GLOBAL const real* RESTRICT bias, GLOBAL real* RESTRICT preActivation, GLOBAL real* RESTRICT activated, int isHidden) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*outputSize; index += GLOBAL_SIZE) {
        const int i = index/outputSize;
        const int o = index-i*outputSize;
        real sum = bias[o];
        for (int j = 0; j < inputSize; j++)
            sum += input[i*inputSize+j]*weights[j*outputSize+o];
        preActivation[index] = sum;
        if (isHidden)
            activated[index] = activation(sum);
    }
}

/**
 * U = s sum_i u_i into the energy buffer, and dU/ds = sum_i u_i into the parameter derivatives.
 */
KERNEL void computeEnergy(GLOBAL const real* RESTRICT beadEnergy, real scale, GLOBAL mixed* RESTRICT energyBuffer,
        GLOBAL mixed* RESTRICT energyParamDerivs, int numDerivs, int derivIndex) {
    mixed sum = 0;
    for (int i = GLOBAL_ID; i < NUM_BEADS; i += GLOBAL_SIZE)
        sum += beadEnergy[i];
    energyBuffer[GLOBAL_ID] += scale*sum;
    energyParamDerivs[GLOBAL_ID*numDerivs+derivIndex] += sum;
}

/**
 * Reverse pass of one output layer: given d/d(pre) of this layer, the gradient with respect to its
 * input, times act'(input pre-activation) when the input is a hidden layer.
 */
KERNEL void outputLayerBackward(int inputSize, int outputSize, GLOBAL const real* RESTRICT outputGradient,
        GLOBAL const real* RESTRICT weights, GLOBAL const real* RESTRICT inputPreActivation, int inputIsHidden,
        GLOBAL real* RESTRICT inputGradient) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*inputSize; index += GLOBAL_SIZE) {
        const int i = index/inputSize;
        const int j = index-i*inputSize;
        real sum = 0;
        for (int o = 0; o < outputSize; o++)
            sum += outputGradient[i*outputSize+o]*weights[j*outputSize+o];
        if (inputIsHidden)
            sum *= activationDerivative(inputPreActivation[index]);
        inputGradient[index] = sum;
    }
}

/**
 * dz = (g C2^T) (.) act'(z)
 */
KERNEL void updateBackward2(GLOBAL const real* RESTRICT featureGradient, GLOBAL const real* RESTRICT params,
        GLOBAL const real* RESTRICT z, GLOBAL real* RESTRICT dz) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FEATURES; index += GLOBAL_SIZE) {
        const int i = index/NUM_FEATURES;
        const int f = index-i*NUM_FEATURES;
        real sum = 0;
        for (int g = 0; g < NUM_FEATURES; g++)
            sum += featureGradient[i*NUM_FEATURES+g]*params[OFFSET_C2+f*NUM_FEATURES+g];
        dz[index] = sum*activationDerivative(z[index]);
    }
}

/**
 * dm = dz C1^T
 */
KERNEL void updateBackward1(GLOBAL const real* RESTRICT dz, GLOBAL const real* RESTRICT params, GLOBAL real* RESTRICT dm) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int i = index/NUM_FILTERS;
        const int n = index-i*NUM_FILTERS;
        real sum = 0;
        for (int f = 0; f < NUM_FEATURES; f++)
            sum += dz[i*NUM_FEATURES+f]*params[OFFSET_C1+n*NUM_FEATURES+f];
        dm[index] = sum;
    }
}

/**
 * dW_ij = dm_i (.) y_j + dm_j (.) y_i (messages flow both ways), and dw0 = dW f_c.
 */
KERNEL void filterGradient(GLOBAL const int2* RESTRICT pairBeads, GLOBAL const int* RESTRICT pairActive,
        GLOBAL const real2* RESTRICT pairCutoff, GLOBAL const real* RESTRICT dm, GLOBAL const real* RESTRICT y,
        GLOBAL real* RESTRICT dw0) {
    for (int index = GLOBAL_ID; index < NUM_PAIRS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int p = index/NUM_FILTERS;
        const int n = index-p*NUM_FILTERS;
        if (!pairActive[p])
            continue;
        const int2 beads = pairBeads[p];
        const real dW = dm[beads.x*NUM_FILTERS+n]*y[beads.y*NUM_FILTERS+n] + dm[beads.y*NUM_FILTERS+n]*y[beads.x*NUM_FILTERS+n];
        dw0[index] = dW*pairCutoff[p].x;
    }
}

/**
 * dq = (dw0 A2^T) (.) act'(q)
 */
KERNEL void filterBackward2(GLOBAL const int* RESTRICT pairActive, GLOBAL const real* RESTRICT dw0, GLOBAL const real* RESTRICT params,
        GLOBAL const real* RESTRICT q, GLOBAL real* RESTRICT dq) {
    for (int index = GLOBAL_ID; index < NUM_PAIRS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int p = index/NUM_FILTERS;
        const int m = index-p*NUM_FILTERS;
        if (!pairActive[p])
            continue;
        real sum = 0;
        for (int n = 0; n < NUM_FILTERS; n++)
            sum += dw0[p*NUM_FILTERS+n]*params[OFFSET_A2+m*NUM_FILTERS+n];
        dq[index] = sum*activationDerivative(q[index]);
    }
}

/**
 * de = dq A1^T, times de/dr: the contribution of each basis function to dU/dr.
 */
KERNEL void filterBackward1(GLOBAL const int* RESTRICT pairActive, GLOBAL const real* RESTRICT dq, GLOBAL const real* RESTRICT params,
        GLOBAL const real* RESTRICT rbfDerivative, GLOBAL real* RESTRICT rbfTerms) {
    for (int index = GLOBAL_ID; index < NUM_PAIRS*NUM_RBF; index += GLOBAL_SIZE) {
        const int p = index/NUM_RBF;
        const int k = index-p*NUM_RBF;
        if (!pairActive[p])
            continue;
        real sum = 0;
        for (int m = 0; m < NUM_FILTERS; m++)
            sum += dq[p*NUM_FILTERS+m]*params[OFFSET_A1+k*NUM_FILTERS+m];
        rbfTerms[index] = sum*rbfDerivative[index];
    }
}

/**
 * dU/dr of each pair from one block: sum_k de_k de_k/dr + (dW . w0) f_c'(r).  The first block
 * processed overwrites, later ones add.
 */
KERNEL void pairDerivative(GLOBAL const int2* RESTRICT pairBeads, GLOBAL const int* RESTRICT pairActive,
        GLOBAL const real2* RESTRICT pairCutoff, GLOBAL const real* RESTRICT rbfTerms, GLOBAL const real* RESTRICT dm,
        GLOBAL const real* RESTRICT y, GLOBAL const real* RESTRICT w0, int accumulate, GLOBAL real* RESTRICT dUdr) {
    for (int p = GLOBAL_ID; p < NUM_PAIRS; p += GLOBAL_SIZE) {
        real sum = 0;
        if (pairActive[p]) {
            for (int k = 0; k < NUM_RBF; k++)
                sum += rbfTerms[p*NUM_RBF+k];
            const int2 beads = pairBeads[p];
            real dfc = 0;
            for (int n = 0; n < NUM_FILTERS; n++) {
                const real dW = dm[beads.x*NUM_FILTERS+n]*y[beads.y*NUM_FILTERS+n] + dm[beads.y*NUM_FILTERS+n]*y[beads.x*NUM_FILTERS+n];
                dfc += dW*w0[p*NUM_FILTERS+n];
            }
            sum += dfc*pairCutoff[p].y;
        }
        dUdr[p] = (accumulate ? dUdr[p]+sum : sum);
    }
}

/**
 * dy_j = sum over the pairs of j of dm_other (.) W, gathered in a fixed order.
 */
KERNEL void gatherMessageGradient(GLOBAL const int* RESTRICT neighborStart, GLOBAL const int* RESTRICT neighborPair,
        GLOBAL const int* RESTRICT neighborOther, GLOBAL const int* RESTRICT pairActive, GLOBAL const real2* RESTRICT pairCutoff,
        GLOBAL const real* RESTRICT w0, GLOBAL const real* RESTRICT dm, GLOBAL real* RESTRICT dy) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FILTERS; index += GLOBAL_SIZE) {
        const int i = index/NUM_FILTERS;
        const int n = index-i*NUM_FILTERS;
        real sum = 0;
        for (int entry = neighborStart[i]; entry < neighborStart[i+1]; entry++) {
            const int p = neighborPair[entry];
            if (pairActive[p])
                sum += dm[neighborOther[entry]*NUM_FILTERS+n]*w0[p*NUM_FILTERS+n]*pairCutoff[p].x;
        }
        dy[index] = sum;
    }
}

/**
 * g += dy B^T: the gradient reaching the block's input features (the residual path carries g
 * through unchanged).
 */
KERNEL void projectFeaturesBackward(GLOBAL const real* RESTRICT dy, GLOBAL const real* RESTRICT params, GLOBAL real* RESTRICT featureGradient) {
    for (int index = GLOBAL_ID; index < NUM_BEADS*NUM_FEATURES; index += GLOBAL_SIZE) {
        const int i = index/NUM_FEATURES;
        const int f = index-i*NUM_FEATURES;
        real sum = 0;
        for (int n = 0; n < NUM_FILTERS; n++)
            sum += dy[i*NUM_FILTERS+n]*params[OFFSET_B+f*NUM_FILTERS+n];
        featureGradient[index] += sum;
    }
}

/**
 * The force on each bead, -s sum over its pairs of dU/dr dr/dx, gathered in a fixed order and added
 * to the fixed-point force buffer.
 */
KERNEL void applyForces(GLOBAL const int* RESTRICT particles, GLOBAL const int* RESTRICT neighborStart,
        GLOBAL const int* RESTRICT neighborPair, GLOBAL const int* RESTRICT neighborOther, GLOBAL const int* RESTRICT pairActive,
        GLOBAL const real4* RESTRICT pairGeometry, GLOBAL const real* RESTRICT dUdr, real scale, GLOBAL mm_ulong* RESTRICT forceBuffers) {
    for (int i = GLOBAL_ID; i < NUM_BEADS; i += GLOBAL_SIZE) {
        real fx = 0, fy = 0, fz = 0;
        for (int entry = neighborStart[i]; entry < neighborStart[i+1]; entry++) {
            const int p = neighborPair[entry];
            if (!pairActive[p])
                continue;
            const real4 geometry = pairGeometry[p];
            // The displacement points from the lower-numbered bead to the higher one.
            real factor = dUdr[p]/geometry.w;
            if (i > neighborOther[entry])
                factor = -factor;
            fx += factor*geometry.x;
            fy += factor*geometry.y;
            fz += factor*geometry.z;
        }
        const int atom = particles[i];
        ATOMIC_ADD(&forceBuffers[atom], (mm_ulong) realToFixedPoint(scale*fx));
        ATOMIC_ADD(&forceBuffers[atom+PADDED_NUM_ATOMS], (mm_ulong) realToFixedPoint(scale*fy));
        ATOMIC_ADD(&forceBuffers[atom+2*PADDED_NUM_ATOMS], (mm_ulong) realToFixedPoint(scale*fz));
    }
}
