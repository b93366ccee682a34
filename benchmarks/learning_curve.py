"""The force-matching learning curve of alanine dipeptide, scored against the long reference.

For every all-atom training set (one oracle seed each, runs of at least the largest size) and
every size (ns per run), the script takes the first ``size`` ns of each run, scores that all-atom
subset against the long reference (the noise floor of that size), fits the priors to it, trains a
model with the given settings, and scores the model against the reference in two ways:

* **exact**: the model's equilibrium distribution by integration over bonds and angles
  (:func:`openmmcgml.analysis.marginal.phi_psi_density`; no sampling, no equilibration question):
  the phi/psi JS distances and basin populations straight from the density, the TICA scores from
  50,000 configurations resampled from it;
* **MD** (``--md-ps`` > 0): Langevin replicas of the model in OpenMM, half started from beta
  frames and half from alpha-R frames of the training subset, with a burn-in dropped; the two
  halves are compared with each other (:func:`openmmcgml.analysis.equilibration.compare_starts`).

It prints, per size, the mean and sample standard deviation over sets of the 2-D phi/psi JS, the
1-D phi and psi JS, the TICA W1 and the basin free-energy differences (kT), for the all-atom
floor, the exact model and (with MD) the simulated model; everything goes to
``OUTPUT/summary.json``. Finished steps are skipped when the script runs again.

Usage (docs/training.md, "Learning curve")::

    cgml oracle examples/configs/oracle-alanine-long-reference.yaml       # the long reference
    for seed in 11 12 13; do                                               # three training sets
        cgml oracle examples/configs/oracle-alanine-long-reference.yaml --set seed=$seed \\
            --set n_runs=4 --set n_steps=5000000 --set save_every=50 \\
            --set cg_output=data/learning-curve/train-s$seed-cg.h5
    done
    python benchmarks/learning_curve.py --reference data/alanine-dipeptide/long-reference-cg.h5 \\
        --sets data/learning-curve/train-s1{1,2,3}-cg.h5 --sizes 1 3 10 --output data/learning-curve/run
"""

import argparse
import json
import os
import time

import numpy as np

from openmmcgml._atomic import atomic_write

METRICS = ("phi_psi_js", "phi_js", "psi_js", "tica_w1_2d", "model_dF_alpha_R_kT", "model_dF_alpha_L_kT",
           "model_population_alpha_R", "model_population_beta", "model_population_alpha_L")

#: The training settings of the curve unless --train-set changes them (docs/training.md).
TRAIN = {
    "stride": 1,
    "exclusions": "bonds+map",
    "model": {"n_features": 32, "n_filters": 32, "n_rbf": 16, "n_interactions": 2, "cutoff": 1.0,
              "output_hidden": [32], "activation": "silu"},
    "training": {"lr": 2e-3, "batch_size": 256, "patience": None, "lr_schedule": "cosine",
                 "validation_fraction": 0.25, "num_threads": 1, "seed": 0, "dihedral_map": 4, "loss": "internal"},
    "force_noise": False,
    "progress": False,
}


def _set_nested(settings: dict, assignment: str) -> None:
    import yaml

    key, _, value = assignment.partition("=")
    node = settings
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)


def subset(path: str, size_ns: float, output: str) -> str:
    """The first ``size_ns`` of every run of a CG file, written to ``output`` (kept if present)."""
    import h5py

    from openmmcgml.data import read_trajectory, write_trajectory

    if os.path.exists(output):
        return output
    with h5py.File(path, "r") as handle:
        frame_ps = float(handle.attrs["timestep"]) * int(handle.attrs["save_interval"])
    per_run = int(round(size_ns * 1000.0 / frame_ps))
    data = read_trajectory(path, resolution="coarse-grained")
    keep = np.zeros(data.n_frames, dtype=bool)
    for run in np.unique(data.trajectory):
        frames = np.flatnonzero(data.trajectory == run)
        if len(frames) < per_run:
            raise ValueError(f"{path}: run {run} has {len(frames) * frame_ps / 1000:g} ns, fewer than {size_ns} ns")
        keep[frames[:per_run]] = True
    write_trajectory(output, data[keep], overwrite=True)
    return output


def basin_starts_available(path: str) -> bool:
    from openmmcgml.analysis.equilibration import basin_frames

    try:
        return all(len(basin_frames(path, basin)) > 0 for basin in ("beta", "alpha_R"))
    except ValueError:
        return False


def epochs_for(training_set: str, train: dict, max_steps: int) -> int:
    """Epochs that make about ``max_steps`` optimisation steps on the training runs of a set (the
    same budget for every size: small sets get more passes, large ones fewer)."""
    import math

    from openmmcgml.data import TrajectoryInfo

    n_frames = TrajectoryInfo.of(training_set).n_frames
    n_train = n_frames * (1.0 - train["training"]["validation_fraction"])
    return max(1, math.ceil(max_steps / math.ceil(n_train / train["training"]["batch_size"])))


def density_scores(density, reference_angles) -> dict:
    """The angle scores of a model straight from its exact density (no sampling noise on the
    model's side) against the reference's (phi, psi), under the names
    :func:`~openmmcgml.analysis.report.report` gives them; the TICA scores stay with the resampled
    configurations."""
    from openmmcgml.analysis.marginal import angle_scores

    scores = angle_scores(density, reference_angles)
    result = {"phi_psi_js": scores["exact_phi_psi_js"], "phi_js": scores["exact_phi_js"],
              "psi_js": scores["exact_psi_js"], "exact_min_effective_samples": scores["exact_min_effective_samples"],
              "scored_from": "density"}
    for basin in ("alpha_R", "beta", "alpha_L"):
        result[f"model_population_{basin}"] = scores[f"exact_population_{basin}"]
    for basin in ("alpha_R", "alpha_L"):
        result[f"model_dF_{basin}_kT"] = float(-np.log(scores[f"exact_population_{basin}"]
                                                       / scores["exact_population_beta"]))
    return result


def score_one(reference, reference_angles, training_set: str, folder: str, train: dict, md_replicas: int,
              md_ps: float, burn_in_ps: float, lagtime: int, prior_terms=("bonds", "angles"), n_side: int = 16) -> dict:
    """Noise floor, training and scores of one (set, size); ``reference_angles`` are the
    reference's (phi, psi), read once for every model."""
    from openmmcgml.analysis import report
    from openmmcgml.analysis.marginal import phi_psi_density
    from openmmcgml.cgmodel import CGModel
    from openmmcgml.configs import fit_priors, simulate
    from openmmcgml.configs import train as train_settings

    os.makedirs(folder, exist_ok=True)
    result_path = os.path.join(folder, "metrics.json")
    if os.path.exists(result_path):
        with open(result_path) as handle:
            result = json.load(handle)
        if result["exact"].get("scored_from") != "density":  # written before the scores came from the density
            density = phi_psi_density(CGModel.load(os.path.join(folder, "model.pt")), n_side=n_side)
            result["exact"].update(density_scores(density, reference_angles))
            with atomic_write(result_path, "w") as handle:
                json.dump(result, handle, indent=1, default=float)
        return result
    quiet = dict(quiet=True, print_fn=lambda text: None)
    timings = {}
    start = time.perf_counter()
    floor = report(reference, training_set, None, discard=0.0, plots=False, lagtime=lagtime)
    timings["floor"] = time.perf_counter() - start

    priors = os.path.join(folder, "priors.json")
    model_path = os.path.join(folder, "model.pt")
    start = time.perf_counter()
    if not os.path.exists(priors):
        fit_priors.run_config({"data": training_set, "output": priors, "terms": list(prior_terms)},
                              **quiet)
    if not os.path.exists(model_path):
        train_settings.run_config({**train, "data": training_set, "priors": priors, "output": model_path,
                                   "checkpoint_dir": os.path.join(folder, "training"), "resume": True}, **quiet)
    timings["train"] = time.perf_counter() - start

    start = time.perf_counter()
    model = CGModel.load(model_path)
    density = phi_psi_density(model, n_side=n_side, keep_positions=True)
    exact = report(reference, density.sample(50000, seed=1), None, discard=0.0, plots=False, lagtime=lagtime)
    exact.update(density_scores(density, reference_angles))
    timings["exact"] = time.perf_counter() - start
    result = {"training_set": training_set, "floor": floor, "exact": exact,
              "training": {k: model.metadata["force_matching"][k] for k in ("best_epoch", "epochs",
                                                                            "best_val_loss", "best_val_force_mse")
                           if k in model.metadata["force_matching"]}}

    if md_ps > 0 and md_replicas > 0:
        from openmmcgml.analysis.equilibration import compare_starts

        start = time.perf_counter()
        runs = {}
        steps = int(round(md_ps / 0.002))
        for basin in ("beta", "alpha_R"):
            runs[basin] = os.path.join(folder, f"md-{basin}.h5")
            simulate.run_config({"model": model_path, "replicas": md_replicas, "steps": steps,
                                 "report_interval": 250, "timestep": 0.002, "friction": 1.0, "seed": 1,
                                 "initial": {"reference": training_set, "basin": basin}, "output": runs[basin],
                                 "checkpoint": runs[basin] + ".chk", "checkpoint_interval": 50000, "resume": True,
                                 "overwrite": False, "progress": False}, **quiet)
        discard = burn_in_ps / md_ps
        from openmmcgml.simulation.storage import read_trajectories

        both = [run for basin in ("beta", "alpha_R") for run in read_trajectories(runs[basin]).coordinates]
        result["md"] = report(reference, both, None, discard=discard, plots=False, lagtime=lagtime)
        comparison = compare_starts(runs["beta"], runs["alpha_R"], frame_time=0.5, burn_in=burn_in_ps,
                                    tolerance=floor["phi_psi_js"], population_sigmas=3.0)
        result["md_starts"] = comparison.to_dict() if hasattr(comparison, "to_dict") else str(comparison)
        from openmmcgml.analysis.geometry import alanine_phi_psi

        kept = np.concatenate([run[int(discard * len(run)):] for run in both])
        result["md_vs_exact_js"] = density.js_distance(*alanine_phi_psi(kept))
        timings["md"] = time.perf_counter() - start
    result["seconds"] = timings
    with atomic_write(result_path, "w") as handle:
        json.dump(result, handle, indent=1, default=float)
    return result


def summarise(results: dict, sizes) -> dict:
    summary = {}
    for size in sizes:
        rows = results.get(size, [])
        summary[size] = {}
        for kind in ("floor", "exact", "md"):
            values = {key: [r[kind][key] for r in rows if kind in r and r[kind].get(key) is not None]
                      for key in METRICS}
            summary[size][kind] = {key: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1
                                         else float("nan"), "n": len(v), "values": v}
                                   for key, v in values.items() if v}
    return summary


def print_table(summary: dict) -> None:
    print(f"{'size (ns/run)':<14}{'metric':<26}{'AA floor':>18}{'model (exact)':>18}{'model (MD)':>18}")
    for size, kinds in summary.items():
        for key in METRICS:
            cells = []
            for kind in ("floor", "exact", "md"):
                stat = kinds.get(kind, {}).get(key)
                cells.append(f"{stat['mean']:.3f} ± {stat['std']:.3f}" if stat else "—")
            print(f"{'4 x ' + str(size):<14}{key:<26}" + "".join(f"{c:>18}" for c in cells))
        floor, exact = kinds.get("floor", {}).get("phi_psi_js"), kinds.get("exact", {}).get("phi_psi_js")
        if floor and exact:
            ratios = [m / f for m, f in zip(exact["values"], floor["values"])]
            print(f"{'':<14}{'model / floor (2-D JS)':<26}{'':>18}{np.mean(ratios):>12.2f} (max {max(ratios):.2f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="the long CG-mapped reference (comma-separated files)")
    parser.add_argument("--sets", nargs="+", required=True, help="CG training sets, one per oracle seed")
    parser.add_argument("--sizes", nargs="+", type=float, default=[1.0, 3.0, 10.0], help="ns per run")
    parser.add_argument("--output", required=True, help="folder for subsets, models and summary.json")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a training setting, e.g. training.dihedral_map=2 (repeatable)")
    parser.add_argument("--max-steps", type=int, default=6000,
                        help="optimisation steps per model (epochs = steps / batches per epoch), unless "
                        "--train-set training.max_epochs=... is given")
    parser.add_argument("--md-replicas", type=int, default=32, help="CG replicas per start basin (0: no MD)")
    parser.add_argument("--md-ps", type=float, default=0.0, help="ps per replica (0: exact scores only)")
    parser.add_argument("--burn-in-ps", type=float, default=250.0, help="ps dropped from each replica")
    parser.add_argument("--lagtime", type=int, default=20, help="TICA lag in reference frames")
    parser.add_argument("--prior-terms", nargs="+", default=["bonds", "angles"],
                        help="prior terms fitted to each training subset (no torsion prior: the map is learned)")
    parser.add_argument("--n-side", type=int, default=16,
                        help="integration draws per (phi, psi) bin: n_side^2 (phi_psi_density)")
    args = parser.parse_args(argv)

    import copy

    from openmmcgml.analysis.marginal import _phi_psi_of

    train = copy.deepcopy(TRAIN)
    for assignment in args.train_set:
        _set_nested(train, assignment)
    reference = args.reference.split(",")
    reference_angles = _phi_psi_of(reference)
    os.makedirs(args.output, exist_ok=True)
    results = {}
    sizes = [f"{s:g}" for s in args.sizes]
    for path in args.sets:
        name = os.path.splitext(os.path.basename(path))[0]
        for size in sizes:
            folder = os.path.join(args.output, f"{name}-{size}ns")
            os.makedirs(folder, exist_ok=True)
            training_set = subset(path, float(size), os.path.join(folder, "training-cg.h5"))
            settings = copy.deepcopy(train)
            if "max_epochs" not in settings["training"]:
                settings["training"]["max_epochs"] = epochs_for(training_set, settings, args.max_steps)
            start = time.perf_counter()
            result = score_one(reference, reference_angles, training_set, folder, settings, args.md_replicas,
                               args.md_ps, args.burn_in_ps, args.lagtime, args.prior_terms, args.n_side)
            results.setdefault(size, []).append(result)
            print(f"{name} 4 x {size} ns: floor 2-D JS {result['floor']['phi_psi_js']:.3f}, model (exact) "
                  f"{result['exact']['phi_psi_js']:.3f}" +
                  (f", model (MD) {result['md']['phi_psi_js']:.3f}" if "md" in result else "") +
                  f" ({time.perf_counter() - start:.0f} s)", flush=True)
    summary = summarise(results, sizes)
    with atomic_write(os.path.join(args.output, "summary.json"), "w") as handle:
        json.dump({"reference": reference, "sets": args.sets, "train": train, "summary": summary}, handle, indent=1)
    print_table(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
