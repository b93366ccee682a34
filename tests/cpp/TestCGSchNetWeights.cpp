/**
 * Checks of the host-side layer that every kernel starts from: CGSchNetWeights (read from a force
 * whose values are written out here by hand), the dense-layer and transpose helpers, the float
 * range check, the shared scalar math (activations, cosine cutoff, periodic-box check) and the
 * kernel options (force properties and their environment variables).
 */

#include "CGSchNetForce.h"
#include "internal/CGMLKernelOptions.h"
#include "internal/CGMLMath.h"
#include "internal/CGSchNetFilterTable.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "CGMLTestCheck.h"

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

using CGMLTest::check;

/** Whether calling f throws an OpenMMException whose message contains `expected`. */
template <class F>
static bool throwsWith(F f, const string& expected) {
    try {
        f();
    }
    catch (const OpenMMException& e) {
        if (string(e.what()).find(expected) != string::npos)
            return true;
        printf("unexpected message: %s\n", e.what());
        return false;
    }
    return false;
}

/** 0.1*start, 0.1*(start+1), ...: every array of the test force holds distinct values. */
static vector<double> sequence(int size, int start) {
    vector<double> values(size);
    for (int i = 0; i < size; i++)
        values[i] = 0.1*(start+i);
    return values;
}

// Types 2, features F = 2, filters NF = 3, radial basis K = 2, two blocks, output 2 -> 3 -> 1.
static const int T = 2, F = 2, NF = 3, K = 2;

static CGSchNetForce makeForce() {
    CGSchNetForce force(T, F, NF, K, 1.2);
    force.setActivation(CGSchNetForce::Tanh);
    force.setRBFParameters(CGSchNetForce::ExpNormal, {0.3, 0.7}, {2.0, 3.0}, 0.2);
    force.setEmbedding({1, 2, 3, 4});
    for (int b = 0; b < 2; b++) {
        int base = 100*b;
        force.addInteractionBlock(sequence(K*NF, base), sequence(NF, base+10), sequence(NF*NF, base+20), sequence(NF, base+30),
                                  {1, 0, 2, 1, -1, 3}, sequence(NF*F, base+50), sequence(F, base+60), sequence(F*F, base+70),
                                  sequence(F, base+80));
    }
    force.addOutputLayer({1, 2, 3, 4, 5, 6}, {7, 8, 9});
    force.addOutputLayer({10, 11, 12}, {13});
    force.setDefaultScale(0.5);
    return force;
}

static void testReadFromForce() {
    CGSchNetForce force = makeForce();
    CGSchNetWeights w(force);
    check(w.numTypes == T && w.numFeatures == F && w.numFilters == NF && w.numRBF == K, "dimensions");
    check(w.cutoff == 1.2 && w.activation == CGSchNetForce::Tanh && w.rbfType == CGSchNetForce::ExpNormal, "scalar settings");
    check(w.rbfCenters == vector<double>({0.3, 0.7}) && w.rbfWidths == vector<double>({2.0, 3.0}), "radial basis");
    check(w.rbfLowerCutoff == 0.2 && w.defaultScale == 0.5, "lower cutoff and default scale");
    check(fabs(w.getRBFAlpha()-5.0/(1.2-0.2)) < 1e-15, "alpha = 5 / (cutoff - lower cutoff)");
    check(w.embedding == vector<double>({1, 2, 3, 4}), "embedding");
    check(w.getNumBlocks() == 2, "number of blocks");
    for (int b = 0; b < 2; b++) {
        int base = 100*b;
        const CGSchNetWeights::Block& block = w.blocks[b];
        check(block.filterWeights1 == sequence(K*NF, base) && block.filterBias1 == sequence(NF, base+10), "filter layer 1");
        check(block.filterWeights2 == sequence(NF*NF, base+20) && block.filterBias2 == sequence(NF, base+30), "filter layer 2");
        check(block.messageWeights == vector<double>({1, 0, 2, 1, -1, 3}), "message weights");
        check(block.updateWeights1 == sequence(NF*F, base+50) && block.updateBias1 == sequence(F, base+60), "update layer 1");
        check(block.updateWeights2 == sequence(F*F, base+70) && block.updateBias2 == sequence(F, base+80), "update layer 2");
        // The accessor by CGSchNetForce::BlockArray returns the same arrays as the force's getter.
        for (int a = 0; a < 9; a++)
            check(block.array((CGSchNetForce::BlockArray) a) == force.getInteractionBlockArray(b, (CGSchNetForce::BlockArray) a),
                  string("block array ")+CGSchNetWeights::getBlockArrayName((CGSchNetForce::BlockArray) a));
    }
    check(w.outputLayers.size() == 2, "number of output layers");
    const CGMLDenseLayer& first = w.outputLayers[0];
    const CGMLDenseLayer& last = w.outputLayers[1];
    check(first.inputs == 2 && first.outputs == 3 && first.weights == vector<double>({1, 2, 3, 4, 5, 6}) &&
          first.bias == vector<double>({7, 8, 9}), "output layer 0");
    check(last.inputs == 3 && last.outputs == 1 && last.weights == vector<double>({10, 11, 12}) && last.bias == vector<double>({13}),
          "output layer 1");
    check(w.filterTable == nullptr, "exact filters have no table");
    w.validate();

    // W = [[1 2 3], [4 5 6]] (2 x 3) transposed is [[1 4], [2 5], [3 6]].
    check(first.transposedWeights() == vector<double>({1, 4, 2, 5, 3, 6}), "transposed weights of a layer");
    check(transposeMatrix({1, 0, 2, 1, -1, 3}, 2, 3) == vector<double>({1, 1, 0, -1, 2, 3}), "transposeMatrix");

    // E B_0 with E = [[1 2], [3 4]] and B = [[1 0 2], [1 -1 3]]: [[3 -2 8], [7 -4 18]].
    check(w.projectEmbedding(0) == vector<double>({3, -2, 8, 7, -4, 18}), "projected embedding of block 0");
}

static void testFilterTable() {
    CGSchNetForce force = makeForce();
    force.setFilterTabulationPoints(5);
    CGSchNetWeights w(force);
    check(w.filterTable != nullptr, "a tabulating force gives weights with a table");
    check(w.filterTable->getNumPoints() == 5 && w.filterTable->getNumBlocks() == 2 && w.filterTable->getNumFilters() == NF,
          "table dimensions");
    check(fabs(w.filterTable->getSpacing()-1.2/4) < 1e-15, "table spacing = cutoff / (points - 1)");
    // At a node the table gives the exact filter (c0 of the interval that starts there).
    CGSchNetFilterFunction exact(w);
    vector<double> value(NF), derivative(NF), tabulated(NF), tabulatedDerivative(NF);
    exact.evaluate(1, 0.6, &value[0], &derivative[0]);
    w.filterTable->evaluate(1, 0.6, &tabulated[0], &tabulatedDerivative[0]);
    for (int f = 0; f < NF; f++)
        check(fabs(value[f]-tabulated[f]) < 1e-12*(1+fabs(value[f])) &&
              fabs(derivative[f]-tabulatedDerivative[f]) < 1e-12*(1+fabs(derivative[f])), "table at a node");
    check(CGSchNetWeights(force, false).filterTable == nullptr, "no table when none is asked for");
    // The filter of block 0 at r by hand: e_k = exp(-gamma_k (exp(-alpha (r - r_lo)) - mu_k)^2),
    // q = e A1 + a1, w0 = tanh(q) A2 + a2.
    const double r = 0.5, alpha = 5.0/(1.2-0.2), v = exp(-alpha*(r-0.2));
    double e[2] = {exp(-2.0*(v-0.3)*(v-0.3)), exp(-3.0*(v-0.7)*(v-0.7))};
    vector<double> A1 = sequence(K*NF, 0), a1 = sequence(NF, 10), A2 = sequence(NF*NF, 20), a2 = sequence(NF, 30);
    exact.evaluate(0, r, &value[0], &derivative[0]);
    for (int c = 0; c < NF; c++) {
        double w0 = a2[c];
        for (int m = 0; m < NF; m++)
            w0 += tanh(e[0]*A1[m]+e[1]*A1[NF+m]+a1[m])*A2[m*NF+c];
        check(fabs(value[c]-w0) < 1e-14, "exact filter by hand");
    }
}

static void testValidation() {
    CGSchNetWeights w(makeForce());
    CGSchNetWeights wrong = w;
    wrong.blocks[1].updateWeights2.pop_back();
    check(throwsWith([&] { wrong.validate(); }, "interaction block 1 updateWeights2 (C2) has 3 values, expected 4"),
          "a short block array is named");
    wrong = w;
    wrong.outputLayers[1].inputs = 2;
    check(throwsWith([&] { wrong.validate(); }, "output layer 1 maps 2 inputs"), "output layers that do not chain");
    wrong = w;
    wrong.outputLayers.pop_back();
    check(throwsWith([&] { wrong.validate(); }, "exactly one output"), "a last layer with three outputs");
    check(w.hasSameShape(CGSchNetWeights(makeForce())), "same shapes");
    wrong = w;
    wrong.blocks.pop_back();
    check(!w.hasSameShape(wrong), "a different number of blocks");
    wrong = w;
    wrong.outputLayers[0].outputs = 4;
    check(!w.hasSameShape(wrong), "a different output layer");
}

static void testFloatRange() {
    CGSchNetWeights w(makeForce());
    w.checkSinglePrecisionRange("the test");
    // The largest float itself is accepted; 1e39 rounds to infinity in float and is refused.
    w.blocks[1].updateWeights2[2] = 3.4028234663852886e38;
    w.checkSinglePrecisionRange("the test");
    w.blocks[1].updateWeights2[2] = -1e39;
    check(throwsWith([&] { w.checkSinglePrecisionRange("the test"); },
                     "CGSchNetForce: interaction block 1 updateWeights2 (C2)[1][0] = -1e+39 is outside the range of single "
                     "precision (magnitudes up to 3.4e+38), in which the test computes"),
          "an out-of-range block weight is named by block, array, row and column");
    w = CGSchNetWeights(makeForce());
    w.outputLayers[0].bias[2] = 1e300;
    check(throwsWith([&] { w.checkSinglePrecisionRange("the test"); }, "output layer 0 bias[2] = 1e+300"), "an output bias");
    check(throwsWith([] { checkFloatRange({1e40}, -1, "the lambda", "X", "DiscriminatorBiasForce"); },
                     "DiscriminatorBiasForce: the lambda = 1e+40 is outside"), "a scalar of another force");
}

static void testMath() {
    const double pi = 3.14159265358979323846;
    for (double x : {-30.0, -2.0, -0.1, 0.0, 0.7, 3.0, 40.0}) {
        double h = 1e-6;
        double ssp = log(0.5*exp(x)+0.5), silu = x/(1.0+exp(-x));
        check(fabs(CGMLMath::activation(CGSchNetForce::ShiftedSoftplus, x)-ssp) < 1e-12*(1+fabs(ssp)), "shifted softplus");
        check(fabs(CGMLMath::activation(CGSchNetForce::Tanh, x)-tanh(x)) < 1e-15, "tanh");
        check(fabs(CGMLMath::activation(CGSchNetForce::SiLU, x)-silu) < 1e-12*(1+fabs(silu)), "SiLU");
        for (CGSchNetForce::Activation kind : {CGSchNetForce::ShiftedSoftplus, CGSchNetForce::Tanh, CGSchNetForce::SiLU}) {
            double numeric = (CGMLMath::activation(kind, x+h)-CGMLMath::activation(kind, x-h))/(2*h);
            check(fabs(CGMLMath::activationDerivative(kind, x)-numeric) < 1e-8, "activation derivative");
        }
    }
    double value, derivative;
    CGMLMath::cosineCutoff(0.0, 2.0, value, derivative);
    check(value == 1.0 && derivative == 0.0, "cutoff function at 0");
    CGMLMath::cosineCutoff(1.0, 2.0, value, derivative);
    check(fabs(value-0.5) < 1e-15 && fabs(derivative+pi/4) < 1e-15, "cutoff function at half the cutoff");
    CGMLMath::cosineCutoff(2.0, 2.0, value, derivative);
    check(value == 0.0 && derivative == 0.0, "cutoff function at the cutoff");
    CGMLMath::radialBasis(CGSchNetForce::Gaussian, 0.5, 0.2, 4.0, 0.0, 0.0, value, derivative);
    check(fabs(value-exp(-4.0*0.09)) < 1e-15 && fabs(derivative+2*4.0*0.3*exp(-0.36)) < 1e-15, "Gaussian basis");
    Vec3 a(3, 0, 0), b(0.5, 2.0, 0), c(0, 0.3, 4);
    CGMLMath::checkCutoffFitsBox(1.0, a, b, c);
    check(throwsWith([&] { CGMLMath::checkCutoffFitsBox(1.01, a, b, c); },
                     "CGSchNetForce: the cutoff (1.01 nm) is larger than half the periodic box width (2 nm)"),
          "the periodic-box check names the cutoff and the smallest width");
}

static void testKernelOptions() {
    CGMLKernelOptions::checkProperty("CpuSimd", "generic", "CGSchNetForce");
    CGMLKernelOptions::checkProperty("CommonTuning", "singleLaunch=1, groups=4,,tileBeads=2", "CGSchNetForce");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CpuSIMD", "generic", "CGSchNetForce"); },
                     "CGSchNetForce: unknown property 'CpuSIMD' (the properties are CpuSimd, CommonTuning)"), "unknown property");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CpuSimd", "avx512", "CGSchNetForce"); },
                     "property CpuSimd = 'avx512' is not valid: use auto, avx2 or generic"), "bad CpuSimd value");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CommonTuning", "tilePairs=0", "CGSchNetForce"); },
                     "property CommonTuning = 'tilePairs=0' is not valid: tilePairs must be an integer from 1 to 1024"), "tilePairs=0");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CommonTuning", "singleLaunch=2", "CGSchNetForce"); },
                     "singleLaunch must be 0 or 1"), "singleLaunch=2");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CommonTuning", "tiles=3", "CGSchNetForce"); }, "unknown key 'tiles'"),
          "unknown tuning key");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CommonTuning", "groups=4x", "CGSchNetForce"); },
                     "groups must be an integer from 1 to 65536 (got '4x')"), "a number with trailing text");
    check(throwsWith([] { CGMLKernelOptions::checkProperty("CommonTuning", "tileBeads=1025", "CGSchNetForce"); },
                     "tileBeads must be an integer from 1 to 1024 (got '1025')"), "a tile beyond local memory");

    // A force's property wins over the environment variable, which wins over the default.
    map<string, string> none, generic = {{"CpuSimd", "generic"}}, avx2 = {{"CpuSimd", "avx2"}};
    unsetenv("OPENMM_CGML_CPU_SIMD");
    check(CGMLKernelOptions::getCpuInstructionSet(none, "F") == CGMLKernelOptions::CpuAuto, "default CpuSimd");
    check(CGMLKernelOptions::getCpuInstructionSet(generic, "F") == CGMLKernelOptions::CpuGeneric, "CpuSimd property");
    setenv("OPENMM_CGML_CPU_SIMD", "generic", 1);
    check(CGMLKernelOptions::getCpuInstructionSet(none, "F") == CGMLKernelOptions::CpuGeneric, "CpuSimd from the environment");
    check(CGMLKernelOptions::getCpuInstructionSet(avx2, "F") == CGMLKernelOptions::CpuAvx2, "the property overrides the environment");
    setenv("OPENMM_CGML_CPU_SIMD", "fast", 1);
    check(throwsWith([&] { CGMLKernelOptions::getCpuInstructionSet(none, "CGSchNetForce"); },
                     "CGSchNetForce: environment variable OPENMM_CGML_CPU_SIMD = 'fast' is not valid"), "bad environment value");
    unsetenv("OPENMM_CGML_CPU_SIMD");

    setenv("OPENMM_CGML_COMMON_TUNING", "tilePairs=5,tilePairs=7,singleLaunch=0", 1);
    CGMLKernelOptions::CommonTuning tuning = CGMLKernelOptions::getCommonTuning(none, "F");
    check(tuning.tilePairs == 7 && tuning.singleLaunch == 0 && tuning.groups == 0 && tuning.tileBeads == 0,
          "tuning from the environment, a later key overriding an earlier one");
    check(tuning.toString() == "singleLaunch=0,tilePairs=7", "tuning as text");
    tuning = CGMLKernelOptions::getCommonTuning({{"CommonTuning", "groups=3"}}, "F");
    check(tuning.groups == 3 && tuning.tilePairs == 0 && tuning.singleLaunch == -1, "the tuning property replaces the environment's");
    unsetenv("OPENMM_CGML_COMMON_TUNING");

    // On the force: set, replaced, removed, and checked.
    CGSchNetForce force = makeForce();
    force.setProperty("CpuSimd", "generic");
    force.setProperty("CommonTuning", "tileBeads=2");
    force.setProperty("CpuSimd", "avx2");
    check(force.getProperties() == map<string, string>({{"CpuSimd", "avx2"}, {"CommonTuning", "tileBeads=2"}}), "force properties");
    force.setProperty("CpuSimd", "");
    check(force.getProperties() == map<string, string>({{"CommonTuning", "tileBeads=2"}}), "an empty value removes a property");
    check(throwsWith([&] { force.setProperty("Threads", "2"); }, "unknown property 'Threads'"), "unknown property on the force");
    check(force.getProperties().size() == 1, "a refused property is not stored");
}

int main() {
    try {
        testReadFromForce();
        testFilterTable();
        testValidation();
        testFloatRange();
        testMath();
        testKernelOptions();
    }
    catch (const exception& e) {
        printf("exception: %s\n", e.what());
        return 1;
    }
    return CGMLTest::finishChecks("All weights-layer checks passed");
}
