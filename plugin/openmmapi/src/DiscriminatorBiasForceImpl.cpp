#include "internal/DiscriminatorBiasForceImpl.h"
#include "DiscriminatorBiasKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"

using namespace OpenMM;
using namespace OpenMMCGML;
using namespace std;

DiscriminatorBiasForceImpl::DiscriminatorBiasForceImpl(const DiscriminatorBiasForce& owner) : owner(owner), initialStructure(owner) {
}

DiscriminatorBiasForceImpl::~DiscriminatorBiasForceImpl() {
}

void DiscriminatorBiasForceImpl::initialize(ContextImpl& context) {
    const System& system = context.getSystem();
    owner.validate(system.getNumParticles());
    initialStructure = owner;
    kernel = context.getPlatform().createKernel(CalcDiscriminatorBiasForceKernel::Name(), context);
    kernel.getAs<CalcDiscriminatorBiasForceKernel>().initialize(system, owner);
}

double DiscriminatorBiasForceImpl::calcForcesAndEnergy(ContextImpl& context, bool includeForces, bool includeEnergy, int groups) {
    if ((groups&(1<<owner.getForceGroup())) != 0)
        return kernel.getAs<CalcDiscriminatorBiasForceKernel>().execute(context, includeForces, includeEnergy);
    return 0.0;
}

map<string, double> DiscriminatorBiasForceImpl::getDefaultParameters() {
    map<string, double> parameters;
    parameters[owner.getScaleParameterName()] = owner.getDefaultScale();
    return parameters;
}

vector<string> DiscriminatorBiasForceImpl::getKernelNames() {
    vector<string> names;
    names.push_back(CalcDiscriminatorBiasForceKernel::Name());
    return names;
}

void DiscriminatorBiasForceImpl::updateParametersInContext(ContextImpl& context) {
    checkSameStructure(initialStructure, owner);
    owner.validate(context.getSystem().getNumParticles());
    kernel.getAs<CalcDiscriminatorBiasForceKernel>().copyParametersToContext(context, owner);
    context.systemChanged();
}

namespace {

void structureChanged(const string& what) {
    throw OpenMMException("DiscriminatorBiasForce.updateParametersInContext: "+what+
                          " changed; only weights, the standardisation, clamps and the temperature can be updated in a Context "
                          "(reinitialize it for other changes)");
}

} // namespace

void DiscriminatorBiasForceImpl::checkSameStructure(const DiscriminatorBiasForce& a, const DiscriminatorBiasForce& b) {
    if (a.getNumDistances() != b.getNumDistances() || a.getNumAngles() != b.getNumAngles() ||
            a.getNumDihedrals() != b.getNumDihedrals())
        structureChanged("the number of features");
    for (int i = 0; i < a.getNumDistances(); i++)
        if (a.getDistance(i) != b.getDistance(i))
            structureChanged("a distance feature");
    for (int i = 0; i < a.getNumAngles(); i++)
        if (a.getAngle(i) != b.getAngle(i))
            structureChanged("an angle feature");
    for (int i = 0; i < a.getNumDihedrals(); i++)
        if (a.getDihedral(i) != b.getDihedral(i))
            structureChanged("a dihedral feature");
    if (a.getNumNetworks() != b.getNumNetworks())
        structureChanged("the number of networks");
    for (int k = 0; k < a.getNumNetworks(); k++) {
        if (a.getNetworkActivation(k) != b.getNetworkActivation(k))
            structureChanged("the activation of a network");
        if (a.getNumNetworkLayers(k) != b.getNumNetworkLayers(k))
            structureChanged("the number of layers of a network");
        for (int l = 0; l < a.getNumNetworkLayers(k); l++)
            if (a.getNetworkLayerSize(k, l) != b.getNetworkLayerSize(k, l))
                structureChanged("the size of a network layer");
    }
    if (a.getNumMolecules() != b.getNumMolecules())
        structureChanged("the number of molecules");
    for (int m = 0; m < a.getNumMolecules(); m++)
        if (a.getMoleculeParticles(m) != b.getMoleculeParticles(m))
            structureChanged("the particles of a molecule");
    if (a.usesPeriodicBoundaryConditions() != b.usesPeriodicBoundaryConditions())
        structureChanged("the periodicity");
    if (a.getScaleParameterName() != b.getScaleParameterName())
        structureChanged("the scale parameter name");
}
