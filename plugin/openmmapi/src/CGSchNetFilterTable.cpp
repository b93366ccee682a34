#include "internal/CGSchNetFilterTable.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <new>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

const double LOG2 = 0.69314718055994530942;
const double PI = 3.14159265358979323846;

double sigmoid(double x) {
    if (x >= 0.0)
        return 1.0/(1.0+exp(-x));
    double e = exp(x);
    return e/(1.0+e);
}

/** The activation and its derivative at x. */
void activate(CGSchNetForce::Activation kind, double x, double& value, double& derivative) {
    switch (kind) {
        case CGSchNetForce::ShiftedSoftplus:
            value = max(x, 0.0) + log1p(exp(-fabs(x))) - LOG2;
            derivative = sigmoid(x);
            break;
        case CGSchNetForce::Tanh:
            value = tanh(x);
            derivative = 1.0-value*value;
            break;
        case CGSchNetForce::SiLU: {
            double s = sigmoid(x);
            value = x*s;
            derivative = s+x*s*(1.0-s);
            break;
        }
        default:
            throw OpenMMException("CGSchNetForce: unknown activation");
    }
}

void cutoffFunction(double r, double cutoff, double& fc, double& dfc) {
    if (r >= cutoff) {
        fc = dfc = 0.0;
        return;
    }
    fc = 0.5*(cos(PI*r/cutoff)+1.0);
    dfc = -0.5*(PI/cutoff)*sin(PI*r/cutoff);
}

} // namespace

CGSchNetFilterFunction::CGSchNetFilterFunction(const CGSchNetForce& force) :
        numBlocks(force.getNumInteractionBlocks()), numFilters(force.getNumFilters()), numRBF(force.getNumRBF()),
        cutoff(force.getCutoff()), lowerCutoff(force.getRBFLowerCutoff()), activation(force.getActivation()),
        rbfType(force.getRBFType()), centers(force.getRBFCenters()), widths(force.getRBFWidths()) {
    alpha = 5.0/(cutoff-lowerCutoff);
    for (int b = 0; b < numBlocks; b++) {
        weights1.push_back(force.getInteractionBlockArray(b, CGSchNetForce::FilterWeights1));
        bias1.push_back(force.getInteractionBlockArray(b, CGSchNetForce::FilterBias1));
        weights2.push_back(force.getInteractionBlockArray(b, CGSchNetForce::FilterWeights2));
        bias2.push_back(force.getInteractionBlockArray(b, CGSchNetForce::FilterBias2));
    }
}

void CGSchNetFilterFunction::evaluate(int block, double r, double* w0, double* dw0) const {
    if (block < 0 || block >= numBlocks)
        throw OpenMMException("CGSchNetFilterFunction: block index out of range");
    const int K = numRBF, NF = numFilters;
    vector<double> e(K), de(K), q(NF), dq(NF), s(NF), ds(NF);
    for (int k = 0; k < K; k++) {
        if (rbfType == CGSchNetForce::Gaussian) {
            double d = r-centers[k];
            e[k] = exp(-widths[k]*d*d);
            de[k] = -2.0*widths[k]*d*e[k];
        }
        else {
            double v = exp(-alpha*(r-lowerCutoff));
            double d = v-centers[k];
            e[k] = exp(-widths[k]*d*d);
            de[k] = -2.0*widths[k]*d*e[k]*(-alpha*v);
        }
    }
    // Forward-mode derivative: q' = e' A1, s' = act'(q) q', w0' = s' A2.
    const vector<double>& A1 = weights1[block];
    const vector<double>& A2 = weights2[block];
    for (int c = 0; c < NF; c++) {
        q[c] = bias1[block][c];
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
        double value, derivative;
        activate(activation, q[c], value, derivative);
        s[c] = value;
        ds[c] = derivative*dq[c];
    }
    for (int c = 0; c < NF; c++) {
        w0[c] = bias2[block][c];
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

CGSchNetFilterTable::CGSchNetFilterTable(const CGSchNetForce& force, int points) :
        numBlocks(force.getNumInteractionBlocks()), numFilters(force.getNumFilters()), numPoints(points),
        cutoff(force.getCutoff()) {
    if (numPoints < 2) {
        stringstream message;
        message << "CGSchNetForce: a filter table needs at least 2 points (got " << numPoints << ")";
        throw OpenMMException(message.str());
    }
    spacing = cutoff/(numPoints-1);
    const int NF = numFilters, numIntervals = numPoints-1;
    CGSchNetFilterFunction filter(force);
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

vector<double> CGSchNetFilterTable::measureError(const CGSchNetForce& force, int numPoints) {
    CGSchNetFilterTable table(force, numPoints);
    CGSchNetFilterFunction filter(force);
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
                cutoffFunction(r, cutoff, fc, dfc);
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
