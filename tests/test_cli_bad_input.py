"""Bad input to the ``cgml`` commands: one line on stderr naming the setting or file, a non-zero
exit status, a traceback only with ``--debug`` or CGML_DEBUG=1; and CG runs that blow up keep
their trajectory file finite."""

import os

import numpy as np
import openmm
import pytest

from cg_standin import ALANINE_NAMES, alanine_standin, alanine_structure, real_alanine_cgmodel, write_cg_dataset
from openmmcgml import _config
from openmmcgml.cli import main as cgml_main
from openmmcgml.configs import evaluate, fit_priors, map as map_command, oracle, simulate, train

#: Every config-driven command with its rules, and the settings it needs besides a bad one.
COMMANDS = {
    "oracle": (oracle.RULES, ["system=alanine-dipeptide", "output=never-written.h5"]),
    "map": (map_command.RULES, []),
    "fit-priors": (fit_priors.RULES, []),
    "train": (train.RULES, []),
    "simulate": (simulate.RULES, []),
    "evaluate": (evaluate.RULES, []),
}


def one_error_line(capsys, arguments, *fragments, status=2):
    """Run the CLI in-process; assert its exit status and exactly one stderr line holding ``fragments``."""
    code = cgml_main([str(a) for a in arguments])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status and len(lines) == 1, (code, err)
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    assert "Traceback" not in err
    return lines[0]


def with_settings(command, *settings):
    arguments = [command]
    for item in list(COMMANDS[command][1]) + list(settings):
        arguments += ["--set", item]
    return arguments


# ------------------------------------------------------------------------ the settings, rule by rule

def out_of_range(rule):
    """Values that break a number/integer rule: not a number, and just past each bound."""
    minimum, maximum, above, below = rule.bounds
    values = ["x"]
    values += [] if minimum is None else [minimum - 1]
    values += [] if maximum is None else [maximum + 1]
    values += [] if above is None else [above]
    values += [] if below is None else [below]
    return values


NUMERIC_CASES = [(command, name, value) for command, (rules, _) in COMMANDS.items()
                 for name, rule in rules.items() if rule.bounds is not None for value in out_of_range(rule)]


@pytest.mark.parametrize("command,name,value", NUMERIC_CASES, ids=[f"{c}-{n}={v}" for c, n, v in NUMERIC_CASES])
def test_every_numeric_setting_is_checked(capsys, command, name, value):
    """Counts, steps, intervals, time steps, temperatures, frictions, rates...: one line naming the setting."""
    line = one_error_line(capsys, with_settings(command, f"{name}={value}"), f"cgml {command}: error:",
                          f"setting '{name}' must be", f"(got {value!r})")
    assert "must be an integer" in line or "must be a number" in line


@pytest.mark.parametrize("command,setting,fragment", [
    ("oracle", "platform=Nope", "names no OpenMM platform here; available: auto, Reference"),
    ("simulate", "platform=Nope", "names no OpenMM platform here; available: auto, Reference"),
    ("simulate", "friction=-1", "'friction' must be a number >= 0 (got -1)"),
    ("simulate", "steps=-100", "'steps' must be an integer >= 1 (got -100)"),
    ("simulate", "replicas=2.5", "'replicas' must be an integer >= 1 (got 2.5)"),
    ("simulate", "forces=maybe", "'forces' must be true or false"),
    ("train", "training.lr=fast", "'training.lr' must be a number > 0 (got 'fast')"),
    ("train", "training.batch_size=0", "'training.batch_size' must be an integer >= 1 (got 0)"),
    ("train", "model.activation=relu", "'model.activation' must be one of ssp, tanh, silu"),
    ("train", "model.output_hidden=[8, -1]", "'model.output_hidden' must be a list of integers >= 1; entry 1"),
    ("train", "exclusions=[[0]]", "'exclusions' must be bonds, bonds+map, none or a list of bead pairs"),
    ("train", "masses=-3", "'masses' must be a number > 0 or a list of numbers > 0"),
    ("evaluate", "discard=1", "'discard' must be a number >= 0 and < 1 (got 1)"),
    ("map", "compression=zip", "'compression' must be one of gzip, lzf or null"),
])
def test_probed_settings(capsys, command, setting, fragment):
    one_error_line(capsys, with_settings(command, setting), f"cgml {command}: error:", fragment)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_train_device_cuda_without_cuda(capsys):
    one_error_line(capsys, with_settings("train", "training.device=cuda"), "'training.device'",
                   "asks for a cuda device, but this PyTorch has none available")
    one_error_line(capsys, with_settings("train", "training.device=gpu7"), "'training.device' must be a PyTorch device")


@pytest.mark.parametrize("option, value", [("--steps", "-5"), ("--beads", "0"), ("--replicas", "two")])
def test_platforms_counts_must_be_positive(capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        cgml_main(["platforms", option, value])
    assert stop.value.code == 2
    assert f"argument {option}: expects a whole number >= 1" in capsys.readouterr().err


def test_demo_checks_the_settings_of_every_stage(capsys):
    one_error_line(capsys, ["demo", "--quick", "--print-config", "--set", "simulate.friction=-1"],
                   "cgml demo: error: demo setting 'simulate.friction' must be a number >= 0 (got -1)")
    one_error_line(capsys, ["demo", "--print-config", "--set", "train.training.lr=fast"], "'train.training.lr'")
    one_error_line(capsys, ["demo", "--print-config", "--set", "oracle.workers=0"], "'oracle.workers'")


def test_yaml_numbers_in_exponent_form_are_read_as_numbers(capsys, tmp_path):
    """YAML reads ``1e-3`` (no dot) as a string; the rules turn it into the number it means."""
    config = tmp_path / "train.yaml"
    config.write_text("training:\n  lr: 1e-3\n  max_epochs: 1e2\n")
    assert cgml_main(["train", str(config), "--print-config"]) == 0
    import yaml

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["training"]["lr"] == 0.001 and printed["training"]["max_epochs"] == 100
    assert isinstance(printed["training"]["max_epochs"], int)


def test_every_setting_has_a_rule_that_its_default_passes():
    """The rules cover every setting of every command (nested ones of train too), and accept the defaults."""
    from dataclasses import fields

    from openmmcgml.data.oracle import OracleConfig
    from openmmcgml.models.cgschnet import ACTIVATIONS, RBF_KINDS
    from openmmcgml.training import LR_SCHEDULES

    for module in (map_command, fit_priors, train, simulate, evaluate):
        assert set(module.DEFAULTS) <= set(module.RULES), module.__name__
        assert _config.check_settings(module.DEFAULTS, module.RULES) == module.DEFAULTS, module.__name__
    for section, defaults in (("model", train.MODEL_DEFAULTS), ("training", train.TRAINING_DEFAULTS)):
        assert {f"{section}.{key}" for key in defaults} <= set(train.RULES), section
        assert _config.load_settings(train.TrainConfig, {}).to_dict()[section] == defaults
    numeric = {f.name for f in fields(OracleConfig) if isinstance(f.default, (int, float)) and f.default is not None}
    assert numeric <= set(oracle.RULES)
    assert set(oracle.RULES) <= {f.name for f in fields(OracleConfig)}
    # the choices written out in train.RULES are the library's
    for name, choices in (("model.activation", ACTIVATIONS), ("model.rbf", RBF_KINDS),
                          ("training.lr_schedule", LR_SCHEDULES)):
        assert train.RULES[name].expected == "one of " + ", ".join(choices), name


def test_rules_convert_and_refuse():
    assert _config.integer(1)("1e4") == 10000 and _config.integer(1)(7.0) == 7
    assert _config.number(above=0)("2.5e-3") == 0.0025 and _config.number(0)(3) == 3
    for rule, value in ((_config.integer(1), True), (_config.integer(0), 1.5), (_config.number(), float("nan")),
                        (_config.number(), "inf"), (_config.number(0, below=1), 1), (_config.boolean(), "yes"),
                        (_config.integer(1), None)):
        with pytest.raises(_config.InvalidSetting):
            rule(value)
    assert _config.integer(1, optional=True)(None) is None
    with pytest.raises(ValueError, match=r"^train setting 'training.lr' must be a number > 0 \(got -1\)$"):
        _config.check_settings({"training": {"lr": -1}}, train.RULES, "train")
    import doctest

    assert doctest.testmod(_config, optionflags=doctest.ELLIPSIS).failed == 0


# ------------------------------------------------------------------------ files

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny CG dataset (3 runs x 8 frames, written by the project's writer: gzip + checksums), a
    model, its priors, and a one-frame and an empty dataset."""
    from openmmcgml.data.trajectory import TrajectoryMetadata, append_frames, create_trajectory_file

    folder = tmp_path_factory.mktemp("cli-bad-input")
    rng = np.random.default_rng(0)
    base = alanine_structure()
    runs = [base + 0.01 * rng.standard_normal((8, 5, 3)) for _ in range(3)]
    paths = {}
    paths["data"] = str(folder / "cg.h5")
    metadata = TrajectoryMetadata("coarse-grained", system="alanine-dipeptide", temperature=300.0, timestep=0.002,
                                  save_interval=100, bead_names=list(ALANINE_NAMES), bead_types=[0, 1, 2, 0, 1])
    create_trajectory_file(paths["data"], metadata, 5, chunk_frames=8)
    for k, run in enumerate(runs):
        append_frames(paths["data"], run, rng.standard_normal(run.shape) * 100, trajectory=k,
                      step=np.arange(1, 9) * 100)
    paths["one"] = write_cg_dataset(str(folder / "one.h5"), [runs[0][:1]], ALANINE_NAMES)
    paths["empty"] = write_cg_dataset(str(folder / "empty.h5"), [np.zeros((0, 5, 3))], ALANINE_NAMES)
    model = real_alanine_cgmodel()
    paths["model"] = str(folder / "model.pt")
    model.save(paths["model"])
    paths["priors"] = str(folder / "priors.json")
    model.priors.save(paths["priors"])
    paths["folder"] = folder
    return paths


#: Tiny network and training settings.
TINY = ["model.n_features=8", "model.n_filters=8", "model.n_rbf=6", "model.n_interactions=1", "model.output_hidden=[8]",
        "training.max_epochs=2", "training.num_threads=1", "progress=false"]


def train_arguments(files, data, output, *extra):
    return with_settings("train", f"data={data}", f"priors={files['priors']}", f"output={output}", *TINY, *extra)


def flipped_copy(source, target, where):
    """A copy of ``source`` with a flipped bit: at the start (the HDF5 signature), or one in the middle
    of each stored chunk of the coordinates (caught by the file's fletcher32 checksums, whichever
    frames a command reads)."""
    import h5py

    data = bytearray(open(source, "rb").read())
    if where == "signature":
        offsets = [0]
    else:
        with h5py.File(source, "r") as handle:
            dataset = handle["coordinates"].id
            chunks = [dataset.get_chunk_info(k) for k in range(dataset.get_num_chunks())]
        offsets = [chunk.byte_offset + chunk.size // 2 for chunk in chunks]
    for offset in offsets:
        data[offset] ^= 0x04
    with open(target, "wb") as handle:
        handle.write(bytes(data))
    return target


@pytest.mark.parametrize("where", ["signature", "chunk"])
def test_bit_flipped_dataset(files, capsys, where):
    flipped = flipped_copy(files["data"], str(files["folder"] / f"flipped-{where}.h5"), where)
    output = files["folder"] / f"flipped-{where}.pt"
    one_error_line(capsys, train_arguments(files, flipped, output), f"dataset {flipped} is not a readable HDF5 file")
    assert not output.exists()
    one_error_line(capsys, with_settings("fit-priors", f"data={flipped}", f"output={files['folder']}/p.json"),
                   f"dataset {flipped} is not a readable HDF5 file")
    one_error_line(capsys, with_settings("simulate", f"model={files['model']}", f"initial.reference={flipped}",
                                         "steps=10", f"output={files['folder']}/never.h5", "progress=false"),
                   f"{flipped} is not a readable HDF5 file")
    one_error_line(capsys, with_settings("evaluate", f"reference={flipped}", f"samples={files['data']}", "plots=false"),
                   f"{flipped} is not a readable HDF5 file")


def test_directory_as_dataset(files, capsys):
    folder = files["folder"] / "a-folder"
    folder.mkdir(exist_ok=True)
    line = one_error_line(capsys, train_arguments(files, folder, folder / "m.pt"), f"dataset {folder} is a directory")
    assert "errno" not in line.lower()
    one_error_line(capsys, with_settings("evaluate", f"reference={folder}", f"samples={files['data']}"),
                   f"{folder} is a directory")


def test_empty_reference_set(files, capsys):
    empty = files["empty"]
    one_error_line(capsys, with_settings("evaluate", f"reference={empty}", f"samples={files['data']}", "plots=false"),
                   f"reference {empty} holds no frames")
    one_error_line(capsys, with_settings("evaluate", f"reference={files['data']}", f"samples={empty}", "plots=false"),
                   f"samples {empty} holds no frames")
    one_error_line(capsys, with_settings("simulate", f"model={files['model']}", f"initial.reference={empty}",
                                         "steps=10", f"output={files['folder']}/never.h5"),
                   f"initial.reference {empty} holds no frames")


def test_file_that_is_not_a_model(files, capsys):
    import torch

    module = files["folder"] / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module)  # a zip archive holding a pickled Python object
    line = one_error_line(capsys, with_settings("simulate", f"model={module}", f"initial.reference={files['data']}"),
                          f"model file {module} is not an openmm-cgml model file")
    assert "weights_only" not in line and len(line) < 250
    one_error_line(capsys, with_settings("simulate", f"model={files['priors']}", f"initial.reference={files['data']}"),
                   f"model file {files['priors']} is corrupt or not an openmm-cgml model file")


def test_train_refuses_one_frame(files, capsys):
    output = files["folder"] / "one-frame.pt"
    one_error_line(capsys, train_arguments(files, files["one"], output), "training needs at least 2 frames",
                   "(got 1)")
    assert not output.exists()


def test_train_never_writes_a_model_trained_to_a_non_finite_loss(files, capsys):
    """Forces of 1e25 kJ/mol/nm square to inf in float32: every batch fails, so no model is written."""
    from openmmcgml.data.trajectory import TrajectoryMetadata, append_frames, create_trajectory_file

    huge = str(files["folder"] / "huge-forces.h5")
    metadata = TrajectoryMetadata("coarse-grained", temperature=300.0, bead_names=list(ALANINE_NAMES),
                                  bead_types=[0, 1, 2, 0, 1])
    create_trajectory_file(huge, metadata, 5, overwrite=True)
    frames = alanine_structure() + np.zeros((6, 5, 3))
    append_frames(huge, frames, np.full((6, 5, 3), 1e25), trajectory=np.repeat([0, 1, 2], 2), step=np.arange(6))
    output = files["folder"] / "nan.pt"
    one_error_line(capsys, train_arguments(files, huge, output, "training.dtype=float32"),
                   "every batch of epoch 1 had a non-finite loss or gradient")
    assert not output.exists()


# ------------------------------------------------------------------------ --debug and unexpected errors

def test_debug_option_and_environment_variable_show_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("CGML_DEBUG", raising=False)
    with pytest.raises(ValueError, match="'friction' must be a number >= 0"):
        cgml_main(["--debug", "simulate", "--set", "friction=-1"])
    monkeypatch.setenv("CGML_DEBUG", "1")
    with pytest.raises(ValueError, match="'friction' must be a number >= 0"):
        cgml_main(["simulate", "--set", "friction=-1"])
    monkeypatch.setenv("CGML_DEBUG", "0")
    one_error_line(capsys, ["simulate", "--set", "friction=-1"], "'friction'")


def test_unexpected_errors_and_warnings_are_one_line(capsys, monkeypatch):
    import warnings

    monkeypatch.delenv("CGML_DEBUG", raising=False)

    def crash(config, quiet=False, print_fn=print):
        raise RuntimeError("kernel failed\nwith a second line")

    monkeypatch.setattr(simulate, "run_config", crash)
    one_error_line(capsys, ["simulate"], "cgml simulate: error: RuntimeError: kernel failed", "cgml --debug simulate",
                   status=1)

    def warn(config, quiet=False, print_fn=print):
        warnings.warn("the model was trained at 300 K\nbut runs at 350 K")

    monkeypatch.setattr(simulate, "run_config", warn)
    assert cgml_main(["simulate"]) == 0
    assert capsys.readouterr().err == "cgml simulate: warning: the model was trained at 300 K\n"


# ------------------------------------------------------------------------ a CG run that blows up

class ExplodingModel:
    """The alanine stand-in (priors only) with an inverted harmonic well on bead 2 of replica 1: its x
    coordinate grows about 1.8-fold per step, from finite float64 values past float32's range
    (3.4e38) to inf."""

    def __init__(self, curvature=1e6):
        self.base = alanine_standin(learned=False)
        self.curvature = curvature

    def __getattr__(self, name):
        return getattr(self.base, name)

    def prior_forces(self, n_replicas=1):
        push = openmm.CustomExternalForce("-c*x^2")
        push.addGlobalParameter("c", self.curvature)
        push.addParticle(1 * self.base.n_beads + 2, [])
        return self.base.prior_forces(n_replicas) + [push]


def stored_frames(path):
    from openmmcgml.data.trajectory import TrajectoryFile

    with TrajectoryFile(path) as handle:
        return handle.dataset("coordinates")[:], handle.dataset("step")[:]


def test_blown_up_run_keeps_every_stored_frame_finite(tmp_path):
    from openmmcgml.simulation import CGSimulation
    from openmmcgml.simulation.storage import SimulationBlewUp

    output, checkpoint = str(tmp_path / "run.h5"), str(tmp_path / "run.chk")

    def run():
        sim = CGSimulation(ExplodingModel(), 3, seed=1, platform="Reference")
        sim.set_positions(alanine_structure())
        with pytest.raises(SimulationBlewUp) as caught:
            sim.run(2000, report_interval=5, output=output, checkpoint=checkpoint, checkpoint_interval=20)
        return sim, caught.value

    sim, error = run()
    assert error.replicas == [1] and 0 < error.step < 2000 and error.step % 5 == 0
    message = str(error)
    assert f"blew up at step {error.step}: replica 1 reached coordinates" in message
    assert f"the checkpoint {checkpoint} holds step" in message
    xyz, steps = stored_frames(output)
    assert np.isfinite(xyz).all() and len(xyz) > 0 and steps.max() < error.step
    assert np.abs(xyz).max() > 1e30  # the frames just before the blow-up were stored: the check is not too eager
    # the positions of that step are finite in float64 but not in float32: the case the check is for
    with np.errstate(over="ignore"):
        assert np.isfinite(sim.get_positions()).all() and not np.isfinite(sim.get_positions().astype(np.float32)).all()
    # the checkpoint vouches for frames that are in the file and can be resumed: the same run on the
    # same platform blows up again at the same step, and the file stays finite
    from openmmcgml.simulation.runner import _unpack_checkpoint

    with open(checkpoint, "rb") as handle:
        info = _unpack_checkpoint(handle.read())[0]
    assert info["step"] < error.step and info["output_rows"] <= len(xyz)
    again = CGSimulation(ExplodingModel(), 3, seed=1, platform="Reference")
    with pytest.raises(SimulationBlewUp) as caught:
        again.run(2000, report_interval=5, output=output, checkpoint=checkpoint, checkpoint_interval=20)
    assert caught.value.step == error.step
    xyz_again, _ = stored_frames(output)
    assert np.isfinite(xyz_again).all() and len(xyz_again) == len(xyz)


def test_blown_up_run_from_the_command_line(tmp_path, capsys, monkeypatch):
    from openmmcgml import simulation

    monkeypatch.setattr(simulation, "load_cg_model", lambda path: ExplodingModel())
    output = tmp_path / "run.h5"
    line = one_error_line(capsys, ["simulate", "--quiet", "--set", "model=exploding", "--set", "replicas=2",
                                   "--set", f"initial.structure={_structure_file(tmp_path)}", "--set", "steps=2000",
                                   "--set", "report_interval=5", "--set", f"output={output}"],
                          "cgml simulate: error: the simulation blew up at step", "replica 1 reached coordinates")
    assert str(output) in line
    xyz, _ = stored_frames(str(output))
    assert np.isfinite(xyz).all() and len(xyz) > 0


def _structure_file(folder):
    path = os.path.join(folder, "start.npy")
    np.save(path, alanine_structure())
    return path
