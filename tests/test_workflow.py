"""The end-to-end workflow: the example config chain and ``cgml demo`` (openmmcgml.workflow)."""

import json
import math
import os

import pytest
import yaml

from openmmcgml.cli import main as cgml_main
from openmmcgml.workflow import STAGES, SUMMARY_ROWS, demo_config, format_summary, run_alanine_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "examples", "configs")

#: The alanine chain of example configs in order, each with the overrides that make it tiny (sizes only:
#: every path is the config's own, so each command reads what the one before it wrote).
CHAIN = [
    ("oracle", "oracle-alanine.yaml", ["n_steps=400", "save_every=20", "equilibration_steps=20", "n_runs=2"]),
    ("map", "map-alanine.yaml", []),
    ("fit-priors", "fit-priors-alanine.yaml", ["plot=null"]),
    ("train", "train-alanine.yaml", ["model.n_features=8", "model.n_filters=8", "model.n_rbf=6",
                                     "model.n_interactions=1", "model.output_hidden=[8]", "training.max_epochs=2",
                                     "training.batch_size=16", "training.num_threads=1"]),
    ("simulate", "simulate-alanine.yaml", ["replicas=2", "steps=200", "report_interval=20", "checkpoint_interval=100"]),
    ("evaluate", "evaluate-alanine.yaml", ["lagtime=2", "plots=false"]),
    ("teach", "teach-alanine.yaml", ["rounds=1", "replicas=2", "steps=200", "report_interval=20", "hidden=[8]",
                                     "training={max_epochs: 2, batch_size: 16}", "platform=Reference"]),
]

#: The chignolin chain (docs/chignolin.md): training and reference oracles, priors, training,
#: simulation, evaluation against the reference set.
CHIGNOLIN_CHAIN = [
    ("oracle", "oracle-chignolin.yaml", ["n_steps=1000", "save_every=10", "equilibration_steps=0", "n_runs=2"]),
    ("oracle", "oracle-chignolin-reference.yaml", ["n_steps=200", "save_every=20", "equilibration_steps=0"]),
    ("fit-priors", "fit-priors-chignolin.yaml", ["plot=null", "n_bins=20"]),
    ("train", "train-chignolin.yaml", ["model.n_features=8", "model.n_filters=8", "model.n_rbf=6",
                                       "model.n_interactions=1", "model.output_hidden=[8]", "training.max_epochs=2",
                                       "training.batch_size=8", "training.num_threads=1"]),
    ("simulate", "simulate-chignolin.yaml", ["replicas=2", "steps=200", "report_interval=20", "checkpoint_interval=100"]),
    ("evaluate", "evaluate-chignolin.yaml", ["lagtime=2", "plots=false"]),
]


def _config(name):
    with open(os.path.join(CONFIGS, name)) as handle:
        return yaml.safe_load(handle)


def test_example_configs_chain_by_their_paths():
    """Each config of the chain reads the files the one before it writes."""
    oracle, mapping, priors, train, simulate, evaluate, teach = (_config(name) for _, name, _ in CHAIN)
    assert mapping["input"] == oracle["output"]
    assert priors["data"] == mapping["output"] and train["data"] == mapping["output"]
    assert train["priors"] == priors["output"]
    assert simulate["model"] == train["output"] and simulate["initial"]["reference"] == mapping["output"]
    assert evaluate["reference"] == mapping["output"] and evaluate["samples"] == simulate["output"]
    assert teach["model"] == train["output"] and teach["reference"] == mapping["output"]
    assert priors["terms"] == ["bonds", "angles"]


def test_chignolin_configs_chain_by_their_paths():
    oracle, reference, priors, train, simulate, evaluate = (_config(name) for _, name, _ in CHIGNOLIN_CHAIN)
    assert priors["data"] == oracle["cg_output"] == train["data"] == simulate["initial"]["reference"]
    assert evaluate["reference"] == reference["cg_output"] != oracle["cg_output"]
    assert reference["seed"] != oracle["seed"] and reference["output"] != oracle["output"]
    assert {k: v for k, v in reference.items() if k not in ("output", "cg_output", "seed", "n_runs", "n_steps")} == \
        {k: v for k, v in oracle.items() if k not in ("output", "cg_output", "seed", "n_runs", "n_steps")}
    assert train["priors"] == priors["output"] and simulate["model"] == train["output"]
    assert evaluate["samples"] == simulate["output"] and evaluate["kind"] == "ca"


def _run_chain(chain, capsys, extra=None):
    """Run (command, config, overrides) in order; ``extra`` maps a command to more arguments."""
    for command, name, overrides in chain:
        arguments = [command, os.path.join(CONFIGS, name), "--quiet"]
        for item in list(overrides) + list((extra or {}).get(command, [])):
            arguments += ["--set", item]
        assert cgml_main(arguments) == 0, (command, capsys.readouterr().err)


def _printed_config(command, arguments, capsys):
    capsys.readouterr()
    assert cgml_main([command] + list(arguments) + ["--print-config"]) == 0, capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def _written_config_path(command, settings):
    """Where ``command`` writes the effective settings of a run with ``settings``."""
    if command == "evaluate":
        return os.path.join(settings["output"], "config.yaml")
    return (settings.get("output") or settings["cg_output"]) + ".config.yaml"


def _assert_effective_configs_written(chain, capsys, extra=None):
    """Every command of the chain wrote its effective settings next to its output: what
    --print-config prints for the same arguments, and a config the command reads back as the same."""
    for command, name, overrides in chain:
        arguments = [os.path.join(CONFIGS, name)]
        for item in list(overrides) + list((extra or {}).get(command, [])):
            arguments += ["--set", item]
        effective = _printed_config(command, arguments, capsys)
        path = _written_config_path(command, effective)
        with open(path) as handle:
            text = handle.read()
        assert text.startswith(f"# The effective settings of a `cgml {command}` run"), text[:100]
        assert yaml.safe_load(text) == effective, (command, path)
        assert _printed_config(command, [path], capsys) == effective, (command, path)


def _metrics(config_name):
    with open(os.path.join(_config(config_name)["output"], "metrics.json")) as handle:
        return json.load(handle)


def test_chignolin_config_chain_runs(tmp_path, monkeypatch, capsys):
    """The chignolin chain at tiny sizes, in a fresh folder, scored with a native hairpin built offline."""
    from Bio.PDB import PDBIO
    from test_analysis import CLN025, CLN025_PHI, CLN025_PSI, peptide

    monkeypatch.chdir(tmp_path)
    native = str(tmp_path / "native.pdb")
    writer = PDBIO()
    writer.set_structure(peptide(CLN025, CLN025_PHI, CLN025_PSI))
    writer.save(native)
    _run_chain(CHIGNOLIN_CHAIN, capsys, extra={"evaluate": [f"native={native}"]})
    _assert_effective_configs_written(CHIGNOLIN_CHAIN, capsys, extra={"evaluate": [f"native={native}"]})
    metrics = _metrics("evaluate-chignolin.yaml")
    assert metrics["kind"] == "ca" and metrics["n_reference_frames"] == 40 and metrics["n_model_frames"] == 18
    assert 0.0 <= metrics["folded_fraction_model"] <= 1.0 and metrics["folded_fraction_reference"] == 1.0
    assert metrics["folded_fraction_reference_error"] == 0.0
    # the baseline beside the trained model: the fitted priors, no network, no learned map
    from openmmcgml.cgmodel import CGModel
    from openmmcgml.priors import PriorSet

    baseline, trained = CGModel.load("models/chignolin-priors-only.pt"), CGModel.load("models/chignolin.pt")
    assert not baseline.has_network and trained.has_network
    assert sorted(baseline.priors.terms) == sorted(PriorSet.load("models/chignolin-priors.json").terms) == \
        ["angles", "bonds", "repulsion"]
    assert "dihedral_map" in trained.priors.terms
    assert all(math.isfinite(metrics[key]) for key in ("tica_w1_2d", "q_mean_model", "rmsd_mean_model"))


def test_example_config_chain_runs(tmp_path, monkeypatch, capsys):
    """oracle -> map -> fit-priors -> train -> simulate -> evaluate -> teach with the example configs, in a
    fresh folder."""
    monkeypatch.chdir(tmp_path)
    _run_chain(CHAIN, capsys)
    _assert_effective_configs_written(CHAIN, capsys)
    metrics = _metrics("evaluate-alanine.yaml")
    assert metrics["kind"] == "alanine" and metrics["n_reference_frames"] == 40 and metrics["n_model_frames"] == 18
    assert all(math.isfinite(metrics[key]) for key in ("phi_psi_js", "phi_js", "psi_js", "tica_w1_2d"))
    from openmmcgml.cgmodel import CGModel

    taught = CGModel.load(_config("teach-alanine.yaml")["output"])
    rounds = json.load(open(os.path.join(_config("teach-alanine.yaml")["checkpoint_dir"], "rounds.json")))
    assert len(rounds) == 1 and 0.0 <= rounds[0]["accuracy"] <= 1.0
    # 10 distances, 3 angles, phi and psi as (cos, sin): 17 features
    assert (taught.bias is None) == rounds[0]["indistinguishable"]
    assert taught.bias is None or taught.bias.n_features == 17


def test_every_command_takes_the_same_config_options(tmp_path, capsys):
    """CONFIG is optional, --set, --print-config and --quiet everywhere; errors are one line and exit 2."""
    for command in ("oracle", "map", "fit-priors", "train", "simulate", "evaluate", "teach", "demo"):
        assert cgml_main([command, "--print-config", "--set", "seed=5"] if command == "simulate" else
                         [command, "--print-config"] + (["--set", "system=alanine-dipeptide", "--set", "output=a.h5"]
                                                        if command == "oracle" else [])) == 0, command
        printed = yaml.safe_load(capsys.readouterr().out)
        assert isinstance(printed, dict), command
    assert cgml_main(["train", "--set", "model.n_features=8", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["n_features"] == 8 and printed["model"]["n_filters"] == 64  # sections filled in
    for command in ("map", "fit-priors", "train", "simulate", "evaluate", "demo"):
        assert cgml_main([command, "--set", "no_such_setting=1"]) == 2, command
        error = capsys.readouterr().err
        assert error.startswith(f"cgml {command}: error: unknown") and "no_such_setting" in error, error
    assert cgml_main(["fit-priors", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert cgml_main(["train", "--set", "data=" + str(tmp_path / "none.h5"), "--set", "priors=p.json"]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- cgml demo

@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    lines = []
    summary = run_alanine_demo(folder, quick=True, progress=False, print_fn=lines.append)
    return folder, summary, lines


def test_quick_demo_reports_finite_metrics_for_every_model(quick_demo):
    folder, summary, lines = quick_demo
    metrics = summary["metrics"]
    for column in ("trained", "priors_only", "noise_floor"):
        for key, _ in SUMMARY_ROWS:
            value = metrics[column][key]
            if column == "noise_floor" and (key.endswith("force_mse") or "exact" in key):
                assert value is None  # all-atom data: no model
            else:
                assert value is not None and math.isfinite(value), (column, key, value)
    for column in ("trained", "priors_only", "noise_floor"):
        assert 0.0 <= metrics[column]["phi_psi_js"] <= math.sqrt(math.log(2)) + 1e-9
    # With --quick (a few epochs on 200 frames) the AA force noise, ~1e5 (kJ/mol/nm)^2 per
    # component, dwarfs what the network can learn, so the gain over the priors is within
    # run-to-run noise; training must at least not make the validation error worse.  The
    # accuracy claim itself is measured with the demo's defaults (README).
    assert metrics["trained"]["val_force_mse"] < 1.01 * metrics["priors_only"]["val_force_mse"]
    assert summary["ratio_to_noise_floor"] == pytest.approx(metrics["trained"]["phi_psi_js"]
                                                            / metrics["noise_floor"]["phi_psi_js"])
    table = format_summary(summary)
    assert table in "\n".join(lines) and "noise floor (AA vs AA)" in table
    with open(folder / "summary.md") as handle:
        assert table in handle.read()
    with open(folder / "summary.json") as handle:
        assert json.load(handle)["metrics"]["trained"]["phi_psi_js"] == metrics["trained"]["phi_psi_js"]
    assert set(summary["stage_seconds"]) >= set(STAGES) - {"summary"}


def test_quick_demo_files(quick_demo):
    from openmmcgml.cgmodel import CGModel
    from openmmcgml.data import read_trajectory
    from openmmcgml.priors import PriorSet

    folder, summary, _ = quick_demo
    config = demo_config(quick=True)
    runs, steps = config["oracle"]["n_runs"], config["oracle"]["n_steps"] // config["oracle"]["save_every"]
    for which in ("training", "reference"):
        cg = read_trajectory(folder / "data" / f"{which}-cg.h5")
        assert cg.n_frames == runs * steps and cg.n_particles == 5
        assert cg.metadata.mapping["force_map"] == "partition"
    training, reference = (read_trajectory(folder / "data" / f"{w}-aa.h5") for w in ("training", "reference"))
    assert training.metadata.extra["seed"] != reference.metadata.extra["seed"]  # independent sets
    assert list(PriorSet.load(folder / "models" / "priors.json").terms) == ["bonds", "angles"]
    trained = CGModel.load(folder / "models" / "trained.pt")
    baseline = CGModel.load(folder / "models" / "priors-only.pt")
    assert trained.model is not None and baseline.model is None
    assert "dihedral_map" in trained.priors.terms and "dihedral_map" not in baseline.priors.terms  # learned
    for name in ("trained", "priors-only"):
        run = read_trajectory(folder / "runs" / f"{name}.h5")
        assert run.n_frames == config["simulate"]["replicas"] * config["simulate"]["steps"] // config["simulate"]["report_interval"]
    for name in ("trained", "priors-only", "noise-floor"):
        assert (folder / "evaluation" / name / "metrics.json").exists()
    for path in summary["plots"]["training"]:
        assert os.path.getsize(path) > 1000
    # the effective settings of the demo, and of every stage's run next to its output
    with open(folder / "config.yaml") as handle:
        assert yaml.safe_load(handle) == config == summary["settings"]
    from openmmcgml.configs.simulate import SimulateConfig

    with open(folder / "runs" / "trained.h5.config.yaml") as handle:
        written = yaml.safe_load(handle)
    assert SimulateConfig.from_dict(written).to_dict() == written
    assert {key: written[key] for key in config["simulate"]} == config["simulate"]
    assert written["model"] == str(folder / "models" / "trained.pt") and written["output"] == str(folder / "runs" / "trained.h5")
    for path in ("data/training-aa.h5", "data/reference-aa.h5", "data/training-cg.h5", "data/reference-cg.h5",
                 "models/priors.json", "models/trained.pt", "runs/priors-only.h5"):
        assert (folder / (path + ".config.yaml")).exists(), path
    for name in ("trained", "priors-only", "noise-floor"):
        assert (folder / "evaluation" / name / "config.yaml").exists()


def test_quick_demo_resumes_skips_and_redoes(quick_demo):
    folder, summary, _ = quick_demo
    lines = []
    again = run_alanine_demo(folder, quick=True, progress=False, print_fn=lines.append)
    assert sum("done already" in line for line in lines) == len(STAGES) - 1
    assert again["metrics"] == summary["metrics"]
    # Changed settings of a finished stage are refused, naming the stage and the change ...
    with pytest.raises(ValueError, match=r"stage 'simulate' ran with other settings \(simulate.steps: 1000 -> 1200"):
        run_alanine_demo(folder, {"simulate": {"steps": 1200}}, quick=True, progress=False, print_fn=None)
    # ... and a stage named by fresh= runs again with the stages after it; the ones before are kept.
    lines = []
    before = os.path.getmtime(folder / "models" / "trained.pt")
    redone = run_alanine_demo(folder, {"simulate": {"steps": 1200}}, quick=True, fresh="simulate", progress=False,
                              print_fn=lines.append)
    assert os.path.getmtime(folder / "models" / "trained.pt") == before
    assert sum("done already" in line for line in lines) == STAGES.index("simulate")
    assert redone["settings"]["simulate"]["steps"] == 1200
    with pytest.raises(ValueError, match="fresh must be True or a stage name"):
        run_alanine_demo(folder, quick=True, fresh="everything", print_fn=None)


def test_demo_settings():
    config = demo_config(overrides=["train.training.max_epochs=2", "oracle.n_runs=3"])
    assert config["train"]["training"]["max_epochs"] == 2 and config["oracle"]["n_runs"] == 3
    assert config["fit_priors"]["terms"] == ["bonds", "angles"]
    assert config["oracle"]["temperature"] == 300.0
    with pytest.raises(ValueError, match="unknown demo setting.*oracle.n_stepz"):
        demo_config({"oracle": {"n_stepz": 1}})
    with pytest.raises(ValueError, match="the demo sets simulate.output itself"):
        demo_config({"simulate": {"output": "x.h5"}})
    with pytest.raises(ValueError, match="unknown demo setting.*train.model.width"):
        demo_config(overrides=["train.model.width=3"])


def test_cli_demo_quick_in_the_same_folder(quick_demo, capsys):
    folder, summary, _ = quick_demo
    assert cgml_main(["demo", "--quick", "--quiet", "-o", str(folder), "--fresh", "simulate",
                      "--set", "simulate.steps=1200"]) == 0
    out = capsys.readouterr().out
    assert "phi/psi JS distance (2-D, 50x50)" in out and "summary:" in out
