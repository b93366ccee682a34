#ifndef OPENMM_CGML_CGSCHNETFORCE_H_
#define OPENMM_CGML_CGSCHNETFORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include "internal/CGMLExport.h"
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace OpenMMCGML {

/**
 * A learned coarse-grained potential of the CGSchNet form.
 *
 * The force acts on a list of particles (by default every particle of the System, in order).
 * Each listed particle i has a bead type t_i in [0, numTypes) and a molecule id g_i; pairs in
 * different molecules never interact, which lets many replicas share one Context.  Exclusions
 * are unordered pairs of positions in the particle list (local indices) within one molecule.
 *
 * For every unordered pair {i, j} of the same molecule that is not excluded and has r_ij < cutoff,
 * with radial basis e(r) (Gaussian or exponential-normal), cosine cutoff f_c(r) and activation act:
 *
 *   h_i = E[t_i]
 *   for each interaction block:
 *     W_ij = (act(e(r_ij) A1 + a1) A2 + a2) * f_c(r_ij)
 *     m_i  = sum_j (h_j B) (.) W_ij
 *     h_i  = h_i + act(m_i C1 + c1) C2 + c2
 *   U = s * sum_i MLP(h_i)
 *
 * All matrices are stored row-major with shape (inputs x outputs), so that a row vector x maps to
 * x M.  s is a global context parameter (default name "cgmlScale", default value 1) whose energy
 * derivative is reported through OpenMM's parameter derivatives.
 *
 * This class only holds parameters; the computation is done by the platform kernels.
 */
class OPENMM_EXPORT_CGML CGSchNetForce : public OpenMM::Force {
public:
    /** The form of the radial basis. */
    enum RBFType {
        /** e_k(r) = exp(-gamma_k (r - mu_k)^2) */
        Gaussian = 0,
        /** e_k(r) = exp(-gamma_k (exp(-alpha (r - r_lo)) - mu_k)^2), alpha = 5 / (cutoff - r_lo) */
        ExpNormal = 1
    };
    /** The activation used inside the filter, update and output networks. */
    enum Activation {
        /** ln(0.5 e^x + 0.5) */
        ShiftedSoftplus = 0,
        Tanh = 1,
        /** x / (1 + e^-x) */
        SiLU = 2
    };
    /** The nine arrays of an interaction block, in the order addInteractionBlock() takes them. */
    enum BlockArray {
        FilterWeights1 = 0,   ///< A1, numRBF x numFilters
        FilterBias1 = 1,      ///< a1, numFilters
        FilterWeights2 = 2,   ///< A2, numFilters x numFilters
        FilterBias2 = 3,      ///< a2, numFilters
        MessageWeights = 4,   ///< B,  numFeatures x numFilters
        UpdateWeights1 = 5,   ///< C1, numFilters x numFeatures
        UpdateBias1 = 6,      ///< c1, numFeatures
        UpdateWeights2 = 7,   ///< C2, numFeatures x numFeatures
        UpdateBias2 = 8       ///< c2, numFeatures
    };
    /**
     * Create a CGSchNetForce.  The radial basis starts as numRBF Gaussians evenly spaced on
     * [0, cutoff] with gamma = 0.5 / spacing^2; every weight starts at zero.
     *
     * @param numTypes     the number of bead types
     * @param numFeatures  the width F of the bead features
     * @param numFilters   the width NF of the continuous filters
     * @param numRBF       the number K of radial basis functions
     * @param cutoff       the cutoff distance, in nm
     */
    CGSchNetForce(int numTypes, int numFeatures, int numFilters, int numRBF, double cutoff);

    int getNumTypes() const { return numTypes; }
    int getNumFeatures() const { return numFeatures; }
    int getNumFilters() const { return numFilters; }
    int getNumRBF() const { return numRBF; }
    /** Get the cutoff distance, in nm. */
    double getCutoff() const { return cutoff; }
    /** Set the cutoff distance, in nm (must be positive). */
    void setCutoff(double distance);
    Activation getActivation() const { return activation; }
    void setActivation(Activation act);

    /**
     * Set the radial basis.
     *
     * @param type         Gaussian or ExpNormal
     * @param centers      the centres mu_k (numRBF values)
     * @param widths       the widths gamma_k (numRBF positive values)
     * @param lowerCutoff  r_lo of the ExpNormal form, in nm (0 <= r_lo < cutoff); ignored by Gaussian
     */
    void setRBFParameters(RBFType type, const std::vector<double>& centers, const std::vector<double>& widths, double lowerCutoff=0.0);
    RBFType getRBFType() const { return rbfType; }
    std::vector<double> getRBFCenters() const { return rbfCenters; }
    std::vector<double> getRBFWidths() const { return rbfWidths; }
    double getRBFLowerCutoff() const { return rbfLowerCutoff; }

    /** Set the embedding table E, numTypes x numFeatures, row-major. */
    void setEmbedding(const std::vector<double>& embedding);
    std::vector<double> getEmbedding() const { return embedding; }

    /**
     * Append an interaction block.  Shapes are given in the BlockArray documentation.
     *
     * @return the index of the new block
     */
    int addInteractionBlock(const std::vector<double>& filterWeights1, const std::vector<double>& filterBias1,
                            const std::vector<double>& filterWeights2, const std::vector<double>& filterBias2,
                            const std::vector<double>& messageWeights,
                            const std::vector<double>& updateWeights1, const std::vector<double>& updateBias1,
                            const std::vector<double>& updateWeights2, const std::vector<double>& updateBias2);
    /** Replace every array of an existing interaction block. */
    void setInteractionBlockParameters(int index, const std::vector<double>& filterWeights1, const std::vector<double>& filterBias1,
                                       const std::vector<double>& filterWeights2, const std::vector<double>& filterBias2,
                                       const std::vector<double>& messageWeights,
                                       const std::vector<double>& updateWeights1, const std::vector<double>& updateBias1,
                                       const std::vector<double>& updateWeights2, const std::vector<double>& updateBias2);
    /** Get one array of an interaction block. */
    std::vector<double> getInteractionBlockArray(int index, BlockArray array) const;
    int getNumInteractionBlocks() const { return (int) blocks.size(); }

    /**
     * Append a layer to the output network.  The first layer takes numFeatures inputs, each later
     * layer the previous layer's outputs; the activation is applied between layers (not after the
     * last), and the last layer must have exactly one output.
     *
     * @param weights  inputs x outputs, row-major
     * @param bias     outputs
     * @return the index of the new layer
     */
    int addOutputLayer(const std::vector<double>& weights, const std::vector<double>& bias);
    void setOutputLayerParameters(int index, const std::vector<double>& weights, const std::vector<double>& bias);
    std::vector<double> getOutputLayerWeights(int index) const;
    std::vector<double> getOutputLayerBias(int index) const;
    int getNumOutputLayers() const { return (int) outputWeights.size(); }
    /** The number of outputs of an output layer. */
    int getOutputLayerSize(int index) const;

    /** Set the System particles the force acts on; an empty list (the default) means all, in order. */
    void setParticles(const std::vector<int>& particles);
    std::vector<int> getParticles() const { return particles; }
    /** Set the bead type of each listed particle. */
    void setBeadTypes(const std::vector<int>& types);
    std::vector<int> getBeadTypes() const { return beadTypes; }
    /** Set the molecule id of each listed particle; an empty list (the default) puts all in molecule 0. */
    void setMolecules(const std::vector<int>& molecules);
    std::vector<int> getMolecules() const { return molecules; }

    /** Exclude a pair of listed particles (positions in the particle list) from interacting. */
    int addExclusion(int particle1, int particle2);
    void getExclusionParticles(int index, int& particle1, int& particle2) const;
    void setExclusionParticles(int index, int particle1, int particle2);
    int getNumExclusions() const { return (int) exclusions.size(); }

    /** Get the name of the global parameter that scales the energy. */
    const std::string& getScaleParameterName() const { return scaleName; }
    void setScaleParameterName(const std::string& name);
    /** Get the default value of the scale parameter. */
    double getDefaultScale() const { return defaultScale; }
    void setDefaultScale(double scale);

    bool usesPeriodicBoundaryConditions() const { return periodic; }
    void setUsesPeriodicBoundaryConditions(bool periodic);

    /**
     * Get the number of grid points of the tabulated filters (0, the default: the filters are
     * evaluated exactly).
     */
    int getFilterTabulationPoints() const { return filterTabulationPoints; }
    /**
     * Select the opt-in fast mode that tabulates the filters.  With numPoints >= 2, each block's
     * filter before the cutoff function, w0(r) = act(e(r) A1 + a1) A2 + a2, is sampled with its
     * exact derivative at numPoints evenly spaced distances on [0, cutoff] and interpolated by
     * cubic Hermite splines; the cosine cutoff f_c(r) stays exact.  With h = cutoff/(numPoints-1),
     * the error of each filter channel is at most h^4/384 max|d^4 w0/dr^4| and that of its
     * derivative at most sqrt(3) h^3/216 max|d^4 w0/dr^4|; computeFilterTabulationError()
     * measures both for the current weights.
     *
     * The number of points is part of a Context's structure: changing it requires a new Context.
     * updateParametersInContext() rebuilds the table from new weights, cutoff or radial basis.
     *
     * @param numPoints  0 (exact filters), or the number of grid points (2 to 1000000)
     */
    void setFilterTabulationPoints(int numPoints);
    /**
     * Measure how closely a table of numPoints grid points reproduces the filters
     * W(r) = w0(r) f_c(r) of the current weights: the largest differences over every block and
     * filter channel on a check grid of four points per table interval, placed where the errors
     * of a cubic Hermite interpolant and of its derivative peak (t = 1/2 and 1/2 -+ sqrt(3)/6 of
     * the interval) and at t = 1/4.
     *
     * @param numPoints  the number of table points to test (at least 2)
     * @return four numbers: the largest |W - W_table|, the largest |dW/dr - dW_table/dr| (per nm),
     *         and, for scale, the largest |W| and |dW/dr| on the same grid
     */
    std::vector<double> computeFilterTabulationError(int numPoints) const;

    /**
     * Copy new weights and scalar settings (cutoff, RBF, activation) into a Context.  Changes of
     * array shapes, of the number of blocks or layers, or of the particles, types, molecules or
     * exclusions cannot be copied and raise an exception; reinitialize the Context for those.
     * A platform that computes in single precision refuses weights beyond the range of float
     * (also when the Context is created); the Context then keeps its old weights.
     */
    void updateParametersInContext(OpenMM::Context& context);

    /**
     * Set a property that selects how a platform computes the force, never what it computes, in
     * Contexts created afterwards (the properties are part of a Context's structure, like the
     * number of filter tabulation points).  Properties let two Contexts in one process differ;
     * one that is not set takes its value from an environment variable when a Context is created,
     * and otherwise its built-in default.
     *
     *   CpuSimd       the CPU platform's arithmetic: "auto" (the default: AVX2+FMA where the
     *                 processor has it, else baseline x86-64), "avx2" (an error where the processor
     *                 or the build lacks it) or "generic" (baseline x86-64).  Default from
     *                 OPENMM_CGML_CPU_SIMD.
     *   CommonTuning  developer settings of the CUDA, OpenCL and HIP kernels, comma-separated
     *                 key=value pairs: singleLaunch=0|1 (all stages in one launch with grid
     *                 barriers, where the platform allows it), groups=N (work groups of that
     *                 launch, 1 to 65536), tilePairs=N, tileBeads=N (pairs and beads per
     *                 work-group item, 1 to 1024); keys not given are chosen for the system.
     *                 Default from OPENMM_CGML_COMMON_TUNING.
     *
     * Platforms ignore the properties of other platforms.  getEffectiveProperties() reports what
     * a Context uses.
     *
     * @param name   the property
     * @param value  its value; an empty string removes the property (the environment variable or
     *               the default applies again)
     * @throws OpenMMException naming the property if the name is unknown or the value invalid
     */
    void setProperty(const std::string& name, const std::string& value);
    /** The properties set with setProperty() (not those taken from the environment or defaults). */
    const std::map<std::string, std::string>& getProperties() const {
        return properties;
    }
    /**
     * The settings that the kernel of a Context uses, whether they come from this force's
     * properties, the environment or the defaults: for each property its platform reads, the
     * value in effect, with every automatic choice resolved (CPU: CpuSimd is "avx2" or
     * "generic"; CUDA, OpenCL, HIP: CommonTuning lists all four keys).  The Reference platform
     * reads none and returns an empty map.
     *
     * @param context  a Context whose System contains this force
     */
    std::map<std::string, std::string> getEffectiveProperties(const OpenMM::Context& context) const;

    /**
     * Check that every setting is consistent, for a System of the given number of particles.
     * Throws an OpenMMException naming the first problem found.
     */
    void validate(int numSystemParticles) const;

protected:
    OpenMM::ForceImpl* createImpl() const;

private:
    int numTypes, numFeatures, numFilters, numRBF;
    double cutoff, rbfLowerCutoff, defaultScale;
    Activation activation;
    RBFType rbfType;
    bool periodic;
    int filterTabulationPoints;
    std::string scaleName;
    std::vector<double> rbfCenters, rbfWidths, embedding;
    std::vector<std::vector<std::vector<double> > > blocks;
    std::vector<std::vector<double> > outputWeights, outputBiases;
    std::vector<int> particles, beadTypes, molecules;
    std::vector<std::pair<int, int> > exclusions;
    std::map<std::string, std::string> properties;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETFORCE_H_*/
