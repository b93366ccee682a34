#ifndef OPENMM_CGML_CGSCHNETREFERENCEMODEL_H_
#define OPENMM_CGML_CGSCHNETREFERENCEMODEL_H_

#include "CGSchNetForce.h"
#include "internal/CGSchNetTopology.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/Vec3.h"
#include <memory>
#include <vector>

namespace OpenMMCGML {

/**
 * The exact CGSchNet function (energy and its analytic gradient by reverse-mode differentiation),
 * in double precision: the Reference platform's kernel, the correctness check for the other
 * platforms.  It knows nothing about Contexts (the caller gathers the bead positions and scatters
 * the gradient), so the C++ tests exercise it on its own.  With tabulated filters
 * (CGSchNetWeights::filterTable) it interpolates w0(r) and dw0/dr from the table and does not use
 * the filter weights and radial basis.
 */
class CGSchNetReferenceModel {
public:
    /**
     * @param topology  the beads and candidate pairs; only particles, types and pairs are used
     * @param weights   the weights; their shapes are checked against each other and the topology
     */
    CGSchNetReferenceModel(const CGSchNetTopology& topology, const CGSchNetWeights& weights);
    /**
     * Replace the weights and scalar settings.  The shapes must match those given to the constructor.
     */
    void setParameters(const CGSchNetWeights& weights);
    const CGSchNetWeights& getParameters() const {
        return params;
    }
    int getNumBeads() const {
        return numBeads;
    }
    /**
     * Throw an OpenMMException if the cutoff is larger than half the smallest width of a reduced
     * periodic box (the minimum image convention would then miss interactions).
     */
    void checkPeriodicBox(const OpenMM::Vec3* boxVectors) const;
    /**
     * Evaluate the model.
     *
     * @param positions        the position of each bead (local order), in nm
     * @param boxVectors       the three periodic box vectors, or NULL for no periodic boundary conditions
     * @param scale            the energy scale s
     * @param includeGradient  whether to compute the gradient
     * @param outputSum        on exit, sum_i u_i, which is dU/ds
     * @param gradient         on exit (if includeGradient), dU/dx of each bead, in kJ/mol/nm
     * @return the energy U = s * sum_i u_i, in kJ/mol; NaN (with NaN outputSum and gradient) if
     *         a coordinate of any bead is NaN or infinite
     */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* boxVectors, double scale,
                   bool includeGradient, double& outputSum, std::vector<OpenMM::Vec3>& gradient);
private:
    void activate(const double* x, double* result, int n) const;
    void activationDerivative(const double* x, double* result, int n) const;
    int numBeads;
    std::vector<int> particles, types;
    std::vector<std::pair<int, int> > candidatePairs;
    CGSchNetWeights params;
    std::vector<int> layerWidths;
    // Workspace of the last evaluation, kept to avoid reallocation.  Pair quantities are for the
    // pairs inside the cutoff, in the order of pairI/pairJ.
    std::vector<int> pairI, pairJ;
    std::vector<double> pairR, pairCutoff, pairCutoffDeriv, pairRBF, pairRBFDeriv, pairEnergyDeriv;
    std::vector<OpenMM::Vec3> pairDelta;
    std::vector<std::vector<double> > blockQ, blockW0, blockY, blockZ, layerInput, layerPre;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETREFERENCEMODEL_H_*/
