#include "internal/CGSchNetWeights.h"
#include "internal/CGSchNetFilterTable.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <sstream>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

vector<double> CGMLDenseLayer::transposedWeights() const {
    return transposeMatrix(weights, inputs, outputs);
}

vector<double> OpenMMCGML::transposeMatrix(const vector<double>& matrix, int rows, int columns) {
    if (matrix.size() != (size_t) rows*columns)
        throw OpenMMException("transposeMatrix: the matrix does not have rows x columns values");
    vector<double> transposed(matrix.size());
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < columns; c++)
            transposed[(size_t) c*rows+r] = matrix[(size_t) r*columns+c];
    return transposed;
}

void OpenMMCGML::checkFloatRange(const vector<double>& values, int columns, const string& name, const string& computedBy,
                                 const string& forceName) {
    // The largest float is 2^128 - 2^104; a double rounds to it, not to infinity, if its magnitude
    // is below the midpoint 2^128 - 2^103 (a tie rounds to even, which is infinity).
    const double limit = ldexp(33554431.0, 103);
    for (size_t i = 0; i < values.size(); i++)
        if (!(fabs(values[i]) < limit)) {
            stringstream msg;
            msg << forceName << ": " << name;
            if (columns > 0)
                msg << "[" << i/columns << "][" << i%columns << "]";
            else if (columns == 0)
                msg << "[" << i << "]";
            msg << " = " << values[i] << " is outside the range of single precision (magnitudes up to 3.4e+38), in which "
                << computedBy << " computes";
            throw OpenMMException(msg.str());
        }
}

namespace {

const char* const blockArrayNames[] = {"filterWeights1 (A1)", "filterBias1 (a1)", "filterWeights2 (A2)", "filterBias2 (a2)",
                                       "messageWeights (B)", "updateWeights1 (C1)", "updateBias1 (c1)",
                                       "updateWeights2 (C2)", "updateBias2 (c2)"};

void checkBlockArrayIndex(int which) {
    if (which < 0 || which >= 9)
        throw OpenMMException("CGSchNetWeights: unknown interaction block array");
}

void checkSize(const vector<double>& array, size_t expected, const string& what) {
    if (array.size() != expected) {
        stringstream message;
        message << "CGSchNetForce: " << what << " has " << array.size() << " values, expected " << expected;
        throw OpenMMException(message.str());
    }
}

} // namespace

const vector<double>& CGSchNetWeights::Block::array(CGSchNetForce::BlockArray which) const {
    checkBlockArrayIndex(which);
    const vector<double>* arrays[] = {&filterWeights1, &filterBias1, &filterWeights2, &filterBias2, &messageWeights,
                                      &updateWeights1, &updateBias1, &updateWeights2, &updateBias2};
    return *arrays[which];
}

vector<double>& CGSchNetWeights::Block::array(CGSchNetForce::BlockArray which) {
    return const_cast<vector<double>&>(static_cast<const Block&>(*this).array(which));
}

const char* CGSchNetWeights::getBlockArrayName(CGSchNetForce::BlockArray which) {
    checkBlockArrayIndex(which);
    return blockArrayNames[which];
}

CGSchNetWeights::CGSchNetWeights() {
}

CGSchNetWeights::CGSchNetWeights(const CGSchNetForce& force, bool buildFilterTable) :
        numTypes(force.getNumTypes()), numFeatures(force.getNumFeatures()), numFilters(force.getNumFilters()),
        numRBF(force.getNumRBF()), cutoff(force.getCutoff()), activation(force.getActivation()), rbfType(force.getRBFType()),
        rbfCenters(force.getRBFCenters()), rbfWidths(force.getRBFWidths()), rbfLowerCutoff(force.getRBFLowerCutoff()),
        defaultScale(force.getDefaultScale()), embedding(force.getEmbedding()) {
    blocks.resize(force.getNumInteractionBlocks());
    for (int b = 0; b < (int) blocks.size(); b++)
        for (int a = 0; a < 9; a++)
            blocks[b].array((CGSchNetForce::BlockArray) a) = force.getInteractionBlockArray(b, (CGSchNetForce::BlockArray) a);
    int inputs = numFeatures;
    for (int l = 0; l < force.getNumOutputLayers(); l++) {
        int outputs = force.getOutputLayerSize(l);
        outputLayers.push_back(CGMLDenseLayer(inputs, outputs, force.getOutputLayerWeights(l), force.getOutputLayerBias(l)));
        inputs = outputs;
    }
    if (buildFilterTable)
        this->buildFilterTable(force.getFilterTabulationPoints());
}

void CGSchNetWeights::buildFilterTable(int points) {
    filterTable.reset();
    if (points > 0)
        filterTable = make_shared<CGSchNetFilterTable>(*this, points);
}

vector<double> CGSchNetWeights::projectEmbedding(int block) const {
    if (block < 0 || block >= getNumBlocks())
        throw OpenMMException("CGSchNetWeights: block index out of range");
    const vector<double>& messageWeights = blocks[block].messageWeights;
    vector<double> projected((size_t) numTypes*numFilters, 0.0);
    for (int t = 0; t < numTypes; t++)
        for (int n = 0; n < numFilters; n++) {
            double sum = 0.0;
            for (int f = 0; f < numFeatures; f++)
                sum += embedding[(size_t) t*numFeatures+f]*messageWeights[(size_t) f*numFilters+n];
            projected[(size_t) t*numFilters+n] = sum;
        }
    return projected;
}

void CGSchNetWeights::validate() const {
    if (numTypes <= 0 || numFeatures <= 0 || numFilters <= 0 || numRBF <= 0)
        throw OpenMMException("CGSchNetForce: numTypes, numFeatures, numFilters and numRBF must be positive");
    if (!(cutoff > 0.0))
        throw OpenMMException("CGSchNetForce: the cutoff must be positive");
    if (rbfType == CGSchNetForce::ExpNormal && !(rbfLowerCutoff >= 0.0 && rbfLowerCutoff < cutoff))
        throw OpenMMException("CGSchNetForce: the RBF lower cutoff must satisfy 0 <= lower cutoff < cutoff");
    const size_t F = numFeatures, NF = numFilters, K = numRBF;
    checkSize(rbfCenters, K, "the list of RBF centers");
    checkSize(rbfWidths, K, "the list of RBF widths");
    checkSize(embedding, numTypes*F, "the embedding");
    const size_t blockSizes[] = {K*NF, NF, NF*NF, NF, F*NF, NF*F, F, F*F, F};
    for (size_t b = 0; b < blocks.size(); b++)
        for (int a = 0; a < 9; a++) {
            stringstream name;
            name << "interaction block " << b << " " << blockArrayNames[a];
            checkSize(blocks[b].array((CGSchNetForce::BlockArray) a), blockSizes[a], name.str());
        }
    if (outputLayers.empty())
        throw OpenMMException("CGSchNetForce: the output network must have at least one layer");
    int inputs = numFeatures;
    for (size_t l = 0; l < outputLayers.size(); l++) {
        const CGMLDenseLayer& layer = outputLayers[l];
        stringstream name;
        name << "output layer " << l;
        if (layer.inputs != inputs || layer.outputs <= 0) {
            stringstream message;
            message << "CGSchNetForce: " << name.str() << " maps " << layer.inputs << " inputs to " << layer.outputs
                    << " outputs, but it must take the " << inputs << " outputs of the layer before and give at least one";
            throw OpenMMException(message.str());
        }
        checkSize(layer.weights, (size_t) layer.inputs*layer.outputs, name.str()+" weights");
        checkSize(layer.bias, layer.outputs, name.str()+" bias");
        inputs = layer.outputs;
    }
    if (inputs != 1)
        throw OpenMMException("CGSchNetForce: the last output layer must have exactly one output");
    if (filterTable != NULL && (filterTable->getNumBlocks() != getNumBlocks() || filterTable->getNumFilters() != numFilters ||
            filterTable->getCutoff() != cutoff))
        throw OpenMMException("CGSchNetForce: the filter table does not match the weights");
}

bool CGSchNetWeights::hasSameShape(const CGSchNetWeights& other) const {
    if (numTypes != other.numTypes || numFeatures != other.numFeatures || numFilters != other.numFilters ||
            numRBF != other.numRBF || blocks.size() != other.blocks.size() || outputLayers.size() != other.outputLayers.size())
        return false;
    for (size_t l = 0; l < outputLayers.size(); l++)
        if (outputLayers[l].inputs != other.outputLayers[l].inputs || outputLayers[l].outputs != other.outputLayers[l].outputs)
            return false;
    return true;
}

void CGSchNetWeights::checkSinglePrecisionRange(const string& computedBy) const {
    checkFloatRange(vector<double>(1, cutoff), -1, "the cutoff", computedBy);
    checkFloatRange(vector<double>(1, rbfLowerCutoff), -1, "the RBF lower cutoff", computedBy);
    checkFloatRange(vector<double>(1, defaultScale), -1, "the default scale", computedBy);
    checkFloatRange(rbfCenters, 0, "RBF centers", computedBy);
    checkFloatRange(rbfWidths, 0, "RBF widths", computedBy);
    checkFloatRange(embedding, numFeatures, "embedding", computedBy);
    // The number of columns of each block array (0 for the biases).
    const int columns[] = {numFilters, 0, numFilters, 0, numFilters, numFeatures, 0, numFeatures, 0};
    for (int b = 0; b < getNumBlocks(); b++)
        for (int a = 0; a < 9; a++) {
            stringstream name;
            name << "interaction block " << b << " " << blockArrayNames[a];
            checkFloatRange(blocks[b].array((CGSchNetForce::BlockArray) a), columns[a], name.str(), computedBy);
        }
    for (size_t l = 0; l < outputLayers.size(); l++) {
        stringstream name;
        name << "output layer " << l;
        checkFloatRange(outputLayers[l].weights, outputLayers[l].outputs, name.str()+" weights", computedBy);
        checkFloatRange(outputLayers[l].bias, 0, name.str()+" bias", computedBy);
    }
}
