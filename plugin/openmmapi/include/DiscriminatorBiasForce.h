#ifndef OPENMM_CGML_DISCRIMINATORBIASFORCE_H_
#define OPENMM_CGML_DISCRIMINATORBIASFORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include "internal/CGMLExport.h"
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * A bias potential defined by the logit of a discriminator (the "teacher" of a CG model).
 *
 * A discriminator trained to tell reference frames (label 1) from frames of a CG model (label 0),
 * with balanced classes, has a logit l that estimates log(p_ref / p_cg) of its features; adding
 * V = -kT l to the CG potential moves the CG distribution of those features to the reference one.
 *
 * The force acts on molecules: lists of System particles of equal length (e.g. the replicas of
 * one CG model in a Context).  Features are defined once, with molecule-local indices, and are
 * evaluated for every molecule:
 *
 *   distance(a, b)        |x_b - x_a| in nm
 *   angle(a, b, c)        cos(theta) at b: u.v / sqrt(|u|^2 |v|^2 + 1e-24), u = x_a - x_b, v = x_c - x_b
 *   dihedral(a, b, c, d)  two features, (X, Y) / sqrt(X^2 + Y^2 + (1e-3 |b1| |b2|^2 |b3|)^2 + 1e-30)
 *                         with b1 = x_b - x_a, b2 = x_c - x_b, b3 = x_d - x_c, X = (b1 x b2).(b2 x b3)
 *                         and Y = |b2| b1.(b2 x b3): (cos phi, sin phi) in the sign convention of
 *                         PeriodicTorsionForce times rho / sqrt(rho^2 + 1e-6), rho = sin(theta1)
 *                         sin(theta2) of the two bond angles (a relative change of about 5e-7 / rho^2),
 *                         going smoothly to (0, 0) with finite forces as three beads become collinear
 *
 * in the order: every distance, every angle, then (cos, sin) of every dihedral.  With periodic
 * boundary conditions each difference vector is taken as its minimum image.  The features are
 * standardised, z = (s - mean) / std, and fed to one or more networks (an ensemble).  Network k
 * is a stack of dense layers y = x W + b with an activation between layers (not after the last),
 * ending in one output l_k; with a clamp L_k > 0 it becomes L_k tanh(l_k / L_k).  The energy is
 *
 *   E = -lambda * k_B * T * sum over molecules of sum over networks of l_k
 *
 * with T the temperature stored in the force, k_B = 0.00831446261815324 kJ/mol/K and lambda a
 * global parameter (default name "discriminatorScale", default value 1) whose energy derivative
 * is reported through OpenMM's parameter derivatives.  The networks' logits add; an ensemble that
 * should average scales each member's last layer (and clamp) by 1/K.
 *
 * This class only holds parameters; the computation is done by the platform kernels.
 */
class OPENMM_EXPORT_CGML DiscriminatorBiasForce : public OpenMM::Force {
public:
    /** The activation between the layers of a network (the numbering of CGSchNetForce::Activation). */
    enum Activation {
        /** ln(0.5 e^x + 0.5) */
        ShiftedSoftplus = 0,
        Tanh = 1,
        /** x / (1 + e^-x) */
        SiLU = 2
    };
    /**
     * Create a DiscriminatorBiasForce with no features, networks or molecules.
     *
     * @param temperature  T in kelvin (positive): the energy is -lambda k_B T times the logits
     */
    explicit DiscriminatorBiasForce(double temperature=300.0);

    double getTemperature() const { return temperature; }
    void setTemperature(double kelvin);

    /** Add a distance feature between molecule-local beads a and b; returns its index among the distances. */
    int addDistance(int a, int b);
    /** Add an angle feature (its cosine) with vertex b; returns its index among the angles. */
    int addAngle(int a, int b, int c);
    /** Add a dihedral (two features, cos and sin); returns its index among the dihedrals. */
    int addDihedral(int a, int b, int c, int d);
    int getNumDistances() const { return (int) distances.size() / 2; }
    int getNumAngles() const { return (int) angles.size() / 3; }
    int getNumDihedrals() const { return (int) dihedrals.size() / 4; }
    /** The bead indices of one feature definition. */
    std::vector<int> getDistance(int index) const;
    std::vector<int> getAngle(int index) const;
    std::vector<int> getDihedral(int index) const;
    /** The number of standardised inputs of the networks: distances + angles + 2 dihedrals. */
    int getNumFeatures() const { return getNumDistances() + getNumAngles() + 2 * getNumDihedrals(); }

    /**
     * Set the standardisation z = (s - mean) / std.  Both vectors have getNumFeatures() values; every
     * std must be positive.  Until set, mean is 0 and std 1.
     */
    void setStandardization(const std::vector<double>& mean, const std::vector<double>& std);
    /** The means (getNumFeatures() values; 0 where not set). */
    std::vector<double> getFeatureMeans() const;
    /** The standard deviations (getNumFeatures() values; 1 where not set). */
    std::vector<double> getFeatureStds() const;

    /**
     * Add a network; its layers are added with addNetworkLayer().
     *
     * @param activation  the activation between its layers
     * @param clamp       L of the smooth clamp L tanh(l / L) of its logit (0: no clamp)
     * @return the index of the new network
     */
    int addNetwork(Activation activation, double clamp=0.0);
    int getNumNetworks() const { return (int) networks.size(); }
    Activation getNetworkActivation(int network) const;
    double getNetworkClamp(int network) const;
    /** Set the clamp L of a network (0: none); a weight, so it can be updated in a Context. */
    void setNetworkClamp(int network, double clamp);
    /**
     * Append a dense layer to a network.  The first layer takes getNumFeatures() inputs, each later
     * layer the previous layer's outputs, and the last must have one output.
     *
     * @param weights  inputs x outputs, row-major
     * @param bias     outputs
     * @return the index of the new layer in the network
     */
    int addNetworkLayer(int network, const std::vector<double>& weights, const std::vector<double>& bias);
    void setNetworkLayerParameters(int network, int layer, const std::vector<double>& weights, const std::vector<double>& bias);
    int getNumNetworkLayers(int network) const;
    /** The number of outputs of a layer. */
    int getNetworkLayerSize(int network, int layer) const;
    std::vector<double> getNetworkLayerWeights(int network, int layer) const;
    std::vector<double> getNetworkLayerBias(int network, int layer) const;

    /**
     * Add a molecule: the System particles that the features' local indices 0, 1, ... refer to.
     * Every molecule must have the same number of particles.  With no molecule added, the System's
     * particles in order form one molecule.
     *
     * @return the index of the new molecule
     */
    int addMolecule(const std::vector<int>& particles);
    void setMoleculeParticles(int index, const std::vector<int>& particles);
    std::vector<int> getMoleculeParticles(int index) const;
    int getNumMolecules() const { return (int) molecules.size(); }

    /** Get the name of the global parameter lambda that scales the energy. */
    const std::string& getScaleParameterName() const { return scaleName; }
    void setScaleParameterName(const std::string& name);
    double getDefaultScale() const { return defaultScale; }
    void setDefaultScale(double scale);

    bool usesPeriodicBoundaryConditions() const { return periodic; }
    void setUsesPeriodicBoundaryConditions(bool periodic);

    /**
     * Copy new weights, standardisation, clamps and the temperature into a Context.  Changes of
     * features, molecules, network shapes or activations, the periodicity or the parameter name
     * raise an exception; reinitialize the Context for those.
     */
    void updateParametersInContext(OpenMM::Context& context);

    /**
     * Check that every setting is consistent, for a System of the given number of particles.
     * Throws an OpenMMException naming the first problem found.
     */
    void validate(int numSystemParticles) const;

protected:
    OpenMM::ForceImpl* createImpl() const;

private:
    struct Network {
        Activation activation;
        double clamp;
        std::vector<std::vector<double> > weights, biases;
    };
    double temperature, defaultScale;
    bool periodic;
    std::string scaleName;
    std::vector<int> distances, angles, dihedrals;
    std::vector<double> means, stds;
    std::vector<Network> networks;
    std::vector<std::vector<int> > molecules;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_DISCRIMINATORBIASFORCE_H_*/
