"""Properties of the CPU platform's CGSchNet kernel that the cross-platform comparisons do not
cover: determinism, independence of the thread count, the baseline (non-AVX2) code path,
replicas, the scale parameter, updates and bad input."""

import copy
import os

import numpy as np
import openmm
import pytest

from plugin_helpers import (
    KJ,
    make_context,
    make_model,
    make_system,
    plugin_energy_forces,
    random_positions,
    relative_error,
    torch_energy_forces,
)

TOLERANCE = 1e-4  # single precision


def chain_exclusions(n_molecules, per_molecule):
    return [(m * per_molecule + i, m * per_molecule + i + 1) for m in range(n_molecules) for i in range(per_molecule - 1)]


def replica_system(seed=0, n_molecules=4, per_molecule=12, points=0, **options):
    model = make_model(seed=seed, **options)
    n = n_molecules * per_molecule
    positions = random_positions(n, 2.0, seed=seed + 1, min_distance=0.1)
    types = [(7 * i + 1) % model.n_types for i in range(n)]
    molecules = [i // per_molecule for i in range(n)]
    exclusions = chain_exclusions(n_molecules, per_molecule)
    force = model.to_force(types, molecules, exclusions, filter_tabulation_points=points)
    return model, force, positions, types, molecules, exclusions


@pytest.mark.parametrize("points", [0, 300])
def test_forces_are_deterministic_and_independent_of_the_thread_count(points):
    # Large enough that the kernel uses every thread it is given (tiny systems run on one).
    _, force, positions, *_ = replica_system(points=points, n_molecules=3, per_molecule=20, n_features=64,
                                             n_filters=64, n_rbf=20, n_interactions=3)
    results = []
    for threads in ["1", "2", "3"]:
        context = make_context(make_system(len(positions), copy.copy(force)), "CPU", {"Threads": threads})
        for _ in range(2):
            results.append(plugin_energy_forces(context, positions))
    for energy, forces in results[1:]:
        assert energy == results[0][0]
        assert np.array_equal(forces, results[0][1])


def test_baseline_instruction_set_matches_torch(monkeypatch):
    """OPENMM_CGML_CPU_SIMD=generic (read when a Context is created) runs the code compiled for
    baseline x86-64, the path of processors without AVX2."""
    model, force, positions, types, molecules, exclusions = replica_system(seed=2, activation="tanh", rbf="expnormal",
                                                                           rbf_lower_cutoff=0.05)
    expected_energy, expected_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    default = plugin_energy_forces(make_context(make_system(len(positions), copy.copy(force)), "CPU"), positions)
    monkeypatch.setenv("OPENMM_CGML_CPU_SIMD", "generic")
    generic = plugin_energy_forces(make_context(make_system(len(positions), copy.copy(force)), "CPU"), positions)
    for energy, forces in (default, generic):
        assert energy == pytest.approx(expected_energy, rel=TOLERANCE)
        assert relative_error(forces, expected_forces) < TOLERANCE
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx2" in flags and " fma" in flags:
        # the two builds round differently (fused multiply-adds), so the switch really happened
        assert not np.array_equal(default[1], generic[1])


def processor_has_avx2():
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return " avx2" in flags and " fma" in flags


def test_two_contexts_in_one_process_with_different_instruction_sets(monkeypatch):
    """The CpuSimd property chooses the arithmetic per Context and overrides OPENMM_CGML_CPU_SIMD
    (the default of a force without it): in one process a baseline Context and an automatic one
    both match float64 torch, and each reports the instruction set it uses."""
    monkeypatch.setenv("OPENMM_CGML_CPU_SIMD", "generic")
    model, force, positions, types, molecules, exclusions = replica_system(seed=12, activation="silu")
    expected_energy, expected_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    typed_forces = {setting: copy.copy(force) for setting in ("generic", "auto", None)}
    for setting, typed in typed_forces.items():
        if setting is not None:
            typed.setProperty("CpuSimd", setting)
    contexts = {setting: make_context(make_system(len(positions), typed), "CPU") for setting, typed in typed_forces.items()}
    results = {setting: plugin_energy_forces(context, positions) for setting, context in contexts.items()}
    for energy, forces in results.values():
        assert energy == pytest.approx(expected_energy, rel=TOLERANCE)
        assert relative_error(forces, expected_forces) < TOLERANCE
    in_use = {setting: typed_forces[setting].getEffectiveProperties(context) for setting, context in contexts.items()}
    automatic = "avx2" if processor_has_avx2() else "generic"
    assert in_use == {"generic": {"CpuSimd": "generic"}, "auto": {"CpuSimd": automatic}, None: {"CpuSimd": "generic"}}
    assert typed_forces["generic"].getProperties() == {"CpuSimd": "generic"} and typed_forces[None].getProperties() == {}
    assert np.array_equal(results["generic"][1], results[None][1])  # the environment's choice
    if automatic == "avx2":
        # the two builds round differently (fused multiply-adds): the Contexts really differ
        assert not np.array_equal(results["generic"][1], results["auto"][1])
        avx2 = copy.copy(force)
        avx2.setProperty("CpuSimd", "avx2")
        context = make_context(make_system(len(positions), avx2), "CPU")
        assert avx2.getEffectiveProperties(context) == {"CpuSimd": "avx2"}
        assert np.array_equal(plugin_energy_forces(context, positions)[1], results["auto"][1])


def test_replicas_add_up():
    model = make_model(seed=3)
    one = random_positions(10, 1.2, seed=4)
    types = [i % 3 for i in range(10)]
    single = make_context(make_system(10, model.to_force(types, exclusions=chain_exclusions(1, 10))), "CPU")
    e1, f1 = plugin_energy_forces(single, one)
    n = 5
    positions = np.concatenate([one + 0.01 * k for k in range(n)])  # overlapping copies
    force = model.to_force(types * n, [k for k in range(n) for _ in range(10)], chain_exclusions(n, 10))
    en, fn = plugin_energy_forces(make_context(make_system(10 * n, force), "CPU"), positions)
    assert en == pytest.approx(n * e1, rel=TOLERANCE)
    for k in range(n):
        assert relative_error(fn[10 * k:10 * (k + 1)], f1) < TOLERANCE


def test_scale_parameter_and_its_derivative():
    model = make_model(seed=5)
    positions = random_positions(9, 1.2, seed=6)
    types = [i % 3 for i in range(9)]
    context = make_context(make_system(9, model.to_force(types, scale_parameter="lam")), "CPU")
    context.setPositions(positions)
    u, f = torch_energy_forces(model, positions, types)
    for scale in [1.0, -0.4, 0.0]:
        context.setParameter("lam", scale)
        state = context.getState(getEnergy=True, getForces=True, getParameterDerivatives=True)
        assert state.getPotentialEnergy().value_in_unit(KJ) == pytest.approx(scale * u, rel=TOLERANCE, abs=TOLERANCE)
        forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
        np.testing.assert_allclose(forces, scale * f, rtol=0, atol=TOLERANCE * np.abs(f).max())
        assert state.getEnergyParameterDerivatives()["lam"] == pytest.approx(u, rel=TOLERANCE)


def test_update_parameters_and_cutoff():
    model, force, positions, types, molecules, exclusions = replica_system(seed=7)
    context = make_context(make_system(len(positions), force), "CPU")
    plugin_energy_forces(context, positions)
    trained = make_model(seed=8, cutoff=0.7)
    trained.update_force(force)
    force.updateParametersInContext(context)
    energy, forces = plugin_energy_forces(context, positions)
    expected_energy, expected_forces = torch_energy_forces(trained, positions, types, molecules, exclusions)
    assert energy == pytest.approx(expected_energy, rel=TOLERANCE)
    assert relative_error(forces, expected_forces) < TOLERANCE


def test_pairs_enter_and_leave_the_cutoff():
    """The pair list is rebuilt at every evaluation: moving beads changes the pairs inside."""
    model = make_model(seed=9, cutoff=0.6)
    types = [0, 1, 2, 1]
    context = make_context(make_system(4, model.to_force(types)), "CPU")
    for spread in [0.1, 0.3, 0.5, 2.0, 0.2]:
        positions = random_positions(4, 1.0, seed=10, min_distance=0.0) * spread
        energy, forces = plugin_energy_forces(context, positions)
        expected_energy, expected_forces = torch_energy_forces(model, positions, types)
        assert energy == pytest.approx(expected_energy, rel=TOLERANCE, abs=1e-6)
        np.testing.assert_allclose(forces, expected_forces, rtol=0, atol=TOLERANCE * max(1.0, np.abs(expected_forces).max()))


def test_coincident_beads_raise():
    model = make_model(seed=11)
    context = make_context(make_system(3, model.to_force([0, 1, 2])), "CPU")
    context.setPositions(np.array([[0, 0, 0], [0.3, 0, 0], [0.3, 0, 0]]))
    with pytest.raises(openmm.OpenMMException, match="particles 1 and 2 are at the same position"):
        context.getState(getForces=True)
