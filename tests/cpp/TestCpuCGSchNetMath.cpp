/**
 * Checks of the vectorised activations of the CPU kernel (every instruction-set copy this
 * processor can run) against double-precision evaluations of the defining formulas, over the
 * whole range where they are used, including arguments large enough to overflow a naive exp.
 */

#include "CpuCGSchNetMath.h"
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace OpenMMCGML;
using namespace std;

static int failures = 0;

static void exactActivation(int kind, double x, double& value, double& derivative) {
    double sigmoid = (x >= 0 ? 1.0/(1.0+exp(-x)) : exp(x)/(1.0+exp(x)));
    if (kind == 0) {
        value = max(x, 0.0)+log1p(exp(-fabs(x)))-log(2.0);
        derivative = sigmoid;
    }
    else if (kind == 1) {
        value = tanh(x);
        derivative = 1.0-value*value;
    }
    else {
        value = x*sigmoid;
        derivative = sigmoid+x*sigmoid*(1.0-sigmoid);
    }
}

static void checkMath(const CpuCGSchNetMath& math) {
    const char* names[] = {"shifted softplus", "tanh", "SiLU"};
    vector<float> x;
    for (double v = -120.0; v <= 120.0; v += 0.0137)
        x.push_back((float) v);
    for (double v = -1e-3; v <= 1e-3; v += 3.1e-6)
        x.push_back((float) v);
    x.push_back(0.0f);
    x.push_back(1e30f);
    x.push_back(-1e30f);
    while (x.size()%8 != 0)
        x.push_back(0.5f);
    vector<float> y(x.size()), dy(x.size());
    for (int kind = 0; kind < 3; kind++) {
        math.activation(kind, x.data(), y.data(), dy.data(), x.size());
        double worstValue = 0.0, worstDerivative = 0.0;
        for (size_t i = 0; i < x.size(); i++) {
            double value, derivative;
            exactActivation(kind, x[i], value, derivative);
            // Errors relative to max(1, |value|): an absolute error of a few float roundings of
            // O(1) numbers, a relative one for large values.
            worstValue = max(worstValue, fabs(y[i]-value)/max(1.0, fabs(value)));
            worstDerivative = max(worstDerivative, fabs(dy[i]-derivative)/max(1.0, fabs(derivative)));
            if (!isfinite(y[i]) || !isfinite(dy[i])) {
                printf("FAILED: %s %s is not finite at x = %g\n", math.name, names[kind], x[i]);
                failures++;
                break;
            }
        }
        printf("%s %s: largest error %.2e (value), %.2e (derivative)\n", math.name, names[kind], worstValue, worstDerivative);
        if (worstValue > 3e-7 || worstDerivative > 3e-7) {
            printf("FAILED: %s %s is not accurate to 3e-7\n", math.name, names[kind]);
            failures++;
        }
    }
}

int main() {
    checkMath(CpuGeneric::getMath());
#if defined(OPENMM_CGML_CPU_AVX2)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        checkMath(CpuAvx2::getMath());
    else
        printf("no AVX2/FMA on this processor: the AVX2 copy is not checked\n");
#endif
    if (failures > 0) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
