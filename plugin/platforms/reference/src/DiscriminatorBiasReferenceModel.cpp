#include "DiscriminatorBiasReferenceModel.h"
#include "internal/CGMLMath.h"
#include "openmm/OpenMMException.h"
#include "openmm/reference/ReferenceForce.h"
#include <cmath>
#include <limits>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

const double BOLTZMANN = 0.00831446261815324;   // kJ/mol/K
const double ANGLE_DELTA = 1e-24;               // nm^4
const double DIHEDRAL_EPSILON = 1e-3;
const double DIHEDRAL_DELTA = 1e-30;            // nm^8

Vec3 difference(const Vec3& from, const Vec3& to, const Vec3* boxVectors) {
    if (boxVectors == NULL)
        return to-from;
    return ReferenceForce::getDeltaRPeriodic(from, to, boxVectors);
}

} // namespace

DiscriminatorBiasReferenceModel::DiscriminatorBiasReferenceModel(const DiscriminatorBiasForce& force, int numSystemParticles) {
    force.validate(numSystemParticles);
    for (int m = 0; m < force.getNumMolecules(); m++)
        molecules.push_back(force.getMoleculeParticles(m));
    if (molecules.empty()) {
        molecules.push_back(vector<int>());
        for (int i = 0; i < numSystemParticles; i++)
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
    features.resize(numFeatures);
    z.resize(numFeatures);
    featureBeads.resize(4*numFeatures);
    featureGradient.resize(4*numFeatures);
}

void DiscriminatorBiasReferenceModel::setParameters(const DiscriminatorBiasForce& force) {
    if (force.getNumNetworks() != (int) networks.size() || force.getNumFeatures() != numFeatures)
        throw OpenMMException("DiscriminatorBiasForce: the new parameters have other shapes than the Context's");
    means = force.getFeatureMeans();
    stds = force.getFeatureStds();
    temperature = force.getTemperature();
    for (int k = 0; k < force.getNumNetworks(); k++) {
        Network& network = networks[k];
        network.activation = static_cast<CGSchNetForce::Activation>((int) force.getNetworkActivation(k));
        network.clamp = force.getNetworkClamp(k);
        network.layers.clear();
        int inputs = numFeatures;
        for (int l = 0; l < force.getNumNetworkLayers(k); l++) {
            int outputs = force.getNetworkLayerSize(k, l);
            network.layers.push_back(CGMLDenseLayer(inputs, outputs, force.getNetworkLayerWeights(k, l), force.getNetworkLayerBias(k, l)));
            inputs = outputs;
        }
    }
}

void DiscriminatorBiasReferenceModel::computeFeatures(const vector<Vec3>& positions, const vector<int>& molecule,
                                                      const vector<int>& distances, const vector<int>& angles,
                                                      const vector<int>& dihedrals, const Vec3* boxVectors, double* features,
                                                      int* featureBeads, Vec3* featureGradient) {
    int f = 0;
    int numFeatures = distances.size()/2+angles.size()/3+dihedrals.size()/2;
    fill(featureBeads, featureBeads+4*numFeatures, -1);
    for (size_t i = 0; i < distances.size(); i += 2, f++) {
        int a = molecule[distances[i]], b = molecule[distances[i+1]];
        Vec3 d = difference(positions[a], positions[b], boxVectors);
        double r = sqrt(d.dot(d));
        features[f] = r;
        Vec3 g = (r > 0.0 ? d/r : Vec3());   // coincident beads: no direction, no force
        featureBeads[4*f] = a;
        featureBeads[4*f+1] = b;
        featureGradient[4*f] = -g;
        featureGradient[4*f+1] = g;
    }
    for (size_t i = 0; i < angles.size(); i += 3, f++) {
        int a = molecule[angles[i]], b = molecule[angles[i+1]], c = molecule[angles[i+2]];
        Vec3 u = difference(positions[b], positions[a], boxVectors);
        Vec3 v = difference(positions[b], positions[c], boxVectors);
        double uu = u.dot(u), vv = v.dot(v), uv = u.dot(v);
        double denominator = sqrt(uu*vv+ANGLE_DELTA);
        features[f] = uv/denominator;
        double cube = denominator*denominator*denominator;
        Vec3 du = v/denominator-u*(uv*vv/cube);
        Vec3 dv = u/denominator-v*(uv*uu/cube);
        featureBeads[4*f] = a;
        featureBeads[4*f+1] = b;
        featureBeads[4*f+2] = c;
        featureGradient[4*f] = du;
        featureGradient[4*f+1] = -du-dv;
        featureGradient[4*f+2] = dv;
    }
    for (size_t i = 0; i < dihedrals.size(); i += 4, f += 2) {
        int a = molecule[dihedrals[i]], b = molecule[dihedrals[i+1]], c = molecule[dihedrals[i+2]], d = molecule[dihedrals[i+3]];
        Vec3 b1 = difference(positions[a], positions[b], boxVectors);
        Vec3 b2 = difference(positions[b], positions[c], boxVectors);
        Vec3 b3 = difference(positions[c], positions[d], boxVectors);
        double n1 = b1.dot(b1), n2 = b2.dot(b2), n3 = b3.dot(b3);
        double b12 = b1.dot(b2), b23 = b2.dot(b3), b13 = b1.dot(b3);
        double length2 = sqrt(n2);
        Vec3 c12 = b1.cross(b2), c23 = b2.cross(b3), c31 = b3.cross(b1);
        double X = b12*b23-b13*n2;                  // (b1 x b2).(b2 x b3)
        double T = b1.dot(c23);                      // b1.(b2 x b3)
        double Y = length2*T;
        double eps2 = DIHEDRAL_EPSILON*DIHEDRAL_EPSILON;
        double S = eps2*(n1*n2*n2*n3)+DIHEDRAL_DELTA;
        double N = sqrt(X*X+Y*Y+S);
        // derivatives of X, Y and S with respect to b1, b2, b3
        Vec3 dX[3] = {b2*b23-b3*n2, b1*b23+b3*b12-b2*(2.0*b13), b2*b12-b1*n2};
        Vec3 unit2 = (length2 > 0.0 ? b2/length2 : Vec3());
        Vec3 dY[3] = {c23*length2, c31*length2+unit2*T, c12*length2};
        Vec3 dS[3] = {b1*(2.0*eps2*n2*n2*n3), b2*(4.0*eps2*n1*n2*n3), b3*(2.0*eps2*n1*n2*n2)};
        features[f] = X/N;
        features[f+1] = Y/N;
        int beads[4] = {a, b, c, d};
        for (int component = 0; component < 2; component++) {
            double value = (component == 0 ? X : Y);
            Vec3 db[3];
            for (int k = 0; k < 3; k++) {
                Vec3 dN = (dX[k]*X+dY[k]*Y+dS[k]*0.5)/N;
                db[k] = (component == 0 ? dX[k] : dY[k])/N-dN*(value/(N*N));
            }
            int g = 4*(f+component);
            for (int k = 0; k < 4; k++)
                featureBeads[g+k] = beads[k];
            featureGradient[g] = -db[0];
            featureGradient[g+1] = db[0]-db[1];
            featureGradient[g+2] = db[1]-db[2];
            featureGradient[g+3] = db[2];
        }
    }
}

double DiscriminatorBiasReferenceModel::evaluateNetwork(const Network& network, vector<double>& dz) {
    int numLayers = network.layers.size();
    preActivations.resize(numLayers);
    activations.resize(numLayers);
    const vector<double>* input = &z;
    for (int l = 0; l < numLayers; l++) {
        const CGMLDenseLayer& layer = network.layers[l];
        vector<double>& pre = preActivations[l];
        pre.assign(layer.bias.begin(), layer.bias.end());
        for (int i = 0; i < layer.inputs; i++) {
            double x = (*input)[i];
            for (int o = 0; o < layer.outputs; o++)
                pre[o] += x*layer.weights[i*layer.outputs+o];
        }
        if (l < numLayers-1) {
            activations[l].resize(layer.outputs);
            for (int o = 0; o < layer.outputs; o++)
                activations[l][o] = CGMLMath::activation(network.activation, pre[o]);
            input = &activations[l];
        }
    }
    double logit = preActivations[numLayers-1][0];
    double slope = 1.0;
    if (network.clamp > 0.0) {
        double t = tanh(logit/network.clamp);
        logit = network.clamp*t;
        slope = 1.0-t*t;
    }
    // reverse pass: gradient with respect to each layer's output, starting from d logit / d output = slope
    vector<double> gradient(1, slope), previous;
    for (int l = numLayers-1; l >= 0; l--) {
        const CGMLDenseLayer& layer = network.layers[l];
        if (l < numLayers-1)
            for (int o = 0; o < layer.outputs; o++)
                gradient[o] *= CGMLMath::activationDerivative(network.activation, preActivations[l][o]);
        previous.assign(layer.inputs, 0.0);
        for (int i = 0; i < layer.inputs; i++)
            for (int o = 0; o < layer.outputs; o++)
                previous[i] += layer.weights[i*layer.outputs+o]*gradient[o];
        gradient.swap(previous);
    }
    for (int i = 0; i < numFeatures; i++)
        dz[i] += gradient[i];
    return logit;
}

double DiscriminatorBiasReferenceModel::compute(const vector<Vec3>& positions, const Vec3* boxVectors, double scale,
                                                vector<Vec3>* forces, double& logitSum) {
    for (const vector<int>& molecule : molecules)
        for (int p : molecule)
            if (!CGMLMath::isFinite(positions[p])) {
                logitSum = numeric_limits<double>::quiet_NaN();
                return logitSum;
            }
    double kT = BOLTZMANN*temperature;
    logitSum = 0.0;
    vector<double> dz(numFeatures);
    for (const vector<int>& molecule : molecules) {
        computeFeatures(positions, molecule, distances, angles, dihedrals, boxVectors, features.data(), featureBeads.data(),
                        featureGradient.data());
        for (int i = 0; i < numFeatures; i++)
            z[i] = (features[i]-means[i])/stds[i];
        fill(dz.begin(), dz.end(), 0.0);
        for (const Network& network : networks)
            logitSum += evaluateNetwork(network, dz);
        if (forces == NULL)
            continue;
        // F = -dE/dx = lambda kT sum_f (d logit / d z_f) / std_f * d s_f / dx
        for (int i = 0; i < numFeatures; i++) {
            double weight = scale*kT*dz[i]/stds[i];
            for (int k = 0; k < 4; k++)
                if (featureBeads[4*i+k] >= 0)
                    (*forces)[featureBeads[4*i+k]] += featureGradient[4*i+k]*weight;
        }
    }
    return -scale*kT*logitSum;
}
