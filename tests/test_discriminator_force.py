"""DiscriminatorBiasForce against the float64 torch Discriminator, finite differences and analytic
identities; round trips; bad input.

Reference: double precision; CPU: features in double, networks in single precision, threaded;
OpenCL, CUDA and HIP share the Common-Compute kernel (kernels/discriminator.cc)."""

import copy
import pickle

import numpy as np
import openmm
import pytest
import torch

from plugin_helpers import KJ, make_context, make_system, platform_available, plugin_energy_forces, relative_error
from openmmcgml.forces import DiscriminatorBiasForce
from openmmcgml.models.discriminator import BOLTZMANN, BiasFeatures, Discriminator

N_BEADS = 6
DISTANCES = [[0, 3], [1, 4], [0, 5], [2, 5]]
ANGLES = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
DIHEDRALS = [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]
_NO_OPENCL = pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")
_NO_CUDA = pytest.mark.skipif(not platform_available("CUDA"), reason="no CUDA platform (no NVIDIA GPU/driver on this machine)")
# (platform, properties, relative tolerance of energies and forces)
PLATFORMS = [
    pytest.param("Reference", {}, 1e-9, id="Reference"),
    pytest.param("CPU", {}, 1e-5, id="CPU"),    # networks in single precision, features in double
    pytest.param("OpenCL", {"Precision": "double"}, 1e-9, id="OpenCL-double", marks=_NO_OPENCL),
    pytest.param("OpenCL", {"Precision": "single"}, 1e-5, id="OpenCL-single", marks=_NO_OPENCL),
    pytest.param("CUDA", {"Precision": "double"}, 1e-9, id="CUDA-double", marks=_NO_CUDA),
    pytest.param("CUDA", {"Precision": "single"}, 1e-5, id="CUDA-single", marks=_NO_CUDA),
]
DOUBLE_PLATFORMS = [p for p in PLATFORMS if "single" not in p.id and p.id != "CPU"]
TRICLINIC = np.array([[2.6, 0.0, 0.0], [0.7, 2.5, 0.0], [-0.9, 0.6, 2.4]])


def discriminator(seed=0):
    """Three networks: every activation, with and without clamps, weights large enough that the
    clamps act."""
    torch.manual_seed(seed)
    features = BiasFeatures(DISTANCES, ANGLES, DIHEDRALS)
    model = Discriminator(features, hidden=[12, 8], activation="silu", clamp=1.5, temperature=320.0).double()
    model.add_network([10], "ssp", 0.0)
    model.add_network([6, 6, 5], "tanh", 4.0)
    rng = np.random.default_rng(seed)
    model.set_standardization(rng.uniform(-0.2, 0.5, features.n_features), rng.uniform(0.3, 1.2, features.n_features))
    with torch.no_grad():
        for parameter in model.networks.parameters():
            parameter.normal_(0.0, 1.2 / np.sqrt(max(parameter.shape[-1], 1)))
    return model


def chains(n_molecules, seed=0):
    """Random chains of N_BEADS beads, 0.38 nm bonds, placed apart from each other."""
    rng = np.random.default_rng(seed)
    molecules = []
    for m in range(n_molecules):
        x = [rng.uniform(0, 3, 3)]
        while len(x) < N_BEADS:
            step = rng.normal(size=3)
            x.append(x[-1] + 0.38 * step / np.linalg.norm(step))
        molecules.append(np.array(x))
    return np.array(molecules)  # (n_molecules, N_BEADS, 3)


def context_for(model, n_molecules, platform, box=None, order=None, properties=None):
    """A System of n_molecules replicas; ``order`` permutes the particles (molecule m's bead i is
    particle order[m * N_BEADS + i])."""
    n = n_molecules * N_BEADS
    order = np.arange(n) if order is None else np.asarray(order)
    molecules = [order[m * N_BEADS:(m + 1) * N_BEADS].tolist() for m in range(n_molecules)]
    force = model.to_force(molecules=molecules, periodic=box is not None)
    return make_context(make_system(n, force, box), platform, properties), force, order


def place(x, order):
    positions = np.zeros((x.shape[0] * x.shape[1], 3))
    positions[order] = x.reshape(-1, 3)
    return positions


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORMS)
def test_energy_and_forces_match_torch_float64(platform, properties, tolerance):
    model = discriminator()
    x = chains(3)
    order = np.random.default_rng(1).permutation(3 * N_BEADS)  # molecules need not be contiguous
    context, _, order = context_for(model, 3, platform, order=order, properties=properties)
    energy, forces = plugin_energy_forces(context, place(x, order))
    expected_energy, expected_forces = model.energy_and_forces(torch.as_tensor(x))
    assert energy == pytest.approx(float(expected_energy), rel=tolerance, abs=1e-12)
    assert relative_error(forces, place(expected_forces.numpy(), order)) < tolerance
    # the clamps act (some network near its bound) and the energy is far from zero
    with torch.no_grad():
        logits = [model.logit(torch.as_tensor(x), member=k) for k in (0, 2)]
    assert max(float(logits[0].abs().max()) / 1.5, float(logits[1].abs().max()) / 4.0) > 0.5
    assert abs(energy) > 1.0


@pytest.mark.parametrize("platform,properties,tolerance", DOUBLE_PLATFORMS)
def test_forces_match_finite_differences_of_the_plugin_energy(platform, properties, tolerance):
    model = discriminator(seed=2)
    context, _, order = context_for(model, 1, platform, properties=properties)
    positions = place(chains(1, seed=2), order)
    _, forces = plugin_energy_forces(context, positions)
    h = 1e-5
    for particle in range(N_BEADS):
        for axis in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[particle, axis] += h
            minus[particle, axis] -= h
            numeric = -(plugin_energy_forces(context, plus)[0] - plugin_energy_forces(context, minus)[0]) / (2 * h)
            assert forces[particle, axis] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("platform,properties,tolerance", DOUBLE_PLATFORMS)
def test_replicas_add_up_and_scale_parameter_has_its_derivative(platform, properties, tolerance):
    model = discriminator(seed=3)
    x = chains(4, seed=3)
    context, force, order = context_for(model, 4, platform, properties=properties)
    energy, _ = plugin_energy_forces(context, place(x, order))
    with torch.no_grad():
        singles = [float(model.energy(torch.as_tensor(x[m]))) for m in range(4)]
    assert energy == pytest.approx(sum(singles), rel=tolerance)
    context.setParameter("discriminatorScale", 0.0)
    state = context.getState(getEnergy=True, getParameterDerivatives=True)
    assert state.getPotentialEnergy().value_in_unit(KJ) == 0.0
    # dE/dlambda = -kT * sum of logits, also at lambda = 0
    with torch.no_grad():
        expected = -BOLTZMANN * 320.0 * float(model.logit(torch.as_tensor(x)).sum())
    assert state.getEnergyParameterDerivatives()["discriminatorScale"] == pytest.approx(expected, rel=tolerance)
    assert expected == pytest.approx(sum(singles), rel=1e-10)


@pytest.mark.parametrize("platform,properties,tolerance", DOUBLE_PLATFORMS)
def test_periodic_minimum_image_matches_the_unwrapped_molecule(platform, properties, tolerance):
    model = discriminator(seed=4)
    x = chains(2, seed=4)
    context, _, order = context_for(model, 2, platform, box=TRICLINIC, properties=properties)
    unwrapped, forces = plugin_energy_forces(context, place(x, order), box=TRICLINIC)
    shifted = x.copy()
    shifted[0, ::2] += TRICLINIC[0] - 2 * TRICLINIC[2]  # whole box vectors on every other bead
    shifted[1, 1::2] += TRICLINIC[1]
    wrapped, wrapped_forces = plugin_energy_forces(context, place(shifted, order), box=TRICLINIC)
    assert wrapped == pytest.approx(unwrapped, rel=tolerance)
    assert relative_error(wrapped_forces, forces) < 10 * tolerance
    with torch.no_grad():
        assert unwrapped == pytest.approx(float(model.energy(torch.as_tensor(x))), rel=tolerance)


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORMS)
def test_collinear_beads_give_the_documented_finite_value_in_the_kernel(platform, properties, tolerance):
    model = discriminator(seed=5)
    x = chains(1, seed=5)
    x[0, 2] = x[0, 1] + (x[0, 1] - x[0, 0])  # beads 0, 1, 2 on one line
    context, _, order = context_for(model, 1, platform, properties=properties)
    energy, forces = plugin_energy_forces(context, place(x, order))
    expected_energy, expected_forces = model.energy_and_forces(torch.as_tensor(x))
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
    # in single precision the dihedral's X and Y lose their digits to cancellation next to the
    # line (errors of about 1e-7 |b|^4 against the 1e-3 |b|^4 regulariser), so 1e-4 there
    tolerance = max(tolerance, 1e-4) if tolerance > 1e-9 else tolerance
    assert energy == pytest.approx(float(expected_energy), rel=tolerance)
    assert relative_error(forces, expected_forces.numpy()) < 10 * tolerance


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORMS)
def test_update_parameters_in_context_and_structure_changes(platform, properties, tolerance):
    model = discriminator(seed=6)
    x = chains(2, seed=6)
    context, force, order = context_for(model, 2, platform, properties=properties)
    before, _ = plugin_energy_forces(context, place(x, order))
    other = discriminator(seed=7)
    other.temperature = 280.0
    other.update_force(force, context)
    after, forces = plugin_energy_forces(context, place(x, order))
    expected_energy, expected_forces = other.energy_and_forces(torch.as_tensor(x))
    assert after != pytest.approx(before)
    assert after == pytest.approx(float(expected_energy), rel=tolerance)
    assert relative_error(forces, place(expected_forces.numpy(), order)) < 10 * tolerance
    force.addDistance(1, 2)
    with pytest.raises(openmm.OpenMMException, match="the number of features changed"):
        force.updateParametersInContext(context)


def test_round_trips_give_the_typed_class_and_the_same_function():
    model = discriminator(seed=8)
    force = model.to_force(molecules=[[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], scale=0.7)
    force.setName("teacher")
    xml = openmm.XmlSerializer.serialize(force)
    assert "meanCRC32" in xml and "weightsCRC32" in xml
    for copied in (openmm.XmlSerializer.deserialize(xml), pickle.loads(pickle.dumps(force)), copy.deepcopy(force)):
        typed = DiscriminatorBiasForce.cast(copied) if not isinstance(copied, DiscriminatorBiasForce) else copied
        assert isinstance(typed, DiscriminatorBiasForce) and typed.getName() == "teacher"
        assert typed.getDefaultScale() == 0.7 and typed.getNumMolecules() == 2
        assert openmm.XmlSerializer.serialize(typed) == xml
    back = Discriminator.from_force(force)
    x = torch.as_tensor(chains(2, seed=8))
    torch.testing.assert_close(back.energy(x), model.energy(x), rtol=1e-14, atol=0)
    with pytest.raises(TypeError):
        DiscriminatorBiasForce.cast(openmm.HarmonicBondForce())


def test_a_corrupt_weight_in_the_xml_is_refused_by_name():
    force = discriminator().to_force()
    xml = openmm.XmlSerializer.serialize(force)
    start = xml.index('bias="') + len('bias="')
    corrupt = xml[:start] + ("B" if xml[start] != "B" else "C") + xml[start + 1:]
    with pytest.raises(openmm.OpenMMException, match="network 0 layer 0 bias"):
        openmm.XmlSerializer.deserialize(corrupt)


def _system(force, n=N_BEADS):
    # a copy: the System takes ownership of the force it is given, and the test reuses the original
    return make_system(n, copy.deepcopy(force))


def test_bad_input_gives_named_exceptions():
    with pytest.raises(openmm.OpenMMException, match="temperature must be positive"):
        DiscriminatorBiasForce(-1.0)
    force = DiscriminatorBiasForce(300.0)
    with pytest.raises(openmm.OpenMMException, match="uses bead 1 twice"):
        force.addAngle(1, 2, 1)
    with pytest.raises(openmm.OpenMMException, match="negative bead index"):
        force.addDistance(-1, 2)
    k = force.addNetwork(DiscriminatorBiasForce.SiLU, 0.0)
    with pytest.raises(openmm.OpenMMException, match="there are no features"):
        make_context(_system(force), "Reference")
    force.addDistance(0, 1)
    force.addNetworkLayer(k, [1.0, 2.0], [0.0, 0.0])
    force.addNetworkLayer(k, [1.0, 1.0], [0.5])
    with pytest.raises(openmm.OpenMMException, match="std of feature 0 must be positive"):
        force.setStandardization([0.0], [0.0])
    with pytest.raises(openmm.OpenMMException, match="non-finite value"):
        force.addNetworkLayer(k, [float("nan")], [0.0])
    with pytest.raises(openmm.OpenMMException, match="network index 3 is out of range"):
        force.getNetworkClamp(3)
    force.addDistance(0, 9)
    force.setStandardization([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(openmm.OpenMMException, match="refers to bead 9 but a molecule has 6 particles"):
        make_context(_system(force), "Reference")
    force = discriminator().to_force(molecules=[[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    with pytest.raises(openmm.OpenMMException, match="molecule 1 has 5 particles but molecule 0 has 6"):
        make_context(_system(force, 12), "Reference")
    force = discriminator().to_force(molecules=[[0, 1, 2, 3, 4, 12]])
    with pytest.raises(openmm.OpenMMException, match="particle 12, out of range"):
        make_context(_system(force, 12), "Reference")
    force = discriminator().to_force()
    force.addDistance(0, 2)
    with pytest.raises(openmm.OpenMMException, match="standardisation has 14 values but there are 15 features"):
        make_context(make_system(N_BEADS, force), "Reference")
    force = discriminator().to_force()
    force.addNetworkLayer(force.addNetwork(DiscriminatorBiasForce.Tanh), [1.0] * 3, [0.0])
    with pytest.raises(openmm.OpenMMException, match="network 3: its first layer has 3 weights but takes 14 features"):
        make_context(_system(force), "Reference")


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORMS)
def test_nan_positions_give_a_nan_energy_not_a_crash(platform, properties, tolerance):
    model = discriminator()
    context, _, order = context_for(model, 1, platform, properties=properties)
    positions = place(chains(1), order)
    positions[2, 1] = np.nan
    try:
        energy, _ = plugin_energy_forces(context, positions)
    except openmm.OpenMMException as error:  # the CPU platform checks positions itself
        assert "NaN" in str(error)
    else:
        assert np.isnan(energy)
