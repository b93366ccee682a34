#include "CpuDiscriminatorBiasKernels.h"
#include "DiscriminatorBiasReferenceModel.h"
#include "internal/CGMLMath.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/internal/ThreadPool.h"
#include "openmm/reference/ReferencePlatform.h"
#include <algorithm>
#include <cmath>
#include <limits>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

inline float activate(int kind, float x) {
    if (kind == 0)
        return max(x, 0.0f)+log1p(exp(-fabs(x)))-0.69314718f;
    if (kind == 1)
        return tanh(x);
    return x/(1.0f+exp(-x));
}

inline float activateDerivative(int kind, float x) {
    if (kind == 0)
        return 1.0f/(1.0f+exp(-x));
    if (kind == 1) {
        float t = tanh(x);
        return 1.0f-t*t;
    }
    float s = 1.0f/(1.0f+exp(-x));
    return s+x*s*(1.0f-s);
}

} // namespace

void CpuCalcDiscriminatorBiasForceKernel::initialize(const System& system, const DiscriminatorBiasForce& force) {
    force.validate(system.getNumParticles());
    for (int m = 0; m < force.getNumMolecules(); m++)
        molecules.push_back(force.getMoleculeParticles(m));
    if (molecules.empty()) {
        molecules.push_back(vector<int>());
        for (int i = 0; i < system.getNumParticles(); i++)
            molecules[0].push_back(i);
    }
    for (int i = 0; i < force.getNumDistances(); i++)
        for (int b : force.getDistance(i))
            distances.push_back(b);
    for (int i = 0; i < force.getNumAngles(); i++)
        for (int b : force.getAngle(i))
            angles.push_back(b);
    for (int i = 0; i < force.getNumDihedrals(); i++)
        for (int b : force.getDihedral(i))
            dihedrals.push_back(b);
    numFeatures = force.getNumFeatures();
    networks.resize(force.getNumNetworks());
    setParameters(force);
    scaleParameterName = force.getScaleParameterName();
    usePeriodic = force.usesPeriodicBoundaryConditions();
    maxWidth = numFeatures;
    int maxTotal = 1;
    for (const Network& network : networks) {
        int total = 0;
        for (const Layer& layer : network.layers) {
            maxWidth = max(maxWidth, layer.outputs);
            total += layer.outputs;
        }
        maxTotal = max(maxTotal, total);
    }
    workspaces.resize(data.threads.getNumThreads());
    for (Workspace& w : workspaces) {
        w.features.resize(numFeatures);
        w.beads.resize(4*numFeatures);
        w.gradient.resize(4*numFeatures);
        w.z.resize(numFeatures);
        w.dz.resize(numFeatures);
        w.pre.resize(maxTotal);
        w.out.resize(maxTotal);
        w.gradA.resize(maxWidth);
        w.gradB.resize(maxWidth);
    }
}

void CpuCalcDiscriminatorBiasForceKernel::setParameters(const DiscriminatorBiasForce& force) {
    if (force.getNumNetworks() != (int) networks.size() || force.getNumFeatures() != numFeatures)
        throw OpenMMException("DiscriminatorBiasForce: the new parameters have other shapes than the Context's");
    // every value must fit in a float before any is replaced, so a refused update keeps the old weights
    vector<double> all;
    for (int k = 0; k < force.getNumNetworks(); k++) {
        all.push_back(force.getNetworkClamp(k));
        for (int l = 0; l < force.getNumNetworkLayers(k); l++) {
            vector<double> w = force.getNetworkLayerWeights(k, l), b = force.getNetworkLayerBias(k, l);
            all.insert(all.end(), w.begin(), w.end());
            all.insert(all.end(), b.begin(), b.end());
        }
    }
    checkFloatRange(all, 0, "a weight or clamp", "the CPU platform", "DiscriminatorBiasForce");
    means = force.getFeatureMeans();
    inverseStds.clear();
    for (double std : force.getFeatureStds())
        inverseStds.push_back(1.0/std);
    temperature = force.getTemperature();
    for (int k = 0; k < force.getNumNetworks(); k++) {
        Network& network = networks[k];
        network.activation = (int) force.getNetworkActivation(k);
        network.clamp = (float) force.getNetworkClamp(k);
        network.layers.clear();
        int inputs = numFeatures;
        for (int l = 0; l < force.getNumNetworkLayers(k); l++) {
            Layer layer;
            layer.inputs = inputs;
            layer.outputs = force.getNetworkLayerSize(k, l);
            vector<double> w = force.getNetworkLayerWeights(k, l), b = force.getNetworkLayerBias(k, l);
            layer.weights.assign(w.begin(), w.end());
            layer.bias.assign(b.begin(), b.end());
            layer.transposed.resize(w.size());
            for (int i = 0; i < layer.inputs; i++)
                for (int o = 0; o < layer.outputs; o++)
                    layer.transposed[o*layer.inputs+i] = (float) w[i*layer.outputs+o];
            network.layers.push_back(layer);
            inputs = layer.outputs;
        }
    }
}

double CpuCalcDiscriminatorBiasForceKernel::evaluateMolecule(int molecule, const vector<Vec3>& positions, const Vec3* box,
                                                            double forceScale, vector<Vec3>* forces, int thread) {
    Workspace& w = workspaces[thread];
    DiscriminatorBiasReferenceModel::computeFeatures(positions, molecules[molecule], distances, angles, dihedrals, box,
                                                     w.features.data(), w.beads.data(), w.gradient.data());
    for (int i = 0; i < numFeatures; i++) {
        w.z[i] = (float) ((w.features[i]-means[i])*inverseStds[i]);
        w.dz[i] = 0.0f;
    }
    double logitSum = 0.0;
    for (const Network& network : networks) {
        int numLayers = network.layers.size();
        const float* input = w.z.data();
        int offset = 0;
        for (int l = 0; l < numLayers; l++) {
            const Layer& layer = network.layers[l];
            float* pre = &w.pre[offset];
            for (int o = 0; o < layer.outputs; o++)
                pre[o] = layer.bias[o];
            for (int i = 0; i < layer.inputs; i++) {
                const float x = input[i];
                const float* row = &layer.weights[i*layer.outputs];
                for (int o = 0; o < layer.outputs; o++)
                    pre[o] += x*row[o];
            }
            if (l < numLayers-1) {
                float* out = &w.out[offset];
                for (int o = 0; o < layer.outputs; o++)
                    out[o] = activate(network.activation, pre[o]);
                input = out;
            }
            offset += layer.outputs;
        }
        float logit = w.pre[offset-1], slope = 1.0f;
        if (network.clamp > 0.0f) {
            float t = tanh(logit/network.clamp);
            logit = network.clamp*t;
            slope = 1.0f-t*t;
        }
        logitSum += logit;
        if (forces == NULL)
            continue;
        w.gradA[0] = slope;
        int end = offset;
        for (int l = numLayers-1; l >= 0; l--) {
            const Layer& layer = network.layers[l];
            int start = end-layer.outputs;
            if (l < numLayers-1)
                for (int o = 0; o < layer.outputs; o++)
                    w.gradA[o] *= activateDerivative(network.activation, w.pre[start+o]);
            float* target = (l == 0 ? w.dz.data() : w.gradB.data());
            if (l > 0)
                fill(w.gradB.begin(), w.gradB.begin()+layer.inputs, 0.0f);
            for (int o = 0; o < layer.outputs; o++) {
                const float g = w.gradA[o];
                const float* row = &layer.transposed[o*layer.inputs];
                for (int i = 0; i < layer.inputs; i++)
                    target[i] += g*row[i];
            }
            if (l > 0)
                copy(w.gradB.begin(), w.gradB.begin()+layer.inputs, w.gradA.begin());
            end = start;
        }
    }
    if (forces != NULL)
        for (int f = 0; f < numFeatures; f++) {
            double weight = forceScale*w.dz[f]*inverseStds[f];
            for (int k = 0; k < 4; k++)
                if (w.beads[4*f+k] >= 0)
                    (*forces)[w.beads[4*f+k]] += w.gradient[4*f+k]*weight;
        }
    return logitSum;
}

double CpuCalcDiscriminatorBiasForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ReferencePlatform::PlatformData& refData = *reinterpret_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
    const vector<Vec3>& positions = *refData.positions;
    const Vec3* box = (usePeriodic ? refData.periodicBoxVectors : NULL);
    for (const vector<int>& molecule : molecules)
        for (int p : molecule)
            if (!CGMLMath::isFinite(positions[p])) {
                (*refData.energyParameterDerivatives)[scaleParameterName] += numeric_limits<double>::quiet_NaN();
                return numeric_limits<double>::quiet_NaN();
            }
    const double scale = context.getParameter(scaleParameterName);
    const double kT = 0.00831446261815324*temperature;
    vector<Vec3>* forces = (includeForces ? refData.forces : NULL);
    ThreadPool& threads = data.threads;
    int numThreads = min(threads.getNumThreads(), (int) molecules.size());
    vector<double> sums(threads.getNumThreads(), 0.0);
    threads.execute([&] (ThreadPool& pool, int thread) {
        if (thread >= numThreads)
            return;
        double sum = 0.0;
        for (int m = thread; m < (int) molecules.size(); m += numThreads)
            sum += evaluateMolecule(m, positions, box, scale*kT, forces, thread);
        sums[thread] = sum;
    });
    threads.waitForThreads();
    double logitSum = 0.0;
    for (double s : sums)
        logitSum += s;
    (*refData.energyParameterDerivatives)[scaleParameterName] += -kT*logitSum;
    return includeEnergy ? -scale*kT*logitSum : 0.0;
}

void CpuCalcDiscriminatorBiasForceKernel::copyParametersToContext(ContextImpl& context, const DiscriminatorBiasForce& force) {
    setParameters(force);
}
