/**
 * Checks of CGSchNetReferenceModel on its own (no Context): the analytic gradient against central
 * finite differences of the energy, the energy against a direct and independent evaluation of the
 * defining formulas, and the error cases.  Every activation, both radial bases, no box and a
 * triclinic periodic box are covered.
 */

#include "CGSchNetReferenceModel.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>
#include "CGMLTestCheck.h"

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

using CGMLTest::check;

struct TestSystem {
    CGSchNetTopology topology;
    CGSchNetWeights params;
    set<pair<int, int> > exclusions;
};

static vector<double> randomArray(mt19937& rng, int size, double scale) {
    uniform_real_distribution<double> uniform(-1.0, 1.0);
    vector<double> values(size);
    for (double& v : values)
        v = scale*uniform(rng);
    return values;
}

/**
 * Two molecules (beads 0-6 and 7-11) with one exclusion each; System indices differ from local
 * indices so that error messages can be checked.
 */
static TestSystem createSystem(mt19937& rng, CGSchNetForce::Activation activation, CGSchNetForce::RBFType rbfType) {
    const int numBeads = 12, numTypes = 3, F = 4, NF = 5, K = 6;
    const double cutoff = 1.0;
    TestSystem system;
    CGSchNetTopology& top = system.topology;
    uniform_int_distribution<int> typeDist(0, numTypes-1);
    for (int i = 0; i < numBeads; i++) {
        top.particles.push_back(2*i+1);
        top.types.push_back(typeDist(rng));
        top.molecules.push_back(i < 7 ? 0 : 1);
    }
    system.exclusions.insert(make_pair(0, 1));
    system.exclusions.insert(make_pair(8, 9));
    for (int i = 0; i < numBeads; i++)
        for (int j = i+1; j < numBeads; j++)
            if (top.molecules[i] == top.molecules[j] && system.exclusions.count(make_pair(i, j)) == 0)
                top.pairs.push_back(make_pair(i, j));

    CGSchNetWeights& p = system.params;
    p.numTypes = numTypes;
    p.numFeatures = F;
    p.numFilters = NF;
    p.numRBF = K;
    p.cutoff = cutoff;
    p.activation = activation;
    p.rbfType = rbfType;
    uniform_real_distribution<double> jitter(0.8, 1.2);
    if (rbfType == CGSchNetForce::Gaussian) {
        double spacing = cutoff/(K-1);
        for (int k = 0; k < K; k++) {
            p.rbfCenters.push_back(k*spacing);
            p.rbfWidths.push_back(0.5/(spacing*spacing)*jitter(rng));
        }
    }
    else {
        p.rbfLowerCutoff = 0.1;
        double start = exp(-5.0);
        double width = 2.0*(1.0-start)/K;
        for (int k = 0; k < K; k++) {
            p.rbfCenters.push_back(start+k*(1.0-start)/(K-1));
            p.rbfWidths.push_back(jitter(rng)/(width*width));
        }
    }
    p.embedding = randomArray(rng, numTypes*F, 1.0);
    for (int b = 0; b < 2; b++) {
        CGSchNetWeights::Block block;
        block.filterWeights1 = randomArray(rng, K*NF, 1.5/sqrt(K));
        block.filterBias1 = randomArray(rng, NF, 0.5);
        block.filterWeights2 = randomArray(rng, NF*NF, 1.5/sqrt(NF));
        block.filterBias2 = randomArray(rng, NF, 0.5);
        block.messageWeights = randomArray(rng, F*NF, 1.5/sqrt(F));
        block.updateWeights1 = randomArray(rng, NF*F, 1.5/sqrt(NF));
        block.updateBias1 = randomArray(rng, F, 0.5);
        block.updateWeights2 = randomArray(rng, F*F, 1.5/sqrt(F));
        block.updateBias2 = randomArray(rng, F, 0.5);
        p.blocks.push_back(block);
    }
    int widths[] = {F, 6, 3, 1};
    for (int l = 0; l < 3; l++)
        p.outputLayers.push_back(CGMLDenseLayer(widths[l], widths[l+1], randomArray(rng, widths[l]*widths[l+1], 1.5/sqrt(widths[l])),
                                                randomArray(rng, widths[l+1], 0.5)));
    return system;
}

// ---------------------------------------------------------------------------------------------
// A direct evaluation of the energy, written independently of the model: messages are gathered
// bead by bead over all partners, and the minimum image is found by searching neighbouring images.
// ---------------------------------------------------------------------------------------------

static double actDirect(CGSchNetForce::Activation act, double x) {
    if (act == CGSchNetForce::ShiftedSoftplus)
        return log(0.5*exp(x)+0.5);
    if (act == CGSchNetForce::Tanh)
        return tanh(x);
    return x/(1.0+exp(-x));
}

static vector<double> affineDirect(const vector<double>& x, const vector<double>& weights, const vector<double>* bias) {
    int in = (int) x.size(), out = (int) weights.size()/in;
    vector<double> y(out, 0.0);
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++)
            y[o] += x[i]*weights[i*out+o];
        if (bias != NULL)
            y[o] += (*bias)[o];
    }
    return y;
}

static vector<double> actDirect(CGSchNetForce::Activation act, vector<double> x) {
    for (double& v : x)
        v = actDirect(act, v);
    return x;
}

static Vec3 minimumImageDirect(Vec3 d, const Vec3* box) {
    if (box == NULL)
        return d;
    // Fractional coordinates in the lattice basis (lower triangular box), rounded, then the
    // shortest of the 27 neighbouring images.
    double sc = d[2]/box[2][2];
    double sb = (d[1]-sc*box[2][1])/box[1][1];
    double sa = (d[0]-sc*box[2][0]-sb*box[1][0])/box[0][0];
    Vec3 base = d-box[0]*round(sa)-box[1]*round(sb)-box[2]*round(sc);
    Vec3 best = base;
    for (int i = -1; i <= 1; i++)
        for (int j = -1; j <= 1; j++)
            for (int k = -1; k <= 1; k++) {
                Vec3 candidate = base+box[0]*i+box[1]*j+box[2]*k;
                if (candidate.dot(candidate) < best.dot(best))
                    best = candidate;
            }
    return best;
}

static double energyDirect(const TestSystem& system, const vector<Vec3>& pos, const Vec3* box, double scale) {
    const CGSchNetWeights& p = system.params;
    const CGSchNetTopology& top = system.topology;
    const int N = (int) pos.size(), F = p.numFeatures;
    const double PI = 3.14159265358979323846;
    vector<vector<double> > h(N);
    for (int i = 0; i < N; i++)
        h[i] = vector<double>(p.embedding.begin()+top.types[i]*F, p.embedding.begin()+(top.types[i]+1)*F);
    for (const CGSchNetWeights::Block& block : p.blocks) {
        vector<vector<double> > newH = h;
        for (int i = 0; i < N; i++) {
            vector<double> m(p.numFilters, 0.0);
            for (int j = 0; j < N; j++) {
                if (j == i || top.molecules[i] != top.molecules[j] || system.exclusions.count(make_pair(min(i, j), max(i, j))))
                    continue;
                Vec3 d = minimumImageDirect(pos[j]-pos[i], box);
                double r = sqrt(d.dot(d));
                if (r >= p.cutoff)
                    continue;
                vector<double> e(p.numRBF);
                for (int k = 0; k < p.numRBF; k++) {
                    double x = r;
                    if (p.rbfType == CGSchNetForce::ExpNormal)
                        x = exp(-5.0/(p.cutoff-p.rbfLowerCutoff)*(r-p.rbfLowerCutoff));
                    e[k] = exp(-p.rbfWidths[k]*(x-p.rbfCenters[k])*(x-p.rbfCenters[k]));
                }
                vector<double> w = affineDirect(actDirect(p.activation, affineDirect(e, block.filterWeights1, &block.filterBias1)), block.filterWeights2, &block.filterBias2);
                vector<double> y = affineDirect(h[j], block.messageWeights, NULL);
                double fc = 0.5*(cos(PI*r/p.cutoff)+1.0);
                for (int c = 0; c < p.numFilters; c++)
                    m[c] += y[c]*w[c]*fc;
            }
            vector<double> update = affineDirect(actDirect(p.activation, affineDirect(m, block.updateWeights1, &block.updateBias1)), block.updateWeights2, &block.updateBias2);
            for (int f = 0; f < F; f++)
                newH[i][f] += update[f];
        }
        h = newH;
    }
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        vector<double> x = h[i];
        for (size_t l = 0; l < p.outputLayers.size(); l++) {
            x = affineDirect(x, p.outputLayers[l].weights, &p.outputLayers[l].bias);
            if (l+1 < p.outputLayers.size())
                x = actDirect(p.activation, x);
        }
        sum += x[0];
    }
    return scale*sum;
}

// ---------------------------------------------------------------------------------------------

/** Random positions with no two beads closer than 0.15 nm and no pair within 1e-3 nm of the cutoff. */
static vector<Vec3> randomPositions(mt19937& rng, const TestSystem& system, const Vec3* box) {
    uniform_real_distribution<double> uniform(0.0, 1.0);
    uniform_int_distribution<int> shift(-2, 2);
    const int N = (int) system.topology.particles.size();
    while (true) {
        vector<Vec3> pos(N);
        for (int i = 0; i < N; i++) {
            if (box == NULL)
                pos[i] = Vec3(1.3*uniform(rng), 1.3*uniform(rng), 1.3*uniform(rng));
            else // anywhere in the cell, then moved by whole lattice vectors to exercise wrapping
                pos[i] = box[0]*(uniform(rng)+shift(rng))+box[1]*(uniform(rng)+shift(rng))+box[2]*(uniform(rng)+shift(rng));
        }
        bool ok = true;
        for (int i = 0; i < N && ok; i++)
            for (int j = i+1; j < N && ok; j++) {
                Vec3 d = minimumImageDirect(pos[j]-pos[i], box);
                double r = sqrt(d.dot(d));
                if (r < 0.15 || fabs(r-system.params.cutoff) < 1e-3)
                    ok = false;
            }
        if (ok)
            return pos;
    }
}

static int countInteractingPairs(const TestSystem& system, const vector<Vec3>& pos, const Vec3* box) {
    int count = 0;
    for (const pair<int, int>& p : system.topology.pairs) {
        Vec3 d = minimumImageDirect(pos[p.second]-pos[p.first], box);
        if (sqrt(d.dot(d)) < system.params.cutoff)
            count++;
    }
    return count;
}

static void testCase(mt19937& rng, CGSchNetForce::Activation activation, CGSchNetForce::RBFType rbfType, bool periodic) {
    const char* actNames[] = {"ShiftedSoftplus", "Tanh", "SiLU"};
    string name = string(actNames[activation])+(rbfType == CGSchNetForce::Gaussian ? "/Gaussian" : "/ExpNormal")+(periodic ? "/periodic" : "/nonperiodic");
    TestSystem system = createSystem(rng, activation, rbfType);
    // A reduced triclinic box; its smallest width (2.2 nm) is more than twice the cutoff.
    Vec3 boxVectors[3] = {Vec3(2.5, 0, 0), Vec3(0.4, 2.3, 0), Vec3(-0.5, 0.6, 2.2)};
    const Vec3* box = (periodic ? boxVectors : NULL);
    CGSchNetReferenceModel model(system.topology, system.params);
    const double scale = 1.3;
    double worstForceError = 0.0, worstEnergyError = 0.0;
    int pairsSeen = 0;
    for (int trial = 0; trial < 3; trial++) {
        vector<Vec3> pos = randomPositions(rng, system, box);
        pairsSeen += countInteractingPairs(system, pos, box);
        double outputSum;
        vector<Vec3> gradient;
        double energy = model.compute(pos, box, scale, true, outputSum, gradient);

        // Energy against the direct evaluation, and U = s * sum u.
        double direct = energyDirect(system, pos, box, scale);
        double energyError = fabs(energy-direct)/max(1.0, fabs(direct));
        worstEnergyError = max(worstEnergyError, energyError);
        check(energyError < 1e-12, name+": energy differs from the direct evaluation");
        check(fabs(energy-scale*outputSum) <= 1e-14*max(1.0, fabs(energy)), name+": energy is not scale * outputSum");

        // Gradient against central finite differences of the energy.
        const double delta = 1e-5;
        double maxGradient = 0.0, maxError = 0.0;
        Vec3 total;
        for (size_t i = 0; i < pos.size(); i++) {
            total += gradient[i];
            for (int c = 0; c < 3; c++) {
                vector<Vec3> plus = pos, minus = pos;
                plus[i][c] += delta;
                minus[i][c] -= delta;
                double unused;
                vector<Vec3> unusedGradient;
                double ePlus = model.compute(plus, box, scale, false, unused, unusedGradient);
                double eMinus = model.compute(minus, box, scale, false, unused, unusedGradient);
                double numeric = (ePlus-eMinus)/(2*delta);
                maxGradient = max(maxGradient, fabs(gradient[i][c]));
                maxError = max(maxError, fabs(numeric-gradient[i][c]));
            }
        }
        double relativeError = maxError/maxGradient;
        worstForceError = max(worstForceError, relativeError);
        check(maxGradient > 1e-3, name+": the gradient is trivially small");
        check(relativeError < 1e-6, name+": gradient differs from finite differences");
        check(sqrt(total.dot(total)) < 1e-12*max(1.0, maxGradient), name+": the forces do not sum to zero");

        // The energy does not depend on the choice of periodic image or on a global translation.
        vector<Vec3> moved = pos;
        for (size_t i = 0; i < moved.size(); i++) {
            moved[i] += Vec3(0.3, -0.7, 1.1);
            if (periodic)
                moved[i] += boxVectors[i%3]*(i%2 == 0 ? 1.0 : -2.0);
        }
        double unused;
        vector<Vec3> unusedGradient;
        double movedEnergy = model.compute(moved, box, scale, false, unused, unusedGradient);
        check(fabs(movedEnergy-energy) < 1e-12*max(1.0, fabs(energy)), name+": energy changes under translation or change of image");
    }
    printf("%-36s interacting pairs %3d, max relative force error %.2e, max energy error %.2e\n", name.c_str(), pairsSeen, worstForceError, worstEnergyError);
}

static void testErrorsAndEdgeCases() {
    mt19937 rng(7);
    TestSystem system = createSystem(rng, CGSchNetForce::SiLU, CGSchNetForce::Gaussian);
    CGSchNetReferenceModel model(system.topology, system.params);
    vector<Vec3> pos = randomPositions(rng, system, NULL);
    double outputSum, energy;
    vector<Vec3> gradient;

    // Two interacting beads at the same place: an exception naming their System indices (5 and 7).
    vector<Vec3> overlap = pos;
    overlap[3] = overlap[2];
    bool thrown = false;
    try {
        model.compute(overlap, NULL, 1.0, true, outputSum, gradient);
    }
    catch (const OpenMMException& e) {
        thrown = (string(e.what()).find("particles 5 and 7") != string::npos);
        if (!thrown)
            printf("unexpected message: %s\n", e.what());
    }
    check(thrown, "overlapping interacting beads do not raise an exception naming them");

    // Overlap of an excluded pair (0, 1) or of beads in different molecules (6, 7) is allowed.
    overlap = pos;
    overlap[1] = overlap[0];
    overlap[7] = overlap[6];
    try {
        energy = model.compute(overlap, NULL, 1.0, true, outputSum, gradient);
        check(std::isfinite(energy), "energy with overlapping non-interacting beads is not finite");
    }
    catch (const OpenMMException& e) {
        check(false, string("overlapping non-interacting beads raised: ")+e.what());
    }

    // Cutoff larger than half the smallest box width.
    Vec3 smallBox[3] = {Vec3(2.5, 0, 0), Vec3(0, 1.9, 0), Vec3(0, 0, 2.5)};
    thrown = false;
    try {
        model.compute(pos, smallBox, 1.0, true, outputSum, gradient);
    }
    catch (const OpenMMException& e) {
        thrown = (string(e.what()).find("is larger than half the periodic box width (1.9 nm)") != string::npos);
        if (!thrown)
            printf("unexpected message: %s\n", e.what());
    }
    check(thrown, "a box narrower than twice the cutoff does not raise");

    // A bead beyond the cutoff of every other bead feels no force, and moving it further changes nothing.
    vector<Vec3> far = pos;
    far[4] = Vec3(10, 0, 0);
    double energyFar = model.compute(far, NULL, 1.0, true, outputSum, gradient);
    check(gradient[4][0] == 0.0 && gradient[4][1] == 0.0 && gradient[4][2] == 0.0, "an isolated bead feels a force");
    far[4] = Vec3(20, 5, 0);
    double energyFarther = model.compute(far, NULL, 1.0, true, outputSum, gradient);
    check(energyFar == energyFarther, "moving an isolated bead changes the energy");

    // Continuity at the cutoff: a pair just inside and just outside gives the same energy.
    vector<Vec3> edge(pos.size());
    for (size_t i = 0; i < edge.size(); i++)
        edge[i] = Vec3(5.0*i, 0, 0);
    edge[3] = edge[2]+Vec3(system.params.cutoff-1e-9, 0, 0);
    double inside = model.compute(edge, NULL, 1.0, false, outputSum, gradient);
    edge[3] = edge[2]+Vec3(system.params.cutoff+1e-9, 0, 0);
    double outside = model.compute(edge, NULL, 1.0, false, outputSum, gradient);
    check(fabs(inside-outside) < 1e-8, "the energy is discontinuous at the cutoff");

    // setParameters gives the same result as a model built with the new weights.
    TestSystem other = createSystem(rng, CGSchNetForce::SiLU, CGSchNetForce::Gaussian);
    other.topology = system.topology;
    other.params.cutoff = 0.9;
    model.setParameters(other.params);
    CGSchNetReferenceModel fresh(other.topology, other.params);
    vector<Vec3> g1, g2;
    double e1 = model.compute(pos, NULL, 0.7, true, outputSum, g1);
    double e2 = fresh.compute(pos, NULL, 0.7, true, outputSum, g2);
    check(e1 == e2 && g1[0][0] == g2[0][0], "setParameters differs from a new model");
    check(fabs(e1-energyDirect(other, pos, NULL, 0.7)) < 1e-12*max(1.0, fabs(e1)), "energy after setParameters is wrong");

    // A change of shape is refused.
    CGSchNetWeights wrong = other.params;
    wrong.outputLayers[0].outputs++;
    wrong.outputLayers[0].bias.push_back(0.0);
    wrong.outputLayers[0].weights.resize(wrong.outputLayers[0].weights.size()+system.params.numFeatures);
    wrong.outputLayers[1].inputs++;
    wrong.outputLayers[1].weights.resize(wrong.outputLayers[1].weights.size()+wrong.outputLayers[1].bias.size());
    thrown = false;
    try {
        model.setParameters(wrong);
    }
    catch (const OpenMMException&) {
        thrown = true;
    }
    check(thrown, "setParameters accepts a change of shape");
}

int main() {
    try {
        mt19937 rng(2024);
        CGSchNetForce::Activation activations[] = {CGSchNetForce::ShiftedSoftplus, CGSchNetForce::Tanh, CGSchNetForce::SiLU};
        CGSchNetForce::RBFType rbfTypes[] = {CGSchNetForce::Gaussian, CGSchNetForce::ExpNormal};
        for (CGSchNetForce::Activation activation : activations)
            for (CGSchNetForce::RBFType rbfType : rbfTypes)
                for (int periodic = 0; periodic < 2; periodic++)
                    testCase(rng, activation, rbfType, periodic == 1);
        testErrorsAndEdgeCases();
    }
    catch (const std::exception& e) {
        printf("FAILED: exception: %s\n", e.what());
        return 1;
    }
    return CGMLTest::finishChecks("Done");
}
