"""The Common-Compute kernels (OpenCL here, CUDA where a GPU is present) beyond the shared platform
tests: every way of splitting the work gives the same function, active pairs change between
evaluations, unusual model shapes, energy-only evaluations and both launch modes."""

import numpy as np
import openmm
import pytest

from openmmcgml.forces import CGSchNetForce
from plugin_helpers import (
    make_context,
    make_model,
    make_system,
    platform_available,
    plugin_energy_forces,
    random_positions,
    relative_error,
    torch_energy_forces,
)

TUNING = "OPENMM_CGML_COMMON_TUNING"
needs_opencl = pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")
needs_cuda = pytest.mark.skipif(not platform_available("CUDA"), reason="no CUDA platform (no NVIDIA GPU/driver on this machine)")
GPU_PLATFORMS = [pytest.param("OpenCL", marks=needs_opencl), pytest.param("CUDA", marks=needs_cuda)]


def chain_exclusions(n_molecules, per_molecule):
    return [(m * per_molecule + i, m * per_molecule + i + 1) for m in range(n_molecules) for i in range(per_molecule - 1)]


def replica_system(n_molecules=3, per_molecule=10, seed=0, **options):
    model = make_model(seed=seed, **options)
    positions = np.concatenate([random_positions(per_molecule, 1.3, seed=seed + 1 + k) for k in range(n_molecules)])
    types = [(3 * i + 1) % model.n_types for i in range(n_molecules * per_molecule)]
    molecules = [k for k in range(n_molecules) for _ in range(per_molecule)]
    exclusions = chain_exclusions(n_molecules, per_molecule)
    return model, positions, types, molecules, exclusions


@needs_opencl
@pytest.mark.parametrize("tuning", ["tileBeads=1,tilePairs=1", "tileBeads=3,tilePairs=5", "tileBeads=8,tilePairs=16"])
def test_work_decompositions_give_the_same_function(monkeypatch, tuning):
    """Beads and pairs per work-group item change only how the work is shared, not the result,
    and each decomposition is deterministic."""
    monkeypatch.setenv(TUNING, tuning)
    model, positions, types, molecules, exclusions = replica_system(activation="silu")
    force = model.to_force(types, molecules, exclusions)
    context = make_context(make_system(len(positions), force), "OpenCL", {"Precision": "double"})
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    assert energy == pytest.approx(ref_energy, rel=1e-9)
    assert relative_error(forces, ref_forces) < 1e-6
    assert np.array_equal(plugin_energy_forces(context, positions)[1], forces)


@needs_opencl
def test_two_contexts_in_one_process_with_different_tuning(monkeypatch):
    """The CommonTuning property sets the work decomposition per Context and overrides
    OPENMM_CGML_COMMON_TUNING (the default of a force without it): in one process, Contexts with
    different tiles compute the same function, to double-precision rounding, and each reports
    the settings it uses; those settings, given back as the property, reproduce the Context."""
    monkeypatch.setenv(TUNING, "tileBeads=2,tilePairs=3")
    model, positions, types, molecules, exclusions = replica_system(seed=21, activation="tanh")
    ref_energy, ref_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    settings = ["tileBeads=1,tilePairs=1", "tileBeads=5,tilePairs=7", None]
    forces, contexts, results = [], [], []
    for setting in settings:
        force = model.to_force(types, molecules, exclusions)
        if setting is not None:
            force.setProperty("CommonTuning", setting)
        forces.append(force)
        contexts.append(make_context(make_system(len(positions), force), "OpenCL", {"Precision": "double"}))
        results.append(plugin_energy_forces(contexts[-1], positions))
    for energy, forces_found in results:
        assert energy == pytest.approx(ref_energy, rel=1e-9)
        assert relative_error(forces_found, ref_forces) < 1e-6
    in_use = [force.getEffectiveProperties(context)["CommonTuning"] for force, context in zip(forces, contexts)]
    # OpenCL has no grid-wide barrier, so every stage is its own launch.
    assert in_use[0].startswith("singleLaunch=0,") and in_use[0].endswith(",tilePairs=1,tileBeads=1")
    assert in_use[1].endswith(",tilePairs=7,tileBeads=5")
    assert in_use[2].endswith(",tilePairs=3,tileBeads=2")  # from the environment
    again = model.to_force(types, molecules, exclusions)
    again.setProperty("CommonTuning", in_use[1])
    context = make_context(make_system(len(positions), again), "OpenCL", {"Precision": "double"})
    assert again.getEffectiveProperties(context)["CommonTuning"] == in_use[1]
    assert np.array_equal(plugin_energy_forces(context, positions)[1], results[1][1])


@pytest.mark.parametrize("platform", GPU_PLATFORMS)
def test_active_pairs_change_between_evaluations(platform):
    """A compact frame (every pair active), a spread-out one (few active) and the compact one again:
    nothing computed for one frame leaks into the next."""
    model, positions, types, molecules, exclusions = replica_system(n_molecules=2, per_molecule=12, seed=3)
    spread = positions * 3.0
    force = model.to_force(types, molecules, exclusions)
    context = make_context(make_system(len(positions), force), platform, {"Precision": "double"})
    results = [plugin_energy_forces(context, x) for x in (positions, spread, positions)]
    for (energy, forces), x in zip(results, (positions, spread, positions)):
        ref_energy, ref_forces = torch_energy_forces(model, x, types, molecules, exclusions)
        assert energy == pytest.approx(ref_energy, rel=1e-9)
        assert relative_error(forces, ref_forces) < 1e-6
    assert np.array_equal(results[0][1], results[2][1])


@pytest.mark.parametrize("platform", GPU_PLATFORMS)
@pytest.mark.parametrize("precision,tolerance", [("double", 1e-6), ("single", 1e-4)])
def test_wide_model_with_odd_sizes(platform, precision, tolerance):
    """Widths beyond the work-group size and not multiples of four, a short basis and a deep output
    network of uneven widths."""
    model, positions, types, molecules, exclusions = replica_system(
        n_molecules=2, per_molecule=9, seed=5, n_features=130, n_filters=134, n_rbf=7, n_interactions=3,
        output_hidden=(131, 5, 2), activation="tanh")
    force = model.to_force(types, molecules, exclusions)
    context = make_context(make_system(len(positions), force), platform, {"Precision": precision})
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    assert np.linalg.norm(ref_forces) > 0.1
    assert abs(energy - ref_energy) <= tolerance * max(abs(ref_energy), 1.0)
    assert relative_error(forces, ref_forces) < tolerance


@pytest.mark.parametrize("platform", GPU_PLATFORMS)
def test_molecules_without_pairs(platform):
    """Single-bead molecules: no candidate pairs at all, the energy comes from the biases alone."""
    model = make_model(seed=7)
    positions = random_positions(4, 1.0, seed=8)
    types = [0, 1, 2, 0]
    force = model.to_force(types, molecules=[0, 1, 2, 3])
    context = make_context(make_system(4, force), platform, {"Precision": "double"})
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, _ = torch_energy_forces(model, positions, types, molecules=[0, 1, 2, 3])
    assert energy == pytest.approx(ref_energy, rel=1e-9)
    assert np.all(forces == 0.0)


@pytest.mark.parametrize("platform", GPU_PLATFORMS)
def test_energy_only_evaluation(platform):
    model, positions, types, molecules, exclusions = replica_system(seed=9)
    force = model.to_force(types, molecules, exclusions)
    context = make_context(make_system(len(positions), force), platform, {"Precision": "double"})
    context.setPositions(positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy()._value
    ref_energy, _ = torch_energy_forces(model, positions, types, molecules, exclusions)
    assert energy == pytest.approx(ref_energy, rel=1e-9)
    assert plugin_energy_forces(context, positions)[0] == pytest.approx(energy, rel=1e-12)


@needs_opencl
def test_many_candidates_few_active():
    """More candidate pairs than one compaction chunk holds (8192), most of them beyond the cutoff."""
    model = make_model(seed=11, n_interactions=1, n_features=8, n_filters=8, n_rbf=6, output_hidden=(8,))
    positions = random_positions(150, 6.0, seed=12, min_distance=0.2)
    types = [i % 3 for i in range(150)]
    force = model.to_force(types)
    context = make_context(make_system(150, force), "OpenCL", {"Precision": "double"})
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(model, positions, types)
    assert energy == pytest.approx(ref_energy, rel=1e-9)
    assert relative_error(forces, ref_forces) < 1e-6


@pytest.mark.skipif(not hasattr(CGSchNetForce, "setFilterTabulationPoints"), reason="no tabulated-filter mode in this build")
@pytest.mark.parametrize("platform", GPU_PLATFORMS)
def test_tabulated_filters_match_the_reference_table(platform):
    """The kernels interpolate the same table as the Reference platform."""
    model, positions, types, molecules, exclusions = replica_system(seed=13, rbf="expnormal", rbf_lower_cutoff=0.05)
    results = []
    for name, properties in (("Reference", {}), (platform, {"Precision": "double"})):
        force = model.to_force(types, molecules, exclusions)
        force.setFilterTabulationPoints(150)
        results.append(plugin_energy_forces(make_context(make_system(len(positions), force), name, properties), positions))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-10)
    assert relative_error(results[1][1], results[0][1]) < 1e-7


@needs_cuda
@pytest.mark.parametrize("mode", ["singleLaunch=1", "singleLaunch=0"])
@pytest.mark.parametrize("precision,tolerance", [("double", 1e-6), ("mixed", 1e-4)])
def test_cuda_launch_modes(monkeypatch, mode, precision, tolerance):
    """All stages in one launch with grid barriers, or one launch per stage: the same function,
    deterministic, also over many evaluations and with several molecules."""
    monkeypatch.setenv(TUNING, mode)
    model, positions, types, molecules, exclusions = replica_system(n_molecules=20, per_molecule=10, seed=15)
    force = model.to_force(types, molecules, exclusions)
    context = make_context(make_system(len(positions), force), "CUDA", {"Precision": precision})
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    assert abs(energy - ref_energy) <= tolerance * max(abs(ref_energy), 1.0)
    assert relative_error(forces, ref_forces) < tolerance
    for _ in range(50):
        assert np.array_equal(plugin_energy_forces(context, positions)[1], forces)


# ------------------------------------------------------------------------------------------------
# The platform tests that tests/test_bad_input.py and test_cgschnet_force.py run on OpenCL only,
# here on CUDA (the atom-reordering test is parametrized over both in test_cgschnet_force.py).
# ------------------------------------------------------------------------------------------------

@needs_cuda
def test_cuda_coincident_beads_give_nan_energy_without_crash():
    model = make_model(seed=40)
    context = make_context(make_system(3, model.to_force([0, 1, 2])), "CUDA", {"Precision": "single"})
    context.setPositions([[0, 0, 0], [0.3, 0, 0], [0.3, 0, 0]])
    assert np.isnan(context.getState(getForces=True, getEnergy=True).getPotentialEnergy()._value)
    good = random_positions(3, 1.0, seed=41)
    ref_energy, _ = torch_energy_forces(model, good, [0, 1, 2])
    assert plugin_energy_forces(context, good)[0] == pytest.approx(ref_energy, rel=1e-4)


@needs_cuda
def test_cuda_update_parameters_scale_derivative_and_custom_cv():
    model, positions, types, molecules, exclusions = replica_system(seed=17)
    force = model.to_force(types, molecules, exclusions)
    context = make_context(make_system(len(positions), force), "CUDA", {"Precision": "double"})
    new_model = make_model(seed=18, cutoff=0.9)
    new_model.update_force(force)
    force.updateParametersInContext(context)
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(new_model, positions, types, molecules, exclusions)
    assert energy == pytest.approx(ref_energy, rel=1e-9)
    assert relative_error(forces, ref_forces) < 1e-6
    context.setParameter("cgmlScale", -0.7)
    state = context.getState(getEnergy=True, getParameterDerivatives=True)
    assert state.getPotentialEnergy()._value == pytest.approx(-0.7 * ref_energy, rel=1e-9)
    assert state.getEnergyParameterDerivatives()["cgmlScale"] == pytest.approx(ref_energy, rel=1e-9)

    cv = openmm.CustomCVForce("3*learned^2 + learned")
    cv.addCollectiveVariable("learned", model.to_force(types, molecules, exclusions))
    u, f = torch_energy_forces(model, positions, types, molecules, exclusions)
    energy, forces = plugin_energy_forces(make_context(make_system(len(positions), cv), "CUDA", {"Precision": "double"}), positions)
    assert energy == pytest.approx(3 * u**2 + u, rel=1e-9)
    assert relative_error(forces, (6 * u + 1) * f) < 1e-6
