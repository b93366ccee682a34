#include "DiscriminatorBiasForce.h"
#include "internal/DiscriminatorBiasForceImpl.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <set>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

namespace {

void fail(const string& message) {
    throw OpenMMException("DiscriminatorBiasForce: "+message);
}

void checkFinite(const vector<double>& values, const string& name) {
    for (size_t i = 0; i < values.size(); i++)
        if (!isfinite(values[i])) {
            stringstream msg;
            msg << name << " contains a non-finite value (" << values[i] << ") at index " << i;
            fail(msg.str());
        }
}

void checkIndex(int index, int size, const string& what) {
    if (index < 0 || index >= size) {
        stringstream msg;
        msg << what << " index " << index << " is out of range [0, " << size << ")";
        fail(msg.str());
    }
}

/** Local bead indices of a feature: non-negative and all different. */
void checkBeads(const vector<int>& beads, const string& what) {
    set<int> seen;
    for (int b : beads) {
        if (b < 0) {
            stringstream msg;
            msg << what << " has a negative bead index (" << b << ")";
            fail(msg.str());
        }
        if (!seen.insert(b).second) {
            stringstream msg;
            msg << what << " uses bead " << b << " twice";
            fail(msg.str());
        }
    }
}

vector<int> slice(const vector<int>& values, int index, int arity, const string& what) {
    checkIndex(index, (int) values.size()/arity, what);
    return vector<int>(values.begin()+index*arity, values.begin()+(index+1)*arity);
}

void checkClamp(double clamp) {
    if (!(clamp >= 0.0) || !isfinite(clamp)) {
        stringstream msg;
        msg << "a clamp must be >= 0 (0: none) and finite (got " << clamp << ")";
        fail(msg.str());
    }
}

} // namespace

DiscriminatorBiasForce::DiscriminatorBiasForce(double temperature) : temperature(300.0), defaultScale(1.0), periodic(false),
        scaleName("discriminatorScale") {
    setTemperature(temperature);
}

void DiscriminatorBiasForce::setTemperature(double kelvin) {
    if (!(kelvin > 0.0) || !isfinite(kelvin)) {
        stringstream msg;
        msg << "the temperature must be positive and finite (got " << kelvin << ")";
        fail(msg.str());
    }
    temperature = kelvin;
}

int DiscriminatorBiasForce::addDistance(int a, int b) {
    checkBeads({a, b}, "a distance");
    distances.insert(distances.end(), {a, b});
    return getNumDistances()-1;
}

int DiscriminatorBiasForce::addAngle(int a, int b, int c) {
    checkBeads({a, b, c}, "an angle");
    angles.insert(angles.end(), {a, b, c});
    return getNumAngles()-1;
}

int DiscriminatorBiasForce::addDihedral(int a, int b, int c, int d) {
    checkBeads({a, b, c, d}, "a dihedral");
    dihedrals.insert(dihedrals.end(), {a, b, c, d});
    return getNumDihedrals()-1;
}

vector<int> DiscriminatorBiasForce::getDistance(int index) const {
    return slice(distances, index, 2, "distance");
}

vector<int> DiscriminatorBiasForce::getAngle(int index) const {
    return slice(angles, index, 3, "angle");
}

vector<int> DiscriminatorBiasForce::getDihedral(int index) const {
    return slice(dihedrals, index, 4, "dihedral");
}

void DiscriminatorBiasForce::setStandardization(const vector<double>& mean, const vector<double>& std) {
    int n = getNumFeatures();
    if ((int) mean.size() != n || (int) std.size() != n) {
        stringstream msg;
        msg << "the standardisation needs " << n << " means and stds (one per feature), got " << mean.size() << " and "
            << std.size();
        fail(msg.str());
    }
    checkFinite(mean, "the feature means");
    checkFinite(std, "the feature stds");
    for (int i = 0; i < n; i++)
        if (!(std[i] > 0.0)) {
            stringstream msg;
            msg << "the std of feature " << i << " must be positive (got " << std[i] << ")";
            fail(msg.str());
        }
    means = mean;
    stds = std;
}

vector<double> DiscriminatorBiasForce::getFeatureMeans() const {
    vector<double> result(means);
    result.resize(getNumFeatures(), 0.0);
    return result;
}

vector<double> DiscriminatorBiasForce::getFeatureStds() const {
    vector<double> result(stds);
    result.resize(getNumFeatures(), 1.0);
    return result;
}

int DiscriminatorBiasForce::addNetwork(Activation activation, double clamp) {
    if (activation != ShiftedSoftplus && activation != Tanh && activation != SiLU)
        fail("unknown activation");
    checkClamp(clamp);
    Network network;
    network.activation = activation;
    network.clamp = clamp;
    networks.push_back(network);
    return getNumNetworks()-1;
}

DiscriminatorBiasForce::Activation DiscriminatorBiasForce::getNetworkActivation(int network) const {
    checkIndex(network, getNumNetworks(), "network");
    return networks[network].activation;
}

double DiscriminatorBiasForce::getNetworkClamp(int network) const {
    checkIndex(network, getNumNetworks(), "network");
    return networks[network].clamp;
}

void DiscriminatorBiasForce::setNetworkClamp(int network, double clamp) {
    checkIndex(network, getNumNetworks(), "network");
    checkClamp(clamp);
    networks[network].clamp = clamp;
}

int DiscriminatorBiasForce::addNetworkLayer(int network, const vector<double>& weights, const vector<double>& bias) {
    checkIndex(network, getNumNetworks(), "network");
    Network& net = networks[network];
    if (bias.empty())
        fail("a layer needs at least one output");
    checkFinite(weights, "the layer weights");
    checkFinite(bias, "the layer bias");
    if (!net.biases.empty()) {
        size_t inputs = net.biases.back().size();
        if (weights.size() != inputs*bias.size()) {
            stringstream msg;
            msg << "layer " << net.weights.size() << " of network " << network << " has " << weights.size()
                << " weights but takes " << inputs << " inputs to " << bias.size() << " outputs";
            fail(msg.str());
        }
    }
    else if (weights.size() % bias.size() != 0)
        fail("the first layer's weights are not a multiple of its outputs");
    net.weights.push_back(weights);
    net.biases.push_back(bias);
    return (int) net.weights.size()-1;
}

void DiscriminatorBiasForce::setNetworkLayerParameters(int network, int layer, const vector<double>& weights, const vector<double>& bias) {
    checkIndex(network, getNumNetworks(), "network");
    Network& net = networks[network];
    checkIndex(layer, (int) net.weights.size(), "layer");
    if (weights.size() != net.weights[layer].size() || bias.size() != net.biases[layer].size()) {
        stringstream msg;
        msg << "layer " << layer << " of network " << network << " has " << net.weights[layer].size() << " weights and "
            << net.biases[layer].size() << " biases, not " << weights.size() << " and " << bias.size();
        fail(msg.str());
    }
    checkFinite(weights, "the layer weights");
    checkFinite(bias, "the layer bias");
    net.weights[layer] = weights;
    net.biases[layer] = bias;
}

int DiscriminatorBiasForce::getNumNetworkLayers(int network) const {
    checkIndex(network, getNumNetworks(), "network");
    return (int) networks[network].weights.size();
}

int DiscriminatorBiasForce::getNetworkLayerSize(int network, int layer) const {
    checkIndex(network, getNumNetworks(), "network");
    checkIndex(layer, (int) networks[network].biases.size(), "layer");
    return (int) networks[network].biases[layer].size();
}

vector<double> DiscriminatorBiasForce::getNetworkLayerWeights(int network, int layer) const {
    checkIndex(network, getNumNetworks(), "network");
    checkIndex(layer, (int) networks[network].weights.size(), "layer");
    return networks[network].weights[layer];
}

vector<double> DiscriminatorBiasForce::getNetworkLayerBias(int network, int layer) const {
    checkIndex(network, getNumNetworks(), "network");
    checkIndex(layer, (int) networks[network].biases.size(), "layer");
    return networks[network].biases[layer];
}

int DiscriminatorBiasForce::addMolecule(const vector<int>& particles) {
    molecules.push_back(particles);
    return getNumMolecules()-1;
}

void DiscriminatorBiasForce::setMoleculeParticles(int index, const vector<int>& particles) {
    checkIndex(index, getNumMolecules(), "molecule");
    molecules[index] = particles;
}

vector<int> DiscriminatorBiasForce::getMoleculeParticles(int index) const {
    checkIndex(index, getNumMolecules(), "molecule");
    return molecules[index];
}

void DiscriminatorBiasForce::setScaleParameterName(const string& name) {
    if (name.empty())
        fail("the scale parameter name must not be empty");
    scaleName = name;
}

void DiscriminatorBiasForce::setDefaultScale(double scale) {
    if (!isfinite(scale))
        fail("the default scale must be finite");
    defaultScale = scale;
}

void DiscriminatorBiasForce::setUsesPeriodicBoundaryConditions(bool usePeriodic) {
    periodic = usePeriodic;
}

void DiscriminatorBiasForce::validate(int numSystemParticles) const {
    int numFeatures = getNumFeatures();
    if (numFeatures == 0)
        fail("there are no features (add a distance, angle or dihedral)");
    int beadsNeeded = 0;
    for (const vector<int>* list : {&distances, &angles, &dihedrals})
        for (int b : *list)
            beadsNeeded = max(beadsNeeded, b+1);
    int moleculeSize = (molecules.empty() ? numSystemParticles : (int) molecules[0].size());
    if (beadsNeeded > moleculeSize) {
        stringstream msg;
        msg << "a feature refers to bead " << beadsNeeded-1 << " but a molecule has " << moleculeSize << " particles";
        fail(msg.str());
    }
    set<int> seen;
    for (size_t m = 0; m < molecules.size(); m++) {
        if ((int) molecules[m].size() != moleculeSize) {
            stringstream msg;
            msg << "molecule " << m << " has " << molecules[m].size() << " particles but molecule 0 has " << moleculeSize
                << " (molecules must be of equal length)";
            fail(msg.str());
        }
        for (int p : molecules[m]) {
            if (p < 0 || p >= numSystemParticles) {
                stringstream msg;
                msg << "molecule " << m << " lists particle " << p << ", out of range for a System of " << numSystemParticles
                    << " particles";
                fail(msg.str());
            }
            if (!seen.insert(p).second) {
                stringstream msg;
                msg << "particle " << p << " is in more than one molecule or twice in molecule " << m;
                fail(msg.str());
            }
        }
    }
    if (!means.empty() && (int) means.size() != numFeatures) {
        stringstream msg;
        msg << "the standardisation has " << means.size() << " values but there are " << numFeatures
            << " features (set it again after adding features)";
        fail(msg.str());
    }
    if (networks.empty())
        fail("there are no networks");
    for (size_t k = 0; k < networks.size(); k++) {
        const Network& net = networks[k];
        stringstream where;
        where << "network " << k;
        if (net.weights.empty())
            fail(where.str()+" has no layers");
        if (net.weights[0].size() != (size_t) numFeatures*net.biases[0].size()) {
            stringstream msg;
            msg << where.str() << ": its first layer has " << net.weights[0].size() << " weights but takes " << numFeatures
                << " features to " << net.biases[0].size() << " outputs";
            fail(msg.str());
        }
        if (net.biases.back().size() != 1) {
            stringstream msg;
            msg << where.str() << ": its last layer must have one output (it has " << net.biases.back().size() << ")";
            fail(msg.str());
        }
    }
}

ForceImpl* DiscriminatorBiasForce::createImpl() const {
    return new DiscriminatorBiasForceImpl(*this);
}

void DiscriminatorBiasForce::updateParametersInContext(Context& context) {
    dynamic_cast<DiscriminatorBiasForceImpl&>(getImplInContext(context)).updateParametersInContext(getContextImpl(context));
}
