#include "CGSchNetReferenceModel.h"
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

const double LOG2 = 0.69314718055994530942;
const double PI = 3.14159265358979323846;

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

/** The logistic function, without overflow for large |x|. */
double sigmoid(double x) {
    if (x >= 0.0)
        return 1.0/(1.0+exp(-x));
    double e = exp(x);
    return e/(1.0+e);
}

void checkSize(const vector<double>& array, size_t expected, const string& what) {
    if (array.size() != expected) {
        stringstream message;
        message << "CGSchNetForce: " << what << " has " << array.size() << " values, expected " << expected;
        throw OpenMMException(message.str());
    }
}

} // namespace

CGSchNetReferenceModel::CGSchNetReferenceModel(const CGSchNetTopology& topology, const CGSchNetReferenceParameters& parameters) :
        numBeads((int) topology.particles.size()), particles(topology.particles), types(topology.types), candidatePairs(topology.pairs) {
    if (types.size() != particles.size())
        throw OpenMMException("CGSchNetForce: the number of bead types does not match the number of particles");
    for (const pair<int, int>& p : candidatePairs)
        if (p.first < 0 || p.second < 0 || p.first >= numBeads || p.second >= numBeads || p.first == p.second)
            throw OpenMMException("CGSchNetForce: the pair list refers to an invalid bead");
    checkShapes(parameters);
    for (int type : types)
        if (type < 0 || type >= parameters.numTypes)
            throw OpenMMException("CGSchNetForce: a bead type is out of range");
    params = parameters;
    layerWidths.clear();
    layerWidths.push_back(params.numFeatures);
    for (const vector<double>& bias : params.outputBiases)
        layerWidths.push_back((int) bias.size());
}

void CGSchNetReferenceModel::checkShapes(const CGSchNetReferenceParameters& p) const {
    if (p.numTypes <= 0 || p.numFeatures <= 0 || p.numFilters <= 0 || p.numRBF <= 0)
        throw OpenMMException("CGSchNetForce: numTypes, numFeatures, numFilters and numRBF must be positive");
    if (!(p.cutoff > 0.0))
        throw OpenMMException("CGSchNetForce: the cutoff must be positive");
    if (p.rbfType == CGSchNetForce::ExpNormal && !(p.rbfLowerCutoff >= 0.0 && p.rbfLowerCutoff < p.cutoff))
        throw OpenMMException("CGSchNetForce: the RBF lower cutoff must satisfy 0 <= lower cutoff < cutoff");
    const size_t F = p.numFeatures, NF = p.numFilters, K = p.numRBF;
    checkSize(p.rbfCenters, K, "the list of RBF centers");
    checkSize(p.rbfWidths, K, "the list of RBF widths");
    checkSize(p.embedding, p.numTypes*F, "the embedding");
    for (const CGSchNetReferenceParameters::Block& block : p.blocks) {
        checkSize(block.filterWeights1, K*NF, "FilterWeights1");
        checkSize(block.filterBias1, NF, "FilterBias1");
        checkSize(block.filterWeights2, NF*NF, "FilterWeights2");
        checkSize(block.filterBias2, NF, "FilterBias2");
        checkSize(block.messageWeights, F*NF, "MessageWeights");
        checkSize(block.updateWeights1, NF*F, "UpdateWeights1");
        checkSize(block.updateBias1, F, "UpdateBias1");
        checkSize(block.updateWeights2, F*F, "UpdateWeights2");
        checkSize(block.updateBias2, F, "UpdateBias2");
    }
    if (p.outputWeights.empty() || p.outputWeights.size() != p.outputBiases.size())
        throw OpenMMException("CGSchNetForce: the output network must have at least one layer");
    size_t inputs = F;
    for (size_t l = 0; l < p.outputWeights.size(); l++) {
        size_t outputs = p.outputBiases[l].size();
        if (outputs == 0)
            throw OpenMMException("CGSchNetForce: an output layer has no outputs");
        checkSize(p.outputWeights[l], inputs*outputs, "the weights of an output layer");
        inputs = outputs;
    }
    if (inputs != 1)
        throw OpenMMException("CGSchNetForce: the last output layer must have exactly one output");
    if (p.filterTable != NULL && (p.filterTable->getNumBlocks() != (int) p.blocks.size() ||
            p.filterTable->getNumFilters() != p.numFilters || p.filterTable->getCutoff() != p.cutoff))
        throw OpenMMException("CGSchNetForce: the filter table does not match the weights");
}

void CGSchNetReferenceModel::setParameters(const CGSchNetReferenceParameters& parameters) {
    checkShapes(parameters);
    if (parameters.numTypes != params.numTypes || parameters.numFeatures != params.numFeatures ||
            parameters.numFilters != params.numFilters || parameters.numRBF != params.numRBF ||
            parameters.blocks.size() != params.blocks.size() || parameters.outputBiases.size() != params.outputBiases.size())
        throw OpenMMException("CGSchNetForce: the shapes of the weights cannot change after a Context is created");
    for (size_t l = 0; l < parameters.outputBiases.size(); l++)
        if ((int) parameters.outputBiases[l].size() != layerWidths[l+1])
            throw OpenMMException("CGSchNetForce: the shapes of the weights cannot change after a Context is created");
    params = parameters;
}

void CGSchNetReferenceModel::checkPeriodicBox(const Vec3* boxVectors) const {
    double width = min(boxVectors[0][0], min(boxVectors[1][1], boxVectors[2][2]));
    if (params.cutoff > 0.5*width) {
        stringstream message;
        message << "CGSchNetForce: the cutoff (" << params.cutoff << " nm) is larger than half the periodic box width (" << width << " nm)";
        throw OpenMMException(message.str());
    }
}

void CGSchNetReferenceModel::activate(const double* x, double* result, int n) const {
    switch (params.activation) {
        case CGSchNetForce::ShiftedSoftplus:
            // softplus(x) - ln 2, written so that neither branch overflows.
            for (int i = 0; i < n; i++)
                result[i] = max(x[i], 0.0) + log1p(exp(-fabs(x[i]))) - LOG2;
            break;
        case CGSchNetForce::Tanh:
            for (int i = 0; i < n; i++)
                result[i] = tanh(x[i]);
            break;
        case CGSchNetForce::SiLU:
            for (int i = 0; i < n; i++)
                result[i] = x[i]*sigmoid(x[i]);
            break;
        default:
            throw OpenMMException("CGSchNetForce: unknown activation");
    }
}

void CGSchNetReferenceModel::activationDerivative(const double* x, double* result, int n) const {
    switch (params.activation) {
        case CGSchNetForce::ShiftedSoftplus:
            for (int i = 0; i < n; i++)
                result[i] = sigmoid(x[i]);
            break;
        case CGSchNetForce::Tanh:
            for (int i = 0; i < n; i++) {
                double t = tanh(x[i]);
                result[i] = 1.0-t*t;
            }
            break;
        case CGSchNetForce::SiLU:
            for (int i = 0; i < n; i++) {
                double s = sigmoid(x[i]);
                result[i] = s+x[i]*s*(1.0-s);
            }
            break;
        default:
            throw OpenMMException("CGSchNetForce: unknown activation");
    }
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
        if (!(isfinite(position[0]) && isfinite(position[1]) && isfinite(position[2]))) {
            const double nan = numeric_limits<double>::quiet_NaN();
            outputSum = nan;
            if (includeGradient)
                gradient.assign(numBeads, Vec3(nan, nan, nan));
            return nan;
        }
    const int N = numBeads, F = params.numFeatures, NF = params.numFilters, K = params.numRBF;
    const int numBlocks = (int) params.blocks.size();
    const int numLayers = (int) params.outputWeights.size();
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
    const double alpha = 5.0/(cutoff-params.rbfLowerCutoff);
    for (int p = 0; p < P; p++) {
        double r = pairR[p];
        pairCutoff[p] = 0.5*(cos(PI*r/cutoff)+1.0);
        pairCutoffDeriv[p] = -0.5*(PI/cutoff)*sin(PI*r/cutoff);
        if (table != NULL)
            continue;  // the tabulated filters need no radial basis
        for (int k = 0; k < K; k++) {
            double mu = params.rbfCenters[k], gamma = params.rbfWidths[k];
            if (params.rbfType == CGSchNetForce::Gaussian) {
                double d = r-mu;
                double e = exp(-gamma*d*d);
                pairRBF[p*K+k] = e;
                pairRBFDeriv[p*K+k] = -2.0*gamma*d*e;
            }
            else {
                double v = exp(-alpha*(r-params.rbfLowerCutoff));
                double d = v-mu;
                double e = exp(-gamma*d*d);
                pairRBF[p*K+k] = e;
                pairRBFDeriv[p*K+k] = -2.0*gamma*d*e*(-alpha*v);
            }
        }
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
        const CGSchNetReferenceParameters::Block& block = params.blocks[b];
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
            rowTimesMatrix(&layerInput[l][i*in], &params.outputWeights[l][0], in, out, &layerPre[l][i*out]);
            for (int o = 0; o < out; o++)
                layerPre[l][i*out+o] += params.outputBiases[l][o];
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
            rowTimesTranspose(&dout[i*out], &params.outputWeights[l][0], in, out, &din[i*in]);
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
        const CGSchNetReferenceParameters::Block& block = params.blocks[b];
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
