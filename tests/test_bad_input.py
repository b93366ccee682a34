"""Bad input to CGSchNetForce gets a clear exception naming the problem, never a crash."""

import math

import numpy as np
import openmm
import pytest

from openmmcgml.forces import CGSchNetForce
from plugin_helpers import make_context, make_model, make_system, platform_available, random_positions

F, NF, K = 4, 3, 5


def minimal_force(n_types=2):
    """A complete tiny force: one block and a one-layer output."""
    force = CGSchNetForce(n_types, F, NF, K, 1.0)
    force.addInteractionBlock([0.1] * (K * NF), [0.0] * NF, [0.1] * (NF * NF), [0.0] * NF, [0.1] * (F * NF),
                              [0.1] * (NF * F), [0.0] * F, [0.1] * (F * F), [0.0] * F)
    force.addOutputLayer([0.2] * F, [0.0])
    return force


def block_arrays():
    return [[0.1] * (K * NF), [0.0] * NF, [0.1] * (NF * NF), [0.0] * NF, [0.1] * (F * NF),
            [0.1] * (NF * F), [0.0] * F, [0.1] * (F * F), [0.0] * F]


def context_for(force, n_particles, box=None):
    return make_context(make_system(n_particles, force, box), "Reference")


@pytest.mark.parametrize("index,name", [(0, "filterWeights1"), (4, "messageWeights"), (8, "updateBias2")])
def test_wrong_block_array_shape(index, name):
    force = CGSchNetForce(2, F, NF, K, 1.0)
    arrays = block_arrays()
    arrays[index] = arrays[index][:-1]
    with pytest.raises(openmm.OpenMMException, match=name):
        force.addInteractionBlock(*arrays)


def test_wrong_embedding_and_rbf_shapes():
    force = CGSchNetForce(2, F, NF, K, 1.0)
    with pytest.raises(openmm.OpenMMException, match="embedding has 7 values but 8 are required"):
        force.setEmbedding([0.0] * 7)
    with pytest.raises(openmm.OpenMMException, match="RBF centers"):
        force.setRBFParameters(CGSchNetForce.Gaussian, [0.0] * 4, [1.0] * 5)
    with pytest.raises(openmm.OpenMMException, match="RBF width 2 must be positive"):
        force.setRBFParameters(CGSchNetForce.Gaussian, [0.0] * 5, [1.0, 1.0, -1.0, 1.0, 1.0])
    with pytest.raises(openmm.OpenMMException, match="lower cutoff"):
        force.setRBFParameters(CGSchNetForce.ExpNormal, [0.0] * 5, [1.0] * 5, 1.5)


def test_output_layers_must_chain_and_end_in_one_output():
    force = CGSchNetForce(2, F, NF, K, 1.0)
    with pytest.raises(openmm.OpenMMException, match="output layer 0 weights"):
        force.addOutputLayer([0.0] * (F * 3 + 1), [0.0] * 3)
    force.addInteractionBlock(*block_arrays())
    force.addOutputLayer([0.0] * (F * 3), [0.0] * 3)
    force.setBeadTypes([0, 1])
    with pytest.raises(openmm.OpenMMException, match="exactly one output"):
        context_for(force, 2)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights(bad):
    force = CGSchNetForce(2, F, NF, K, 1.0)
    arrays = block_arrays()
    arrays[2][4] = bad
    with pytest.raises(openmm.OpenMMException, match=r"filterWeights2 \(A2\) contains a non-finite value .* at index 4"):
        force.addInteractionBlock(*arrays)
    with pytest.raises(openmm.OpenMMException, match="non-finite"):
        force.setEmbedding([0.0] * 7 + [bad])


def test_non_numbers_are_type_errors():
    force = CGSchNetForce(2, F, NF, K, 1.0)
    with pytest.raises(TypeError, match="not a number"):
        force.setEmbedding([0.0] * 7 + ["x"])
    with pytest.raises(TypeError, match="not an integer"):
        force.setBeadTypes([0, 1.5])


@pytest.mark.parametrize("cutoff", [0.0, -1.0, math.nan, math.inf])
def test_cutoff_must_be_positive(cutoff):
    with pytest.raises(openmm.OpenMMException, match="cutoff must be positive"):
        CGSchNetForce(2, F, NF, K, cutoff)
    with pytest.raises(openmm.OpenMMException, match="cutoff must be positive"):
        CGSchNetForce(2, F, NF, K, 1.0).setCutoff(cutoff)


def test_bead_types_out_of_range():
    force = minimal_force()
    with pytest.raises(openmm.OpenMMException, match=r"bead type 2 of bead 1 is out of range \[0, 2\)"):
        force.setBeadTypes([0, 2])
    with pytest.raises(openmm.OpenMMException, match="bead type -1"):
        force.setBeadTypes([-1, 0])


def configured(n_types=2, types=(0, 1), molecules=None, particles=None, exclusions=(), periodic=False):
    """A fresh minimal force (a System takes ownership of the force it is given)."""
    force = minimal_force(n_types)
    force.setBeadTypes(list(types))
    if molecules is not None:
        force.setMolecules(list(molecules))
    if particles is not None:
        force.setParticles(list(particles))
    for pair in exclusions:
        force.addExclusion(*pair)
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def test_bead_count_must_match():
    with pytest.raises(openmm.OpenMMException, match="there are 3 bead types but the force acts on 4 particles"):
        context_for(configured(types=[0, 1, 1]), 4)
    with pytest.raises(openmm.OpenMMException, match="3 molecule ids"):
        context_for(configured(types=[0, 1, 1, 0], molecules=[0, 0, 1]), 4)


def test_particle_indices():
    with pytest.raises(openmm.OpenMMException, match="particle index 5 .* out of range for a System of 3 particles"):
        context_for(configured(particles=[0, 5]), 3)
    with pytest.raises(openmm.OpenMMException, match="particle 1 is listed more than once"):
        context_for(configured(particles=[1, 1]), 3)
    with pytest.raises(openmm.OpenMMException, match="negative"):
        minimal_force().setParticles([0, -2])


def test_molecule_ids_must_not_be_negative():
    with pytest.raises(openmm.OpenMMException, match="molecule id -1 of bead 0 is negative"):
        minimal_force().setMolecules([-1, 0])


@pytest.mark.parametrize(
    "pair,molecules,message",
    [
        ((0, 4), None, r"exclusion 0 \(0, 4\) refers to a bead out of range \[0, 4\)"),
        ((2, 2), None, "pairs a bead with itself"),
        ((1, 2), [0, 0, 1, 1], "joins two different molecules"),
    ],
)
def test_bad_exclusions(pair, molecules, message):
    with pytest.raises(openmm.OpenMMException, match=message):
        context_for(configured(types=[0, 1, 0, 1], molecules=molecules, exclusions=[pair]), 4)


def test_duplicate_exclusion():
    with pytest.raises(openmm.OpenMMException, match=r"exclusion 1 \(1, 0\) is a duplicate"):
        context_for(configured(types=[0, 1, 0], exclusions=[(0, 1), (1, 0)]), 3)


def test_cutoff_above_half_box_is_checked_whenever_the_box_changes():
    box = np.diag([3.0, 3.0, 3.0])
    context = context_for(configured(periodic=True), 2, box)
    context.setPositions([[0, 0, 0], [0.5, 0, 0]])
    context.getState(getEnergy=True)
    context.setPeriodicBoxVectors([1.9, 0, 0], [0, 3, 0], [0, 0, 3])
    with pytest.raises(openmm.OpenMMException, match=r"cutoff \(1 nm\) is larger than half the periodic box width \(1.9 nm\)"):
        context.getState(getEnergy=True)


def test_torch_side_validates_too():
    model = make_model()
    with pytest.raises(ValueError, match="out of range"):
        model.to_force([0, 1, 7])
    with pytest.raises(ValueError):
        model.to_force([0, 1, 2], exclusions=[(0, 5)])


def test_coincident_beads_raise_on_reference():
    model = make_model(seed=40)
    context = context_for(model.to_force([0, 1, 2]), 3)
    context.setPositions([[0, 0, 0], [0.3, 0, 0], [0.3, 0, 0]])
    with pytest.raises(openmm.OpenMMException, match="particles 1 and 2"):
        context.getState(getForces=True)


@pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")
def test_coincident_beads_do_not_crash_opencl():
    """On a GPU platform the undefined force of two interacting beads at one point makes the
    energy NaN (OpenMM's fixed-point force buffer cannot hold a NaN, so the energy is where it
    shows); the process survives and the next valid evaluation is right again."""
    model = make_model(seed=40)
    force = model.to_force([0, 1, 2])
    context = make_context(make_system(3, force), "OpenCL", {"Precision": "single"})
    context.setPositions([[0, 0, 0], [0.3, 0, 0], [0.3, 0, 0]])
    assert math.isnan(context.getState(getForces=True, getEnergy=True).getPotentialEnergy()._value)
    good = random_positions(3, 1.0, seed=41)
    context.setPositions(good)
    reference = context_for(model.to_force([0, 1, 2]), 3)
    reference.setPositions(good)
    expected = reference.getState(getEnergy=True).getPotentialEnergy()._value
    assert context.getState(getEnergy=True).getPotentialEnergy()._value == pytest.approx(expected, rel=1e-4)
