#include "CommonDiscriminatorBiasKernels.h"
#include "CommonCGMLKernelSources.h"
#include "CommonKernelDump.h"
#include "internal/CGSchNetWeights.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ComputeForceInfo.h"
#include "openmm/common/ComputeVectorTypes.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include <algorithm>
#include <cmath>
#include <map>

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

/**
 * Tells OpenMM's atom reordering that no particle of a molecule may be exchanged with another, and
 * reports each molecule as a particle group identical only to itself.
 */
class CommonCalcDiscriminatorBiasForceKernel::ForceInfo : public ComputeForceInfo {
public:
    ForceInfo(const vector<vector<int> >& groups, int numSystemParticles) : groups(groups), member(numSystemParticles, false) {
        for (const vector<int>& group : groups)
            for (int p : group)
                member[p] = true;
    }
    bool areParticlesIdentical(int particle1, int particle2) {
        return (particle1 == particle2 || (!member[particle1] && !member[particle2]));
    }
    int getNumParticleGroups() {
        return groups.size();
    }
    void getParticlesInGroup(int index, vector<int>& particles) {
        particles = groups[index];
    }
    bool areGroupsIdentical(int group1, int group2) {
        return (group1 == group2);
    }
private:
    vector<vector<int> > groups;
    vector<bool> member;
};

void CommonCalcDiscriminatorBiasForceKernel::packParameters(const DiscriminatorBiasForce& force, vector<double>& values,
                                                            vector<double>& clampValues, vector<int>* layoutValues) const {
    int numFeatures = force.getNumFeatures();
    values = force.getFeatureMeans();
    for (double std : force.getFeatureStds())
        values.push_back(1.0/std);
    clampValues.clear();
    for (int k = 0; k < force.getNumNetworks(); k++) {
        clampValues.push_back(force.getNetworkClamp(k));
        if (layoutValues != NULL) {
            layoutValues->push_back((int) force.getNetworkActivation(k));
            layoutValues->push_back(force.getNumNetworkLayers(k));
        }
        int inputs = numFeatures;
        for (int l = 0; l < force.getNumNetworkLayers(k); l++) {
            vector<double> weights = force.getNetworkLayerWeights(k, l), bias = force.getNetworkLayerBias(k, l);
            if (layoutValues != NULL) {
                layoutValues->push_back(inputs);
                layoutValues->push_back((int) bias.size());
                layoutValues->push_back((int) values.size());
                layoutValues->push_back((int) (values.size()+weights.size()));
            }
            values.insert(values.end(), weights.begin(), weights.end());
            values.insert(values.end(), bias.begin(), bias.end());
            inputs = bias.size();
        }
    }
}

void CommonCalcDiscriminatorBiasForceKernel::upload(ComputeArray& array, const vector<double>& values) {
    if (cc.getUseDoublePrecision())
        array.upload(values);
    else {
        string computedBy = "the "+getPlatform().getName()+" platform in single precision";
        checkFloatRange(values, 0, "a weight, mean or 1/std", computedBy, "DiscriminatorBiasForce");
        vector<float> single(values.begin(), values.end());
        array.upload(single);
    }
}

void CommonCalcDiscriminatorBiasForceKernel::initialize(const System& system, const DiscriminatorBiasForce& force) {
    ContextSelector selector(cc);
    force.validate(system.getNumParticles());
    vector<vector<int> > groups;
    for (int m = 0; m < force.getNumMolecules(); m++)
        groups.push_back(force.getMoleculeParticles(m));
    if (groups.empty()) {
        groups.push_back(vector<int>());
        for (int i = 0; i < system.getNumParticles(); i++)
            groups[0].push_back(i);
    }
    numMolecules = groups.size();
    int moleculeSize = groups[0].size();
    vector<int> flat;
    for (const vector<int>& group : groups)
        flat.insert(flat.end(), group.begin(), group.end());
    molecules.initialize<int>(cc, flat.size(), "discriminatorMolecules");
    molecules.upload(flat);

    vector<mm_int4> definitionValues;
    vector<int> indexValues;
    int feature = 0;
    for (int i = 0; i < force.getNumDistances(); i++, feature++) {
        vector<int> b = force.getDistance(i);
        definitionValues.push_back(mm_int4(b[0], b[1], -1, -1));
        indexValues.push_back(feature);
    }
    for (int i = 0; i < force.getNumAngles(); i++, feature++) {
        vector<int> b = force.getAngle(i);
        definitionValues.push_back(mm_int4(b[0], b[1], b[2], -1));
        indexValues.push_back(feature);
    }
    for (int i = 0; i < force.getNumDihedrals(); i++, feature += 2) {
        vector<int> b = force.getDihedral(i);
        definitionValues.push_back(mm_int4(b[0], b[1], b[2], b[3]));
        indexValues.push_back(feature);
    }
    definitions.initialize<mm_int4>(cc, definitionValues.size(), "discriminatorDefinitions");
    definitions.upload(definitionValues);
    featureIndex.initialize<int>(cc, indexValues.size(), "discriminatorFeatureIndex");
    featureIndex.upload(indexValues);

    vector<double> values, clampValues;
    vector<int> layoutValues;
    packParameters(force, values, clampValues, &layoutValues);
    int elementSize = (cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float));
    params.initialize(cc, values.size(), elementSize, "discriminatorParams");
    clamps.initialize(cc, clampValues.size(), elementSize, "discriminatorClamps");
    upload(params, values);
    upload(clamps, clampValues);
    layout.initialize<int>(cc, layoutValues.size(), "discriminatorLayout");
    layout.upload(layoutValues);

    int maxWidth = force.getNumFeatures(), maxTotal = 1;
    for (int k = 0; k < force.getNumNetworks(); k++) {
        int total = 0;
        for (int l = 0; l < force.getNumNetworkLayers(k); l++) {
            maxWidth = max(maxWidth, force.getNetworkLayerSize(k, l));
            total += force.getNetworkLayerSize(k, l);
        }
        maxTotal = max(maxTotal, total);
    }
    temperature = force.getTemperature();
    workGroupSize = 64;
    map<string, string> defines;
    defines["WORK_GROUP_SIZE"] = cc.intToString(workGroupSize);
    defines["NUM_MOLECULES"] = cc.intToString(numMolecules);
    defines["MOLECULE_SIZE"] = cc.intToString(moleculeSize);
    defines["NUM_DEFINITIONS"] = cc.intToString(definitionValues.size());
    defines["NUM_FEATURES"] = cc.intToString(force.getNumFeatures());
    defines["NUM_NETWORKS"] = cc.intToString(force.getNumNetworks());
    defines["MAX_WIDTH"] = cc.intToString(maxWidth);
    defines["MAX_TOTAL_WIDTH"] = cc.intToString(maxTotal);
    defines["PADDED_NUM_ATOMS"] = cc.intToString(cc.getPaddedNumAtoms());
    usePeriodic = force.usesPeriodicBoundaryConditions();
    if (usePeriodic)
        defines["USE_PERIODIC"] = "1";
    dumpKernelSourceIfAsked(cc, getPlatform().getName(), "discriminator", CommonCGMLKernelSources::discriminator, defines,
                            "DiscriminatorBiasForce");
    ComputeProgram program = cc.compileProgram(CommonCGMLKernelSources::discriminator, defines);
    kernel = program->createKernel("computeDiscriminatorBias");
    scaleParameterName = force.getScaleParameterName();
    cc.addForce(new ForceInfo(groups, system.getNumParticles()));
    cc.addEnergyParameterDerivative(scaleParameterName);
}

double CommonCalcDiscriminatorBiasForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ContextSelector selector(cc);
    const double kT = 0.00831446261815324*temperature;
    if (!hasKernel) {
        // the energy parameter derivative buffer exists once every force is initialized
        const vector<string>& derivNames = cc.getEnergyParamDerivNames();
        int derivIndex = find(derivNames.begin(), derivNames.end(), scaleParameterName)-derivNames.begin();
        ArrayInterface* arrays[] = {&cc.getPosq(), &molecules, &definitions, &featureIndex, &params, &layout, &clamps,
                                    &cc.getLongForceBuffer(), &cc.getEnergyBuffer(), &cc.getEnergyParamDerivBuffer()};
        for (ArrayInterface* array : arrays)
            kernel->addArg(*array);
        kernel->addArg((int) derivNames.size());
        kernel->addArg(derivIndex);
        for (int i = 0; i < 8; i++)
            kernel->addArg();
        hasKernel = true;
    }
    double scale = context.getParameter(scaleParameterName);
    if (cc.getUseDoublePrecision()) {
        kernel->setArg(12, scale);
        kernel->setArg(13, kT);
    }
    else {
        kernel->setArg(12, (float) scale);
        kernel->setArg(13, (float) kT);
    }
    kernel->setArg(14, includeForces ? 1 : 0);
    Vec3 a, b, c;
    cc.getPeriodicBoxVectors(a, b, c);
    if (cc.getUseDoublePrecision()) {
        kernel->setArg(15, mm_double4(a[0], b[1], c[2], 0.0));
        kernel->setArg(16, mm_double4(1.0/a[0], 1.0/b[1], 1.0/c[2], 0.0));
        kernel->setArg(17, mm_double4(a[0], a[1], a[2], 0.0));
        kernel->setArg(18, mm_double4(b[0], b[1], b[2], 0.0));
        kernel->setArg(19, mm_double4(c[0], c[1], c[2], 0.0));
    }
    else {
        kernel->setArg(15, mm_float4((float) a[0], (float) b[1], (float) c[2], 0.0f));
        kernel->setArg(16, mm_float4((float) (1.0/a[0]), (float) (1.0/b[1]), (float) (1.0/c[2]), 0.0f));
        kernel->setArg(17, mm_float4((float) a[0], (float) a[1], (float) a[2], 0.0f));
        kernel->setArg(18, mm_float4((float) b[0], (float) b[1], (float) b[2], 0.0f));
        kernel->setArg(19, mm_float4((float) c[0], (float) c[1], (float) c[2], 0.0f));
    }
    int groups = min(numMolecules, 4*cc.getNumThreadBlocks());
    kernel->execute(groups*workGroupSize, workGroupSize);
    return 0.0;
}

void CommonCalcDiscriminatorBiasForceKernel::copyParametersToContext(ContextImpl& context, const DiscriminatorBiasForce& force) {
    ContextSelector selector(cc);
    vector<double> values, clampValues;
    packParameters(force, values, clampValues, NULL);
    if (values.size() != params.getSize() || clampValues.size() != clamps.getSize())
        throw OpenMMException("DiscriminatorBiasForce: the new parameters have other shapes than the Context's");
    // check both before uploading either, so that a refused update leaves the old weights in use
    if (!cc.getUseDoublePrecision()) {
        string computedBy = "the "+getPlatform().getName()+" platform in single precision";
        checkFloatRange(values, 0, "a weight, mean or 1/std", computedBy, "DiscriminatorBiasForce");
    }
    upload(params, values);
    upload(clamps, clampValues);
    temperature = force.getTemperature();
}
