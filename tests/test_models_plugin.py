"""CGSchNet torch model <-> native CGSchNetForce: conversion and agreement in OpenMM Contexts."""

import copy
import math

import numpy as np
import pytest
import torch

from openmmcgml.models import CGSchNet, CGTopology

try:
    import openmm
    from openmmcgml.forces import CGSchNetForce
except ImportError:
    CGSchNetForce = None

pytestmark = pytest.mark.skipif(CGSchNetForce is None, reason="plugin bindings not built")

# Relative tolerance of energies and forces against the float64 torch model, per platform.
# Reference computes in double precision; the CPU platform's kernel in single precision.
TOLERANCE = {"Reference": 1e-12, "CPU": 1e-4}
BLOCK_ARRAYS = ["FilterWeights1", "FilterBias1", "FilterWeights2", "FilterBias2", "MessageWeights",
                "UpdateWeights1", "UpdateBias1", "UpdateWeights2", "UpdateBias2"]
TYPES = [0, 1, 2, 1, 0, 2, 2]
MOLECULES = [0, 0, 0, 0, 1, 1, 1]
EXCLUSIONS = [(0, 1), (2, 1), (5, 4)]


def make_model(activation="ssp", rbf="gaussian", seed=0, output_hidden=(7, 5)):
    torch.manual_seed(seed)
    model = CGSchNet(3, n_features=6, n_filters=5, n_rbf=7, n_interactions=2, cutoff=1.0, activation=activation,
                     rbf=rbf, rbf_lower_cutoff=0.1 if rbf == "expnormal" else 0.0,
                     output_hidden=output_hidden).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    return model


def positions(n, scale=1.0, seed=1):
    return np.random.default_rng(seed).uniform(0, scale, size=(n, 3))


def platform_or_skip(name):
    try:
        return openmm.Platform.getPlatformByName(name)
    except Exception:
        pytest.skip(f"platform {name} not available")


def evaluate(force, n_particles, xyz, platform, box=None, parameters=None):
    system = openmm.System()
    for _ in range(n_particles):
        system.addParticle(1.0)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform_or_skip(platform))
    context.setPositions(xyz)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    return context, energy, np.asarray(forces)


def assert_agree(energy, forces, expected_energy, expected_forces, rtol):
    assert energy == pytest.approx(expected_energy, rel=rtol, abs=rtol)
    scale = max(1.0, float(np.abs(expected_forces).max()))
    assert np.allclose(forces, expected_forces, rtol=0, atol=rtol * scale)


# ------------------------------------------------------------------------ conversion

def test_to_force_copies_every_setting():
    model = make_model("tanh", "expnormal")
    particles = [3, 8, 1, 0, 5, 6, 2]
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS, periodic=True, particles=particles,
                           scale_parameter="lambdaML", scale=0.25)
    assert isinstance(force, openmm.Force)
    assert (force.getNumTypes(), force.getNumFeatures(), force.getNumFilters(), force.getNumRBF()) == (3, 6, 5, 7)
    assert force.getCutoff() == 1.0
    assert force.getActivation() == CGSchNetForce.Tanh
    assert force.getRBFType() == CGSchNetForce.ExpNormal
    assert list(force.getRBFCenters()) == model.rbf.centers.tolist()
    assert list(force.getRBFWidths()) == model.rbf.widths.tolist()
    assert force.getRBFLowerCutoff() == 0.1
    assert list(force.getEmbedding()) == model.embedding.weight.detach().ravel().tolist()
    assert force.getNumInteractionBlocks() == 2
    for index, block in enumerate(model.interactions):
        expected = [block.filter[0].weight.T, block.filter[0].bias, block.filter[2].weight.T, block.filter[2].bias,
                    block.message.weight.T, block.update[0].weight.T, block.update[0].bias,
                    block.update[2].weight.T, block.update[2].bias]
        for name, tensor in zip(BLOCK_ARRAYS, expected):
            array = force.getInteractionBlockArray(index, getattr(CGSchNetForce, name))
            assert list(array) == tensor.detach().contiguous().ravel().tolist(), name
    layers = [m for m in model.output if isinstance(m, torch.nn.Linear)]
    assert force.getNumOutputLayers() == 3
    assert [force.getOutputLayerSize(i) for i in range(3)] == [7, 5, 1]
    for index, layer in enumerate(layers):
        assert list(force.getOutputLayerWeights(index)) == layer.weight.detach().T.contiguous().ravel().tolist()
        assert list(force.getOutputLayerBias(index)) == layer.bias.detach().tolist()
    assert list(force.getParticles()) == particles
    assert list(force.getBeadTypes()) == TYPES
    assert list(force.getMolecules()) == MOLECULES
    assert force.getNumExclusions() == 3
    assert [tuple(force.getExclusionParticles(e)) for e in range(3)] == [(0, 1), (1, 2), (4, 5)]
    assert force.getScaleParameterName() == "lambdaML"
    assert force.getDefaultScale() == 0.25
    assert force.usesPeriodicBoundaryConditions()


@pytest.mark.parametrize("activation, rbf", [("ssp", "gaussian"), ("silu", "expnormal"), ("tanh", "gaussian")])
def test_from_force_round_trip_is_exact(activation, rbf):
    model = make_model(activation, rbf)
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS)
    back = CGSchNet.from_force(force)
    assert back.config == model.config
    mine, theirs = model.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert theirs[key].dtype == torch.float64
        assert torch.equal(mine[key], theirs[key]), key
    topology = CGTopology.from_force(force)
    assert topology.bead_types.tolist() == TYPES
    assert topology.molecules.tolist() == MOLECULES
    assert topology.exclusions.tolist() == [[0, 1], [1, 2], [4, 5]]


def test_float32_model_is_copied_exactly():
    model = CGSchNet(2, 4, 4, 3, 1, cutoff=0.8)
    back = CGSchNet.from_force(model.to_force([0, 1, 1]))
    for key, value in model.state_dict().items():
        assert torch.equal(value.double(), back.state_dict()[key])


def test_round_trip_through_copy_xml_and_system():
    model = make_model()
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS)
    system = openmm.System()
    system.addForce(copy.deepcopy(force))
    # the latter two come back as plain openmm.Force objects, which from_force casts
    for other in (copy.deepcopy(force), openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(force)),
                  system.getForce(0)):
        back = CGSchNet.from_force(other)
        assert CGTopology.from_force(other).bead_types.tolist() == TYPES
        for key, value in model.state_dict().items():
            assert torch.equal(value, back.state_dict()[key]), key


def test_invalid_conversions_raise():
    model = make_model()
    with pytest.raises(ValueError, match="particles has shape"):
        model.to_force(TYPES, particles=[0, 1, 2])
    with pytest.raises(ValueError, match="more than once"):
        model.to_force(TYPES, particles=[0, 1, 2, 3, 4, 5, 5])
    with pytest.raises(ValueError, match="bead type 3 of bead 0 is out of range"):
        model.to_force([3] + TYPES[1:])
    with pytest.raises(ValueError, match="no interaction blocks|output layers"):
        CGSchNet.from_force(CGSchNetForce(3, 6, 5, 7, 1.0))
    with pytest.raises(TypeError):
        CGSchNet.from_force(openmm.HarmonicBondForce())
    other = make_model(output_hidden=(4,))
    with pytest.raises(ValueError, match="output layer sizes"):
        other.update_force(model.to_force(TYPES))


# ------------------------------------------------------------------------- agreement

@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("activation, rbf", [(a, r) for a in ("ssp", "tanh", "silu")
                                              for r in ("gaussian", "expnormal")])
def test_context_matches_model(platform, activation, rbf):
    model = make_model(activation, rbf)
    xyz = positions(7)
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS)
    _, energy, forces = evaluate(force, 7, xyz, platform)
    expected, expected_forces = model.energy_and_forces(torch.tensor(xyz), TYPES, MOLECULES, EXCLUSIONS)
    assert_agree(energy, forces, expected.item(), expected_forces.numpy(), TOLERANCE[platform])


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_context_with_particle_subset_scale_and_box(platform):
    model = make_model()
    box = np.array([[2.5, 0, 0], [0.6, 2.4, 0], [-0.9, 0.8, 2.3]])
    beads = positions(7, scale=2.5, seed=3)
    particles = [3, 8, 1, 0, 5, 6, 2]
    xyz = positions(10, seed=4)
    xyz[particles] = beads
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS, periodic=True, particles=particles,
                           scale_parameter="lambdaML")
    _, energy, forces = evaluate(force, 10, xyz, platform, box=box, parameters={"lambdaML": 0.7})
    expected, expected_forces = model.energy_and_forces(torch.tensor(beads), TYPES, MOLECULES, EXCLUSIONS,
                                                        box=torch.tensor(box))
    full = np.zeros((10, 3))
    full[particles] = 0.7 * expected_forces.numpy()
    assert_agree(energy, forces, 0.7 * expected.item(), full, TOLERANCE[platform])


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_update_force_in_context(platform):
    model, trained = make_model(seed=0), make_model(seed=1)
    xyz = positions(7)
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS)
    context, energy, _ = evaluate(force, 7, xyz, platform)
    trained.update_force(force)
    force.updateParametersInContext(context)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = np.asarray(state.getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer))
    expected, expected_forces = trained.energy_and_forces(torch.tensor(xyz), TYPES, MOLECULES, EXCLUSIONS)
    assert_agree(energy, forces, expected.item(), expected_forces.numpy(), TOLERANCE[platform])
    assert not math.isclose(energy, model(torch.tensor(xyz), TYPES, MOLECULES, EXCLUSIONS).item(), rel_tol=1e-6)
