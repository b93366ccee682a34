#include "DiscriminatorBiasForceProxy.h"
#include "DiscriminatorBiasForce.h"
#include "PackedArrays.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

static const int currentVersion = 1;
static const char* const FORMAT = "DiscriminatorBiasForce XML";

namespace {

vector<int> flatten(const DiscriminatorBiasForce& force, int count, vector<int> (DiscriminatorBiasForce::*get)(int) const) {
    vector<int> values;
    for (int i = 0; i < count; i++)
        for (int b : (force.*get)(i))
            values.push_back(b);
    return values;
}

vector<int> readTuples(const SerializationNode& node, const string& key, size_t arity) {
    vector<int> values = unpackInts(node.getChildNode(key).getStringProperty("beads"), key);
    if (values.size()%arity != 0) {
        stringstream msg;
        msg << FORMAT << ": the " << key << " list has " << values.size() << " indices, not a multiple of " << arity;
        throw OpenMMException(msg.str());
    }
    return values;
}

} // namespace

DiscriminatorBiasForceProxy::DiscriminatorBiasForceProxy() : SerializationProxy("DiscriminatorBiasForce") {
}

void DiscriminatorBiasForceProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", currentVersion);
    const DiscriminatorBiasForce& force = *reinterpret_cast<const DiscriminatorBiasForce*>(object);
    node.setStringProperty("name", force.getName());
    node.setIntProperty("forceGroup", force.getForceGroup());
    node.setDoubleProperty("temperature", force.getTemperature());
    node.setBoolProperty("periodic", force.usesPeriodicBoundaryConditions());
    node.setStringProperty("scaleParameter", force.getScaleParameterName());
    node.setDoubleProperty("defaultScale", force.getDefaultScale());
    node.createChildNode("Distances").setStringProperty("beads", packInts(flatten(force, force.getNumDistances(), &DiscriminatorBiasForce::getDistance)));
    node.createChildNode("Angles").setStringProperty("beads", packInts(flatten(force, force.getNumAngles(), &DiscriminatorBiasForce::getAngle)));
    node.createChildNode("Dihedrals").setStringProperty("beads", packInts(flatten(force, force.getNumDihedrals(), &DiscriminatorBiasForce::getDihedral)));
    SerializationNode& standardization = node.createChildNode("Standardization");
    setPackedArray(standardization, "mean", force.getFeatureMeans());
    setPackedArray(standardization, "std", force.getFeatureStds());
    SerializationNode& networks = node.createChildNode("Networks");
    for (int k = 0; k < force.getNumNetworks(); k++) {
        SerializationNode& network = networks.createChildNode("Network");
        network.setIntProperty("activation", force.getNetworkActivation(k)).setDoubleProperty("clamp", force.getNetworkClamp(k));
        for (int l = 0; l < force.getNumNetworkLayers(k); l++) {
            SerializationNode& layer = network.createChildNode("Layer");
            setPackedArray(layer, "weights", force.getNetworkLayerWeights(k, l));
            setPackedArray(layer, "bias", force.getNetworkLayerBias(k, l));
        }
    }
    SerializationNode& molecules = node.createChildNode("Molecules");
    for (int m = 0; m < force.getNumMolecules(); m++)
        molecules.createChildNode("Molecule").setStringProperty("particles", packInts(force.getMoleculeParticles(m)));
}

void* DiscriminatorBiasForceProxy::deserialize(const SerializationNode& node) const {
    int version = node.getIntProperty("version");
    if (version < 1 || version > currentVersion) {
        stringstream msg;
        msg << FORMAT << ": unsupported version " << version << " (this build reads versions 1 to " << currentVersion << ")";
        throw OpenMMException(msg.str());
    }
    DiscriminatorBiasForce* force = nullptr;
    try {
        force = new DiscriminatorBiasForce(node.getDoubleProperty("temperature"));
        force->setName(node.getStringProperty("name", force->getName()));
        force->setForceGroup(node.getIntProperty("forceGroup", 0));
        force->setUsesPeriodicBoundaryConditions(node.getBoolProperty("periodic"));
        force->setScaleParameterName(node.getStringProperty("scaleParameter"));
        force->setDefaultScale(node.getDoubleProperty("defaultScale"));
        vector<int> distances = readTuples(node, "Distances", 2), angles = readTuples(node, "Angles", 3);
        vector<int> dihedrals = readTuples(node, "Dihedrals", 4);
        for (size_t i = 0; i < distances.size(); i += 2)
            force->addDistance(distances[i], distances[i+1]);
        for (size_t i = 0; i < angles.size(); i += 3)
            force->addAngle(angles[i], angles[i+1], angles[i+2]);
        for (size_t i = 0; i < dihedrals.size(); i += 4)
            force->addDihedral(dihedrals[i], dihedrals[i+1], dihedrals[i+2], dihedrals[i+3]);
        const SerializationNode& standardization = node.getChildNode("Standardization");
        force->setStandardization(getPackedArray(standardization, "mean", true, FORMAT, "feature means"),
                                  getPackedArray(standardization, "std", true, FORMAT, "feature stds"));
        for (const SerializationNode& network : node.getChildNode("Networks").getChildren()) {
            int k = force->addNetwork((DiscriminatorBiasForce::Activation) network.getIntProperty("activation"),
                                      network.getDoubleProperty("clamp"));
            for (const SerializationNode& layer : network.getChildren()) {
                stringstream prefix;
                prefix << "network " << k << " layer " << force->getNumNetworkLayers(k) << " ";
                force->addNetworkLayer(k, getPackedArray(layer, "weights", true, FORMAT, prefix.str()+"weights"),
                                       getPackedArray(layer, "bias", true, FORMAT, prefix.str()+"bias"));
            }
        }
        for (const SerializationNode& molecule : node.getChildNode("Molecules").getChildren())
            force->addMolecule(unpackInts(molecule.getStringProperty("particles"), "molecule particles"));
    }
    catch (const OpenMMException& e) {
        delete force;
        string message = e.what();
        if (message.rfind("DiscriminatorBiasForce", 0) != 0)
            message = string(FORMAT)+": "+message;
        throw OpenMMException(message);
    }
    return force;
}
