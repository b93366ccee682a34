"""CGSchNetForce on every platform against the float64 torch model, finite differences and
analytic identities."""

import numpy as np
import openmm
import pytest
from openmm import unit

from plugin_helpers import (
    KJ,
    PLATFORM_CASES,
    make_context,
    make_model,
    make_system,
    platform_available,
    plugin_energy_forces,
    random_positions,
    relative_error,
    torch_energy_forces,
)

TRICLINIC = np.array([[2.6, 0.0, 0.0], [0.7, 2.5, 0.0], [-0.9, 0.6, 2.4]])
CUBIC = np.diag([2.3, 2.3, 2.3])


def chain_exclusions(n_molecules, n_per_molecule):
    return [(m * n_per_molecule + i, m * n_per_molecule + i + 1) for m in range(n_molecules) for i in range(n_per_molecule - 1)]


# Each case: (n_molecules, beads per molecule, model options, box, exclusions?)
CASES = {
    "1x5-ssp-gauss": (1, 5, dict(activation="ssp"), None, False),
    "3x10-tanh-expnormal-excl": (3, 10, dict(activation="tanh", rbf="expnormal", rbf_lower_cutoff=0.05), None, True),
    "3x10-silu-cubic-excl": (3, 10, dict(activation="silu", n_features=8, n_filters=20), CUBIC, True),
    "3x10-ssp-expnormal-triclinic": (3, 10, dict(activation="ssp", rbf="expnormal", output_hidden=(12, 7)), TRICLINIC, False),
    "1x200-silu-triclinic-excl": (1, 200, dict(activation="silu", n_interactions=3), TRICLINIC, True),
}


def build_case(name, seed=0):
    n_molecules, per_molecule, options, box, with_exclusions = CASES[name]
    model = make_model(seed=seed, **options)
    n = n_molecules * per_molecule
    extent = (1.0 if n <= 10 else 2.2) if box is None else float(box[0, 0])
    positions = random_positions(n, extent, seed=seed + 1, min_distance=0.1)
    if box is not None:
        # Put some beads far outside the primary cell: the minimum image must not care.
        shifts = np.random.default_rng(seed).integers(-2, 3, size=(n, 3))
        positions = positions + shifts @ box
    types = [(3 * i + 1) % model.n_types for i in range(n)]
    molecules = [i // per_molecule for i in range(n)]
    exclusions = chain_exclusions(n_molecules, per_molecule) if with_exclusions else None
    return model, positions, types, molecules, exclusions, box


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORM_CASES)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_float64(platform, properties, tolerance, case):
    model, positions, types, molecules, exclusions, box = build_case(case)
    force = model.to_force(types, molecules, exclusions, periodic=box is not None)
    system = make_system(len(positions), force, box)
    context = make_context(system, platform, properties)
    energy, forces = plugin_energy_forces(context, positions, box)
    ref_energy, ref_forces = torch_energy_forces(model, positions, types, molecules, exclusions, box)
    assert np.linalg.norm(ref_forces) > 0.1  # the comparison is not between two near-zero arrays
    assert abs(energy - ref_energy) <= tolerance * max(abs(ref_energy), 1.0)
    assert relative_error(forces, ref_forces) < tolerance


def test_particle_subset_and_scale_parameter_name():
    """`particles=` maps beads to System particles; other particles feel nothing."""
    model = make_model(seed=3)
    bead_positions = random_positions(8, 1.6, seed=4)
    types = [0, 1, 2, 0, 1, 2, 0, 1]
    particles = [9, 2, 4, 0, 7, 5, 3, 1]  # System of 11 particles; 6, 8 and 10 are not beads
    force = model.to_force(types, exclusions=[(0, 1)], particles=particles, scale_parameter="lambdaCG", scale=0.75)
    system = make_system(11, force)
    positions = np.zeros((11, 3))
    positions[particles] = bead_positions
    positions[[6, 8, 10]] = [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]]
    context = make_context(system, "Reference")
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(model, bead_positions, types, exclusions=[(0, 1)])
    assert energy == pytest.approx(0.75 * ref_energy, rel=1e-12)
    np.testing.assert_allclose(forces[particles], 0.75 * ref_forces, rtol=1e-10, atol=1e-10)
    assert np.all(forces[[6, 8, 10]] == 0.0)
    context.setParameter("lambdaCG", 2.0)
    assert plugin_energy_forces(context, positions)[0] == pytest.approx(2.0 * ref_energy, rel=1e-12)


def fd_check(context, positions, n_directions=4, step=1e-4, seed=0):
    """Largest relative difference between -F.d and the central difference of E along d."""
    rng = np.random.default_rng(seed)
    _, forces = plugin_energy_forces(context, positions)
    worst = 0.0
    for _ in range(n_directions):
        direction = rng.normal(size=positions.shape)
        direction /= np.linalg.norm(direction)
        e_plus = plugin_energy_forces(context, positions + step * direction)[0]
        e_minus = plugin_energy_forces(context, positions - step * direction)[0]
        numeric = (e_plus - e_minus) / (2 * step)
        analytic = -np.sum(forces * direction)
        worst = max(worst, abs(numeric - analytic) / max(abs(analytic), 1e-3))
    return worst


FD_PLATFORMS = [
    pytest.param("Reference", {}, 1e-6, id="Reference"),
    pytest.param("OpenCL", {"Precision": "double"}, 1e-6, id="OpenCL-double",
                 marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")),
    # Mixed precision evaluates the network in single precision: each energy carries a rounding
    # error of about 1e-7 |E| (5e-6 kJ/mol here), so the step is 1e-2 nm, where that error over
    # 2h and the O(h^2) truncation error both stay near 1e-3 of the directional derivative.
    pytest.param("OpenCL", {"Precision": "mixed"}, 5e-3, id="OpenCL-mixed",
                 marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")),
]


FD_CASES = [(platform, case) for platform in FD_PLATFORMS for case in ["3x10-tanh-expnormal-excl", "3x10-ssp-expnormal-triclinic"]
            # Beads far outside the periodic cell have coordinates of ~10 nm whose float rounding
            # (1e-6 nm) swamps a single-precision difference quotient: mixed runs the compact case.
            if not (platform.id == "OpenCL-mixed" and "triclinic" in case)]


@pytest.mark.parametrize("platform,properties,tolerance,case", [pytest.param(*p.values, c, id=f"{c}-{p.id}", marks=p.marks) for p, c in FD_CASES])
def test_finite_differences_of_own_energy(platform, properties, tolerance, case):
    model, positions, types, molecules, exclusions, box = build_case(case, seed=5)
    force = model.to_force(types, molecules, exclusions, periodic=box is not None)
    context = make_context(make_system(len(positions), force, box), platform, properties)
    if box is not None:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    step = 1e-4 if properties.get("Precision", "double") == "double" else 1e-2
    assert fd_check(context, positions, step=step) < tolerance


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORM_CASES[:1] + PLATFORM_CASES[2:4])
def test_replicas_add_up(platform, properties, tolerance):
    """N copies in different molecules give N times one copy's energy and the same forces."""
    model = make_model(seed=7)
    one = random_positions(10, 1.2, seed=8)
    types = [i % 3 for i in range(10)]
    exclusions = chain_exclusions(1, 10)
    single = make_context(make_system(10, model.to_force(types, exclusions=exclusions)), platform, properties)
    e1, f1 = plugin_energy_forces(single, one)
    n = 4
    # The copies overlap in space: only the molecule ids keep them apart.
    positions = np.concatenate([one + 0.01 * k for k in range(n)])
    force = model.to_force(types * n, [k for k in range(n) for _ in range(10)], chain_exclusions(n, 10))
    many = make_context(make_system(10 * n, force), platform, properties)
    en, fn = plugin_energy_forces(many, positions)
    assert en == pytest.approx(n * e1, rel=max(tolerance, 1e-12))
    for k in range(n):
        assert relative_error(fn[10 * k:10 * (k + 1)], f1) < tolerance


GPU_PLATFORMS = [
    pytest.param("OpenCL", marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")),
    pytest.param("CUDA", marks=pytest.mark.skipif(not platform_available("CUDA"), reason="no CUDA platform (no NVIDIA GPU/driver on this machine)")),
]


@pytest.mark.parametrize("platform", GPU_PLATFORMS)
def test_replica_dynamics_with_atom_reordering_matches_reference(platform):
    """A cutoff NonbondedForce makes OpenMM reorder atoms every 250 steps on GPU platforms; beads must
    never be swapped between molecules, so after 300 steps the learned force still equals the
    float64 torch model at the current positions."""
    model = make_model(seed=9, weight_scale=0.5)
    n_rep, per = 6, 8
    rng = np.random.default_rng(10)
    positions = np.concatenate([random_positions(per, 1.0, seed=20 + k) + rng.uniform(0, 3, 3) for k in range(n_rep)])
    types = [i % 3 for i in range(per)] * n_rep
    molecules = [k for k in range(n_rep) for _ in range(per)]
    exclusions = chain_exclusions(n_rep, per)
    force = model.to_force(types, molecules, exclusions)
    force.setForceGroup(1)
    system = make_system(n_rep * per, force)
    bonds = openmm.HarmonicBondForce()
    for a, b in exclusions:
        bonds.addBond(a, b, 0.38, 1000.0)
    system.addForce(bonds)
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.CutoffNonPeriodic)
    nonbonded.setCutoffDistance(1.0)
    for _ in range(n_rep * per):
        nonbonded.addParticle(0.0, 0.3, 0.05)
    system.addForce(nonbonded)
    integrator = openmm.LangevinMiddleIntegrator(300, 5.0, 0.002)
    integrator.setRandomNumberSeed(1)
    context = make_context(system, platform, {"Precision": "double"}, integrator)
    context.setPositions(positions)
    integrator.step(300)
    state = context.getState(getPositions=True, getForces=True, getEnergy=True, groups={1})
    moved = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert np.abs(moved - positions).max() > 0.05  # the beads really moved
    ref_energy, ref_forces = torch_energy_forces(model, moved, types, molecules, exclusions)
    assert state.getPotentialEnergy().value_in_unit(KJ) == pytest.approx(ref_energy, rel=1e-8)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert relative_error(forces, ref_forces) < 1e-6


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORM_CASES[:1] + PLATFORM_CASES[2:3])
def test_update_parameters_in_context(platform, properties, tolerance):
    model = make_model(seed=11)
    positions = random_positions(10, 1.2, seed=12)
    types = [i % 3 for i in range(10)]
    force = model.to_force(types)
    system = make_system(10, force)
    context = make_context(system, platform, properties)
    before = plugin_energy_forces(context, positions)[0]
    new_model = make_model(seed=13, cutoff=0.9)  # new weights, cutoff and radial basis
    new_model.update_force(force)
    force.updateParametersInContext(context)
    energy, forces = plugin_energy_forces(context, positions)
    ref_energy, ref_forces = torch_energy_forces(new_model, positions, types)
    assert abs(energy - before) > 1e-3
    assert energy == pytest.approx(ref_energy, rel=tolerance)
    assert relative_error(forces, ref_forces) < tolerance
    # Structural changes cannot be copied into a Context.
    force.addExclusion(0, 1)
    with pytest.raises(openmm.OpenMMException, match="exclusions changed"):
        force.updateParametersInContext(context)


def test_force_groups_with_mts_integrator():
    model = make_model(seed=14)
    positions = random_positions(10, 1.2, seed=15)
    types = [i % 3 for i in range(10)]
    force = model.to_force(types, exclusions=chain_exclusions(1, 10))
    force.setForceGroup(2)
    system = make_system(10, force)
    bonds = openmm.HarmonicBondForce()
    for a, b in chain_exclusions(1, 10):
        bonds.addBond(a, b, 0.38, 2000.0)
    system.addForce(bonds)
    integrator = openmm.MTSLangevinIntegrator(300, 1.0, 0.004, [(2, 1), (0, 4)])
    context = make_context(system, "Reference", integrator=integrator)
    context.setPositions(positions)
    integrator.step(50)
    state = context.getState(getPositions=True)
    moved = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    e_group, f_group = plugin_energy_forces(context, moved, groups={2})
    e_other = plugin_energy_forces(context, moved, groups={0})[0]
    ref_energy, ref_forces = torch_energy_forces(model, moved, types, exclusions=chain_exclusions(1, 10))
    assert e_group == pytest.approx(ref_energy, rel=1e-12)
    np.testing.assert_allclose(f_group, ref_forces, rtol=1e-9, atol=1e-9)
    bond_energy = sum(0.5 * 2000.0 * (np.linalg.norm(moved[a] - moved[b]) - 0.38) ** 2 for a, b in chain_exclusions(1, 10))
    assert e_other == pytest.approx(bond_energy, rel=1e-10)


@pytest.mark.parametrize("platform", ["Reference", pytest.param("OpenCL", marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)"))])
def test_inside_custom_cv_force(platform):
    model = make_model(seed=16)
    positions = random_positions(8, 1.2, seed=17)
    types = [i % 3 for i in range(8)]
    cv = openmm.CustomCVForce("3*learned^2 + learned")
    cv.addCollectiveVariable("learned", model.to_force(types))
    system = make_system(8, cv)
    properties = {"Precision": "double"} if platform == "OpenCL" else {}
    energy, forces = plugin_energy_forces(make_context(system, platform, properties), positions)
    u, f = torch_energy_forces(model, positions, types)
    assert energy == pytest.approx(3 * u**2 + u, rel=1e-9)
    assert relative_error(forces, (6 * u + 1) * f) < 1e-9


@pytest.mark.parametrize("platform,properties,tolerance", PLATFORM_CASES[:1] + PLATFORM_CASES[2:4])
def test_global_scale_is_linear_with_parameter_derivative(platform, properties, tolerance):
    model = make_model(seed=18)
    positions = random_positions(10, 1.2, seed=19)
    types = [i % 3 for i in range(10)]
    force = model.to_force(types)
    context = make_context(make_system(10, force), platform, properties)
    context.setPositions(positions)
    u, f = torch_energy_forces(model, positions, types)
    for scale in [1.0, 0.3, -1.7, 0.0]:
        context.setParameter("cgmlScale", scale)
        state = context.getState(getEnergy=True, getForces=True, getParameterDerivatives=True)
        assert state.getPotentialEnergy().value_in_unit(KJ) == pytest.approx(scale * u, rel=tolerance, abs=tolerance)
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        np.testing.assert_allclose(forces, scale * f, rtol=tolerance * 10, atol=tolerance * np.abs(f).max())
        assert state.getEnergyParameterDerivatives()["cgmlScale"] == pytest.approx(u, rel=tolerance)


def test_nve_energy_conservation():
    """10,000 velocity-Verlet steps of a 10-bead chain (bonds + learned force) in double precision.

    Bound: with dt = 2 fs the bond vibration (period about 0.46 ps) is sampled with 230 steps, so
    velocity Verlet's shadow-Hamiltonian error is a bounded oscillation of relative size
    ~(omega dt)^2 / 8 = 3e-4 of the vibrational energy and there is no secular drift.  An error in
    any force term (a wrong sign or factor anywhere in the backward pass) instead pumps energy in
    proportion to that term, which here is of the order of the kinetic energy itself.  We require
    the drift (difference of the means of the first and last 1000 steps) below 1e-3 of the mean
    kinetic energy and the largest excursion below 1e-2 of it.
    """
    model = make_model(seed=21)
    types = [i % 3 for i in range(10)]
    exclusions = chain_exclusions(1, 10)
    # A scale of 50 makes the learned forces as large as thermal ones (tens of kJ/mol/nm).
    force = model.to_force(types, exclusions=exclusions, scale=50.0)
    system = make_system(10, force, mass=110.0)
    bonds = openmm.HarmonicBondForce()
    for a, b in exclusions:
        bonds.addBond(a, b, 0.38, 10000.0)
    system.addForce(bonds)
    integrator = openmm.VerletIntegrator(0.002)
    context = make_context(system, "Reference", integrator=integrator)
    rng = np.random.default_rng(22)
    positions = np.cumsum(np.vstack([np.zeros(3), 0.38 * rng.normal(size=(9, 3)) / np.sqrt(3)]), axis=0)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300, 23)
    bonds.setForceGroup(1)
    context.reinitialize(preserveState=True)
    learned = context.getState(getForces=True, groups={0}).getForces(asNumpy=True)
    assert np.linalg.norm(learned.value_in_unit(unit.kilojoule_per_mole / unit.nanometer)) > 10.0
    totals, kinetic = [], []
    for _ in range(100):
        integrator.step(100)
        state = context.getState(getEnergy=True)
        k = state.getKineticEnergy().value_in_unit(KJ)
        totals.append(k + state.getPotentialEnergy().value_in_unit(KJ))
        kinetic.append(k)
    totals = np.array(totals)
    mean_kinetic = np.mean(kinetic)
    drift = abs(totals[-10:].mean() - totals[:10].mean())
    assert drift < 1e-3 * mean_kinetic
    assert np.abs(totals - totals[0]).max() < 1e-2 * mean_kinetic


@pytest.mark.parametrize("platform,properties", [("Reference", {}), pytest.param("OpenCL", {"Precision": "single"}, marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)"))])
def test_repeated_evaluations_are_identical(platform, properties):
    """Fixed-point accumulation and gathered sums: the same positions give bit-identical forces."""
    model, positions, types, molecules, exclusions, box = build_case("3x10-silu-cubic-excl")
    force = model.to_force(types, molecules, exclusions, periodic=True)
    context = make_context(make_system(len(positions), force, box), platform, properties)
    first = plugin_energy_forces(context, positions, box)[1]
    for _ in range(3):
        assert np.array_equal(plugin_energy_forces(context, positions, box)[1], first)


def test_cutoff_continuity():
    """A pair crossing the cutoff: energy and force go smoothly to the isolated values."""
    model = make_model(seed=24, cutoff=0.8)
    types = [0, 1]
    context = make_context(make_system(2, model.to_force(types)), "Reference")
    isolated = plugin_energy_forces(context, np.array([[0, 0, 0], [5.0, 0, 0]]))[0]
    for r in [0.8 - 1e-5, 0.8 + 1e-5]:
        energy, forces = plugin_energy_forces(context, np.array([[0, 0, 0], [r, 0, 0]]))
        assert energy == pytest.approx(isolated, abs=1e-6)
        assert np.abs(forces).max() < 1e-3
