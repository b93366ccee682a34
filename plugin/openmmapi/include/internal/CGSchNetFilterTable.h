#ifndef OPENMM_CGML_CGSCHNETFILTERTABLE_H_
#define OPENMM_CGML_CGSCHNETFILTERTABLE_H_

#include "CGSchNetForce.h"
#include "internal/CGMLExport.h"
#include "internal/CGSchNetWeights.h"
#include <vector>

namespace OpenMMCGML {

/**
 * The exact filters of a CGSchNetForce before the cutoff function,
 *
 *   w0(r) = act(e(r) A1 + a1) A2 + a2,
 *
 * and their derivatives dw0/dr (forward-mode chain rule), for every interaction block, in double
 * precision.  A copy of the weights is taken on construction.
 */
class OPENMM_EXPORT_CGML CGSchNetFilterFunction {
public:
    explicit CGSchNetFilterFunction(const CGSchNetWeights& weights);
    int getNumBlocks() const {
        return weights.getNumBlocks();
    }
    int getNumFilters() const {
        return weights.numFilters;
    }
    double getCutoff() const {
        return weights.cutoff;
    }
    /**
     * Evaluate block `block` at distance r (nm): w0 and dw0 each receive numFilters values.
     */
    void evaluate(int block, double r, double* w0, double* dw0) const;
private:
    CGSchNetWeights weights;
};

/**
 * The tabulated filters of the opt-in fast mode (CGSchNetForce::setFilterTabulationPoints()).
 * CGSchNetWeights builds the table of a force with this class (on the host, in double precision)
 * and every platform only converts the coefficients to its own precision and memory, so all
 * platforms interpolate the same piecewise cubics.
 *
 * Grid: numPoints nodes r_n = n h, n = 0 .. numPoints-1, h = cutoff/(numPoints-1), so the last
 * node is the cutoff; numIntervals = numPoints-1.  At each node the exact w0 and dw0/dr are
 * computed, and on each interval [r_n, r_n+1] the cubic Hermite interpolant of those values is
 * stored as a polynomial in t = r/h - n in [0, 1].
 *
 * Layout of getCoefficients() (row-major, double):
 *
 *   coefficients[((block*numIntervals + n)*4 + c)*numFilters + f],   c = 0..3,
 *
 * i.e. for each block, each interval, four consecutive rows of numFilters values (c0, c1, c2, c3),
 * contiguous in the filter channel f.  To evaluate at 0 <= r < cutoff:
 *
 *   x = r/h;  n = min(floor(x), numIntervals-1);  t = x - n
 *   w0_f(r)     = c0 + t (c1 + t (c2 + t c3))
 *   dw0_f/dr(r) = (c1 + t (2 c2 + 3 t c3)) / h
 *
 * and then, with the exact cosine cutoff, W_f = w0_f f_c(r) and dW_f/dr = dw0_f/dr f_c + w0_f f_c'.
 * (c0 = w_n, c1 = h w'_n, c2 = 3 (w_n+1 - w_n) - h (2 w'_n + w'_n+1),
 * c3 = 2 (w_n - w_n+1) + h (w'_n + w'_n+1).)
 *
 * Error bound (cubic Hermite interpolation, per channel, h the spacing):
 *   |w0 - p| <= h^4/384 max|w0''''|,   |w0' - p'| <= sqrt(3) h^3/216 max|w0''''|,
 * and since |f_c| <= 1, W inherits the first bound.  measureError() measures the actual errors.
 */
class OPENMM_EXPORT_CGML CGSchNetFilterTable {
public:
    /**
     * Tabulate the filters of a force's weights, cutoff and radial basis.
     *
     * @param numPoints  the number of grid points, at least 2
     */
    CGSchNetFilterTable(const CGSchNetWeights& weights, int numPoints);
    int getNumBlocks() const {
        return numBlocks;
    }
    int getNumFilters() const {
        return numFilters;
    }
    int getNumPoints() const {
        return numPoints;
    }
    int getNumIntervals() const {
        return numPoints-1;
    }
    double getCutoff() const {
        return cutoff;
    }
    /** The grid spacing h, in nm. */
    double getSpacing() const {
        return spacing;
    }
    /** The polynomial coefficients, in the layout described above. */
    const std::vector<double>& getCoefficients() const {
        return coefficients;
    }
    /**
     * Interpolate block `block` at distance r (0 <= r <= cutoff): w0 and dw0 each receive
     * numFilters values.
     */
    void evaluate(int block, double r, double* w0, double* dw0) const;
    /**
     * Compare a table of numPoints points with the exact filters of some weights, including the cutoff
     * function, over every block and channel, at four points of every table interval: t = 1/2
     * (where the error of a cubic Hermite interpolant of a function with constant fourth
     * derivative peaks), t = 1/2 -+ sqrt(3)/6 (where the error of its derivative peaks) and
     * t = 1/4.
     *
     * @return {max |W - W_table|, max |dW/dr - dW_table/dr|, max |W|, max |dW/dr|} over those points
     */
    static std::vector<double> measureError(const CGSchNetWeights& weights, int numPoints);
private:
    int numBlocks, numFilters, numPoints;
    double cutoff, spacing;
    std::vector<double> coefficients;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETFILTERTABLE_H_*/
