#ifndef OPENMM_CGML_DISCRIMINATORBIASREFERENCEMODEL_H_
#define OPENMM_CGML_DISCRIMINATORBIASREFERENCEMODEL_H_

#include "DiscriminatorBiasForce.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMCGML {

/**
 * The exact DiscriminatorBiasForce function (energy and its analytic gradient) in double
 * precision: the Reference platform's kernel, the correctness check for the other platforms.  It
 * works on System positions and knows nothing about Contexts.
 */
class DiscriminatorBiasReferenceModel {
public:
    /** Read a force validated for a System of numSystemParticles particles. */
    DiscriminatorBiasReferenceModel(const DiscriminatorBiasForce& force, int numSystemParticles);
    /** Replace the weights, standardisation, clamps and temperature (the shapes must match). */
    void setParameters(const DiscriminatorBiasForce& force);
    /**
     * Evaluate the bias.
     *
     * @param positions   the System positions, in nm
     * @param boxVectors  the three periodic box vectors, or NULL for no periodic boundary conditions
     * @param scale       lambda
     * @param forces      if not NULL, the forces (kJ/mol/nm) are added to it (System order)
     * @param logitSum    on exit, the sum over molecules and networks of the clamped logits
     * @return the energy -lambda k_B T logitSum in kJ/mol; NaN if a position is NaN or infinite
     */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* boxVectors, double scale,
                   std::vector<OpenMM::Vec3>* forces, double& logitSum);
    int getNumFeatures() const {
        return numFeatures;
    }
    /**
     * The features of one molecule: for feature f its value features[f] and its gradient
     * gradient[4f+k] with respect to System particle beads[4f+k] (k < 4; -1 where unused).
     * Shared with the CPU platform's kernel.
     */
    static void computeFeatures(const std::vector<OpenMM::Vec3>& positions, const std::vector<int>& molecule,
                                const std::vector<int>& distances, const std::vector<int>& angles,
                                const std::vector<int>& dihedrals, const OpenMM::Vec3* boxVectors, double* features,
                                int* beads, OpenMM::Vec3* gradient);
    /** k_B T in kJ/mol: the energy is -lambda kT logitSum, so dE/dlambda = -kT logitSum. */
    double getKT() const {
        return 0.00831446261815324*temperature;
    }
private:
    struct Network {
        CGSchNetForce::Activation activation;
        double clamp;
        std::vector<CGMLDenseLayer> layers;
    };
    /** The clamped logit of a network at z_ and, added to dz, its gradient. */
    double evaluateNetwork(const Network& network, std::vector<double>& dz);
    std::vector<std::vector<int> > molecules;
    std::vector<int> distances, angles, dihedrals;
    int numFeatures;
    std::vector<double> means, stds;
    std::vector<Network> networks;
    double temperature;
    // workspace
    std::vector<double> features, z;
    std::vector<int> featureBeads;                 // numFeatures x 4 System indices (-1: unused)
    std::vector<OpenMM::Vec3> featureGradient;     // numFeatures x 4
    std::vector<std::vector<double> > preActivations, activations;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_DISCRIMINATORBIASREFERENCEMODEL_H_*/
