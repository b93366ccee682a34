#ifndef OPENMM_CGML_CPUDISCRIMINATORBIASKERNELS_H_
#define OPENMM_CGML_CPUDISCRIMINATORBIASKERNELS_H_

#include "DiscriminatorBiasKernels.h"
#include "openmm/Platform.h"
#include "openmm/cpu/CpuPlatform.h"
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * Evaluates a DiscriminatorBiasForce on the CPU platform: the features (and their gradients) in
 * double precision, the networks in single precision, molecules spread over the platform's
 * threads.  Molecules share no particle, so every thread adds the forces of its own molecules.
 */
class CpuCalcDiscriminatorBiasForceKernel : public CalcDiscriminatorBiasForceKernel {
public:
    CpuCalcDiscriminatorBiasForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::CpuPlatform::PlatformData& data) :
            CalcDiscriminatorBiasForceKernel(name, platform), data(data), usePeriodic(false) {
    }
    void initialize(const OpenMM::System& system, const DiscriminatorBiasForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const DiscriminatorBiasForce& force);
private:
    struct Layer {
        int inputs, outputs;
        std::vector<float> weights;      // inputs x outputs, row-major
        std::vector<float> transposed;   // outputs x inputs, row-major: the reverse pass
        std::vector<float> bias;
    };
    struct Network {
        int activation;
        float clamp;
        std::vector<Layer> layers;
    };
    void setParameters(const DiscriminatorBiasForce& force);
    /** The summed clamped logits of one molecule's networks; adds lambda kT dlogit/dx to forces. */
    double evaluateMolecule(int molecule, const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, double forceScale,
                            std::vector<OpenMM::Vec3>* forces, int thread);
    OpenMM::CpuPlatform::PlatformData& data;
    std::vector<std::vector<int> > molecules;
    std::vector<int> distances, angles, dihedrals;
    int numFeatures, maxWidth;
    std::vector<double> means, inverseStds;
    std::vector<Network> networks;
    double temperature;
    std::string scaleParameterName;
    bool usePeriodic;
    // per-thread workspace
    struct Workspace {
        std::vector<double> features;
        std::vector<int> beads;
        std::vector<OpenMM::Vec3> gradient;
        std::vector<float> z, dz, pre, out, gradA, gradB;
    };
    std::vector<Workspace> workspaces;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CPUDISCRIMINATORBIASKERNELS_H_*/
