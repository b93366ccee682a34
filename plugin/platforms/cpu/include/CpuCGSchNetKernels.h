#ifndef OPENMM_CGML_CPUCGSCHNETKERNELS_H_
#define OPENMM_CGML_CPUCGSCHNETKERNELS_H_

#include "CGSchNetKernels.h"
#include "internal/CGSchNetTopology.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/Platform.h"
#include "openmm/Vec3.h"
#include "openmm/cpu/CpuPlatform.h"
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace OpenMMCGML {

struct CpuCGSchNetMath;

/**
 * Evaluates a CGSchNetForce on the CPU platform: single-precision arithmetic (energies summed in
 * double), vectorised matrix products over tiles of pairs and beads, and the threads of the
 * platform's thread pool (the Threads property).
 *
 * Each evaluation: (1) the pairs inside the cutoff are found (main thread); (2) in parallel over
 * pairs, each pair's filter W(r) and dW/dr of every block is computed once (pairs are symmetric),
 * exactly or from the table of the fast mode; (3) in parallel over beads, block by block, messages
 * are gathered from each bead's own pair list and the dense layers run as small matrix products;
 * the output network and its backward pass follow in the same pass; (4) the backward pass runs
 * block by block in reverse, gathering dU/dy per bead and accumulating dU/dr per pair; (5) forces
 * are gathered per bead.  Every sum is computed by one thread in a fixed order, so forces are
 * deterministic and do not depend on the number of threads.
 *
 * The weights are read through CGSchNetWeights and converted to float, packed for the matrix
 * products (CpuCGSchNetMath.h).  The arithmetic is compiled for a baseline x86-64 and for
 * AVX2+FMA; the AVX2 code is used when the processor has it, unless the force's CpuSimd property
 * (default: the environment variable OPENMM_CGML_CPU_SIMD) asks for "generic".
 */
class CpuCalcCGSchNetForceKernel : public CalcCGSchNetForceKernel {
public:
    CpuCalcCGSchNetForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::CpuPlatform::PlatformData& data);
    ~CpuCalcCGSchNetForceKernel();
    void initialize(const OpenMM::System& system, const CGSchNetForce& force);
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    void copyParametersToContext(OpenMM::ContextImpl& context, const CGSchNetForce& force);
    /** CpuSimd: the instruction set in use, "avx2" or "generic". */
    std::map<std::string, std::string> getEffectiveProperties() const;
private:
    struct PackedWeights;
    struct Buffers;
    void setParameters(const CGSchNetWeights& weights);
    void findPairs(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* boxVectors);
    void runThreads(bool derivatives);
    void threadWork(int thread, bool derivatives);
    void gatherGradient(int first, int last, std::vector<OpenMM::Vec3>& forces);
    OpenMM::CpuPlatform::PlatformData& data;
    const CpuCGSchNetMath* math;
    CGSchNetTopology topology;
    std::string scaleParameterName;
    bool usePeriodic;
    int numBeads;
    std::unique_ptr<PackedWeights> weights;
    std::unique_ptr<Buffers> buffers;
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CPUCGSCHNETKERNELS_H_*/
