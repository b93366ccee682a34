#ifndef OPENMM_CGML_MATH_H_
#define OPENMM_CGML_MATH_H_

/*
 * The scalar pieces of the learned forces, in double precision, written once for every host-side
 * evaluation (the Reference kernel, the filter tables) and for the checks every kernel makes: the
 * activations and their derivatives, the cosine cutoff, the radial basis and the periodic-box
 * check.  The vectorised single-precision arithmetic of the CPU kernel and the device code of the
 * Common kernels compute the same formulas in their own precision.
 *
 * Everything here is inline: the header has no library of its own.  (It must not be included by
 * the CPU kernel's per-instruction-set arithmetic; see CpuCGSchNetMath.h.)
 */

#include "CGSchNetForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Vec3.h"
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

namespace OpenMMCGML {
namespace CGMLMath {

const double LN2 = 0.69314718055994530942;
const double PI = 3.14159265358979323846;

/** The logistic function 1/(1+e^-x), without overflow for large |x|. */
/**
 * Whether every coordinate of a position is finite.  A bead at a NaN or infinite position has no
 * finite distance to any other, so it would silently fall outside every cutoff: kernels check
 * positions with this and report a NaN energy instead.
 */
inline bool isFinite(const OpenMM::Vec3& position) {
    return std::isfinite(position[0]) && std::isfinite(position[1]) && std::isfinite(position[2]);
}

inline double sigmoid(double x) {
    if (x >= 0.0)
        return 1.0/(1.0+std::exp(-x));
    double e = std::exp(x);
    return e/(1.0+e);
}

/** act(x) for an activation of CGSchNetForce::Activation. */
inline double activation(CGSchNetForce::Activation kind, double x) {
    switch (kind) {
        case CGSchNetForce::ShiftedSoftplus:
            // softplus(x) - ln 2, written so that neither branch overflows.
            return std::max(x, 0.0)+std::log1p(std::exp(-std::fabs(x)))-LN2;
        case CGSchNetForce::Tanh:
            return std::tanh(x);
        case CGSchNetForce::SiLU:
            return x*sigmoid(x);
    }
    throw OpenMM::OpenMMException("CGSchNetForce: unknown activation");
}

/** act'(x) for an activation of CGSchNetForce::Activation. */
inline double activationDerivative(CGSchNetForce::Activation kind, double x) {
    switch (kind) {
        case CGSchNetForce::ShiftedSoftplus:
            return sigmoid(x);
        case CGSchNetForce::Tanh: {
            double t = std::tanh(x);
            return 1.0-t*t;
        }
        case CGSchNetForce::SiLU: {
            double s = sigmoid(x);
            return s+x*s*(1.0-s);
        }
    }
    throw OpenMM::OpenMMException("CGSchNetForce: unknown activation");
}

/**
 * The cosine cutoff f_c(r) = (cos(pi r / r_c) + 1) / 2 for r < r_c (else 0) and its derivative.
 */
inline void cosineCutoff(double r, double cutoff, double& value, double& derivative) {
    if (r >= cutoff) {
        value = derivative = 0.0;
        return;
    }
    value = 0.5*(std::cos(PI*r/cutoff)+1.0);
    derivative = -0.5*(PI/cutoff)*std::sin(PI*r/cutoff);
}

/**
 * One radial basis function e_k(r) and its derivative de_k/dr (CGSchNetForce::setRBFParameters):
 * Gaussian exp(-gamma (r - mu)^2), or ExpNormal exp(-gamma (exp(-alpha (r - r_lo)) - mu)^2) with
 * alpha = 5 / (r_c - r_lo).
 */
inline void radialBasis(CGSchNetForce::RBFType type, double r, double center, double width, double lowerCutoff, double alpha,
                        double& value, double& derivative) {
    if (type == CGSchNetForce::Gaussian) {
        double d = r-center;
        value = std::exp(-width*d*d);
        derivative = -2.0*width*d*value;
    }
    else {
        double v = std::exp(-alpha*(r-lowerCutoff));
        double d = v-center;
        value = std::exp(-width*d*d);
        derivative = -2.0*width*d*value*(-alpha*v);
    }
}

/**
 * Throw an OpenMMException if a cutoff is larger than half the smallest width of a reduced
 * periodic box (the diagonal of its three vectors): the minimum image convention would then miss
 * interactions.  Every kernel calls it whenever it evaluates a periodic force.
 *
 * @param forceName  the force, for the message (e.g. "CGSchNetForce")
 */
inline void checkCutoffFitsBox(double cutoff, const OpenMM::Vec3& a, const OpenMM::Vec3& b, const OpenMM::Vec3& c,
                               const std::string& forceName="CGSchNetForce") {
    double width = std::min(a[0], std::min(b[1], c[2]));
    if (cutoff > 0.5*width) {
        std::stringstream message;
        message << forceName << ": the cutoff (" << cutoff << " nm) is larger than half the periodic box width (" << width << " nm)";
        throw OpenMM::OpenMMException(message.str());
    }
}

} // namespace CGMLMath
} // namespace OpenMMCGML

#endif /*OPENMM_CGML_MATH_H_*/
