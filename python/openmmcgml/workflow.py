"""The whole workflow on alanine dipeptide in one call: what ``cgml demo`` runs.

:func:`run_alanine_demo` chains the library's stages, each through the same function its ``cgml``
subcommand uses, into one output folder:

1. **oracle**: two independent all-atom sets of ``oracle.n_runs`` runs each (300 K, implicit
   solvent): the *training* set, and a *reference* set of the same length that is never trained on;
2. **map**: both sets to the 5 backbone beads C N CA C N (partition force map: the least noisy);
3. **fit-priors**: bonds and angles by Boltzmann inversion of the training set, and nothing else:
   a phi/psi torsion prior would hand the model the answer;
4. **train**: force matching of a CGSchNet on top of the priors (validation split by run; loss on
   the generalized forces of the chain's internal coordinates), with a
   learned (phi, psi) map alongside it (``dihedral_map``: a network of distances is blind to
   mirror images, and alanine dipeptide's alpha-R basin is the mirror image of alpha-L) that
   carries the whole (phi, psi) free energy (``exclusions: bonds+map``: far less variance than
   the network's);
5. **simulate**: replicas of the trained model, and of the priors alone, started from training frames;
6. **evaluate**: both against the reference set (phi/psi JS distances, TICA W1, ...), plus the noise
   floor: the training set scored against the reference set, i.e. two independent all-atom sets of
   the same length compared with each other;
7. **summary**: ``summary.json`` and ``summary.md`` (the table that is also printed).

Every stage records its settings in ``demo-state.json`` when it finishes; running the demo again
skips finished stages and lets the oracle, training and simulations continue from their own
checkpoints, so an interrupted demo resumes where it stopped. Changed settings of a finished stage
are an error naming them (``fresh=True`` starts over, ``fresh="train"`` redoes that stage and the
ones after it).

Examples
--------
>>> from openmmcgml.workflow import demo_config
>>> config = demo_config(quick=True, overrides=["simulate.replicas=3"])
>>> config["simulate"]["replicas"], config["fit_priors"]["terms"]
(3, ['bonds', 'angles'])
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Optional, Sequence, Union

from ._atomic import atomic_write

__all__ = ["DEFAULTS", "QUICK", "STAGES", "demo_config", "format_summary", "run_alanine_demo"]

#: Settings of the demo, one section per stage. ``oracle`` takes any :class:`~openmmcgml.data.OracleConfig`
#: setting except the system and the file names; ``fit_priors``, ``train``, ``simulate`` and
#: ``evaluate`` take the settings of the ``cgml`` command of that name except its file names.
DEFAULTS = {
    "oracle": {
        "temperature": 300.0,          # K
        "n_runs": 4,                   # independent runs in each of the two sets (training, reference)
        "n_steps": 500_000,            # saved steps per run (1 ns at 2 fs)
        "save_every": 50,              # steps between frames (0.1 ps)
        "equilibration_steps": 10_000,
        "timestep": 0.002,             # ps
        "friction": 1.0,               # 1/ps
        "seed": 1,                     # training set; the reference set uses reference_seed
        "reference_seed": 2,
        "platform": "auto",            # Reference for 22 atoms (fastest)
        "workers": 2,                  # processes running the two sets side by side (1: one after the other)
    },
    "map": {
        "force_map": "partition",      # every atom's force to the bead that carries its mass (least noise)
    },
    "fit_priors": {
        # no repulsion: for five beads its wall sits on 1-4 and 1-5 distances, i.e. on phi and psi,
        # at the edge of the sampled region (docs/training.md, "Learning curve")
        "terms": ["bonds", "angles"],
    },
    "train": {
        "stride": 1,
        # the (phi, psi) free energy is the map's alone: the network leaves out the 1-4 and 1-5 pairs
        "exclusions": "bonds+map",
        "model": {"n_features": 32, "n_filters": 32, "n_rbf": 16, "n_interactions": 2, "cutoff": 1.0,
                  "output_hidden": [32], "activation": "silu"},
        # the learning curve's settings: ~6,000 steps on 4 x 1 ns, generalized-force loss, map order 4
        "training": {"lr": 2e-3, "batch_size": 256, "max_epochs": 50, "patience": None, "lr_schedule": "cosine",
                     "validation_fraction": 0.25, "num_threads": 1, "seed": 0,
                     "dihedral_map": 4, "loss": "internal"},
    },
    "simulate": {
        "replicas": 40,
        "steps": 30_000,               # per replica (60 ps at 2 fs)
        "report_interval": 50,
        "timestep": 0.002,
        "friction": 1.0,
        "seed": 1,
        "platform": "auto",
        "checkpoint_interval": 5000,
    },
    "evaluate": {
        "lagtime": 20,
        "discard": 0.1,
    },
    "force_test_frames": 5000,         # reference frames on which the force errors are measured
}

#: Tiny settings (``quick=True``, ``cgml demo --quick``): the whole chain in well under a minute,
#: for tests; the numbers it gives mean nothing.
QUICK = {
    "oracle": {"n_runs": 2, "n_steps": 2000, "save_every": 20, "equilibration_steps": 200, "workers": 1},
    "train": {"model": {"n_features": 16, "n_filters": 16, "n_rbf": 12, "n_interactions": 1, "output_hidden": [16]},
              "training": {"max_epochs": 5, "batch_size": 16, "lr": 3e-3, "validation_fraction": 0.5}},
    "simulate": {"replicas": 2, "steps": 1000, "report_interval": 20, "checkpoint_interval": 500},
    "evaluate": {"lagtime": 2, "plots": False},
    "force_test_frames": 200,
}

#: The stages in order.
STAGES = ("oracle", "map", "fit-priors", "train", "simulate", "evaluate", "summary")

#: File names inside the output folder.
FILES = {
    "training_aa": "data/training-aa.h5",
    "reference_aa": "data/reference-aa.h5",
    "training_cg": "data/training-cg.h5",
    "reference_cg": "data/reference-cg.h5",
    "priors": "models/priors.json",
    "priors_plot": "models/priors.png",
    "model": "models/trained.pt",
    "priors_only_model": "models/priors-only.pt",
    "training_dir": "models/training",
    "trained_run": "runs/trained.h5",
    "priors_only_run": "runs/priors-only.h5",
    "evaluation_trained": "evaluation/trained",
    "evaluation_priors_only": "evaluation/priors-only",
    "evaluation_noise_floor": "evaluation/noise-floor",
    "summary_json": "summary.json",
    "summary_md": "summary.md",
    "state": "demo-state.json",
    "config": "config.yaml",
}

# Keys of the command settings that the demo sets itself (file names).
_OWNED = {
    "oracle": ("system", "sequence", "pdb", "name", "output", "cg_output", "checkpoint", "mapping", "force_map"),
    "map": ("input", "output", "map", "overwrite"),
    "fit_priors": ("data", "output", "plot"),
    "train": ("data", "priors", "output", "checkpoint_dir", "init_model", "resume", "progress"),
    "simulate": ("model", "initial", "output", "checkpoint", "resume", "overwrite", "progress"),
    "evaluate": ("reference", "samples", "output", "training", "model"),
}

#: Rows of the summary table: (metric key, label).
SUMMARY_ROWS = (
    ("phi_psi_js", "phi/psi JS distance (2-D, 50x50)"),
    ("exact_phi_psi_js", "phi/psi JS, the model's exact equilibrium (no sampling)"),
    ("samples_vs_exact_js", "phi/psi JS, CG run against the exact equilibrium"),
    ("phi_js", "phi JS distance (1-D, 100 bins)"),
    ("psi_js", "psi JS distance (1-D, 100 bins)"),
    ("tica_w1_2d", "TICA W1 (TIC0/TIC1)"),
    ("tica_w1_1d_mean", "TICA W1 (1-D, mean of TICs)"),
    ("bond_js_mean", "bond JS distance (mean)"),
    ("angle_js_mean", "angle JS distance (mean)"),
    ("dihedral_js_mean", "dihedral JS distance (mean)"),
    ("rg_js", "radius of gyration JS distance"),
    ("val_force_mse", "force MSE, validation runs, (kJ/mol/nm)^2"),
    ("force_mse", "force MSE, reference set, (kJ/mol/nm)^2"),
)

_COLUMNS = (("priors_only", "priors only"), ("trained", "trained"), ("noise_floor", "noise floor (AA vs AA)"))


# --------------------------------------------------------------------------------------- settings

def _merge(base: dict, changes: dict) -> dict:
    """``changes`` merged into a copy of ``base``, recursing into mappings."""
    out = copy.deepcopy(base)
    for key, value in (changes or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@functools.lru_cache(maxsize=None)
def demo_settings():
    """The demo's settings as a nested :class:`~openmmcgml._config.Settings` dataclass,
    ``DemoConfig``: one section per stage, each the settings of the stage's command less the
    file names the demo sets itself (the oracle's also ``reference_seed`` and ``workers``), and
    ``force_test_frames``.  Its defaults are the commands'; :data:`DEFAULTS` goes over them."""
    from ._config import Settings, integer, section, settings_variant
    from .configs import evaluate, fit_priors, oracle, simulate, train
    from .configs import map as map_settings

    commands = {"oracle": oracle.OracleConfig, "map": map_settings.MapConfig, "fit_priors": fit_priors.FitPriorsConfig,
                "train": train.TrainConfig, "simulate": simulate.SimulateConfig, "evaluate": evaluate.EvaluateConfig}
    extra = {"oracle": [("reference_seed", None, integer(optional=True)), ("workers", 1, integer(1))]}
    sections = {name: settings_variant(cls, "Demo" + cls.__name__.replace("Config", "Settings"), drop=_OWNED[name],
                                       extra=extra.get(name, ()))
                for name, cls in commands.items()}
    fields = [(name, cls, section(cls)) for name, cls in sections.items()]
    fields.append(("force_test_frames", int, dataclasses.field(default=5000)))
    return dataclasses.make_dataclass("DemoConfig", fields, bases=(Settings,), namespace={
        "WHAT": "demo", "DOTTED_NAMES": True, "RULES": {"force_test_frames": integer(1)},
        "__doc__": "The settings of `cgml demo` (see openmmcgml.workflow.demo_settings)."})


def demo_config(config: Optional[dict] = None, quick: bool = False, overrides: Sequence[str] = ()) -> dict:
    """The complete demo settings: the commands' defaults, then :data:`DEFAULTS`, then
    :data:`QUICK` (``quick``), then ``config`` (a nested dict, e.g. read from YAML), then
    ``KEY=VALUE`` ``overrides``; read by the package's one loader (:func:`demo_settings`), so
    every setting is checked by its command's rule.

    Raises
    ------
    ValueError
        For an unknown setting, a bad value, or a file name the demo sets itself.
    """
    from ._config import apply_overrides, load_settings

    given = copy.deepcopy(config) if config is not None else {}
    if not isinstance(given, dict):
        raise ValueError(f"the demo config must be a mapping of settings, not {type(given).__name__}")
    apply_overrides(given, overrides)
    for name, owned in _OWNED.items():
        clash = sorted(set(given.get(name) or {}) & set(owned)) if isinstance(given.get(name), dict) else []
        if clash:
            raise ValueError(f"the demo sets {name}.{', '.join(clash)} itself (files live in the output folder)")
    defaults = _merge(DEFAULTS, QUICK) if quick else DEFAULTS
    return load_settings(demo_settings(), given, defaults=defaults).to_dict()


# ------------------------------------------------------------------------------------------ state

def _fingerprint(settings) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _differences(old, new, prefix=""):
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {old!r} -> {new!r}"]


class _State:
    """``demo-state.json``: the settings and wall time of every finished stage."""

    def __init__(self, path):
        self.path = path
        self.stages = {}
        if os.path.exists(path):
            try:
                with open(path) as handle:
                    self.stages = json.load(handle).get("stages", {})
            except (OSError, ValueError) as error:
                raise ValueError(f"{path} is damaged ({error}); run with fresh=True (--fresh) to start over") from error

    def done(self, stage: str, settings: dict, outputs: Sequence[str]) -> bool:
        record = self.stages.get(stage)
        if record is None:
            return False
        if record["fingerprint"] != _fingerprint(settings):
            changes = _differences(record["settings"], json.loads(json.dumps(settings, default=str)))
            raise ValueError(f"{os.path.dirname(self.path) or '.'} holds a demo whose stage '{stage}' ran with other "
                             f"settings ({'; '.join(changes[:5]) or 'upstream files changed'}); rerun with "
                             f"--fresh (fresh=True) or --fresh {stage}, or choose another output folder")
        return all(os.path.exists(path) for path in outputs)

    def finish(self, stage: str, settings: dict, seconds: float, **info) -> None:
        self.stages[stage] = {"fingerprint": _fingerprint(settings), "settings": json.loads(json.dumps(settings, default=str)),
                              "seconds": seconds, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **info}
        with atomic_write(self.path, "w") as handle:
            json.dump({"format": "openmm-cgml-demo-state", "stages": self.stages}, handle, indent=1)

    def forget(self, stages: Sequence[str]) -> None:
        for stage in stages:
            self.stages.pop(stage, None)


def _remove(paths) -> None:
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _stage_outputs(files: dict) -> dict:
    """Files and folders each stage writes (removed when it is redone); the first is the one
    whose presence says the stage finished (the evaluation: all of them)."""
    from ._config import config_path

    aa = [files["training_aa"], files["reference_aa"]]
    cg = [files["training_cg"], files["reference_cg"]]
    runs = [files["trained_run"], files["priors_only_run"]]
    return {
        "oracle": aa + [path + ".chk" for path in aa] + [config_path(path) for path in aa],
        "map": cg + [config_path(path) for path in cg],
        "fit-priors": [files["priors"], files["priors_plot"], config_path(files["priors"])],
        "train": [files["model"], files["priors_only_model"], files["training_dir"], config_path(files["model"])],
        "simulate": runs + [os.path.splitext(path)[0] + ".chk" for path in runs] + [config_path(path) for path in runs],
        "evaluate": [files["evaluation_trained"], files["evaluation_priors_only"], files["evaluation_noise_floor"]],
        "summary": [files["summary_json"], files["summary_md"], files["config"]],
    }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# ----------------------------------------------------------------------------------------- stages

def _oracle_settings(config: dict, files: dict, which: str) -> dict:
    settings = {k: v for k, v in config["oracle"].items() if k not in ("reference_seed", "workers")}
    settings["system"] = "alanine-dipeptide"
    settings["output"] = files[f"{which}_aa"]
    if which == "reference":
        seed = config["oracle"]["reference_seed"]
        settings["seed"] = seed if seed is not None else int(config["oracle"]["seed"] or 0) + 1
    return settings


def _run_oracle_set(settings: dict, progress) -> dict:
    from .configs import oracle

    result = oracle.run_config(settings, quiet=not progress, print_fn=lambda text: None)
    return {"summary": result.summary(), "n_frames": result.n_frames, "seconds": result.seconds,
            "ns_per_day": result.ns_per_day, "complete": result.complete}


def _oracle_frames(path: str) -> int:
    """Frames an oracle run has saved so far (0 before its first checkpoint)."""
    import json as json_module
    import zipfile

    try:
        with zipfile.ZipFile(path + ".chk") as archive:
            return int(json_module.loads(archive.read("checkpoint.json")).get("n_frames", 0))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0


def _oracle_complete(path: str) -> bool:
    from .data import read_checkpoint

    checkpoint = path + ".chk"
    if not (os.path.exists(path) and os.path.exists(checkpoint)):
        return False
    try:
        return bool(read_checkpoint(checkpoint).info.get("complete"))
    except ValueError:
        return False


def _stage_oracle(config, files, progress, say):
    sets = {which: _oracle_settings(config, files, which) for which in ("training", "reference")}
    todo = [which for which in sets if not _oracle_complete(sets[which]["output"])]
    for which in sets:
        if which not in todo:
            say(f"  {which} set: complete already ({sets[which]['output']})")
    workers = max(1, min(int(config["oracle"]["workers"] or 1), len(todo)))
    oracle = config["oracle"]
    ns = oracle["n_steps"] * oracle["timestep"] / 1000
    for which in todo:
        say(f"  {which} set: {oracle['n_runs']} runs x {ns:g} ns at {oracle['temperature']:g} K, a frame every "
            f"{oracle['save_every'] * oracle['timestep']:g} ps -> {sets[which]['output']}")
    results = {}
    if workers > 1:
        import concurrent.futures
        import multiprocessing

        say(f"  running the {len(todo)} sets in {workers} processes side by side")
        total = len(todo) * oracle["n_runs"] * (oracle["n_steps"] // oracle["save_every"])
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {which: pool.submit(_run_oracle_set, sets[which], None) for which in todo}
            if progress:  # one bar for both sets, from the frames their checkpoints vouch for
                from .data.progress import progress_reporter

                report = progress_reporter(progress, total, "oracle")
                while not all(future.done() for future in futures.values()):
                    concurrent.futures.wait(list(futures.values()), timeout=2.0)
                    report(sum(_oracle_frames(sets[which]["output"]) for which in todo))
                report.close()
            for which, future in futures.items():
                results[which] = future.result()
    else:
        for which in todo:
            results[which] = _run_oracle_set(sets[which], progress)
    for which, result in results.items():
        say(f"  {which} set: {result['summary']}")
    return {"oracle_ns_per_day": {which: result["ns_per_day"] for which, result in results.items()}}


def _stage_map(config, files, progress, say):
    from .configs import map as map_settings

    for which in ("training", "reference"):
        settings = {**config["map"], "input": files[f"{which}_aa"], "output": files[f"{which}_cg"],
                    "map": "alanine-dipeptide", "overwrite": True}
        map_settings.run_config(settings, quiet=not progress, print_fn=lambda text: say("  " + text))
    return {}


def _stage_fit_priors(config, files, progress, say):
    from .configs import fit_priors

    # quiet: the one-line summary without the table of fitted parameters
    settings = {**config["fit_priors"], "data": files["training_cg"], "output": files["priors"],
                "plot": files["priors_plot"]}
    fit_priors.run_config(settings, quiet=True, print_fn=lambda text: say("  " + text))
    return {}


def _stage_train(config, files, progress, say):
    from .cgmodel import CGModel
    from .configs import train
    from .priors import PriorSet

    # with the baseline: the fitted priors alone (no network, no learned map), same beads and masses
    settings = {**config["train"], "data": files["training_cg"], "priors": files["priors"], "output": files["model"],
                "priors_only_output": files["priors_only_model"], "checkpoint_dir": files["training_dir"],
                "init_model": None, "resume": True, "progress": True}
    train.run_config(settings, quiet=not progress, print_fn=lambda text: say("  " + text))
    fitted = PriorSet.load(files["priors"])
    history = CGModel.load(files["model"]).metadata["force_matching"]
    # the same validation frames with the priors alone (the network's and sine terms' forces left out)
    import numpy as np

    from .data import ranges_to_indices, read_trajectory

    data = read_trajectory(files["training_cg"], frames=slice(None, None, settings["stride"]),
                           resolution="coarse-grained")
    validation = ranges_to_indices(history["validation_frames"])  # the frames the trainer held out
    _, prior_forces = fitted.energy_and_forces(data.coordinates[validation])
    priors_only_val = float(np.mean((data.forces[validation] - prior_forces.numpy()) ** 2))
    trained_val = history.get("best_val_force_mse", history["best_val_loss"])
    say(f"  validation force MSE: trained {trained_val:.5g}, priors only {priors_only_val:.5g} (kJ/mol/nm)^2")
    return {"best_val_loss": trained_val, "priors_only_val_loss": priors_only_val,
            "best_epoch": history["best_epoch"], "epochs": history["epochs"]}


def _stage_simulate(config, files, progress, say):
    from .configs import simulate

    info = {}
    for name, model_path, output in (("trained", files["model"], files["trained_run"]),
                                     ("priors_only", files["priors_only_model"], files["priors_only_run"])):
        settings = {**config["simulate"], "model": model_path, "initial": {"reference": files["training_cg"]},
                    "output": output, "checkpoint": None, "resume": True, "overwrite": True, "progress": True}
        say(f"  {name.replace('_', '-')} model:")
        result = simulate.run_config(settings, quiet=not progress, print_fn=lambda text: say("    " + text))
        info[f"{name}_steps_per_second"] = result["steps_per_second"]
    return info


def _force_errors(config, files) -> dict:
    """Mean squared force error of both models on frames of the reference set (never trained on)."""
    import numpy as np
    import torch

    from .cgmodel import CGModel
    from .data import read_trajectory

    data = read_trajectory(files["reference_cg"], resolution="coarse-grained")
    n = data.n_frames
    count = max(1, min(int(config["force_test_frames"]), n))
    frames = np.linspace(0, n - 1, count).round().astype(int)
    x = torch.as_tensor(data.coordinates[frames], dtype=torch.float64)
    f = np.asarray(data.forces[frames], dtype=np.float64)
    errors = {}
    for name, path in (("trained", files["model"]), ("priors_only", files["priors_only_model"])):
        model = CGModel.load(path)
        if model.model is not None:
            model.model.double()
        predicted = np.concatenate([model.energy_and_forces(x[s:s + 500])[1].detach().numpy()
                                    for s in range(0, len(x), 500)])
        errors[name] = float(np.mean((predicted - f) ** 2))
    return errors


def _stage_evaluate(config, files, progress, say):
    from .configs import evaluate

    results = {}
    for name, samples, output, discard, model in (
            ("trained", files["trained_run"], files["evaluation_trained"], None, files["model"]),
            ("priors_only", files["priors_only_run"], files["evaluation_priors_only"], None,
             files["priors_only_model"]),
            ("noise_floor", files["training_cg"], files["evaluation_noise_floor"], 0.0, None)):
        # with the model: its exact (phi, psi) equilibrium too, and how far the CG run is from it
        settings = {**config["evaluate"], "reference": files["reference_cg"], "samples": samples, "output": output,
                    "training": files["training_cg"], "model": model}
        if discard is not None:
            settings["discard"] = discard  # all-atom runs are equilibrated: keep every frame
        # quiet: the stage prints its own one-line summary of each evaluation
        results[name] = evaluate.run_config(settings, quiet=True, print_fn=lambda text: None)
        say(f"  {name.replace('_', ' ')}: phi/psi JS {results[name]['phi_psi_js']:.3f}, TICA W1 "
            f"{results[name]['tica_w1_2d']:.3f} -> {output}")
    errors = _force_errors(config, files)
    for name, value in errors.items():
        results[name]["force_mse"] = value
    say(f"  force MSE on reference frames: trained {errors['trained']:.4g}, priors only {errors['priors_only']:.4g} "
        "(kJ/mol/nm)^2")
    for name, metrics in results.items():
        with open(os.path.join(files[f"evaluation_{name}"], "metrics.json"), "w") as handle:
            json.dump(metrics, handle, indent=2)
    return {}


def _metrics_row(metrics: dict, key: str):
    if key == "tica_w1_1d_mean":
        values = metrics.get("tica_w1_1d")
        return None if not values else float(sum(values) / len(values))
    value = metrics.get(key)
    return None if value is None else float(value)


def format_summary(summary: dict) -> str:
    """The summary table (Markdown) of :func:`run_alanine_demo`'s result."""
    lines = ["| metric | " + " | ".join(label for _, label in _COLUMNS) + " |",
             "|---|" + "---:|" * len(_COLUMNS)]
    for key, label in SUMMARY_ROWS:
        cells = []
        for column, _ in _COLUMNS:
            value = summary["metrics"].get(column, {}).get(key)
            cells.append("—" if value is None else (f"{value:.5g}" if key.endswith("force_mse") else f"{value:.3f}"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stage_summary(config, files, state, total_seconds, say):
    import openmm

    metrics = {}
    for name in ("trained", "priors_only", "noise_floor"):
        with open(os.path.join(files[f"evaluation_{name}"], "metrics.json")) as handle:
            full = json.load(handle)
        metrics[name] = {key: _metrics_row(full, key) for key, _ in SUMMARY_ROWS}
        metrics[name]["n_model_frames"] = full.get("n_model_frames")
        metrics[name]["n_reference_frames"] = full.get("n_reference_frames")
    metrics["noise_floor"]["force_mse"] = None
    training = state.stages.get("train", {})
    metrics["trained"]["val_force_mse"] = training.get("best_val_loss")
    metrics["priors_only"]["val_force_mse"] = training.get("priors_only_val_loss")
    metrics["noise_floor"]["val_force_mse"] = None
    floor = metrics["noise_floor"]["phi_psi_js"]
    trained = metrics["trained"]["phi_psi_js"]
    plots = {name: sorted(os.path.join(files[f"evaluation_{name}"], f)
                          for f in os.listdir(files[f"evaluation_{name}"]) if f.endswith(".png"))
             for name in ("trained", "priors_only", "noise_floor")}
    plots["training"] = [p for p in (os.path.join(files["training_dir"], "loss.png"), files["priors_plot"])
                         if os.path.exists(p)]
    summary = {
        "metrics": metrics,
        "ratio_to_noise_floor": (trained / floor) if floor else None,
        "best_val_loss": training.get("best_val_loss"),
        "stage_seconds": {stage: record.get("seconds") for stage, record in state.stages.items()},
        "total_seconds": total_seconds,
        "settings": config,
        "files": {key: os.path.abspath(path) for key, path in files.items()},
        "plots": plots,
        "openmm_version": openmm.version.version,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with open(files["summary_json"], "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    oracle = config["oracle"]
    sim = config["simulate"]
    text = [
        "# cgml demo: alanine dipeptide, 5 beads (C N CA C N)",
        "",
        f"All-atom sets: 2 x {oracle['n_runs']} runs x {oracle['n_steps'] * oracle['timestep'] / 1000:g} ns at "
        f"{oracle['temperature']:g} K (training / reference); CG runs: {sim['replicas']} replicas x "
        f"{sim['steps'] * sim['timestep']:g} ps per model. Priors: {', '.join(config['fit_priors']['terms'])}.",
        "Every column is scored against the reference set, which no model was trained on; the noise floor is "
        "the training set scored against it (two independent all-atom sets of the same length).",
        "",
        format_summary(summary),
        "",
        f"Trained / noise floor (2-D phi/psi JS): {summary['ratio_to_noise_floor']:.2f}" if floor else "",
    ]
    with open(files["summary_md"], "w") as handle:
        handle.write("\n".join(text).rstrip() + "\n")
    return summary


# ------------------------------------------------------------------------------------------- main

def run_alanine_demo(output_dir="cgml-demo", config: Optional[dict] = None, *, quick: bool = False,
                     fresh: Union[bool, str] = False, progress: bool = True,
                     print_fn: Optional[Callable[[str], None]] = print) -> dict:
    """Run the whole workflow on alanine dipeptide (see the module docstring); resumable.

    Parameters
    ----------
    output_dir : str or path-like
        Folder for every file of the demo (created; a finished demo there is reused).
    config : dict, optional
        Settings over :data:`DEFAULTS` (nested sections, see :func:`demo_config`); a complete
        config from :func:`demo_config` is taken as it is.
    quick : bool
        Start from the tiny :data:`QUICK` settings (tests).
    fresh : bool or str
        True: delete the folder's demo files and start over; a stage name (``"train"``): redo
        that stage and the ones after it.
    progress : bool
        Progress bars of the long stages.
    print_fn : callable or None
        Receives every line of progress output (None: silent).

    Returns
    -------
    dict
        The summary (also in ``summary.json``): ``metrics`` (``trained``, ``priors_only`` and
        ``noise_floor``, each a dict of the :data:`SUMMARY_ROWS` metrics), ``ratio_to_noise_floor``,
        ``best_val_loss``, ``stage_seconds``, ``total_seconds``, ``files``, ``plots``, ``settings``.

    Raises
    ------
    ValueError
        For unknown settings, or a finished stage in ``output_dir`` that ran with other settings.
    """
    from ._config import save_config

    say = print_fn or (lambda text: None)
    config = demo_config(config, quick=quick)
    output_dir = os.fspath(output_dir)
    files = {key: os.path.join(output_dir, name) for key, name in FILES.items()}
    outputs = _stage_outputs(files)
    if fresh:
        if fresh is True or fresh == "all":
            first = 0
        elif fresh in STAGES:
            first = STAGES.index(fresh)
        else:
            raise ValueError(f"fresh must be True or a stage name ({', '.join(STAGES)}), not {fresh!r}")
        _remove([path for stage in STAGES[first:] for path in outputs[stage]])
        if first == 0:
            _remove([files["state"]])
    for folder in ("data", "models", "runs", "evaluation"):
        os.makedirs(os.path.join(output_dir, folder), exist_ok=True)
    state = _State(files["state"])
    if fresh and fresh is not True and fresh != "all":
        state.forget(STAGES[STAGES.index(fresh):])

    # Each stage's fingerprint covers its own settings and those of every stage before it.
    # Where the work runs (platform, threads, processes) does not change its results.
    where = ("workers", "platform", "threads", "flush_every")
    own = {"oracle": {k: v for k, v in config["oracle"].items() if k not in where}, "map": config["map"], "fit-priors": config["fit_priors"],
           "train": config["train"], "simulate": config["simulate"],
           "evaluate": {"evaluate": config["evaluate"], "force_test_frames": config["force_test_frames"]},
           "summary": {}}
    runners = {"oracle": _stage_oracle, "map": _stage_map, "fit-priors": _stage_fit_priors, "train": _stage_train,
               "simulate": _stage_simulate, "evaluate": _stage_evaluate}
    started = time.perf_counter()
    say(f"cgml demo: alanine dipeptide, all-atom oracle -> 5 CG beads -> priors -> force matching -> CG "
        f"simulation -> evaluation; output in {output_dir}")
    cumulative = {}
    redo = False
    summary = None
    for number, stage in enumerate(STAGES, 1):
        cumulative = {**cumulative, stage: own[stage]}
        settings = copy.deepcopy(cumulative)
        if stage == "summary":
            seconds = sum(record.get("seconds") or 0.0 for name, record in state.stages.items() if name != "summary")
            say(f"[{number}/{len(STAGES)}] summary")
            summary = _stage_summary(config, files, state, seconds, say)
            save_config(config, files["config"], "demo")
            state.finish("summary", settings, 0.0)
            break
        if not redo and state.done(stage, settings, outputs[stage][:1] if stage != "evaluate" else outputs[stage]):
            say(f"[{number}/{len(STAGES)}] {stage}: done already ({_duration(state.stages[stage]['seconds'])} when it ran)")
            continue
        # A stage that starts after an earlier one ran in this call starts from scratch; the first
        # unfinished stage keeps its files (the oracle, training and simulations continue from their
        # checkpoints). The files of every later stage are stale either way.
        _remove([path for later in STAGES[number:] for path in outputs[later]])
        if redo:
            _remove(outputs[stage])
        redo = True
        state.forget(STAGES[number - 1:])
        say(f"[{number}/{len(STAGES)}] {stage}")
        stage_start = time.perf_counter()
        info = runners[stage](config, files, progress, say)
        seconds = time.perf_counter() - stage_start
        state.finish(stage, settings, seconds, **(info or {}))
        say(f"  {stage} finished in {_duration(seconds)}")
    say("")
    say(format_summary(summary))
    if summary["ratio_to_noise_floor"] is not None:
        say(f"trained model / noise floor, 2-D phi/psi JS: {summary['ratio_to_noise_floor']:.2f}")
    say(f"total time of the stages: {_duration(summary['total_seconds'])} (this call: "
        f"{_duration(time.perf_counter() - started)})")
    say(f"summary: {files['summary_md']} and {files['summary_json']}")
    say("plots: " + ", ".join(summary["plots"]["trained"] + summary["plots"]["training"]))
    say(f"       and the same for the priors-only model and the noise floor in {os.path.dirname(files['evaluation_trained'])}")
    return summary
