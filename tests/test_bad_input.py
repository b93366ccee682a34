"""Bad input to CGSchNetForce gets a clear exception naming the problem, never a crash."""

import math

import numpy as np
import openmm
import pytest
import torch

from openmmcgml.forces import CGSchNetForce
from plugin_helpers import (make_context, make_model, make_system, platform_available, plugin_energy_forces,
                            random_positions, relative_error, torch_energy_forces)

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


# ------------------------------------------------------------------------------------------------
# Non-finite positions and weights beyond a platform's precision (the plugin's kernels)
# ------------------------------------------------------------------------------------------------

def _gpu_cases():
    cases = []
    for platform in ("OpenCL", "CUDA", "HIP"):
        for precision in ("single", "mixed", "double"):
            cases.append(pytest.param(platform, {"Precision": precision}, 1e-6 if precision == "double" else 1e-4,
                                      id=f"{platform}-{precision}",
                                      marks=pytest.mark.skipif(not platform_available(platform),
                                                               reason=f"no {platform} platform on this machine")))
    return cases


# (platform, properties, relative tolerance against the float64 torch model)
EVERY_PLATFORM = [pytest.param("Reference", {}, 1e-6, id="Reference"), pytest.param("CPU", {}, 1e-4, id="CPU")] + _gpu_cases()


def _state_values(context):
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy()._value, np.asarray(state.getForces(asNumpy=True)._value)


@pytest.mark.parametrize("platform,properties,tolerance", EVERY_PLATFORM)
def test_non_finite_position_gives_nan_energy(platform, properties, tolerance):
    """A NaN or infinite coordinate of any bead makes the energy NaN on every platform, as OpenMM's
    own forces do (before the fix such a bead silently dropped out of every pair).  The Reference
    and CPU platforms make every force NaN too; the GPU kernels keep forces finite, since their
    fixed-point buffer cannot hold NaN.  The CPU platform's own check raises for a NaN before the
    force runs.  Finite positions before and after give the same numbers, matching float64 torch."""
    model = make_model(seed=50)
    types, molecules = [0, 1, 2, 0, 1], [0, 0, 0, 0, 1]  # bead 4 is alone: it is in no pair
    good = random_positions(5, 1.0, seed=51)
    context = make_context(make_system(5, model.to_force(types, molecules)), platform, properties)
    energy, forces = plugin_energy_forces(context, good)
    expected_energy, expected_forces = torch_energy_forces(model, good, types, molecules)
    assert energy == pytest.approx(expected_energy, rel=tolerance)
    assert relative_error(forces, expected_forces) < tolerance
    for bead, coordinate, bad in [(2, 0, math.nan), (2, 1, math.inf), (2, 2, -math.inf), (0, 1, math.nan),
                                  (4, 0, math.inf), (4, 2, -math.inf)]:
        positions = good.copy()
        positions[bead, coordinate] = bad
        context.setPositions(positions)
        if platform == "CPU" and math.isnan(bad):
            with pytest.raises(openmm.OpenMMException, match="Particle coordinate is NaN"):
                context.getState(getEnergy=True, getForces=True)
        else:
            bad_energy, bad_forces = _state_values(context)
            assert math.isnan(bad_energy), (bead, bad)
            if platform in ("Reference", "CPU"):
                assert np.isnan(bad_forces).all()
            else:
                assert np.isfinite(bad_forces).all()
        again_energy, again_forces = plugin_energy_forces(context, good)
        assert again_energy == energy and np.array_equal(again_forces, forces)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _computes_in_single_precision(platform, properties):
    return platform == "CPU" or (platform != "Reference" and properties.get("Precision") != "double")


def _range_model(embedding=None, output_bias=None):
    """A float64 model with 4 types and 8 features; optionally one huge embedding value (type 3,
    feature 7) or last output bias."""
    model = make_model(seed=52, n_types=4, n_features=8)
    with torch.no_grad():
        if embedding is not None:
            model.embedding.weight[3, 7] = embedding
        if output_bias is not None:
            model.output[2].bias[0] = output_bias
    return model


RANGE_TYPES = [0, 3, 1, 2]
RANGE_POSITIONS = random_positions(4, 0.9, seed=53)


@pytest.mark.parametrize("platform,properties,tolerance", EVERY_PLATFORM)
@pytest.mark.parametrize("array,value,message", [
    pytest.param("embedding", 1e308, r"embedding\[3\]\[7\] = 1e\+308 is outside the range of single precision", id="embedding"),
    pytest.param("output_bias", 1e39, r"output layer 1 bias\[0\] = 1e\+39 is outside the range of single precision",
                 id="output-bias"),
])
def test_weights_beyond_single_precision_at_context_creation(platform, properties, tolerance, array, value, message):
    """Platforms that keep weights in float (CPU; OpenCL/CUDA/HIP single and mixed) refuse a weight
    that float cannot represent, naming the array and index, instead of giving NaN or inf; the
    double-precision ones accept it and agree with the float64 torch model."""
    model = _range_model(**{array: value})
    system = make_system(4, model.to_force(RANGE_TYPES))
    if _computes_in_single_precision(platform, properties):
        with pytest.raises(openmm.OpenMMException, match=message):
            make_context(system, platform, properties)
        return
    energy, forces = plugin_energy_forces(make_context(system, platform, properties), RANGE_POSITIONS)
    expected_energy, expected_forces = torch_energy_forces(model, RANGE_POSITIONS, RANGE_TYPES)
    assert math.isfinite(expected_energy) and energy == pytest.approx(expected_energy, rel=tolerance)
    scale = np.abs(expected_forces).max()  # forces near 1e307: the norm itself would overflow
    if platform == "Reference" or scale < 2.0**31:
        # (OpenMM's GPU platforms sum forces in 64-bit fixed point, which holds magnitudes below
        # 2^31 kJ/mol/nm only, for every force; the energy is where such a model shows there.)
        assert relative_error(forces / scale, expected_forces / scale) < tolerance


@pytest.mark.parametrize("platform,properties,tolerance", EVERY_PLATFORM)
def test_weights_beyond_single_precision_in_update(platform, properties, tolerance):
    """updateParametersInContext refuses such weights on single-precision platforms before anything
    is copied, so the Context goes on with its old weights and accepts a later valid update."""
    force = _range_model().to_force(RANGE_TYPES)
    context = make_context(make_system(4, force), platform, properties)
    old_energy, old_forces = plugin_energy_forces(context, RANGE_POSITIONS)
    huge = _range_model(output_bias=1e39)
    force.setOutputLayerParameters(1, huge.to_force(RANGE_TYPES).getOutputLayerWeights(1), [1e39])
    if _computes_in_single_precision(platform, properties):
        with pytest.raises(openmm.OpenMMException, match=r"output layer 1 bias\[0\] = 1e\+39 is outside the range"):
            force.updateParametersInContext(context)
        energy, forces = plugin_energy_forces(context, RANGE_POSITIONS)
        assert energy == old_energy and np.array_equal(forces, old_forces)
    else:
        force.updateParametersInContext(context)
        energy, forces = plugin_energy_forces(context, RANGE_POSITIONS)
        assert energy == pytest.approx(torch_energy_forces(huge, RANGE_POSITIONS, RANGE_TYPES)[0], rel=tolerance)
    # A valid update is taken afterwards.
    shifted = _range_model(output_bias=2.5)
    force.setOutputLayerParameters(1, shifted.to_force(RANGE_TYPES).getOutputLayerWeights(1), [2.5])
    force.updateParametersInContext(context)
    energy, forces = plugin_energy_forces(context, RANGE_POSITIONS)
    expected_energy, expected_forces = torch_energy_forces(shifted, RANGE_POSITIONS, RANGE_TYPES)
    assert energy == pytest.approx(expected_energy, rel=tolerance)
    assert relative_error(forces, expected_forces) < tolerance


def test_single_precision_limit_is_where_float_overflows():
    """The CPU platform refuses exactly the values that round to infinity in float (numpy's float32
    conversion is the reference): the largest float and values just below the rounding midpoint
    2^128 - 2^103 are accepted, the midpoint itself (a tie, rounding to the even infinity) is not."""
    midpoint = 2.0**128 - 2.0**103
    values = [FLOAT32_MAX, np.nextafter(midpoint, 0.0), midpoint, -midpoint, 1e39, -FLOAT32_MAX]
    for value in values:
        model = make_model(seed=54)
        force = model.to_force([0, 1, 2])
        bias = list(force.getInteractionBlockArray(1, CGSchNetForce.UpdateBias2))
        bias[5] = float(value)
        arrays = [list(force.getInteractionBlockArray(1, a)) for a in range(9)]
        arrays[CGSchNetForce.UpdateBias2] = bias
        force.setInteractionBlockParameters(1, *arrays)
        with np.errstate(over="ignore"):
            overflows = bool(np.isinf(np.float32(value)))
        system = make_system(3, force)
        if overflows:
            with pytest.raises(openmm.OpenMMException, match=r"interaction block 1 updateBias2 \(c2\)\[5\] = .* outside the range"):
                make_context(system, "CPU")
        else:
            make_context(system, "CPU")
    with np.errstate(over="ignore"):
        assert [bool(np.isinf(np.float32(v))) for v in values[:3]] == [False, False, True]


def test_filter_tabulation_points_have_an_upper_limit():
    """A corrupt number of table points is refused before a table of that size is allocated."""
    force = minimal_force()
    force.setFilterTabulationPoints(1000000)
    with pytest.raises(openmm.OpenMMException, match=r"between 2 and 1000000 \(got 2147483647\)"):
        force.setFilterTabulationPoints(2147483647)
    assert force.getFilterTabulationPoints() == 1000000


@pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")
def test_gpu_parameter_array_beyond_32_bit_indexing_is_refused():
    """5 blocks x 999,999 intervals x 4 x 128 filters = 2.6e9 table values: more than the kernels'
    32-bit indices reach, refused with a message instead of overflowing an offset."""
    model = make_model(seed=55, n_filters=128, n_interactions=5)
    force = model.to_force([0, 1], filter_tabulation_points=1000000)
    with pytest.raises(openmm.OpenMMException, match="32-bit indexing; use fewer filter tabulation points"):
        make_context(make_system(2, force), "OpenCL", {"Precision": "single"})


@pytest.mark.parametrize("name,value,message", [
    ("CpuSIMD", "generic", r"unknown property 'CpuSIMD' \(the properties are CpuSimd, CommonTuning\)"),
    ("CpuSimd", "avx512", r"property CpuSimd = 'avx512' is not valid: use auto, avx2 or generic"),
    ("CommonTuning", "tilePairs=0", r"property CommonTuning = 'tilePairs=0' is not valid: tilePairs must be an integer from 1 to 1024"),
    ("CommonTuning", "singleLaunch=yes", r"property CommonTuning = 'singleLaunch=yes' is not valid: singleLaunch must be 0 or 1"),
    ("CommonTuning", "tileBeads=2,warps=4", r"property CommonTuning = 'tileBeads=2,warps=4' is not valid: unknown key 'warps'"),
    ("CommonTuning", "groups", r"property CommonTuning = 'groups' is not valid: 'groups' is not of the form key=value"),
])
def test_bad_property_is_refused_naming_it(name, value, message):
    force = minimal_force()
    force.setProperty("CommonTuning", "tileBeads=2")
    with pytest.raises(openmm.OpenMMException, match=message):
        force.setProperty(name, value)
    assert force.getProperties() == {"CommonTuning": "tileBeads=2"}  # unchanged


def test_bad_environment_default_is_refused_naming_it(monkeypatch):
    """The environment variable behind a property is checked when a Context reads it; a force's own
    property replaces it."""
    monkeypatch.setenv("OPENMM_CGML_CPU_SIMD", "fast")
    with pytest.raises(openmm.OpenMMException, match=r"environment variable OPENMM_CGML_CPU_SIMD = 'fast' is not valid"):
        make_context(make_system(2, configured()), "CPU")
    force = configured()
    force.setProperty("CpuSimd", "generic")
    context = make_context(make_system(2, force), "CPU")
    assert force.getEffectiveProperties(context) == {"CpuSimd": "generic"}


def test_properties_cannot_change_in_a_context():
    force = configured()
    context = make_context(make_system(2, force), "Reference")
    assert force.getEffectiveProperties(context) == {}  # the Reference platform reads none
    force.setProperty("CpuSimd", "generic")
    with pytest.raises(openmm.OpenMMException, match="the properties changed"):
        force.updateParametersInContext(context)
