"""Force matching: recovery of a known CG potential, checkpoints and resume, callbacks, the model it
returns, bad input."""

import csv
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from openmmcgml.cgmodel import CGModel
from openmmcgml.data import Trajectory, TrajectoryMetadata, ranges_to_indices, read_trajectory
from openmmcgml.estimator import Callback, ProgressBar, TrainingCheckpoint
from openmmcgml.models import CGSchNet
from openmmcgml.priors import (BOLTZMANN, DihedralMap, HarmonicAngles, HarmonicBonds, PriorSet, Repulsion, angle_list,
                               chain_bonds, dihedral_map_modes, dihedral_pairs, repulsion_pairs)
from openmmcgml.training import ForceMatching, check_force_data, plot_loss_curve

T = 300.0
N_BEADS = 5
BEAD_TYPES = [0, 1, 2, 1, 0]
ARCHITECTURE = dict(n_types=3, n_features=16, n_filters=16, n_rbf=12, n_interactions=1, cutoff=1.0,
                    output_hidden=(16,))


def chain_priors():
    """Bonds, angles and a repulsion of a 5-bead chain (fixed, not fitted)."""
    kT = BOLTZMANN * T
    bonds = chain_bonds(N_BEADS)
    angles = angle_list(N_BEADS, bonds)
    pairs = repulsion_pairs(N_BEADS, bonds)
    return PriorSet(N_BEADS, bonds, [
        HarmonicBonds(bonds, k=[3000.0] * len(bonds), r0=[0.38] * len(bonds)),
        HarmonicAngles(angles, k=[30.0] * len(angles), theta0=[1.9] * len(angles)),
        Repulsion(pairs, epsilon=[kT] * len(pairs), sigma=[0.45] * len(pairs)),
    ], temperature=T)


def true_model(seed=1, output_scale=500.0):
    """A random CGSchNet whose forces are comparable to the priors' (RMS ~ 70 kJ/mol/nm on the data)."""
    torch.manual_seed(seed)
    model = CGSchNet(**ARCHITECTURE).double()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "rbf" not in name:
                parameter.normal_(0.0, 1.0 / math.sqrt(parameter.shape[-1]))
        model.output[-1].weight.mul_(output_scale)
    return model


def simulate(cg_model, n_replicas, n_frames, interval=20, seed=7):
    """Langevin frames of n_replicas independent copies in one Reference Context.

    Returns coordinates (n_replicas * n_frames, n_beads, 3), run-major, and the run index of each frame.
    """
    from openmmcgml.platforms import chain_positions

    system = cg_model.create_system(n_replicas)
    integrator = openmm.LangevinMiddleIntegrator(T * unit.kelvin, 1.0 / unit.picosecond, 0.01 * unit.picoseconds)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(chain_positions(N_BEADS, n_replicas, seed=3))
    integrator.step(2000)
    frames = []
    for _ in range(n_frames):
        integrator.step(interval)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    frames = np.array(frames).reshape(n_frames, n_replicas, N_BEADS, 3).transpose(1, 0, 2, 3)
    return frames.reshape(-1, N_BEADS, 3), np.repeat(np.arange(n_replicas), n_frames)


@pytest.fixture(scope="module")
def synthetic():
    """Frames of a known potential (priors + random CGSchNet, through the plugin) with exact forces."""
    priors = chain_priors()
    cg = CGModel(true_model(), priors, BEAD_TYPES, masses=[110.0] * N_BEADS, temperature=T)
    coordinates, runs = simulate(cg, n_replicas=4, n_frames=500)
    _, exact = cg.energy_and_forces(coordinates)
    return {"priors": priors, "cg": cg, "coordinates": coordinates, "runs": runs, "exact": exact.numpy()}


def n_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_synthetic_recovery(synthetic):
    """Force matching on noisy forces of a known potential recovers it.

    Data: 4 independent runs x 500 frames of a 5-bead chain under priors + a random CGSchNet
    (simulated with the plugin force on the Reference platform), forces exact + N(0, sigma^2)
    noise per component.  One run is the validation set (M = 500 x 15 = 7,500 components), three
    train (N = 22,500 components); the student has the same architecture with fresh weights.

    Tolerances.  For least squares with P parameters and N observations the expected excess
    (noise-free) mean square error of the fit is about sigma^2 P / N (linearising the network
    about its optimum); here P = 1,617 and P / N = 0.072, so the noise-free RMS error must be
    below sqrt(P / N) sigma = 0.27 sigma.  The validation MSE is then sigma^2 + excess; a mean of
    M squared Gaussians has relative standard deviation sqrt(2 / M) = 1.6 %, so it must lie in
    sigma^2 [1 - 4 sqrt(2 / M), 1 + P / N + 4 sqrt(2 / M)].  Measured: validation MSE 0.996
    sigma^2, noise-free RMS error 0.067 sigma (1.8 % of the RMS force of the learned term).
    """
    sigma = 20.0
    x, runs, exact = synthetic["coordinates"], synthetic["runs"], synthetic["exact"]
    noisy = exact + np.random.default_rng(0).normal(scale=sigma, size=exact.shape)
    torch.manual_seed(2)
    student = CGSchNet(**ARCHITECTURE)
    start = time.perf_counter()
    fm = ForceMatching(student, synthetic["priors"], BEAD_TYPES, lr=3e-3, batch_size=32, max_epochs=25, patience=8,
                       lr_patience=2, validation_trajectories=[3], num_threads=1)
    fm.fit(x, noisy, runs)
    elapsed = time.perf_counter() - start
    validation = runs == 3
    m = validation.sum() * N_BEADS * 3
    n = (~validation).sum() * N_BEADS * 3
    p = n_parameters(student)
    ratio = fm.best_val_loss_ / sigma**2
    assert 1 - 4 * math.sqrt(2 / m) < ratio < 1 + p / n + 4 * math.sqrt(2 / m), ratio
    error = fm.predict(x[validation]) - exact[validation]
    rms_error = float(np.sqrt(np.mean(error**2)))
    assert rms_error < math.sqrt(p / n) * sigma, (rms_error, math.sqrt(p / n) * sigma)
    _, net = synthetic["cg"].model.energy_and_forces(torch.as_tensor(x[validation]), BEAD_TYPES,
                                                     exclusions=synthetic["cg"].exclusions)
    assert float(np.sqrt(np.mean(net.numpy() ** 2))) > 3 * sigma  # the learned term is far from negligible
    assert fm.validation_trajectories_ == [3]
    assert fm.history_[0]["val_loss"] > 1.2 * sigma**2 and fm.best_epoch_ > 5  # it did learn something
    print(f"recovery: val MSE = {ratio:.4f} sigma^2, noise-free RMS error = {rms_error / sigma:.3f} sigma, "
          f"P/N = {p / n:.3f}, {len(fm.history_)} epochs in {elapsed:.1f} s")


def test_float64_and_noise_free_score(synthetic):
    """float64 training runs, and without noise the loss goes well below the initial one."""
    x, runs, exact = synthetic["coordinates"][::4], synthetic["runs"][::4], synthetic["exact"][::4]
    torch.manual_seed(3)
    fm = ForceMatching(CGSchNet(**ARCHITECTURE), synthetic["priors"], BEAD_TYPES, lr=3e-3, max_epochs=3,
                       dtype="float64", num_threads=1)
    fm.fit(x, exact, runs)
    assert next(fm.model.parameters()).dtype == torch.float64
    assert fm.score(x, exact) < np.mean((exact - synthetic["priors"].energy_and_forces(x)[1].numpy()) ** 2)
    assert len(fm.validation_trajectories_) == 1


def test_bad_input(tmp_path):
    priors = chain_priors()
    model = CGSchNet(**ARCHITECTURE)
    fm = ForceMatching(model, priors, BEAD_TYPES, max_epochs=1)
    x = np.zeros((10, 5, 3))
    with pytest.raises(ValueError, match=r"forces have shape \(10, 4, 3\) but coordinates have shape \(10, 5, 3\)"):
        fm.fit(x, np.zeros((10, 4, 3)))
    with pytest.raises(ValueError, match="trajectory_ids has shape"):
        fm.fit(x, x, np.zeros(9, dtype=int))
    with pytest.raises(ValueError, match="frame 3 contain NaN"):
        bad = x.copy()
        bad[3, 1, 0] = np.nan
        fm.fit(bad, x)
    with pytest.raises(ValueError, match="the data have 4 beads but the priors have 5"):
        fm.fit(np.zeros((10, 4, 3)), np.zeros((10, 4, 3)))
    with pytest.raises(ValueError, match="bead_types lists 4 beads"):
        ForceMatching(model, priors, [0, 1, 2, 1])
    with pytest.raises(ValueError, match="out of range"):
        ForceMatching(model, priors, [0, 1, 3, 1, 0])
    with pytest.raises(ValueError, match="lr_schedule"):
        ForceMatching(model, priors, BEAD_TYPES, lr_schedule="step")
    with pytest.raises(ValueError, match="dtype"):
        ForceMatching(model, priors, BEAD_TYPES, dtype="float16")
    # an HDF5 dataset whose forces and coordinates disagree in shape
    import h5py

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["format"] = "openmm-cgml-trajectory"
        handle.attrs["resolution"] = "coarse-grained"
        handle["coordinates"] = np.zeros((4, 5, 3), dtype=np.float32)
        handle["forces"] = np.zeros((4, 6, 3), dtype=np.float32)
        handle["trajectory"] = np.zeros(4, dtype=np.int32)
    with pytest.raises(ValueError, match=r"forces have shape \(4, 6, 3\) but coordinates have shape \(4, 5, 3\)"):
        fm.fit(str(path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_trajectory(tmp_path / "missing.h5", resolution="coarse-grained")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_trajectory(tmp_path / "junk.h5", resolution="coarse-grained")
    with h5py.File(tmp_path / "aa.h5", "w") as handle:
        handle.attrs["resolution"] = "all-atom"
    with pytest.raises(ValueError, match="needs a coarse-grained"):
        read_trajectory(tmp_path / "aa.h5", resolution="coarse-grained")
    with pytest.raises(ValueError, match="needs a coarse-grained"):
        fm.fit(str(tmp_path / "aa.h5"))
    with pytest.raises(ValueError, match="must agree"):
        check_force_data(x, x[:, :, :2])


def write_dataset(path, coordinates, forces, runs, bead_names=("C", "N", "CA", "C", "N"), bead_types=BEAD_TYPES):
    import json

    import h5py

    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "openmm-cgml-trajectory", "format_version": 1, "resolution": "coarse-grained",
                             "system": "toy", "temperature": T, "bead_names": json.dumps(list(bead_names)),
                             "bead_types": json.dumps(list(bead_types)), "mapping": json.dumps({"kind": "toy"})})
        handle["coordinates"] = coordinates.astype(np.float32)
        handle["forces"] = forces.astype(np.float32)
        handle["trajectory"] = runs.astype(np.int32)
        handle["step"] = np.arange(len(runs), dtype=np.int64)
        handle["masses"] = np.array([12.0, 14.0, 12.0, 12.0, 14.0])
    return path


RESUME_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, torch
    from openmmcgml.models import CGSchNet
    from openmmcgml.priors import PriorSet
    from openmmcgml.training import ForceMatching, TrainingCheckpoint
    data = np.load(sys.argv[1])
    torch.manual_seed(5)
    model = CGSchNet(n_types=3, n_features=16, n_filters=16, n_rbf=12, n_interactions=1, cutoff=1.0,
                     output_hidden=(16,))
    priors = PriorSet.load(sys.argv[2])
    ForceMatching(model, priors, [0, 1, 2, 1, 0], lr=3e-3, max_epochs=int(sys.argv[4]), patience=None, batch_size=16,
                  num_threads=1).fit(data["x"], data["f"], data["t"], callbacks=[TrainingCheckpoint(sys.argv[3])])
""")


def test_kill_and_resume_loses_no_epoch(synthetic, tmp_path):
    """A training killed by SIGKILL resumes from its last checkpoint and ends as an uninterrupted one."""
    x, runs = synthetic["coordinates"][::10], synthetic["runs"][::10]
    f = synthetic["exact"][::10] + np.random.default_rng(1).normal(scale=10.0, size=x.shape)
    np.savez(tmp_path / "data.npz", x=x, f=f, t=runs)
    synthetic["priors"].save(tmp_path / "priors.json")
    folder = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(RESUME_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data.npz"), str(tmp_path / "priors.json"),
                                str(folder), "1000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    loss_csv = folder / "loss.csv"
    deadline = time.time() + 120
    killed_after = 0
    try:
        while time.time() < deadline and process.poll() is None:
            if loss_csv.exists():
                with open(loss_csv) as handle:
                    killed_after = len(list(csv.DictReader(handle)))
                if killed_after >= 3:
                    process.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode()
    assert killed_after >= 3, output
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    saved = len(state["history"])
    assert saved >= 3
    total = saved + 3

    def trainer():
        torch.manual_seed(5)
        model = CGSchNet(**ARCHITECTURE)
        return ForceMatching(model, synthetic["priors"], BEAD_TYPES, lr=3e-3, max_epochs=total, patience=None,
                             batch_size=16, num_threads=1)

    epochs_seen = []
    resumed = trainer()
    resumed.fit(x, f, runs, callbacks=[TrainingCheckpoint(folder), lambda record: epochs_seen.append(record["epoch"])])
    assert epochs_seen == list(range(saved + 1, total + 1))  # only the missing epochs ran
    assert [r["epoch"] for r in resumed.history_] == list(range(1, total + 1))

    straight = trainer().fit(x, f, runs, callbacks=[TrainingCheckpoint(tmp_path / "straight")])
    for a, b in zip(resumed.history_, straight.history_):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    for (name, a), b in zip(resumed.model.state_dict().items(), straight.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)

    with open(folder / "loss.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(1, total + 1))
    assert (folder / "loss.png").stat().st_size > 1000

    # a finished run called again does nothing more; other data or settings are refused
    again = trainer().fit(x, f, runs, callbacks=[TrainingCheckpoint(folder)])
    assert len(again.history_) == total
    with pytest.raises(ValueError, match="different data"):
        trainer().fit(x[:-1], f[:-1], runs[:-1], callbacks=[TrainingCheckpoint(folder)])
    changed = trainer()
    changed.lr = 1e-2
    with pytest.raises(ValueError, match=r"different settings \(lr\)"):
        changed.fit(x, f, runs, callbacks=[TrainingCheckpoint(folder)])
    fresh = trainer()
    fresh.max_epochs = 1
    assert len(fresh.fit(x, f, runs, callbacks=[TrainingCheckpoint(folder, resume=False)]).history_) == 1


def test_fit_from_hdf5_with_progress_and_schedules(synthetic, tmp_path, capsys):
    x, runs = synthetic["coordinates"][::10], synthetic["runs"][::10]
    path = write_dataset(tmp_path / "cg.h5", x, synthetic["exact"][::10], runs)
    data = read_trajectory(path, resolution="coarse-grained")
    assert data.metadata.bead_names == ["C", "N", "CA", "C", "N"] and data.masses.tolist() == [12.0, 14.0, 12.0, 12.0, 14.0]
    assert data.coordinates.dtype == np.float32 and data.trajectory.dtype == np.int64
    assert read_trajectory(path, frames=slice(None, None, 2), resolution="coarse-grained").n_frames == len(x[::2])
    for schedule in ("exponential", "cosine", "constant"):
        fm = ForceMatching(CGSchNet(**ARCHITECTURE), synthetic["priors"], BEAD_TYPES, max_epochs=2,
                           lr_schedule=schedule, lr_factor=0.5, num_threads=1)
        fm.fit(str(path), callbacks=[ProgressBar()])
        lrs = [r["lr"] for r in fm.history_]
        assert len(lrs) == 2
        if schedule == "exponential":
            assert lrs[1] == pytest.approx(0.5 * lrs[0])
        elif schedule == "cosine":
            assert lrs[1] < lrs[0]
        else:
            assert lrs[1] == lrs[0]
    assert "force matching" in capsys.readouterr().err  # the tqdm bar
    with pytest.raises(ValueError, match="bead types"):
        ForceMatching(CGSchNet(**ARCHITECTURE), synthetic["priors"], [0, 0, 0, 0, 0], max_epochs=1).fit(str(path))

    import matplotlib

    matplotlib.use("Agg")
    ax = plot_loss_curve(fm.history_, noise_level=1.0)
    assert ax.get_yscale() == "log"


def test_cli_train_with_example_configs(synthetic, tmp_path, capsys):
    """fit-priors then train with the example configs at tiny settings; the model runs in OpenMM."""
    from openmmcgml._config import load_config
    from openmmcgml.cgmodel import BeadSetMismatchError
    from openmmcgml.cli import main
    from openmmcgml.configs import train as train_command

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    configs = os.path.join(root, "examples", "configs")
    x, runs = synthetic["coordinates"][::10], synthetic["runs"][::10]
    data = write_dataset(tmp_path / "cg.h5", x, synthetic["exact"][::10], runs)
    priors_path, model_path = tmp_path / "priors.json", tmp_path / "models" / "toy.pt"
    assert main(["fit-priors", os.path.join(configs, "fit-priors-alanine.yaml"), "--set", f"data={data}",
                 "--set", f"output={priors_path}", "--set", "plot=null"]) == 0
    tiny = ["--set", f"data={data}", "--set", f"priors={priors_path}", "--set", f"output={model_path}",
            "--set", f"checkpoint_dir={tmp_path / 'training'}", "--set", "progress=false",
            "--set", "model.n_features=8", "--set", "model.n_filters=8", "--set", "model.n_rbf=6",
            "--set", "model.n_interactions=1", "--set", "model.output_hidden=[8]",
            "--set", "training.max_epochs=2", "--set", "training.batch_size=16", "--set", "training.num_threads=1"]
    assert main(["train", os.path.join(configs, "train-alanine.yaml")] + tiny) == 0
    out = capsys.readouterr().out
    assert "best validation force MSE" in out
    cg = CGModel.load(model_path)
    assert cg.bead_names == ["C", "N", "CA", "C", "N"] and cg.masses == [12.0, 14.0, 12.0, 12.0, 14.0]
    assert cg.bead_types == BEAD_TYPES and cg.model.n_types == 3 and cg.mapping == {"kind": "toy"}
    assert cg.metadata["force_matching"]["epochs"] == 2
    # 200 frames are too few for the noise estimate (tests/test_force_noise.py checks it on more):
    # the run says so and records why.
    assert cg.metadata["force_noise"]["summary"].startswith("force noise not estimated: ")
    assert cg.metadata["force_noise"]["summary"] in out and "too few" in out
    assert (tmp_path / "training" / "loss.csv").exists() and (tmp_path / "training" / "loss.png").exists()
    # the model as OpenMM forces equals its torch evaluation (float32 weights copied to double)
    cg.model.double()
    energy, forces = cg.energy_and_forces(x[:2])
    context = openmm.Context(cg.create_system(2), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(x[:2].reshape(-1, 3))
    state = context.getState(getEnergy=True, getForces=True)
    energy_openmm = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert energy_openmm == pytest.approx(float(energy.sum()), rel=1e-8)
    # rerunning resumes (nothing left to do); continuing from a model of another bead set is refused
    assert main(["train", os.path.join(configs, "train-alanine.yaml")] + tiny) == 0
    other = write_dataset(tmp_path / "other.h5", x, x, runs, bead_names=["C", "N", "CB", "C", "N"])
    capsys.readouterr()
    assert main(["train", os.path.join(configs, "train-alanine.yaml")] + tiny
                + ["--set", f"init_model={model_path}", "--set", f"data={other}", "--set", "priors=null"]) == 2
    assert "bead 2 has name 'CA' in the model but 'CB'" in capsys.readouterr().err
    with pytest.raises(BeadSetMismatchError, match="bead 2 has name 'CA' in the model but 'CB'"):
        train_command.run_config(load_config(os.path.join(configs, "train-alanine.yaml"), tiny[1::2] + [
            f"init_model={model_path}", f"data={other}", "priors=null"], train_command.DEFAULTS))
    assert main(["train", os.path.join(configs, "train-alanine.yaml")] + tiny + ["--set", "training.epochs=3"]) == 2
    assert "unknown training setting(s) epochs" in capsys.readouterr().err


@pytest.fixture(scope="module")
def chiral():
    """Frames of a chiral potential: the chain priors plus sine terms of (phi, psi), exact forces."""
    priors = chain_priors()
    pairs = dihedral_pairs(N_BEADS, priors.bonds)
    true_sin = np.array([[0.0, 0.0, 6.0, -4.0]])
    terms = list(priors.terms.values()) + [DihedralMap(pairs, cos=np.zeros((1, 4)), sin=true_sin)]
    truth = CGModel(None, PriorSet(N_BEADS, priors.bonds, terms, temperature=T), BEAD_TYPES,
                    masses=[110.0] * N_BEADS, temperature=T)
    x, runs = simulate(truth, n_replicas=4, n_frames=300, interval=20, seed=11)
    _, exact = truth.energy_and_forces(x)
    return {"priors": priors, "true_sin": true_sin, "x": x, "runs": runs, "exact": exact.numpy()}


def test_dihedral_map_learns_what_a_distance_network_cannot(chiral):
    """A chiral potential, priors + sine terms of (phi, psi), is learned with dihedral_map.

    A network of distances gives mirror images the same energy, so it cannot represent terms odd
    under (phi, psi) -> (-phi, -psi); the dihedral map learned with it recovers them, and the model
    file holds the map as a prior term that OpenMM evaluates like the torch model.
    """
    priors, true_sin, x, runs, exact = (chiral[k] for k in ("priors", "true_sin", "x", "runs", "exact"))
    modes = dihedral_map_modes(1)  # (0, 1), (1, -1), (1, 0), (1, 1)
    noisy = exact + np.random.default_rng(1).normal(scale=5.0, size=exact.shape)
    losses = {}
    for order in (0, 1):
        torch.manual_seed(3)
        fm = ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, lr=3e-3, batch_size=32, max_epochs=12,
                           patience=None, validation_trajectories=[3], num_threads=1, dihedral_map=order)
        fm.fit(x, noisy, runs)
        losses[order] = fm.best_val_loss_
    assert fm.map_modes == modes and fm.map_pairs.tolist() == [[0, 1, 2, 3, 4]]
    cos, sin = fm.dihedral_map_coefficients_
    np.testing.assert_allclose(sin, true_sin, atol=1.0)
    assert losses[1] < losses[0] - 1.0, losses  # noise variance 25: the odd part is what was missing
    cg = fm.fetch_model(masses=[110.0] * N_BEADS)
    assert cg.priors["dihedral_map"].order == 1 and cg.metadata["force_matching"]["settings"]["dihedral_map"] == 1
    np.testing.assert_allclose(cg.energy_and_forces(x[:20])[1].numpy(), fm.predict(x[:20]), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="dihedral_map must be a non-negative integer"):
        ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, dihedral_map=-1)
    with pytest.raises(ValueError, match="dihedral_map needs two dihedrals"):
        ForceMatching(CGSchNet(**ARCHITECTURE), PriorSet(4, terms=[]), [0, 1, 1, 0], dihedral_map=1)


def test_bonds_plus_map_exclusions_leave_the_torsions_to_the_map(chiral):
    """exclusions='bonds+map' hides from the network every pair whose distance depends on a mapped
    dihedral, so the network's energy cannot change with phi and psi (it can with 'bonds'), and the
    map alone learns the torsion landscape."""
    from openmmcgml.analysis.marginal import _chain_positions

    priors, true_sin, x, runs, exact = (chiral[k] for k in ("priors", "true_sin", "x", "runs", "exact"))
    bonds = [tuple(b) for b in priors.bonds.tolist()]
    torch.manual_seed(3)
    fm = ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, "bonds+map", lr=3e-3, batch_size=32,
                       max_epochs=12, patience=None, validation_trajectories=[3], num_threads=1, dihedral_map=1)
    assert fm.exclusions == bonds + [(0, 3), (1, 4), (0, 4)]
    # one set of bonds and angles, 50 (phi, psi): the network sees the same distances in all of them
    rng = np.random.default_rng(0)
    dihedrals = rng.uniform(-np.pi, np.pi, size=(50, 2))
    frames = _chain_positions(np.full((50, 4), 0.145), np.full((50, 3), 2.0), dihedrals)
    blind = fm.model(torch.as_tensor(frames, dtype=torch.float32), fm.topology).detach().numpy()
    assert np.ptp(blind) < 1e-4 * max(1.0, np.abs(blind).max())
    seeing = ForceMatching(fm.model, priors, BEAD_TYPES, "bonds", dihedral_map=1)
    assert np.ptp(seeing.model(torch.as_tensor(frames, dtype=torch.float32), seeing.topology).detach().numpy()) > 1e-3

    fm.fit(x, exact + np.random.default_rng(1).normal(scale=5.0, size=exact.shape), runs)
    np.testing.assert_allclose(fm.dihedral_map_coefficients_[1], true_sin, atol=1.0)
    cg = fm.fetch_model(masses=[110.0] * N_BEADS)
    assert [tuple(p) for p in cg.exclusions] == fm.exclusions
    np.testing.assert_allclose(cg.energy_and_forces(x[:20])[1].numpy(), fm.predict(x[:20]), rtol=1e-4, atol=1e-3)

    six = PriorSet(6, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], [])
    longer = ForceMatching(CGSchNet(**ARCHITECTURE), six, [0, 1, 2, 1, 2, 0], "bonds+map", dihedral_map=1)
    assert sorted(map(tuple, map(sorted, longer.exclusions))) == sorted(
        [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5), (0, 4), (1, 5)])
    with pytest.raises(ValueError, match="there is no map"):
        ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, "bonds+map")
    with pytest.raises(ValueError, match="exclusions must be one of"):
        ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, "angles", dihedral_map=1)


def test_trained_priors_add_to_a_map_the_priors_hold():
    priors = chain_priors()
    pairs = dihedral_pairs(N_BEADS, priors.bonds)
    held = DihedralMap(pairs, cos=[[1.0, 0.0, 0.5, 0.0]], sin=[[0.0, 2.0, 0.0, 0.0]])
    with_map = PriorSet(N_BEADS, priors.bonds, list(priors.terms.values()) + [held], temperature=T)
    fm = ForceMatching(CGSchNet(**ARCHITECTURE), with_map, BEAD_TYPES, dihedral_map=1)
    fm._init_map(torch.float64, "cpu")
    with torch.no_grad():
        fm._map.copy_(torch.tensor([[[0.1, 0.0, 0.0, 0.0], [0.0, 0.0, -0.2, 0.3]]]))
    merged = fm.trained_priors()["dihedral_map"]
    np.testing.assert_allclose(merged.parameters["cos"], [[2.0, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(merged.parameters["sin"], [[0.0, 2.0, -2.0, 3.0]])
    other = ForceMatching(CGSchNet(**ARCHITECTURE), with_map, BEAD_TYPES, dihedral_map=2)
    other._init_map(torch.float64, "cpu")
    with pytest.raises(ValueError, match="another order"):
        other.trained_priors()


class Recorder(Callback):
    """Every hook call, with what the run held at that moment."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, estimator, run):
        self.calls.append(("start", run.epochs_done))

    def on_epoch_end(self, estimator, run):
        self.calls.append(("epoch", run.history[-1]["epoch"]))

    def on_fit_end(self, estimator, run):
        self.calls.append(("end", run.completed))


def test_fetch_model_describes_the_dataset_and_the_validation_frames(synthetic, tmp_path):
    """The model carries the dataset's beads, masses, temperature and mapping, and the metadata the
    frames the trainer held out, as indices into the (strided) frames it was fitted on."""
    x, runs = synthetic["coordinates"][::10], synthetic["runs"][::10]
    path = write_dataset(tmp_path / "cg.h5", x, synthetic["exact"][::10], runs)
    fm = ForceMatching(CGSchNet(**ARCHITECTURE), synthetic["priors"], BEAD_TYPES, max_epochs=2, num_threads=1)
    with pytest.raises(RuntimeError, match="not been fitted"):
        fm.fetch_model()
    data = read_trajectory(path, frames=slice(None, None, 2), resolution="coarse-grained")
    recorder = Recorder()
    fm.fit(data, callbacks=[recorder])
    assert recorder.calls == [("start", 0), ("epoch", 1), ("epoch", 2), ("end", True)]
    # the held-out frames are exactly those of the held-out trajectory, counted in the strided data
    held_out = np.flatnonzero(np.isin(runs[::2], fm.validation_trajectories_))
    assert len(fm.validation_trajectories_) == 1 and fm.validation_frames_.tolist() == held_out.tolist()
    assert fm.n_validation_frames_ == len(held_out) and fm.n_train_frames_ == len(runs[::2]) - len(held_out)
    model = fm.fetch_model()
    assert model.bead_names == ["C", "N", "CA", "C", "N"] and model.masses == [12.0, 14.0, 12.0, 12.0, 14.0]
    assert model.temperature == T and model.mapping == {"kind": "toy"}
    meta = model.metadata
    assert meta["dataset"] == os.path.abspath(path) and meta["stride"] == 2 and meta["system"] == "toy"
    assert meta["model"]["n_features"] == ARCHITECTURE["n_features"] and meta["force_matching"]["epochs"] == 2
    assert ranges_to_indices(meta["force_matching"]["validation_frames"]).tolist() == held_out.tolist()
    # the stored model is a copy: training on changes the estimator's network, not it
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    with torch.no_grad():
        next(fm.model.parameters()).add_(1.0)
    for name, value in model.model.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)
    # what is given to fetch_model replaces what the data said
    other = fm.fetch_model(masses=[50.0] * N_BEADS, temperature=350.0, metadata={"note": "x"})
    assert other.masses == [50.0] * N_BEADS and other.temperature == 350.0 and other.metadata["note"] == "x"


def test_callbacks_end_after_an_error_and_data_forms_are_checked(synthetic):
    """on_fit_end runs when a fit fails (completed False); a Trajectory or path goes alone to fit."""
    x = synthetic["coordinates"][:12]
    huge = Trajectory(x, np.full(x.shape, 1e25), trajectory=np.repeat([0, 1, 2], 4),
                      metadata=TrajectoryMetadata("coarse-grained", bead_types=BEAD_TYPES))
    fm = ForceMatching(CGSchNet(**ARCHITECTURE), synthetic["priors"], BEAD_TYPES, max_epochs=2, num_threads=1)
    recorder = Recorder()
    with pytest.raises(FloatingPointError, match="every batch of epoch 1"):
        fm.fit(huge, callbacks=[recorder, ProgressBar()])
    assert recorder.calls == [("start", 0), ("end", False)]
    with pytest.raises(ValueError, match="takes a Trajectory alone"):
        fm.fit(huge, huge.forces)
    with pytest.raises(ValueError, match="needs forces"):
        fm.fit(x)
    with pytest.raises(ValueError, match="bead types"):
        fm.fit(Trajectory(x, x, metadata=TrajectoryMetadata("coarse-grained", bead_types=[0] * N_BEADS)))
    with pytest.raises(ValueError, match="resolution 'all-atom'"):
        fm.fit(Trajectory(x, x, metadata=TrajectoryMetadata("all-atom")))
    with pytest.raises(TypeError, match="a callback must be"):
        fm.fit(x, x, callbacks=[3])


def test_estimator_contract_docstring_example():
    """The toy estimator of openmmcgml.estimator's docstring follows the contract (fit, callbacks, fetch_model)."""
    import doctest

    from openmmcgml import estimator

    assert doctest.testmod(estimator, optionflags=doctest.ELLIPSIS).failed == 0


def _bond_stretch_noise(x, bonds, sigma, seed):
    """Random forces along the bonds only (pairs of equal and opposite forces, as in mapped data,
    where the stiff bonds carry most of the noise): no net force, no torque."""
    rng = np.random.default_rng(seed)
    noise = np.zeros_like(x)
    for i, j in bonds:
        unit_vector = x[:, j] - x[:, i]
        unit_vector /= np.linalg.norm(unit_vector, axis=1, keepdims=True)
        strength = rng.normal(scale=sigma, size=(len(x), 1))
        noise[:, j] += strength * unit_vector
        noise[:, i] -= strength * unit_vector
    return noise


def test_internal_loss_sees_the_torsions_through_bond_noise(chiral):
    """loss='internal' learns a chiral torsion landscape that noise along the bonds hides from the
    Cartesian MSE.

    Truth: the chain priors plus sine terms of (phi, psi) (as above). Data: exact forces plus
    isotropic noise (sigma 5 kJ/mol/nm) plus noise along the four bonds (sigma 400), the pattern of
    mapped all-atom forces, whose stiff bonds are their noisiest direction. Both objectives are
    minimised by the mean force; with the same epochs the Cartesian one, dominated by bond noise,
    recovers the sine coefficients worse than the internal one, which measures each coordinate in
    units of its own spread.
    """
    priors, true_sin, x, runs, exact = (chiral[k] for k in ("priors", "true_sin", "x", "runs", "exact"))
    noisy = (exact + np.random.default_rng(1).normal(scale=5.0, size=exact.shape)
             + _bond_stretch_noise(x, priors.bonds.tolist(), 400.0, seed=2))
    errors, trainers = {}, {}
    for loss in ("cartesian", "internal"):
        torch.manual_seed(3)
        fm = ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, lr=3e-3, batch_size=32, max_epochs=12,
                           patience=None, validation_trajectories=[3], num_threads=1, dihedral_map=1, loss=loss)
        fm.fit(x, noisy, runs)
        errors[loss] = float(np.abs(fm.dihedral_map_coefficients_[1] - true_sin).max())
        trainers[loss] = fm
    assert errors["internal"] < 1.5, errors
    assert errors["cartesian"] > 2 * errors["internal"], errors
    internal = trainers["internal"]
    # the weights: bonds carry the 400 kJ/mol/nm noise, the torsions only the small one
    assert internal.internal_force_std_[:4].min() > 5 * internal.internal_force_std_[-2:].max()
    record = internal.history_[-1]
    assert record["val_force_mse"] > 0 and record["val_loss"] != record["val_force_mse"]
    assert internal.best_val_force_mse_ == [r for r in internal.history_
                                            if r["epoch"] == internal.best_epoch_][0]["val_force_mse"]
    assert internal.fetch_model().metadata["force_matching"]["settings"]["loss"] == "internal"
    with pytest.raises(ValueError, match="unknown loss"):
        ForceMatching(CGSchNet(**ARCHITECTURE), priors, BEAD_TYPES, loss="huber")
    branched = PriorSet(5, [[0, 1], [1, 2], [1, 3], [3, 4]], [])
    with pytest.raises(ValueError, match="one unbranched chain"):
        ForceMatching(CGSchNet(**ARCHITECTURE), branched, BEAD_TYPES, loss="internal")


def test_dihedral_density_weights_lift_rare_regions():
    """Frames in a rarely visited region of dihedral space weigh more, by about the ratio of
    densities, within the cap; the mean weight is 1."""
    from openmmcgml.analysis.geometry import build_chain
    from openmmcgml.training import dihedral_density_weights

    rng = np.random.default_rng(0)
    dense = rng.normal([-1.2, 2.4], 0.15, size=(1800, 2))
    sparse = rng.normal([-1.2, -0.7], 0.15, size=(200, 2))   # 9 times fewer frames, same spread
    angles = np.concatenate([dense, sparse])
    x = np.array([build_chain([0.14] * 4, [2.0] * 3, a) for a in angles])
    weights = dihedral_density_weights(x, [[0, 1, 2, 3], [1, 2, 3, 4]], n_neighbours=16, max_weight=50.0)
    assert weights.mean() == pytest.approx(1.0)
    ratio = np.median(weights[1800:]) / np.median(weights[:1800])
    assert 5.0 < ratio < 15.0, ratio
    capped = dihedral_density_weights(x, [[0, 1, 2, 3], [1, 2, 3, 4]], n_neighbours=16, max_weight=2.0)
    assert capped.max() / np.median(capped) <= 2.0 + 1e-9
    with pytest.raises(ValueError, match="unknown frame_weighting"):
        ForceMatching(CGSchNet(**ARCHITECTURE), chain_priors(), BEAD_TYPES, frame_weighting="uniform")


def test_frame_weighting_trains_and_is_recorded(synthetic):
    x, runs, exact = synthetic["coordinates"][::5], synthetic["runs"][::5], synthetic["exact"][::5]
    torch.manual_seed(0)
    fm = ForceMatching(CGSchNet(**ARCHITECTURE), synthetic["priors"], BEAD_TYPES, lr=3e-3, batch_size=32,
                       max_epochs=3, validation_trajectories=[3], num_threads=1, frame_weighting="dihedral_density")
    fm.fit(x, exact, runs)
    assert fm.history_[-1]["val_loss"] < fm.history_[0]["val_loss"] * 1.5 and np.isfinite(fm.best_val_force_mse_)
    assert fm.fetch_model().metadata["force_matching"]["settings"]["frame_weighting"] == "dihedral_density"
