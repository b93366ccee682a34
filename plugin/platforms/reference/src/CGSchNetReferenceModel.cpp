#include "CGSchNetReferenceModel.h"
#include "internal/CGMLMath.h"
#include "internal/CGSchNetFilterTable.h"
#include "openmm/OpenMMException.h"
#include "openmm/reference/ReferenceForce.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

/** result = x M, for a row vector x of length in and a row-major in x out matrix M. */
void rowTimesMatrix(const double* x, const double* matrix, int in, int out, double* result) {
    for (int o = 0; o < out; o++)
        result[o] = 0.0;
    for (int i = 0; i < in; i++) {
        const double xi = x[i];
        const double* row = matrix+i*out;
        for (int o = 0; o < out; o++)
            result[o] += xi*row[o];
    }
}

/** result = d M^T, for a row vector d of length out and a row-major in x out matrix M. */
void rowTimesTranspose(const double* d, const double* matrix, int in, int out, double* result) {
    for (int i = 0; i < in; i++) {
        const double* row = matrix+i*out;
        double sum = 0.0;
        for (int o = 0; o < out; o++)
            sum += d[o]*row[o];
        result[i] = sum;
    }
}

} // namespace

CGSchNetReferenceModel::CGSchNetReferenceModel(const CGSchNetTopology& topology, const CGSchNetWeights& weights) :
        numBeads((int) topology.particles.size()), particles(topology.particles), types(topology.types), candidatePairs(topology.pairs) {
    if (types.size() != particles.size())
        throw OpenMMException("CGSchNetForce: the number of bead types does not match the number of particles");
    for (const pair<int, int>& p : candidatePairs)
        if (p.first < 0 || p.second < 0 || p.first >= numBeads || p.second >= numBeads || p.first == p.second)
            throw OpenMMException("CGSchNetForce: the pair list refers to an invalid bead");
    weights.validate();
    for (int type : types)
        if (type < 0 || type >= weights.numTypes)
            throw OpenMMException("CGSchNetForce: a bead type is out of range");
    params = weights;
    layerWidths.clear();
    layerWidths.push_back(params.numFeatures);
    for (const CGMLDenseLayer& layer : params.outputLayers)
        layerWidths.push_back(layer.outputs);
}

void CGSchNetReferenceModel::setParameters(const CGSchNetWeights& weights) {
    weights.validate();
    if (!weights.hasSameShape(params))
        throw OpenMMException("CGSchNetForce: the shapes of the weights cannot change after a Context is created");
    params = weights;
}

void CGSchNetReferenceModel::checkPeriodicBox(const Vec3* boxVectors) const {
    CGMLMath::checkCutoffFitsBox(params.cutoff, boxVectors[0], boxVectors[1], boxVectors[2]);
}

void CGSchNetReferenceModel::activate(const double* x, double* result, int n) const {
    for (int i = 0; i < n; i++)
        result[i] = CGMLMath::activation(params.activation, x[i]);
}

void CGSchNetReferenceModel::activationDerivative(const double* x, double* result, int n) const {
    for (int i = 0; i < n; i++)
        result[i] = CGMLMath::activationDerivative(params.activation, x[i]);
}

double CGSchNetReferenceModel::compute(const vector<Vec3>& positions, const Vec3* boxVectors, double scale,
                                       bool includeGradient, double& outputSum, vector<Vec3>& gradient) {
    if ((int) positions.size() != numBeads)
        throw OpenMMException("CGSchNetForce: wrong number of bead positions");
    if (boxVectors != NULL)
        checkPeriodicBox(boxVectors);
    // A bead at a non-finite position would otherwise drop out of every pair (a NaN or infinite
    // distance is never inside the cutoff) and leave a finite energy.  The function is undefined
    // there: report NaN, as OpenMM's own forces do, so that integrators and reporters see it.
    for (const Vec3& position : positions)
        if (!CGMLMath::isFinite(position)) {
            const double nan = numeric_limits<double>::quiet_NaN();
            outputSum = nan;
            if (includeGradient)
                gradient.assign(numBeads, Vec3(nan, nan, nan));
            return nan;
        }
    const int N = numBeads, F = params.numFeatures, NF = params.numFilters, K = params.numRBF;
    const int numBlocks = (int) params.blocks.size();
    const int numLayers = (int) params.outputLayers.size();
    const double cutoff = params.cutoff;
    const CGSchNetFilterTable* table = params.filterTable.get();

    // Find the pairs inside the cutoff and evaluate everything that depends on r alone.

    pairI.clear();
    pairJ.clear();
    pairR.clear();
    pairDelta.clear();
    for (const pair<int, int>& p : candidatePairs) {
        int i = p.first, j = p.second;
        Vec3 delta = (boxVectors == NULL ? positions[j]-positions[i] : ReferenceForce::getDeltaRPeriodic(positions[i], positions[j], boxVectors));
        double r = sqrt(delta.dot(delta));
        if (!(r < cutoff))
            continue;
        if (r == 0.0) {
            stringstream message;
            message << "CGSchNetForce: particles " << particles[i] << " and " << particles[j] <<
                    " are at the same position, where the force between them is undefined";
            throw OpenMMException(message.str());
        }
        pairI.push_back(i);
        pairJ.push_back(j);
        pairR.push_back(r);
        pairDelta.push_back(delta);
    }
    const int P = (int) pairI.size();
    pairCutoff.resize(P);
    pairCutoffDeriv.resize(P);
    pairRBF.resize(P*K);
    pairRBFDeriv.resize(P*K);
    const double alpha = params.getRBFAlpha();
    for (int p = 0; p < P; p++) {
        double r = pairR[p];
        CGMLMath::cosineCutoff(r, cutoff, pairCutoff[p], pairCutoffDeriv[p]);
        if (table != NULL)
            continue;  // the tabulated filters need no radial basis
        for (int k = 0; k < K; k++)
            CGMLMath::radialBasis(params.rbfType, r, params.rbfCenters[k], params.rbfWidths[k], params.rbfLowerCutoff, alpha,
                                  pairRBF[p*K+k], pairRBFDeriv[p*K+k]);
    }

    // Forward pass, keeping what the backward pass needs: per block the filter pre-activation q
    // (or, with tabulated filters, dw0/dr) and the unscaled filter w0 of each pair, y = h B and the
    // update pre-activation z of each bead.

    vector<double> h(N*F);
    for (int i = 0; i < N; i++)
        for (int f = 0; f < F; f++)
            h[i*F+f] = params.embedding[types[i]*F+f];
    blockQ.resize(numBlocks);
    blockW0.resize(numBlocks);
    blockY.resize(numBlocks);
    blockZ.resize(numBlocks);
    vector<double> act(max(NF, F)), message(N*NF), filter(NF);
    for (int b = 0; b < numBlocks; b++) {
        const CGSchNetWeights::Block& block = params.blocks[b];
        vector<double>& q = blockQ[b];
        vector<double>& w0 = blockW0[b];
        vector<double>& y = blockY[b];
        vector<double>& z = blockZ[b];
        q.resize(P*NF);
        w0.resize(P*NF);
        y.resize(N*NF);
        z.resize(N*F);
        for (int p = 0; p < P; p++) {
            if (table != NULL) {
                // q holds dw0/dr here.
                table->evaluate(b, pairR[p], &w0[p*NF], &q[p*NF]);
                continue;
            }
            rowTimesMatrix(&pairRBF[p*K], &block.filterWeights1[0], K, NF, &q[p*NF]);
            for (int c = 0; c < NF; c++)
                q[p*NF+c] += block.filterBias1[c];
            activate(&q[p*NF], &act[0], NF);
            rowTimesMatrix(&act[0], &block.filterWeights2[0], NF, NF, &w0[p*NF]);
            for (int c = 0; c < NF; c++)
                w0[p*NF+c] += block.filterBias2[c];
        }
        for (int i = 0; i < N; i++)
            rowTimesMatrix(&h[i*F], &block.messageWeights[0], F, NF, &y[i*NF]);
        fill(message.begin(), message.end(), 0.0);
        for (int p = 0; p < P; p++) {
            int i = pairI[p], j = pairJ[p];
            for (int c = 0; c < NF; c++) {
                double w = w0[p*NF+c]*pairCutoff[p];
                message[i*NF+c] += y[j*NF+c]*w;
                message[j*NF+c] += y[i*NF+c]*w;
            }
        }
        vector<double> update(F);
        for (int i = 0; i < N; i++) {
            rowTimesMatrix(&message[i*NF], &block.updateWeights1[0], NF, F, &z[i*F]);
            for (int f = 0; f < F; f++)
                z[i*F+f] += block.updateBias1[f];
            activate(&z[i*F], &act[0], F);
            rowTimesMatrix(&act[0], &block.updateWeights2[0], F, F, &update[0]);
            for (int f = 0; f < F; f++)
                h[i*F+f] += update[f]+block.updateBias2[f];
        }
    }

    // Output network.  layerInput[l] is the input of layer l, layerPre[l] its output before the
    // activation (the last one is u_i).

    layerInput.resize(numLayers);
    layerPre.resize(numLayers);
    layerInput[0] = h;
    for (int l = 0; l < numLayers; l++) {
        int in = layerWidths[l], out = layerWidths[l+1];
        layerPre[l].resize(N*out);
        for (int i = 0; i < N; i++) {
            rowTimesMatrix(&layerInput[l][i*in], &params.outputLayers[l].weights[0], in, out, &layerPre[l][i*out]);
            for (int o = 0; o < out; o++)
                layerPre[l][i*out+o] += params.outputLayers[l].bias[o];
        }
        if (l+1 < numLayers) {
            layerInput[l+1].resize(N*out);
            for (int i = 0; i < N; i++)
                activate(&layerPre[l][i*out], &layerInput[l+1][i*out], out);
        }
    }
    outputSum = 0.0;
    for (int i = 0; i < N; i++)
        outputSum += layerPre[numLayers-1][i];
    const double energy = scale*outputSum;
    if (!includeGradient)
        return energy;

    // Backward pass through the output network: dout starts as dU/du_i = s and ends as g = dU/dh.

    vector<double> dout(N, scale), din, deriv;
    for (int l = numLayers-1; l >= 0; l--) {
        int in = layerWidths[l], out = layerWidths[l+1];
        din.resize(N*in);
        for (int i = 0; i < N; i++)
            rowTimesTranspose(&dout[i*out], &params.outputLayers[l].weights[0], in, out, &din[i*in]);
        if (l > 0) {
            deriv.resize(N*in);
            for (int i = 0; i < N; i++)
                activationDerivative(&layerPre[l-1][i*in], &deriv[i*in], in);
            for (int n = 0; n < N*in; n++)
                din[n] *= deriv[n];
        }
        dout.swap(din);
    }
    vector<double>& g = dout;

    // Backward pass through the blocks, in reverse order, accumulating dU/dr of each pair.

    pairEnergyDeriv.assign(P, 0.0);
    vector<double> dz(F), dact(max(F, NF)), dm(N*NF), dy(N*NF), dW(NF), dw0(NF), dq(NF), de(K), gB(F);
    for (int b = numBlocks-1; b >= 0; b--) {
        const CGSchNetWeights::Block& block = params.blocks[b];
        const vector<double>& q = blockQ[b];
        const vector<double>& w0 = blockW0[b];
        const vector<double>& y = blockY[b];
        const vector<double>& z = blockZ[b];
        for (int i = 0; i < N; i++) {
            rowTimesTranspose(&g[i*F], &block.updateWeights2[0], F, F, &dz[0]);
            activationDerivative(&z[i*F], &dact[0], F);
            for (int f = 0; f < F; f++)
                dz[f] *= dact[f];
            rowTimesTranspose(&dz[0], &block.updateWeights1[0], NF, F, &dm[i*NF]);
        }
        fill(dy.begin(), dy.end(), 0.0);
        for (int p = 0; p < P; p++) {
            int i = pairI[p], j = pairJ[p];
            double fc = pairCutoff[p];
            double dfc = 0.0;
            for (int c = 0; c < NF; c++) {
                double w = w0[p*NF+c]*fc;
                dy[j*NF+c] += dm[i*NF+c]*w;
                dy[i*NF+c] += dm[j*NF+c]*w;
                double dWc = dm[i*NF+c]*y[j*NF+c] + dm[j*NF+c]*y[i*NF+c];
                dw0[c] = dWc*fc;
                dfc += dWc*w0[p*NF+c];
            }
            if (table != NULL) {
                // dU/dr through w0 is dU/dw0 . dw0/dr, the derivative the table provides.
                double dr = dfc*pairCutoffDeriv[p];
                for (int c = 0; c < NF; c++)
                    dr += dw0[c]*q[p*NF+c];
                pairEnergyDeriv[p] += dr;
                continue;
            }
            rowTimesTranspose(&dw0[0], &block.filterWeights2[0], NF, NF, &dq[0]);
            activationDerivative(&q[p*NF], &dact[0], NF);
            for (int c = 0; c < NF; c++)
                dq[c] *= dact[c];
            rowTimesTranspose(&dq[0], &block.filterWeights1[0], K, NF, &de[0]);
            double dr = dfc*pairCutoffDeriv[p];
            for (int k = 0; k < K; k++)
                dr += de[k]*pairRBFDeriv[p*K+k];
            pairEnergyDeriv[p] += dr;
        }
        // Residual connection: the gradient of h before the block is g plus the path through y = h B.
        for (int i = 0; i < N; i++) {
            rowTimesTranspose(&dy[i*NF], &block.messageWeights[0], F, NF, &gB[0]);
            for (int f = 0; f < F; f++)
                g[i*F+f] += gB[f];
        }
    }

    // Chain rule through r_ij = |x_j - x_i|.

    gradient.assign(N, Vec3());
    for (int p = 0; p < P; p++) {
        Vec3 dUdxj = pairDelta[p]*(pairEnergyDeriv[p]/pairR[p]);
        gradient[pairJ[p]] += dUdxj;
        gradient[pairI[p]] -= dUdxj;
    }
    return energy;
}
