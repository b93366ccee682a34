// The Common-Compute evaluation of a DiscriminatorBiasForce, shared by CUDA, OpenCL and HIP.
//
// One work group per molecule (groups loop over molecules with a stride of the grid): the threads
// compute the molecule's standardised features, run every network's layers with one thread per
// output, run the reverse pass back to d(logit)/dz, and finally recompute each feature's geometry
// to add its force to OpenMM's fixed-point buffer.  Sums inside a layer run over inputs in a fixed
// order, so repeated evaluations give identical results.
//
// Compile-time constants set by the host:
//   WORK_GROUP_SIZE, NUM_MOLECULES, MOLECULE_SIZE, NUM_DEFINITIONS (feature definitions: distances,
//   angles, dihedrals), NUM_FEATURES, NUM_NETWORKS, MAX_WIDTH (the widest layer, or NUM_FEATURES),
//   MAX_TOTAL_WIDTH (the most outputs of all layers of one network), PADDED_NUM_ATOMS,
//   USE_PERIODIC.  k_B T (kJ/mol) is an argument, so that a new temperature needs no recompilation.
//
// params holds, in order: the means, the 1/std of the features, then every network's layers (each
// weights inputs x outputs row-major, then bias).  layout holds per network: activation (0 shifted
// softplus, 1 tanh, 2 silu), number of layers, then per layer: inputs, outputs, offset of the
// weights in params, offset of the bias.  clamps holds one clamp per network (0: none).
// definitions holds four bead indices per definition (-1 where unused): a distance (a, b, -1, -1),
// an angle (a, b, c, -1) or a dihedral (a, b, c, d); feature index featureIndex[d].

#define ANGLE_DELTA ((real) 1e-24)
#define DIHEDRAL_EPS2 ((real) 1e-6)
#define DIHEDRAL_DELTA ((real) 1e-30)

DEVICE real biasActivation(int kind, real x) {
    if (kind == 0)
        return fmax(x, (real) 0)+LOG(1+EXP(-fabs(x)))-(real) 0.69314718055994530942;
    if (kind == 1)
        return tanh(x);
    return x/(1+EXP(-x));
}

DEVICE real biasActivationDerivative(int kind, real x) {
    if (kind == 0)
        return 1/(1+EXP(-x));
    if (kind == 1) {
        real t = tanh(x);
        return 1-t*t;
    }
    real s = 1/(1+EXP(-x));
    return s+x*s*(1-s);
}

DEVICE real3 biasDelta(real4 from, real4 to, real4 periodicBoxSize, real4 invPeriodicBoxSize,
                       real4 periodicBoxVecX, real4 periodicBoxVecY, real4 periodicBoxVecZ) {
    real3 d = make_real3(to.x-from.x, to.y-from.y, to.z-from.z);
#ifdef USE_PERIODIC
    real scale3 = floor(d.z*invPeriodicBoxSize.z+(real) 0.5);
    d.x -= scale3*periodicBoxVecZ.x;
    d.y -= scale3*periodicBoxVecZ.y;
    d.z -= scale3*periodicBoxVecZ.z;
    real scale2 = floor(d.y*invPeriodicBoxSize.y+(real) 0.5);
    d.x -= scale2*periodicBoxVecY.x;
    d.y -= scale2*periodicBoxVecY.y;
    real scale1 = floor(d.x*invPeriodicBoxSize.x+(real) 0.5);
    d.x -= scale1*periodicBoxVecX.x;
#endif
    return d;
}

/**
 * The value(s) of feature definition `def` and, when forces are wanted, the gradient of each value
 * with respect to its (up to) four beads.  Returns the number of values (1 or 2).
 */
DEVICE int biasFeature(int4 beads, GLOBAL const real4* RESTRICT posq, int base, real* value,
                       real3* gradient, real4 periodicBoxSize, real4 invPeriodicBoxSize,
                       real4 periodicBoxVecX, real4 periodicBoxVecY, real4 periodicBoxVecZ) {
    real4 pa = posq[base+beads.x], pb = posq[base+beads.y];
    if (beads.z < 0) {
        real3 d = biasDelta(pa, pb, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
        real r = SQRT(dot(d, d));
        value[0] = r;
        real3 g = (r > 0 ? d/r : make_real3(0));
        gradient[0] = -g;
        gradient[1] = g;
        return 1;
    }
    real4 pc = posq[base+beads.z];
    if (beads.w < 0) {
        real3 u = biasDelta(pb, pa, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
        real3 v = biasDelta(pb, pc, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
        real uu = dot(u, u), vv = dot(v, v), uv = dot(u, v);
        real denominator = SQRT(uu*vv+ANGLE_DELTA);
        value[0] = uv/denominator;
        real cube = denominator*denominator*denominator;
        real3 du = v/denominator-u*(uv*vv/cube);
        real3 dv = u/denominator-v*(uv*uu/cube);
        gradient[0] = du;
        gradient[1] = -du-dv;
        gradient[2] = dv;
        return 1;
    }
    real4 pd = posq[base+beads.w];
    real3 b1 = biasDelta(pa, pb, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
    real3 b2 = biasDelta(pb, pc, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
    real3 b3 = biasDelta(pc, pd, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX, periodicBoxVecY, periodicBoxVecZ);
    real n1 = dot(b1, b1), n2 = dot(b2, b2), n3 = dot(b3, b3);
    real b12 = dot(b1, b2), b23 = dot(b2, b3), b13 = dot(b1, b3);
    real length2 = SQRT(n2);
    real3 c12 = cross(b1, b2), c23 = cross(b2, b3), c31 = cross(b3, b1);
    real X = b12*b23-b13*n2;
    real T = dot(b1, c23);
    real Y = length2*T;
    real S = DIHEDRAL_EPS2*(n1*n2*n2*n3)+DIHEDRAL_DELTA;
    real N = SQRT(X*X+Y*Y+S);
    value[0] = X/N;
    value[1] = Y/N;
    real3 dX[3], dY[3], dS[3];
    dX[0] = b2*b23-b3*n2;
    dX[1] = b1*b23+b3*b12-b2*(2*b13);
    dX[2] = b2*b12-b1*n2;
    real3 unit2 = (length2 > 0 ? b2/length2 : make_real3(0));
    dY[0] = c23*length2;
    dY[1] = c31*length2+unit2*T;
    dY[2] = c12*length2;
    dS[0] = b1*(2*DIHEDRAL_EPS2*n2*n2*n3);
    dS[1] = b2*(4*DIHEDRAL_EPS2*n1*n2*n3);
    dS[2] = b3*(2*DIHEDRAL_EPS2*n1*n2*n2);
    for (int component = 0; component < 2; component++) {
        real v = (component == 0 ? X : Y);
        real3 db[3];
        for (int k = 0; k < 3; k++) {
            real3 dN = (dX[k]*X+dY[k]*Y+dS[k]*(real) 0.5)/N;
            db[k] = (component == 0 ? dX[k] : dY[k])/N-dN*(v/(N*N));
        }
        gradient[4*component] = -db[0];
        gradient[4*component+1] = db[0]-db[1];
        gradient[4*component+2] = db[1]-db[2];
        gradient[4*component+3] = db[2];
    }
    return 2;
}

KERNEL void computeDiscriminatorBias(GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT molecules,
        GLOBAL const int4* RESTRICT definitions, GLOBAL const int* RESTRICT featureIndex, GLOBAL const real* RESTRICT params,
        GLOBAL const int* RESTRICT layout, GLOBAL const real* RESTRICT clamps, GLOBAL mm_ulong* RESTRICT forceBuffers,
        GLOBAL mixed* RESTRICT energyBuffer, GLOBAL mixed* RESTRICT energyParamDerivs, int numDerivs, int derivIndex,
        real scale, real kT, int includeForces, real4 periodicBoxSize, real4 invPeriodicBoxSize, real4 periodicBoxVecX,
        real4 periodicBoxVecY, real4 periodicBoxVecZ) {
    LOCAL real z[NUM_FEATURES];
    LOCAL real dz[NUM_FEATURES];
    LOCAL real pre[MAX_TOTAL_WIDTH];
    LOCAL real out[MAX_TOTAL_WIDTH];
    LOCAL real gradA[MAX_WIDTH];
    LOCAL real gradB[MAX_WIDTH];
    LOCAL int moleculeParticles[MOLECULE_SIZE];
    mixed logitSum = 0;
    for (int molecule = GROUP_ID; molecule < NUM_MOLECULES; molecule += NUM_GROUPS) {
        for (int i = LOCAL_ID; i < MOLECULE_SIZE; i += LOCAL_SIZE)
            moleculeParticles[i] = molecules[molecule*MOLECULE_SIZE+i];
        for (int i = LOCAL_ID; i < NUM_FEATURES; i += LOCAL_SIZE)
            dz[i] = 0;
        SYNC_THREADS;
        // the features, standardised
        for (int d = LOCAL_ID; d < NUM_DEFINITIONS; d += LOCAL_SIZE) {
            int4 tuple = definitions[d];
            int4 beads = make_int4(moleculeParticles[tuple.x], moleculeParticles[tuple.y],
                                   tuple.z < 0 ? -1 : moleculeParticles[tuple.z], tuple.w < 0 ? -1 : moleculeParticles[tuple.w]);
            real value[2];
            real3 gradient[8];
            int count = biasFeature(beads, posq, 0, value, gradient, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX,
                                    periodicBoxVecY, periodicBoxVecZ);
            int f = featureIndex[d];
            for (int c = 0; c < count; c++)
                z[f+c] = (value[c]-params[f+c])*params[NUM_FEATURES+f+c];
        }
        SYNC_THREADS;
        int entry = 0;
        for (int network = 0; network < NUM_NETWORKS; network++) {
            int activation = layout[entry], numLayers = layout[entry+1];
            int layers = entry+2;
            entry = layers+4*numLayers;
            // forward: pre-activations of every layer, and the activations of all but the last
            int offset = 0, previous = -1;
            for (int l = 0; l < numLayers; l++) {
                int inputs = layout[layers+4*l], outputs = layout[layers+4*l+1];
                GLOBAL const real* weights = params+layout[layers+4*l+2];
                GLOBAL const real* bias = params+layout[layers+4*l+3];
                for (int o = LOCAL_ID; o < outputs; o += LOCAL_SIZE) {
                    real sum = bias[o];
                    for (int i = 0; i < inputs; i++)
                        sum += (previous < 0 ? z[i] : out[previous+i])*weights[i*outputs+o];
                    pre[offset+o] = sum;
                    if (l < numLayers-1)
                        out[offset+o] = biasActivation(activation, sum);
                }
                SYNC_THREADS;
                previous = offset;
                offset += outputs;
            }
            // the clamped logit and d(clamped)/d(logit)
            real clamp = clamps[network];
            real logit = pre[offset-1];
            real slope = 1;
            if (clamp > 0) {
                real t = tanh(logit/clamp);
                logit = clamp*t;
                slope = 1-t*t;
            }
            if (LOCAL_ID == 0)
                logitSum += logit;
            // reverse pass: gradA holds d(logit)/d(outputs of layer l)
            if (LOCAL_ID == 0)
                gradA[0] = slope;
            SYNC_THREADS;
            int end = offset;
            for (int l = numLayers-1; l >= 0; l--) {
                int inputs = layout[layers+4*l], outputs = layout[layers+4*l+1];
                GLOBAL const real* weights = params+layout[layers+4*l+2];
                int start = end-outputs;
                if (l < numLayers-1) {
                    for (int o = LOCAL_ID; o < outputs; o += LOCAL_SIZE)
                        gradA[o] *= biasActivationDerivative(activation, pre[start+o]);
                    SYNC_THREADS;
                }
                for (int i = LOCAL_ID; i < inputs; i += LOCAL_SIZE) {
                    real sum = 0;
                    for (int o = 0; o < outputs; o++)
                        sum += weights[i*outputs+o]*gradA[o];
                    if (l == 0)
                        dz[i] += sum;
                    else
                        gradB[i] = sum;
                }
                SYNC_THREADS;
                for (int i = LOCAL_ID; i < inputs && l > 0; i += LOCAL_SIZE)
                    gradA[i] = gradB[i];
                SYNC_THREADS;
                end = start;
            }
        }
        // forces: F = scale kT sum_f dz_f / std_f ds_f/dx
        if (includeForces) {
            for (int d = LOCAL_ID; d < NUM_DEFINITIONS; d += LOCAL_SIZE) {
                int4 tuple = definitions[d];
                int beadList[4] = {moleculeParticles[tuple.x], moleculeParticles[tuple.y],
                                   tuple.z < 0 ? -1 : moleculeParticles[tuple.z], tuple.w < 0 ? -1 : moleculeParticles[tuple.w]};
                int4 beads = make_int4(beadList[0], beadList[1], beadList[2], beadList[3]);
                real value[2];
                real3 gradient[8];
                int count = biasFeature(beads, posq, 0, value, gradient, periodicBoxSize, invPeriodicBoxSize, periodicBoxVecX,
                                        periodicBoxVecY, periodicBoxVecZ);
                int f = featureIndex[d];
                int numBeads = (tuple.z < 0 ? 2 : tuple.w < 0 ? 3 : 4);
                for (int c = 0; c < count; c++) {
                    real weight = scale*kT*dz[f+c]*params[NUM_FEATURES+f+c];
                    if (!isfinite(weight))
                        continue;   // a non-finite position: the energy is NaN, no force is added
                    for (int k = 0; k < numBeads; k++) {
                        real3 force = gradient[4*c+k]*weight;
                        int atom = beadList[k];
                        ATOMIC_ADD(&forceBuffers[atom], (mm_ulong) realToFixedPoint(force.x));
                        ATOMIC_ADD(&forceBuffers[atom+PADDED_NUM_ATOMS], (mm_ulong) realToFixedPoint(force.y));
                        ATOMIC_ADD(&forceBuffers[atom+2*PADDED_NUM_ATOMS], (mm_ulong) realToFixedPoint(force.z));
                    }
                }
            }
        }
        SYNC_THREADS;
    }
    energyBuffer[GLOBAL_ID] -= scale*kT*logitSum;
    energyParamDerivs[GLOBAL_ID*numDerivs+derivIndex] -= kT*logitSum;
}
