"""openmmcgml.simulation: the CG System, replicas in one Context, sampling, trajectory files, checkpoints."""

import doctest
import importlib
import json
import os

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

from openmm import unit  # noqa: E402

from cg_standin import (ALANINE_NAMES, StandInCGModel, alanine_standin, alanine_structure,  # noqa: E402
                        real_alanine_cgmodel, write_cg_dataset)
from openmmcgml.simulation import (ArrayReporter, CGSimulation, arrange_replicas,  # noqa: E402
                                   build_system, cg_topology, default_platform, initial_structures,
                                   read_trajectories)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KB = 0.00831446261815324  # kJ/mol/K


def perturbed_structures(n, seed=0, scale=0.01):
    rng = np.random.default_rng(seed)
    return alanine_structure()[None] + rng.normal(scale=scale, size=(n, 5, 3))


def test_system_layout_and_platform_choice():
    model = alanine_standin()
    system = build_system(model, n_replicas=3)
    assert system.getNumParticles() == 15
    assert [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(5, 10)] == pytest.approx(model.masses)
    names = sorted(type(system.getForce(i)).__name__ for i in range(system.getNumForces()))
    assert "HarmonicBondForce" in names and system.getNumForces() == 3
    top = cg_topology(ALANINE_NAMES, 3)
    assert top.getNumChains() == 3 and [a.name for a in top.atoms()][:5] == ALANINE_NAMES
    assert default_platform(999) == "Reference" and default_platform(1000) == "CPU"
    assert default_platform(build_system(model, 2)) == "CPU"  # the learned force: the CPU kernel
    assert default_platform(build_system(alanine_standin(learned=False), 2)) == "Reference"
    assert CGSimulation(model, 2).platform_name == "CPU"
    with pytest.raises(ValueError, match="n_replicas"):
        build_system(model, 0)


def test_replicas_in_one_context_match_separate_contexts():
    """Copies placed on top of each other still feel only themselves: per-replica forces and energies
    in one Context equal those of one-replica Contexts."""
    model = alanine_standin(seed=3)
    structures = perturbed_structures(4, seed=1, scale=0.03)
    sim = CGSimulation(model, n_replicas=4, seed=2)
    sim.set_positions(structures, spacing=0.0)  # every copy centred at the origin
    forces = sim.get_forces()
    single = openmm.Context(build_system(model, 1), openmm.VerletIntegrator(0.001),
                            openmm.Platform.getPlatformByName("Reference"))
    energies = []
    for r in range(4):
        single.setPositions(structures[r] - structures[r].mean(axis=0))
        state = single.getState(getForces=True, getEnergy=True)
        expected = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        np.testing.assert_allclose(forces[r], expected, rtol=1e-10, atol=1e-8)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert sim.potential_energy() == pytest.approx(sum(energies), rel=1e-10)
    np.testing.assert_allclose(sim.replica_energies(), energies, rtol=1e-10)
    # the learned force contributes (otherwise the test above would say little)
    model.scale = 0.0
    assert CGSimulation(model, 1).replica_energies(structures[:1])[0] != pytest.approx(energies[0], rel=1e-6)


def test_harmonic_bond_variance_matches_boltzmann():
    """A harmonic dimer sampled at T reproduces <(r - <r>)^2> of p(r) ~ r^2 exp(-k (r - r0)^2 / 2kT),
    which is kT/k up to the r^2 Jacobian (computed here by quadrature)."""
    temperature, k, r0 = 300.0, 1000.0, 0.38
    model = StandInCGModel(["A", "B"], [12.0, 14.0], [r0], bond_k=k, temperature=temperature, learned=False)
    n_replicas = 200
    sim = CGSimulation(model, n_replicas, timestep=0.005, friction=5.0, seed=11)
    sim.set_positions(np.array([[0.0, 0.0, 0.0], [r0, 0.0, 0.0]]))
    sim.run(400)  # equilibrate
    recorder = ArrayReporter(20, n_replicas, 2)
    sim.run(400 + 4000, reporters=[recorder])
    xyz = recorder.coordinates.reshape(-1, 2, 3)
    r = np.linalg.norm(xyz[:, 1] - xyz[:, 0], axis=-1)
    kT = KB * temperature
    grid = np.linspace(r0 - 12 * np.sqrt(kT / k), r0 + 12 * np.sqrt(kT / k), 20001)
    weight = grid**2 * np.exp(-k * (grid - r0) ** 2 / (2 * kT))
    mean = np.sum(grid * weight) / np.sum(weight)
    variance = np.sum((grid - mean) ** 2 * weight) / np.sum(weight)
    assert variance == pytest.approx(kT / k, rel=0.05)  # the r^2 Jacobian is a small correction here
    # 200 replicas x 20 ps: over 20 seeds the ratio had a spread of 1.3% and the mean 0.0002 nm
    assert r.var() == pytest.approx(variance, rel=0.06)
    assert r.mean() == pytest.approx(mean, abs=0.0015)


class _Crash:
    """A reporter that interrupts the run at a given step, as a killed job would."""

    def __init__(self, step):
        self.step = step

    def describeNextReport(self, simulation):
        return {"steps": self.step - simulation.currentStep, "periodic": False, "include": []}

    def report(self, simulation, state):
        raise KeyboardInterrupt("simulated interruption")


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_checkpoint_resume_loses_and_duplicates_no_frame(tmp_path, platform):
    model = alanine_standin()
    start = perturbed_structures(3, seed=4)

    def fresh():
        sim = CGSimulation(model, 3, timestep=0.001, seed=5, platform=platform)
        sim.set_positions(start)
        return sim

    full = tmp_path / "full.h5"
    fresh().run(200, 10, full, checkpoint=tmp_path / "full.chk", checkpoint_interval=50)

    part, chk = tmp_path / "part.h5", tmp_path / "part.chk"
    with pytest.raises(KeyboardInterrupt):
        fresh().run(200, 10, part, checkpoint=chk, checkpoint_interval=50, reporters=[_Crash(125)])
    with h5py.File(part, "r") as handle:
        assert handle["step"][-1] == 120  # frames after the last checkpoint (step 100) reached the file
    with pytest.raises(FileExistsError):
        fresh().run(200, 10, part, checkpoint=chk, resume=False)

    resumed = CGSimulation(model, 3, timestep=0.001, seed=5, platform=platform)  # positions come from the checkpoint
    result = resumed.run(200, 10, part, checkpoint=chk, checkpoint_interval=50)
    assert result["resumed_from"] == 100 and result["steps"] == 100 and result["frames"] == 60

    a, b = read_trajectories(full), read_trajectories(part)
    for run_a, run_b, steps in zip(a.coordinates, b.coordinates, b.steps):
        assert steps.tolist() == list(range(10, 201, 10))
        # OpenMM checkpoints hold the random-number state: the resumed run is the same run
        np.testing.assert_array_equal(run_a, run_b)

    # running again to the same length does nothing; a longer target extends the file
    again = CGSimulation(model, 3, timestep=0.001, seed=5, platform=platform)
    assert again.run(200, 10, part, checkpoint=chk)["steps"] == 0
    assert again.run(250, 10, part, checkpoint=chk)["frames"] == 75

    other = CGSimulation(model, 2, timestep=0.001, seed=5, platform=platform)
    with pytest.raises(ValueError, match="n_replicas"):
        other.run(300, 10, tmp_path / "x.h5", checkpoint=chk)
    elsewhere = CGSimulation(model, 3, timestep=0.001, seed=5,
                             platform="CPU" if platform == "Reference" else "Reference")
    with pytest.raises(ValueError, match=f"pass platform='{platform}' to resume it"):
        elsewhere.run(300, 10, part, checkpoint=chk)


def test_trajectory_file_layout_and_mdtraj(tmp_path):
    model = alanine_standin()
    sim = CGSimulation(model, 2, timestep=0.001, seed=1)
    sim.set_positions(perturbed_structures(2))
    path = tmp_path / "run.h5"
    sim.run(60, 20, path, forces=True, progress=True)
    with h5py.File(path, "r") as handle:
        attrs = dict(handle.attrs)
        assert attrs["format"] == "openmm-cgml-trajectory" and attrs["format_version"] == 1
        assert attrs["resolution"] == "coarse-grained" and attrs["save_interval"] == 20
        assert attrs["timestep"] == pytest.approx(0.001) and attrs["temperature"] == pytest.approx(300.0)
        assert json.loads(attrs["bead_names"]) == ALANINE_NAMES
        assert json.loads(attrs["mapping"])["kind"] == "stand-in"
        assert handle["coordinates"].shape == (6, 5, 3) and handle["coordinates"].dtype == np.float32
        assert handle["forces"].shape == (6, 5, 3)
        assert handle["trajectory"][:].tolist() == [0, 1, 0, 1, 0, 1]
        assert handle["step"][:].tolist() == [20, 20, 40, 40, 60, 60]
        assert np.isnan(handle["potential_energy"][:]).all()
        assert attrs["topology_pdb"].count("HETATM") == 5  # one replica
    runs = read_trajectories(path, forces=True)
    assert len(runs.coordinates) == 2 and runs.frame_time == pytest.approx(0.02)
    np.testing.assert_allclose(runs.coordinates[1][-1], sim.get_positions()[1], atol=1e-6)
    traj = runs.to_mdtraj(1)
    assert traj.n_frames == 3 and [a.name for a in traj.topology.atoms] == ALANINE_NAMES
    assert traj.time.tolist() == pytest.approx([0.02, 0.04, 0.06])
    # the file works as a source of starting structures
    starts = initial_structures(path, 4, n_beads=5, seed=0)
    assert starts.shape == (4, 5, 3)


def test_initial_structures_and_arrangement():
    frames = np.random.default_rng(0).normal(size=(10, 5, 3))
    picked = initial_structures(frames, 4, seed=1)
    assert len({tuple(p.ravel()) for p in picked}) == 4  # distinct frames while there are enough
    assert initial_structures(frames[0], 3).shape == (3, 5, 3)
    with pytest.raises(ValueError, match="beads"):
        initial_structures(frames, 2, n_beads=6)
    placed = arrange_replicas(picked, spacing=5.0).reshape(4, 5, 3)
    np.testing.assert_allclose(placed[1] - placed[1].mean(0), picked[1] - picked[1].mean(0))
    centres = placed.mean(axis=1)
    assert np.min(np.linalg.norm(centres[:, None] - centres[None], axis=-1) + 10 * np.eye(4)) == pytest.approx(5.0)
    sim = CGSimulation(alanine_standin(), 2)
    with pytest.raises(ValueError, match="shape"):
        sim.set_positions(frames[:3])
    with pytest.raises(RuntimeError, match="set_positions"):
        sim.run(10)


def test_cli_simulate_example_config(tmp_path, monkeypatch, capsys):
    from openmmcgml import simulation
    from openmmcgml.cli import main

    reference = write_cg_dataset(tmp_path / "reference.h5", [perturbed_structures(8)], ALANINE_NAMES)
    model_path = tmp_path / "alanine.pt"
    real = real_alanine_cgmodel()
    if real is not None:
        real.save(model_path)
    else:  # until openmmcgml.cgmodel exists: the stand-in
        monkeypatch.setattr(simulation, "load_cg_model", lambda path: alanine_standin())
    config = os.path.join(ROOT, "examples", "configs", "simulate-alanine.yaml")
    output = tmp_path / "run" / "trajectory.h5"
    args = ["simulate", config, "--set", f"model={model_path}", "--set", "replicas=3", "--set", "steps=40",
            "--set", "report_interval=10", "--set", "checkpoint_interval=20", "--set", "timestep=0.001",
            "--set", f"initial.reference={reference}", "--set", f"output={output}",
            "--set", f"checkpoint={tmp_path / 'run' / 'trajectory.chk'}", "--set", "progress=false"]
    assert main(args) == 0
    assert "CPU platform" in capsys.readouterr().out
    assert read_trajectories(output).n_frames == 12
    # the same command again resumes and finds nothing left to do; a longer run extends the file
    assert main(args) == 0
    assert "resuming" in capsys.readouterr().out
    assert main(args + ["--set", "steps=60"]) == 0
    assert read_trajectories(output).n_frames == 18
    assert main(["simulate", config, "--set", "stepz=3"]) == 2
    assert "cgml simulate: error: unknown simulate setting(s) stepz" in capsys.readouterr().err


def test_real_cgmodel_in_replicas_matches_its_own_system():
    """A CGModel (learned network + PriorSet) in CGSimulation gives the energies of CGModel.create_system."""
    model = real_alanine_cgmodel(seed=2)
    if model is None:
        pytest.skip("openmmcgml.cgmodel is not available")
    structures = perturbed_structures(3, seed=6, scale=0.02)
    sim = CGSimulation(model, 3, seed=1, platform="Reference")  # the same platform: compared to 1e-10
    sim.set_positions(structures)
    reference = openmm.Context(model.create_system(3), openmm.VerletIntegrator(0.001),
                               openmm.Platform.getPlatformByName("Reference"))
    reference.setPositions(sim.context.getState(getPositions=True).getPositions())
    for group in (0, 1):  # priors, learned force
        mine = sim.context.getState(getEnergy=True, groups={group}).getPotentialEnergy()
        theirs = reference.getState(getEnergy=True, groups={group}).getPotentialEnergy()
        assert mine.value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
            theirs.value_in_unit(unit.kilojoule_per_mole), rel=1e-10)
    energy, _ = model.energy_and_forces(structures)
    np.testing.assert_allclose(sim.replica_energies(structures), energy.numpy(), rtol=1e-8)
    sim.run(50)
    assert np.all(np.isfinite(sim.get_positions()))


@pytest.mark.parametrize("name", ["openmmcgml.simulation.system", "openmmcgml.simulation.runner", "openmmcgml._config"])
def test_docstring_examples(name):
    if name.endswith("runner") and real_alanine_cgmodel() is None:
        pytest.skip("the example uses openmmcgml.cgmodel")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_platform_properties_are_checked_and_applied():
    model = alanine_standin()
    sim = CGSimulation(model, 2, platform="CPU", platform_properties={"Threads": 1}, seed=1)
    assert sim.context.getPlatform().getPropertyValue(sim.context, "Threads") == "1"
    # an automatic choice drops properties its platform does not have (priors alone: Reference)
    priors_only = CGSimulation(alanine_standin(learned=False), 2, platform_properties={"Threads": 1}, seed=1)
    assert priors_only.platform_name == "Reference" and priors_only.platform_properties == {}
    with pytest.raises(ValueError, match="platform property Thread is not one of the CPU platform's"):
        CGSimulation(model, 2, platform="CPU", platform_properties={"Thread": "1"})
