#include "CpuCGSchNetKernels.h"
#include "CpuCGSchNetMath.h"
#include "internal/CGMLKernelOptions.h"
#include "internal/CGMLMath.h"
#include "internal/CGSchNetFilterTable.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/internal/ThreadPool.h"
#include "openmm/reference/ReferenceForce.h"
#include "openmm/reference/ReferencePlatform.h"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <sstream>
#include <condition_variable>
#include <mutex>
#include <thread>
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define CGML_CPU_PAUSE() _mm_pause()
#else
#define CGML_CPU_PAUSE() do {} while (0)
#endif

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

/** Zero-initialised float storage aligned to 64 bytes, grown on demand (never shrunk). */
class AlignedFloats {
public:
    AlignedFloats() : capacity(0), data(nullptr) {
    }
    /** Make room for n floats; contents are zeroed when the storage is reallocated. */
    void reserve(size_t n, double growth=1.0) {
        if (n <= capacity && data != nullptr)
            return;
        size_t size = max(n, (size_t) (n*growth));
        storage.reset(new float[size+16]());
        size_t address = reinterpret_cast<size_t>(storage.get());
        data = storage.get()+((64-address%64)%64)/sizeof(float);
        capacity = size;
    }
    float* get() const {
        return data;
    }
private:
    unique_ptr<float[]> storage;
    size_t capacity;
    float* data;
};

/**
 * A thread barrier for the phases of an evaluation, which are short (microseconds to
 * milliseconds).  A thread that arrives early spins briefly, then yields its core repeatedly, and
 * finally sleeps on a condition variable: on a quiet machine the others arrive within the spin or
 * yield loop, and on a busy one (more threads than free cores) no time slice is lost to spinning.
 */
class PhaseBarrier {
public:
    PhaseBarrier() : count(1), arrived(0), generation(0), sleepers(0) {
    }
    void reset(int numThreads) {
        count = numThreads;
        arrived.store(0);
        generation.store(0);
        sleepers.store(0);
    }
    void wait() {
        const int current = generation.load();
        if (arrived.fetch_add(1) == count-1) {
            arrived.store(0);
            generation.store(current+1);
            // Sequentially consistent with the sleepers' increment below: either this sees a
            // sleeper, or the sleeper sees the new generation before it waits.
            if (sleepers.load() > 0) {
                lock_guard<mutex> guard(lock);
                condition.notify_all();
            }
            return;
        }
        // Spin for about a microsecond, then offer the core to other threads (when the machine
        // is busy, perhaps the very thread this one waits for), then sleep.
        for (int spins = 0; spins < 100; spins++) {
            if (generation.load(memory_order_acquire) != current)
                return;
            CGML_CPU_PAUSE();
        }
        for (int yields = 0; yields < 1000; yields++) {
            if (generation.load(memory_order_acquire) != current)
                return;
            this_thread::yield();
        }
        unique_lock<mutex> guard(lock);
        sleepers.fetch_add(1);
        while (generation.load() == current)
            condition.wait(guard);
        sleepers.fetch_sub(1);
    }
private:
    int count;
    atomic<int> arrived, generation, sleepers;
    mutex lock;
    condition_variable condition;
};

/** A work counter on its own cache line. */
struct alignas(64) PhaseCounter {
    atomic<int> next;
};

bool processorHasAvx2() {
#if defined(OPENMM_CGML_CPU_AVX2) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

/** The arithmetic a force asks for (its CpuSimd property, else OPENMM_CGML_CPU_SIMD, else automatic). */
const CpuCGSchNetMath* selectMath(const CGSchNetForce& force) {
    CGMLKernelOptions::CpuInstructionSet requested = CGMLKernelOptions::getCpuInstructionSet(force.getProperties(), "CGSchNetForce");
    if (requested == CGMLKernelOptions::CpuGeneric)
        return &CpuGeneric::getMath();
#if defined(OPENMM_CGML_CPU_AVX2)
    if (processorHasAvx2())
        return &CpuAvx2::getMath();
#endif
    if (requested == CGMLKernelOptions::CpuAvx2)
        throw OpenMMException(string("CGSchNetForce: CpuSimd is avx2, but ")+
#if defined(OPENMM_CGML_CPU_AVX2)
                              "this processor lacks AVX2 or FMA"+
#else
                              "the plugin was built without the AVX2 code"+
#endif
                              "; use auto or generic");
    return &CpuGeneric::getMath();
}

/** Split `count` items into chunks of at most maxSize, their number a multiple of numThreads. */
void makeChunks(int count, int maxSize, int numThreads, int& numChunks, int& chunkSize) {
    if (count == 0) {
        numChunks = chunkSize = 0;
        return;
    }
    numChunks = (count+maxSize-1)/maxSize;
    numChunks = ((numChunks+numThreads-1)/numThreads)*numThreads;
    chunkSize = (count+numChunks-1)/numChunks;
    numChunks = (count+chunkSize-1)/chunkSize;
}

} // namespace

/** The weights in float, packed for the matrix products (CpuCGSchNetMath.h), and the model that points at them. */
struct CpuCalcCGSchNetForceKernel::PackedWeights {
    deque<AlignedFloats> arrays;
    vector<double> centers, widths;
    vector<CpuCGSchNetBlockWeights> blocks;
    vector<CpuCGSchNetLayerWeights> layers;
    CpuCGSchNetModel model;

    float* allocate(size_t size) {
        arrays.emplace_back();
        arrays.back().reserve(size);
        return arrays.back().get();
    }
    /** Pack a row-major inputs x outputs matrix (or its transpose) in panels of 16 columns. */
    CpuCGSchNetPackedMatrix pack(const vector<double>& matrix, int inputs, int outputs, bool transpose) {
        CpuCGSchNetPackedMatrix packed;
        packed.inputs = (transpose ? outputs : inputs);
        packed.outputs = (transpose ? inputs : outputs);
        const int panels = (packed.outputs+15)/16;
        float* data = allocate((size_t) panels*packed.inputs*16);
        for (int panel = 0; panel < panels; panel++)
            for (int k = 0; k < packed.inputs; k++)
                for (int c = 0; c < 16; c++) {
                    int column = 16*panel+c;
                    double value = 0.0;
                    if (column < packed.outputs)
                        value = (transpose ? matrix[(size_t) column*outputs+k] : matrix[(size_t) k*outputs+column]);
                    data[((size_t) panel*packed.inputs+k)*16+c] = (float) value;
                }
        packed.data = data;
        return packed;
    }
    /** A vector (or the rows of a matrix) with each row padded to a multiple of 16. */
    const float* padRows(const vector<double>& values, int rows, int columns) {
        const int width = cgmlPadded(columns);
        float* data = allocate((size_t) rows*width);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                data[(size_t) r*width+c] = (float) values[(size_t) r*columns+c];
        return data;
    }
};

struct CpuCalcCGSchNetForceKernel::Buffers {
    vector<Vec3> positions;
    vector<int> pairI, pairJ, candidateInside, beadCount, beadPair, beadOther;
    vector<double> pairR, pairCutoff, pairCutoffDeriv, pairEnergyDeriv, beadEnergy;
    vector<Vec3> pairDelta;
    AlignedFloats pairW, pairWDeriv, h, g, y, updateDeriv, messageGrad;
    deque<AlignedFloats> scratch;
    CpuCGSchNetState state;
    vector<PhaseCounter> counters;
    PhaseBarrier barrier;
    int numPairChunks, pairChunkSize, numBeadChunks, beadChunkSize;
    vector<Vec3>* forces;
};

CpuCalcCGSchNetForceKernel::CpuCalcCGSchNetForceKernel(string name, const Platform& platform, CpuPlatform::PlatformData& data) :
        CalcCGSchNetForceKernel(name, platform), data(data), math(nullptr), usePeriodic(false), numBeads(0) {
}

CpuCalcCGSchNetForceKernel::~CpuCalcCGSchNetForceKernel() {
}

map<string, string> CpuCalcCGSchNetForceKernel::getEffectiveProperties() const {
    map<string, string> properties;
    if (math != nullptr)
        properties[CGMLKernelOptions::CpuSimdProperty] = (math == &CpuGeneric::getMath() ? "generic" : "avx2");
    return properties;
}

void CpuCalcCGSchNetForceKernel::initialize(const System& system, const CGSchNetForce& force) {
    CGSchNetWeights forceWeights(force);
    forceWeights.checkSinglePrecisionRange("the CPU platform");
    math = selectMath(force);
    topology = CGSchNetTopology::build(force, system.getNumParticles());
    numBeads = (int) topology.particles.size();
    scaleParameterName = force.getScaleParameterName();
    usePeriodic = force.usesPeriodicBoundaryConditions();
    setParameters(forceWeights);

    buffers.reset(new Buffers());
    Buffers& b = *buffers;
    const CpuCGSchNetModel& model = weights->model;
    const int N = numBeads, F = cgmlPadded(model.numFeatures), NF = cgmlPadded(model.numFilters), L = model.numBlocks;
    b.positions.resize(N);
    b.candidateInside.resize(topology.pairs.size());
    b.beadCount.resize(N);
    b.beadPair.resize(topology.neighborPair.size());
    b.beadOther.resize(topology.neighborPair.size());
    b.beadEnergy.resize(N);
    b.h.reserve((size_t) N*F);
    b.g.reserve((size_t) N*F);
    b.y.reserve((size_t) L*N*NF);
    b.updateDeriv.reserve((size_t) L*N*F);
    b.messageGrad.reserve((size_t) 2*N*NF);
    const int numThreads = data.threads.getNumThreads();
    for (int t = 0; t < numThreads; t++) {
        b.scratch.emplace_back();
        b.scratch.back().reserve(math->scratchSize(model));
    }
    b.counters = vector<PhaseCounter>(2*L+2);
    CpuCGSchNetState& state = b.state;
    state.numBeads = N;
    state.types = topology.types.data();
    state.beadStart = topology.neighborStart.data();
    state.beadCount = b.beadCount.data();
    state.beadPair = b.beadPair.data();
    state.beadOther = b.beadOther.data();
    state.h = b.h.get();
    state.g = b.g.get();
    state.y = b.y.get();
    state.updateDeriv = b.updateDeriv.get();
    state.messageGrad = b.messageGrad.get();
    state.beadEnergy = b.beadEnergy.data();
}

void CpuCalcCGSchNetForceKernel::setParameters(const CGSchNetWeights& source) {
    unique_ptr<PackedWeights> w(new PackedWeights());
    CpuCGSchNetModel& model = w->model;
    const int F = source.numFeatures, NF = source.numFilters, K = source.numRBF, L = source.getNumBlocks();
    model.numFeatures = F;
    model.numFilters = NF;
    model.numRBF = K;
    model.numBlocks = L;
    model.numLayers = (int) source.outputLayers.size();
    model.activation = source.activation;
    model.rbfType = source.rbfType;
    model.cutoff = source.cutoff;
    model.rbfLowerCutoff = source.rbfLowerCutoff;
    model.rbfAlpha = source.getRBFAlpha();
    w->centers = source.rbfCenters;
    w->widths = source.rbfWidths;
    model.rbfCenters = w->centers.data();
    model.rbfWidths = w->widths.data();
    model.embedding = w->padRows(source.embedding, source.numTypes, F);
    for (const CGSchNetWeights::Block& weightsOfBlock : source.blocks) {
        CpuCGSchNetBlockWeights block;
        block.A1 = w->pack(weightsOfBlock.filterWeights1, K, NF, false);
        block.A2 = w->pack(weightsOfBlock.filterWeights2, NF, NF, false);
        block.B = w->pack(weightsOfBlock.messageWeights, F, NF, false);
        block.BT = w->pack(weightsOfBlock.messageWeights, F, NF, true);
        block.C1 = w->pack(weightsOfBlock.updateWeights1, NF, F, false);
        block.C1T = w->pack(weightsOfBlock.updateWeights1, NF, F, true);
        block.C2 = w->pack(weightsOfBlock.updateWeights2, F, F, false);
        block.C2T = w->pack(weightsOfBlock.updateWeights2, F, F, true);
        block.a1 = w->padRows(weightsOfBlock.filterBias1, 1, NF);
        block.a2 = w->padRows(weightsOfBlock.filterBias2, 1, NF);
        block.c1 = w->padRows(weightsOfBlock.updateBias1, 1, F);
        block.c2 = w->padRows(weightsOfBlock.updateBias2, 1, F);
        w->blocks.push_back(block);
    }
    for (const CGMLDenseLayer& layerWeights : source.outputLayers) {
        CpuCGSchNetLayerWeights layer;
        layer.W = w->pack(layerWeights.weights, layerWeights.inputs, layerWeights.outputs, false);
        layer.WT = w->pack(layerWeights.weights, layerWeights.inputs, layerWeights.outputs, true);
        layer.bias = w->padRows(layerWeights.bias, 1, layerWeights.outputs);
        w->layers.push_back(layer);
    }
    model.blocks = w->blocks.data();
    model.layers = w->layers.data();
    model.table = nullptr;
    model.tableIntervals = 0;
    model.tableInverseSpacing = 0.0;
    if (source.filterTable != nullptr) {
        const CGSchNetFilterTable& table = *source.filterTable;
        const int intervals = table.getNumIntervals(), NFP = cgmlPadded(NF);
        const vector<double>& coefficients = table.getCoefficients();
        float* data = w->allocate((size_t) L*intervals*4*NFP);
        // Interval-major here (the table is block-major): one pair reads one contiguous stretch.
        for (int b = 0; b < L; b++)
            for (int n = 0; n < intervals; n++)
                for (int c = 0; c < 4; c++)
                    for (int f = 0; f < NF; f++)
                        data[(((size_t) n*L+b)*4+c)*NFP+f] = (float) coefficients[(((size_t) b*intervals+n)*4+c)*NF+f];
        model.table = data;
        model.tableIntervals = intervals;
        model.tableInverseSpacing = 1.0/table.getSpacing();
    }
    weights = move(w);
}

void CpuCalcCGSchNetForceKernel::findPairs(const vector<Vec3>& positions, const Vec3* boxVectors) {
    Buffers& b = *buffers;
    const double cutoff = weights->model.cutoff, cutoff2 = cutoff*cutoff;
    b.pairI.clear();
    b.pairJ.clear();
    b.pairR.clear();
    b.pairDelta.clear();
    for (size_t c = 0; c < topology.pairs.size(); c++) {
        const int i = topology.pairs[c].first, j = topology.pairs[c].second;
        Vec3 delta = (boxVectors == nullptr ? positions[j]-positions[i] : ReferenceForce::getDeltaRPeriodic(positions[i], positions[j], boxVectors));
        double r2 = delta.dot(delta);
        b.candidateInside[c] = -1;
        if (r2 > cutoff2*(1.0+1e-12))
            continue;
        double r = sqrt(r2);
        if (!(r < cutoff))
            continue;
        if (r == 0.0) {
            stringstream message;
            message << "CGSchNetForce: particles " << topology.particles[i] << " and " << topology.particles[j] <<
                    " are at the same position, where the force between them is undefined";
            throw OpenMMException(message.str());
        }
        b.candidateInside[c] = (int) b.pairI.size();
        b.pairI.push_back(i);
        b.pairJ.push_back(j);
        b.pairR.push_back(r);
        b.pairDelta.push_back(delta);
    }
    const int P = (int) b.pairI.size();
    b.pairCutoff.resize(P);
    b.pairCutoffDeriv.resize(P);
    b.pairEnergyDeriv.resize(P);
    for (int p = 0; p < P; p++)
        CGMLMath::cosineCutoff(b.pairR[p], cutoff, b.pairCutoff[p], b.pairCutoffDeriv[p]);
    // Each bead's pairs inside the cutoff, in the (sorted) order of its candidate list.
    for (int i = 0; i < numBeads; i++) {
        int count = 0, start = topology.neighborStart[i];
        for (int e = start; e < topology.neighborStart[i+1]; e++) {
            int inside = b.candidateInside[topology.neighborPair[e]];
            if (inside >= 0) {
                b.beadPair[start+count] = inside;
                b.beadOther[start+count] = topology.neighborOther[e];
                count++;
            }
        }
        b.beadCount[i] = count;
    }
    const int NF = cgmlPadded(weights->model.numFilters), L = weights->model.numBlocks;
    b.pairW.reserve((size_t) L*P*NF, 1.25);
    b.pairWDeriv.reserve((size_t) L*P*NF, 1.25);
    CpuCGSchNetState& state = b.state;
    state.numPairs = P;
    state.pairI = b.pairI.data();
    state.pairJ = b.pairJ.data();
    state.pairR = b.pairR.data();
    state.pairCutoff = b.pairCutoff.data();
    state.pairCutoffDeriv = b.pairCutoffDeriv.data();
    state.pairEnergyDeriv = b.pairEnergyDeriv.data();
    state.pairW = b.pairW.get();
    state.pairWDeriv = b.pairWDeriv.get();
    state.pairBlockStride = (size_t) P*NF;
}

void CpuCalcCGSchNetForceKernel::gatherGradient(int first, int last, vector<Vec3>& forces) {
    const Buffers& b = *buffers;
    for (int i = first; i < last; i++) {
        Vec3 gradient;
        const int start = topology.neighborStart[i];
        for (int e = start; e < start+b.beadCount[i]; e++) {
            int p = b.beadPair[e];
            double factor = b.pairEnergyDeriv[p]/b.pairR[p];
            // dr/dx_j = delta/r and dr/dx_i = -delta/r, with delta = x_j - x_i.
            gradient += b.pairDelta[p]*(b.pairJ[p] == i ? factor : -factor);
        }
        forces[topology.particles[i]] -= gradient;
    }
}

void CpuCalcCGSchNetForceKernel::threadWork(int thread, bool derivatives) {
    Buffers& b = *buffers;
    const CpuCGSchNetModel& model = weights->model;
    const CpuCGSchNetState& state = b.state;
    float* scratch = b.scratch[thread].get();
    const int L = model.numBlocks, N = numBeads, P = state.numPairs;
    auto pairRange = [&](int chunk, int& first, int& last) {
        first = chunk*b.pairChunkSize;
        last = min(P, first+b.pairChunkSize);
    };
    auto beadRange = [&](int chunk, int& first, int& last) {
        first = chunk*b.beadChunkSize;
        last = min(N, first+b.beadChunkSize);
    };
    int phase = 0, first, last;
    // Filters of every pair and block; embedding and y of the first block.
    for (int chunk; (chunk = b.counters[phase].next.fetch_add(1, memory_order_relaxed)) < b.numPairChunks+b.numBeadChunks; ) {
        if (chunk < b.numPairChunks) {
            pairRange(chunk, first, last);
            math->computeFilters(model, state, first, last, derivatives, scratch);
        }
        else {
            beadRange(chunk-b.numPairChunks, first, last);
            math->embed(model, state, first, last, scratch);
        }
    }
    b.barrier.wait();
    for (int block = 0; block < L; block++) {
        phase++;
        for (int chunk; (chunk = b.counters[phase].next.fetch_add(1, memory_order_relaxed)) < b.numBeadChunks; ) {
            beadRange(chunk, first, last);
            math->forwardBlock(model, state, block, first, last, derivatives, scratch);
        }
        if (derivatives || block+1 < L)
            b.barrier.wait();
    }
    if (!derivatives)
        return;
    for (int block = L-1; block >= 0; block--) {
        phase++;
        for (int chunk; (chunk = b.counters[phase].next.fetch_add(1, memory_order_relaxed)) < b.numBeadChunks+b.numPairChunks; ) {
            if (chunk < b.numBeadChunks) {
                beadRange(chunk, first, last);
                math->backwardBlock(model, state, block, first, last, scratch);
            }
            else {
                pairRange(chunk-b.numBeadChunks, first, last);
                math->pairDerivatives(model, state, block, first, last);
            }
        }
        b.barrier.wait();
    }
    phase++;
    for (int chunk; (chunk = b.counters[phase].next.fetch_add(1, memory_order_relaxed)) < b.numBeadChunks; ) {
        beadRange(chunk, first, last);
        gatherGradient(first, last, *b.forces);
    }
}

void CpuCalcCGSchNetForceKernel::runThreads(bool derivatives) {
    Buffers& b = *buffers;
    ThreadPool& threads = data.threads;
    const CpuCGSchNetModel& model = weights->model;
    // Threads to use: each must get enough multiply-adds per phase to repay its barriers
    // (about 2 microseconds of work each); tiny systems run on the calling thread.
    const double F = model.numFeatures, NF = model.numFilters, K = model.numRBF;
    const double pairWork = (model.table == nullptr ? 2*(K+NF)*NF : 4*NF)*b.state.numPairs;
    const double beadWork = 6*F*NF*numBeads;
    const double phaseWork = (pairWork+beadWork)*model.numBlocks/(2*model.numBlocks+2);
    const int numThreads = max(1, min(threads.getNumThreads(), (int) (phaseWork/100000)));
    // Exact filters: tiles of up to 32 pairs; tabulated ones are cheap, so take larger chunks.
    makeChunks(b.state.numPairs, model.table == nullptr ? 32 : 256, numThreads, b.numPairChunks, b.pairChunkSize);
    makeChunks(numBeads, 16, numThreads, b.numBeadChunks, b.beadChunkSize);
    for (PhaseCounter& counter : b.counters)
        counter.next.store(0, memory_order_relaxed);
    b.barrier.reset(numThreads);
    if (numThreads == 1) {
        threadWork(0, derivatives);
        return;
    }
    threads.execute([&] (ThreadPool& pool, int thread) {
        if (thread < numThreads)
            threadWork(thread, derivatives);
    });
    threads.waitForThreads();
}

double CpuCalcCGSchNetForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ReferencePlatform::PlatformData& refData = *reinterpret_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
    Buffers& b = *buffers;
    const vector<Vec3>& positions = *refData.positions;
    bool finite = true;
    for (int i = 0; i < numBeads; i++) {
        const Vec3& position = positions[topology.particles[i]];
        b.positions[i] = position;
        finite &= CGMLMath::isFinite(position);
    }
    if (!finite) {
        // A non-finite distance is never inside the cutoff, so the bead would silently drop out
        // of every pair.  The function is undefined there: report NaN, as OpenMM's own forces do.
        const double nan = numeric_limits<double>::quiet_NaN();
        if (includeForces)
            for (int i = 0; i < numBeads; i++)
                (*refData.forces)[topology.particles[i]] += Vec3(nan, nan, nan);
        (*refData.energyParameterDerivatives)[scaleParameterName] += nan;
        return includeEnergy ? nan : 0.0;
    }
    const Vec3* box = (usePeriodic ? refData.periodicBoxVectors : nullptr);
    if (box != nullptr)
        CGMLMath::checkCutoffFitsBox(weights->model.cutoff, box[0], box[1], box[2]);
    findPairs(b.positions, box);
    const double scale = context.getParameter(scaleParameterName);
    b.state.scale = (float) scale;
    b.forces = refData.forces;
    runThreads(includeForces);
    double outputSum = 0.0;
    for (int i = 0; i < numBeads; i++)
        outputSum += b.beadEnergy[i];
    // dU/ds; added rather than assigned because other forces may use the same parameter.
    (*refData.energyParameterDerivatives)[scaleParameterName] += outputSum;
    return includeEnergy ? scale*outputSum : 0.0;
}

void CpuCalcCGSchNetForceKernel::copyParametersToContext(ContextImpl& context, const CGSchNetForce& force) {
    if (buffers == nullptr)
        throw OpenMMException("CGSchNetForce: updateParametersInContext() called before the kernel was initialized");
    // Before anything is replaced: a refused update leaves the Context with its old weights.
    CGSchNetWeights forceWeights(force);
    forceWeights.checkSinglePrecisionRange("the CPU platform");
    setParameters(forceWeights);
}
