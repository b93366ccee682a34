#include "internal/CGSchNetFilterTable.h"
#include "internal/CGMLMath.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <new>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

CGSchNetFilterFunction::CGSchNetFilterFunction(const CGSchNetWeights& weights) : weights(weights) {
    // The exact filters only: a table of the weights, if any, is not needed here.
    this->weights.filterTable.reset();
}

void CGSchNetFilterFunction::evaluate(int block, double r, double* w0, double* dw0) const {
    if (block < 0 || block >= getNumBlocks())
        throw OpenMMException("CGSchNetFilterFunction: block index out of range");
    const int K = weights.numRBF, NF = weights.numFilters;
    const double alpha = weights.getRBFAlpha();
    vector<double> e(K), de(K), q(NF), dq(NF), s(NF), ds(NF);
    for (int k = 0; k < K; k++)
        CGMLMath::radialBasis(weights.rbfType, r, weights.rbfCenters[k], weights.rbfWidths[k], weights.rbfLowerCutoff, alpha, e[k], de[k]);
    // Forward-mode derivative: q' = e' A1, s' = act'(q) q', w0' = s' A2.
    const CGSchNetWeights::Block& weightsOfBlock = weights.blocks[block];
    const vector<double>& A1 = weightsOfBlock.filterWeights1;
    const vector<double>& A2 = weightsOfBlock.filterWeights2;
    for (int c = 0; c < NF; c++) {
        q[c] = weightsOfBlock.filterBias1[c];
        dq[c] = 0.0;
    }
    for (int k = 0; k < K; k++) {
        const double* row = &A1[(size_t) k*NF];
        for (int c = 0; c < NF; c++) {
            q[c] += e[k]*row[c];
            dq[c] += de[k]*row[c];
        }
    }
    for (int c = 0; c < NF; c++) {
        s[c] = CGMLMath::activation(weights.activation, q[c]);
        ds[c] = CGMLMath::activationDerivative(weights.activation, q[c])*dq[c];
    }
    for (int c = 0; c < NF; c++) {
        w0[c] = weightsOfBlock.filterBias2[c];
        dw0[c] = 0.0;
    }
    for (int a = 0; a < NF; a++) {
        const double* row = &A2[(size_t) a*NF];
        for (int c = 0; c < NF; c++) {
            w0[c] += s[a]*row[c];
            dw0[c] += ds[a]*row[c];
        }
    }
}

CGSchNetFilterTable::CGSchNetFilterTable(const CGSchNetWeights& weights, int points) :
        numBlocks(weights.getNumBlocks()), numFilters(weights.numFilters), numPoints(points), cutoff(weights.cutoff) {
    if (numPoints < 2) {
        stringstream message;
        message << "CGSchNetForce: a filter table needs at least 2 points (got " << numPoints << ")";
        throw OpenMMException(message.str());
    }
    spacing = cutoff/(numPoints-1);
    const int NF = numFilters, numIntervals = numPoints-1;
    CGSchNetFilterFunction filter(weights);
    try {
        coefficients.resize((size_t) numBlocks*numIntervals*4*NF);
    }
    catch (const bad_alloc&) {
        stringstream message;
        message << "CGSchNetForce: a filter table of " << numPoints << " points needs " << (double) numBlocks*numIntervals*4*NF*8/1e9
                << " GB, more than can be allocated; use fewer points";
        throw OpenMMException(message.str());
    }
    vector<double> w(2*NF), dw(2*NF);
    for (int b = 0; b < numBlocks; b++) {
        // Node n lives in slot n%2 of w and dw, so each node is evaluated once.
        filter.evaluate(b, 0.0, &w[0], &dw[0]);
        for (int n = 0; n < numIntervals; n++) {
            double* w0 = &w[(n%2)*NF];
            double* d0 = &dw[(n%2)*NF];
            double* w1 = &w[((n+1)%2)*NF];
            double* d1 = &dw[((n+1)%2)*NF];
            // Nodes as n*cutoff/numIntervals, so that the last one is exactly the cutoff.
            filter.evaluate(b, (n+1)*cutoff/numIntervals, w1, d1);
            double* c = &coefficients[((size_t) b*numIntervals+n)*4*NF];
            for (int f = 0; f < NF; f++) {
                double h0 = spacing*d0[f], h1 = spacing*d1[f];
                c[f] = w0[f];
                c[NF+f] = h0;
                c[2*NF+f] = 3.0*(w1[f]-w0[f])-2.0*h0-h1;
                c[3*NF+f] = 2.0*(w0[f]-w1[f])+h0+h1;
            }
        }
    }
}

void CGSchNetFilterTable::evaluate(int block, double r, double* w0, double* dw0) const {
    if (block < 0 || block >= numBlocks)
        throw OpenMMException("CGSchNetFilterTable: block index out of range");
    const int NF = numFilters, numIntervals = numPoints-1;
    double x = r/spacing;
    int n = (int) floor(x);
    n = max(0, min(n, numIntervals-1));
    double t = x-n;
    const double* c = &coefficients[((size_t) block*numIntervals+n)*4*NF];
    for (int f = 0; f < NF; f++) {
        double c0 = c[f], c1 = c[NF+f], c2 = c[2*NF+f], c3 = c[3*NF+f];
        w0[f] = c0+t*(c1+t*(c2+t*c3));
        dw0[f] = (c1+t*(2.0*c2+3.0*t*c3))/spacing;
    }
}

vector<double> CGSchNetFilterTable::measureError(const CGSchNetWeights& weights, int numPoints) {
    CGSchNetFilterTable table(weights, numPoints);
    CGSchNetFilterFunction filter(weights);
    const int NF = table.getNumFilters(), numIntervals = table.getNumIntervals();
    const double h = table.getSpacing(), cutoff = table.getCutoff();
    const double offsets[] = {0.5-sqrt(3.0)/6.0, 0.25, 0.5, 0.5+sqrt(3.0)/6.0};
    vector<double> exact(NF), exactDeriv(NF), tab(NF), tabDeriv(NF);
    double maxError = 0.0, maxDerivError = 0.0, maxValue = 0.0, maxDeriv = 0.0;
    for (int b = 0; b < table.getNumBlocks(); b++)
        for (int n = 0; n < numIntervals; n++)
            for (double t : offsets) {
                double r = min((n+t)*h, cutoff);
                double fc, dfc;
                CGMLMath::cosineCutoff(r, cutoff, fc, dfc);
                filter.evaluate(b, r, &exact[0], &exactDeriv[0]);
                table.evaluate(b, r, &tab[0], &tabDeriv[0]);
                for (int f = 0; f < NF; f++) {
                    double W = exact[f]*fc, dW = exactDeriv[f]*fc+exact[f]*dfc;
                    double Wt = tab[f]*fc, dWt = tabDeriv[f]*fc+tab[f]*dfc;
                    maxError = max(maxError, fabs(W-Wt));
                    maxDerivError = max(maxDerivError, fabs(dW-dWt));
                    maxValue = max(maxValue, fabs(W));
                    maxDeriv = max(maxDeriv, fabs(dW));
                }
            }
    return {maxError, maxDerivError, maxValue, maxDeriv};
}
