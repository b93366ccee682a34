#include "CGSchNetForceProxy.h"
#include "CGSchNetForce.h"
#include "PackedArrays.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

static const int currentVersion = 3;
static const char* const blockArrayKeys[] = {"A1", "a1", "A2", "a2", "B", "C1", "c1", "C2", "c2"};
// The largest number of filter tabulation points a file may ask for.  A table holds
// blocks x (points-1) x 4 x filters values (the Common-Compute kernels index it with 32-bit
// integers), and 1000 points already interpolate to single-precision accuracy (docs/cgschnet.md).
static const int maxFilterTabulationPoints = 1000000;

namespace {

void setPacked(SerializationNode& node, const string& key, const vector<double>& values) {
    setPackedArray(node, key, values);
}

/** Read a packed array; from version 3 on, refuse it unless it matches its checksum. */
vector<double> getPacked(const SerializationNode& node, const string& key, int version, const string& what) {
    return getPackedArray(node, key, version >= 3, "CGSchNetForce XML", what);
}

/** A size attribute, which must be positive. */
int getSize(const SerializationNode& node, const string& key) {
    int value = node.getIntProperty(key);
    if (value <= 0) {
        stringstream msg;
        msg << "CGSchNetForce XML: " << key << " = " << value << " must be positive";
        throw OpenMMException(msg.str());
    }
    return value;
}

/** Throw unless a size attribute equals the length of the array that it describes. */
void checkSize(const string& key, int value, size_t length, const string& array) {
    if ((size_t) value != length) {
        stringstream msg;
        msg << "CGSchNetForce XML: " << key << " = " << value << " does not match " << array << " (" << length << " values)";
        throw OpenMMException(msg.str());
    }
}

} // namespace

CGSchNetForceProxy::CGSchNetForceProxy() : SerializationProxy("CGSchNetForce") {
}

void CGSchNetForceProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", currentVersion);
    const CGSchNetForce& force = *reinterpret_cast<const CGSchNetForce*>(object);
    node.setStringProperty("name", force.getName());
    node.setIntProperty("forceGroup", force.getForceGroup());
    node.setIntProperty("numTypes", force.getNumTypes());
    node.setIntProperty("numFeatures", force.getNumFeatures());
    node.setIntProperty("numFilters", force.getNumFilters());
    node.setIntProperty("numRBF", force.getNumRBF());
    node.setDoubleProperty("cutoff", force.getCutoff());
    node.setIntProperty("activation", force.getActivation());
    node.setBoolProperty("periodic", force.usesPeriodicBoundaryConditions());
    node.setStringProperty("scaleParameter", force.getScaleParameterName());
    node.setDoubleProperty("defaultScale", force.getDefaultScale());
    node.setIntProperty("filterTabulationPoints", force.getFilterTabulationPoints());
    SerializationNode& rbf = node.createChildNode("RBF");
    rbf.setIntProperty("type", force.getRBFType()).setDoubleProperty("lowerCutoff", force.getRBFLowerCutoff());
    setPacked(rbf, "centers", force.getRBFCenters());
    setPacked(rbf, "widths", force.getRBFWidths());
    setPacked(node.createChildNode("Embedding"), "values", force.getEmbedding());
    SerializationNode& blocks = node.createChildNode("InteractionBlocks");
    for (int b = 0; b < force.getNumInteractionBlocks(); b++) {
        SerializationNode& block = blocks.createChildNode("Block");
        for (int a = 0; a < 9; a++)
            setPacked(block, blockArrayKeys[a], force.getInteractionBlockArray(b, (CGSchNetForce::BlockArray) a));
    }
    SerializationNode& layers = node.createChildNode("OutputLayers");
    for (int l = 0; l < force.getNumOutputLayers(); l++) {
        SerializationNode& layer = layers.createChildNode("Layer");
        setPacked(layer, "weights", force.getOutputLayerWeights(l));
        setPacked(layer, "bias", force.getOutputLayerBias(l));
    }
    node.createChildNode("Particles").setStringProperty("values", packInts(force.getParticles()));
    node.createChildNode("BeadTypes").setStringProperty("values", packInts(force.getBeadTypes()));
    node.createChildNode("Molecules").setStringProperty("values", packInts(force.getMolecules()));
    vector<int> exclusions;
    for (int e = 0; e < force.getNumExclusions(); e++) {
        int i, j;
        force.getExclusionParticles(e, i, j);
        exclusions.push_back(i);
        exclusions.push_back(j);
    }
    node.createChildNode("Exclusions").setStringProperty("pairs", packInts(exclusions));
    // Written only when set, so a force without properties gives the same file as before; a
    // reader that does not know the node ignores it (properties never change the energy).
    if (!force.getProperties().empty()) {
        SerializationNode& properties = node.createChildNode("Properties");
        for (const auto& property : force.getProperties())
            properties.createChildNode("Property").setStringProperty("name", property.first).setStringProperty("value", property.second);
    }
}

void* CGSchNetForceProxy::deserialize(const SerializationNode& node) const {
    int version = node.getIntProperty("version");
    if (version < 1 || version > currentVersion) {
        stringstream msg;
        msg << "CGSchNetForce XML: unsupported version " << version << " (this build reads versions 1 to " << currentVersion << ")";
        throw OpenMMException(msg.str());
    }
    CGSchNetForce* force = nullptr;
    try {
        // Every array is read (and its checksum verified) before anything is allocated from the
        // size attributes, so that a corrupt size is reported by name rather than as a failed
        // allocation: each size must equal the length of an array that it alone describes.
        const int numTypes = getSize(node, "numTypes"), numFeatures = getSize(node, "numFeatures");
        const int numFilters = getSize(node, "numFilters"), numRBF = getSize(node, "numRBF");
        const SerializationNode& rbf = node.getChildNode("RBF");
        vector<double> centers = getPacked(rbf, "centers", version, "RBF centers");
        vector<double> widths = getPacked(rbf, "widths", version, "RBF widths");
        vector<double> embedding = getPacked(node.getChildNode("Embedding"), "values", version, "embedding");
        vector<vector<vector<double> > > blocks;
        for (const SerializationNode& block : node.getChildNode("InteractionBlocks").getChildren()) {
            stringstream prefix;
            prefix << "interaction block " << blocks.size() << " ";
            blocks.push_back(vector<vector<double> >(9));
            for (int a = 0; a < 9; a++)
                blocks.back()[a] = getPacked(block, blockArrayKeys[a], version, prefix.str()+blockArrayKeys[a]);
        }
        vector<vector<double> > outputWeights, outputBiases;
        for (const SerializationNode& layer : node.getChildNode("OutputLayers").getChildren()) {
            stringstream prefix;
            prefix << "output layer " << outputWeights.size() << " ";
            outputWeights.push_back(getPacked(layer, "weights", version, prefix.str()+"weights"));
            outputBiases.push_back(getPacked(layer, "bias", version, prefix.str()+"bias"));
        }
        checkSize("numRBF", numRBF, centers.size(), "the RBF centers");
        if (!blocks.empty()) {
            checkSize("numFeatures", numFeatures, blocks[0][CGSchNetForce::UpdateBias1].size(), "interaction block 0 c1");
            checkSize("numFilters", numFilters, blocks[0][CGSchNetForce::FilterBias1].size(), "interaction block 0 a1");
        }
        else if (!outputWeights.empty() && !outputBiases[0].empty())
            checkSize("numFeatures", numFeatures, outputWeights[0].size()/outputBiases[0].size(), "the inputs of output layer 0");
        if ((long long) numTypes*numFeatures != (long long) embedding.size()) {
            stringstream msg;
            msg << "CGSchNetForce XML: numTypes = " << numTypes << " does not match the " << embedding.size()
                << " values of the embedding (numTypes x numFeatures, with numFeatures = " << numFeatures << ")";
            throw OpenMMException(msg.str());
        }
        int tablePoints = 0;
        // Version 1 predates the tabulated filters: its forces use the exact ones.
        if (version >= 2) {
            tablePoints = node.getIntProperty("filterTabulationPoints");
            if (tablePoints < 0 || tablePoints == 1 || tablePoints > maxFilterTabulationPoints) {
                stringstream msg;
                msg << "CGSchNetForce XML: filterTabulationPoints = " << tablePoints << " must be 0 (exact filters) or between 2 and "
                    << maxFilterTabulationPoints;
                throw OpenMMException(msg.str());
            }
        }

        force = new CGSchNetForce(numTypes, numFeatures, numFilters, numRBF, node.getDoubleProperty("cutoff"));
        force->setName(node.getStringProperty("name", force->getName()));
        force->setForceGroup(node.getIntProperty("forceGroup", 0));
        force->setActivation((CGSchNetForce::Activation) node.getIntProperty("activation"));
        force->setUsesPeriodicBoundaryConditions(node.getBoolProperty("periodic"));
        force->setScaleParameterName(node.getStringProperty("scaleParameter"));
        force->setDefaultScale(node.getDoubleProperty("defaultScale"));
        force->setFilterTabulationPoints(tablePoints);
        force->setRBFParameters((CGSchNetForce::RBFType) rbf.getIntProperty("type"), centers, widths, rbf.getDoubleProperty("lowerCutoff"));
        force->setEmbedding(embedding);
        for (const vector<vector<double> >& a : blocks)
            force->addInteractionBlock(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
        for (size_t l = 0; l < outputWeights.size(); l++)
            force->addOutputLayer(outputWeights[l], outputBiases[l]);
        force->setParticles(unpackInts(node.getChildNode("Particles").getStringProperty("values"), "particles"));
        force->setBeadTypes(unpackInts(node.getChildNode("BeadTypes").getStringProperty("values"), "bead types"));
        force->setMolecules(unpackInts(node.getChildNode("Molecules").getStringProperty("values"), "molecules"));
        vector<int> exclusions = unpackInts(node.getChildNode("Exclusions").getStringProperty("pairs"), "exclusions");
        if (exclusions.size()%2 != 0)
            throw OpenMMException("CGSchNetForce XML: the exclusion list has an odd number of indices");
        for (size_t e = 0; e < exclusions.size(); e += 2)
            force->addExclusion(exclusions[e], exclusions[e+1]);
        for (const SerializationNode& child : node.getChildren())
            if (child.getName() == "Properties")
                for (const SerializationNode& property : child.getChildren())
                    force->setProperty(property.getStringProperty("name"), property.getStringProperty("value"));
    }
    catch (const OpenMMException& e) {
        delete force;
        string message = e.what();
        if (message.rfind("CGSchNetForce", 0) != 0)
            message = "CGSchNetForce XML: "+message;
        throw OpenMMException(message);
    }
    return force;
}
