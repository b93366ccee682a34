"""openmm-ml's ``cgml`` potential: MLPotential("cgml", model=...) builds the project's CG System."""

import doctest
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("torch")
openmmml = pytest.importorskip("openmmml")

from openmm import unit  # noqa: E402

from openmmcgml.cgmodel import CGModel  # noqa: E402
from openmmcgml.platforms import chain_positions  # noqa: E402
from openmmcgml.simulation import TemperatureMismatchWarning, build_system, cg_topology  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A trained CGSchNet with bond, angle, dihedral and repulsion priors, trained at 340 K.
CHIGNOLIN = os.path.join(ROOT, "examples", "models", "chignolin-ca.pt")
N_REPLICAS = 3


@pytest.fixture(scope="module")
def chignolin():
    return CGModel.load(CHIGNOLIN)


def _energy_and_forces(system, positions):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="openmmml.potentials") if e.name == "cgml"]
    assert entry.value == "openmmcgml.openmmml_potential:CGMLPotentialImplFactory"
    assert "cgml" in openmmml.MLPotential._implFactories


def test_system_matches_the_project_builder_and_float64_torch(chignolin):
    topology = cg_topology(chignolin.bead_names, N_REPLICAS)
    system = openmmml.MLPotential("cgml", model=CHIGNOLIN).createSystem(topology)
    own = build_system(chignolin, N_REPLICAS)
    positions = chain_positions(chignolin.n_beads, N_REPLICAS, seed=3)

    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())])
    assert system.getNumParticles() == N_REPLICAS * chignolin.n_beads
    assert np.all(masses > 0), "openmm-ml's default mass (0 for a bead without element) was left in place"
    np.testing.assert_array_equal(masses, np.tile(chignolin.masses, N_REPLICAS))

    energy, forces = _energy_and_forces(system, positions)
    own_energy, own_forces = _energy_and_forces(own, positions)
    assert energy == pytest.approx(own_energy, rel=1e-6)
    np.testing.assert_allclose(forces, own_forces, rtol=1e-6, atol=1e-6 * np.abs(own_forces).max())

    # and both equal the model evaluated in float64 PyTorch, replica by replica
    torch_energy, torch_forces = chignolin.energy_and_forces(positions.reshape(N_REPLICAS, chignolin.n_beads, 3))
    assert energy == pytest.approx(float(torch_energy.sum()), rel=1e-6)
    np.testing.assert_allclose(forces, torch_forces.numpy().reshape(-1, 3), rtol=1e-5,
                               atol=1e-6 * np.abs(own_forces).max())


def test_every_bead_moves_in_a_simulation(chignolin):
    """Beads of mass 0 are frozen by OpenMM's integrators: every bead must move."""
    topology = cg_topology(chignolin.bead_names, 2)
    system = openmmml.MLPotential("cgml", model=chignolin).createSystem(topology)
    integrator = openmm.LangevinMiddleIntegrator(340 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    integrator.setRandomNumberSeed(4)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    start = chain_positions(chignolin.n_beads, 2, seed=5)
    context.setPositions(start)
    context.setVelocitiesToTemperature(340 * unit.kelvin, 6)
    integrator.step(20)
    end = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert np.all(np.isfinite(end))
    assert np.all(np.linalg.norm(end - start, axis=1) > 1e-4)


def test_force_group_and_a_model_object(chignolin):
    potential = openmmml.MLPotential("cgml", model=chignolin)
    system = potential.createSystem(cg_topology(chignolin.bead_names, 1), removeCMMotion=False)
    groups = {system.getForce(i).getForceGroup() for i in range(system.getNumForces())}
    assert groups == {0}  # openmm-ml's createSystem asks for group 0
    assert system.getNumForces() == build_system(chignolin, 1).getNumForces()


def test_temperature_warning_names_both_temperatures(chignolin):
    potential = openmmml.MLPotential("cgml", model=chignolin)
    topology = cg_topology(chignolin.bead_names, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        potential.createSystem(topology, temperature=300 * unit.kelvin)
    mismatches = [w for w in caught if issubclass(w.category, TemperatureMismatchWarning)]
    assert len(mismatches) == 1
    assert "340 K" in str(mismatches[0].message) and "300 K" in str(mismatches[0].message)
    for same in (340.0, 340 * unit.kelvin, None):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            potential.createSystem(topology, temperature=same)
        assert not [w for w in caught if issubclass(w.category, TemperatureMismatchWarning)]


def test_bad_input_is_named(chignolin):
    with pytest.raises(TypeError, match="needs model="):
        openmmml.MLPotential("cgml")
    with pytest.raises(TypeError, match="unexpected arguments"):
        openmmml.MLPotential("cgml", model=chignolin, cutoff=1.0)
    with pytest.raises(FileNotFoundError, match="no-such-model.pt"):
        openmmml.MLPotential("cgml", model="no-such-model.pt")
    potential = openmmml.MLPotential("cgml", model=chignolin)
    with pytest.raises(ValueError, match="not a whole number of copies"):
        potential.createSystem(cg_topology(chignolin.bead_names[:7], 1))
    with pytest.raises(TypeError, match="unexpected arguments"):
        potential.createSystem(cg_topology(chignolin.bead_names, 1), precision="single")
    # a CG model describes whole molecules: no mixed system with a subset of the particles
    topology = cg_topology(chignolin.bead_names, 2, elements=["C"] * chignolin.n_beads)
    mm_system = build_system(chignolin, 2)
    with pytest.raises(ValueError, match="subset"):
        potential.createMixedSystem(topology, mm_system, range(chignolin.n_beads))


@pytest.mark.parametrize("first", ["openmmml", "openmmcgml.openmmml_potential"])
def test_import_order_and_no_eager_torch(first):
    """openmm-ml imports the entry point while it is being imported, from either side; neither
    import may load torch (openmm-ml instantiates the factory on every ``import openmmml``)."""
    code = (f"import sys, {first}, openmmml, openmmcgml.openmmml_potential; "
            "assert 'cgml' in openmmml.MLPotential._implFactories; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_docstring_example():
    import openmmcgml.openmmml_potential as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
