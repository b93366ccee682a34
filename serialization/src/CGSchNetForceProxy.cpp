#include "CGSchNetForceProxy.h"
#include "CGSchNetForce.h"
#include "PackedArrays.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

static const int currentVersion = 2;
static const char* const blockArrayKeys[] = {"A1", "a1", "A2", "a2", "B", "C1", "c1", "C2", "c2"};

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
    node.createChildNode("RBF")
        .setIntProperty("type", force.getRBFType())
        .setDoubleProperty("lowerCutoff", force.getRBFLowerCutoff())
        .setStringProperty("centers", packDoubles(force.getRBFCenters()))
        .setStringProperty("widths", packDoubles(force.getRBFWidths()));
    node.createChildNode("Embedding").setStringProperty("values", packDoubles(force.getEmbedding()));
    SerializationNode& blocks = node.createChildNode("InteractionBlocks");
    for (int b = 0; b < force.getNumInteractionBlocks(); b++) {
        SerializationNode& block = blocks.createChildNode("Block");
        for (int a = 0; a < 9; a++)
            block.setStringProperty(blockArrayKeys[a], packDoubles(force.getInteractionBlockArray(b, (CGSchNetForce::BlockArray) a)));
    }
    SerializationNode& layers = node.createChildNode("OutputLayers");
    for (int l = 0; l < force.getNumOutputLayers(); l++)
        layers.createChildNode("Layer")
            .setStringProperty("weights", packDoubles(force.getOutputLayerWeights(l)))
            .setStringProperty("bias", packDoubles(force.getOutputLayerBias(l)));
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
        force = new CGSchNetForce(node.getIntProperty("numTypes"), node.getIntProperty("numFeatures"),
                                  node.getIntProperty("numFilters"), node.getIntProperty("numRBF"),
                                  node.getDoubleProperty("cutoff"));
        force->setName(node.getStringProperty("name", force->getName()));
        force->setForceGroup(node.getIntProperty("forceGroup", 0));
        force->setActivation((CGSchNetForce::Activation) node.getIntProperty("activation"));
        force->setUsesPeriodicBoundaryConditions(node.getBoolProperty("periodic"));
        force->setScaleParameterName(node.getStringProperty("scaleParameter"));
        force->setDefaultScale(node.getDoubleProperty("defaultScale"));
        // Version 1 predates the tabulated filters: its forces use the exact ones.
        if (version >= 2)
            force->setFilterTabulationPoints(node.getIntProperty("filterTabulationPoints"));
        const SerializationNode& rbf = node.getChildNode("RBF");
        force->setRBFParameters((CGSchNetForce::RBFType) rbf.getIntProperty("type"),
                                unpackDoubles(rbf.getStringProperty("centers"), "RBF centers"),
                                unpackDoubles(rbf.getStringProperty("widths"), "RBF widths"),
                                rbf.getDoubleProperty("lowerCutoff"));
        force->setEmbedding(unpackDoubles(node.getChildNode("Embedding").getStringProperty("values"), "embedding"));
        for (const SerializationNode& block : node.getChildNode("InteractionBlocks").getChildren()) {
            vector<double> arrays[9];
            for (int a = 0; a < 9; a++)
                arrays[a] = unpackDoubles(block.getStringProperty(blockArrayKeys[a]), blockArrayKeys[a]);
            force->addInteractionBlock(arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], arrays[5], arrays[6], arrays[7], arrays[8]);
        }
        for (const SerializationNode& layer : node.getChildNode("OutputLayers").getChildren())
            force->addOutputLayer(unpackDoubles(layer.getStringProperty("weights"), "output weights"),
                                  unpackDoubles(layer.getStringProperty("bias"), "output bias"));
        force->setParticles(unpackInts(node.getChildNode("Particles").getStringProperty("values"), "particles"));
        force->setBeadTypes(unpackInts(node.getChildNode("BeadTypes").getStringProperty("values"), "bead types"));
        force->setMolecules(unpackInts(node.getChildNode("Molecules").getStringProperty("values"), "molecules"));
        vector<int> exclusions = unpackInts(node.getChildNode("Exclusions").getStringProperty("pairs"), "exclusions");
        if (exclusions.size()%2 != 0)
            throw OpenMMException("CGSchNetForce XML: the exclusion list has an odd number of indices");
        for (size_t e = 0; e < exclusions.size(); e += 2)
            force->addExclusion(exclusions[e], exclusions[e+1]);
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
