"""One call that evaluates CG samples against the mapped all-atom reference and writes the plots."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Optional

import numpy as np

from . import plots as _plots
from .basins import ALANINE_BASINS, basin_metrics, state_populations
from .distributions import histogram_js, histogram_js_2d
from .geometry import (NativeContacts, alanine_phi_psi, bond_angles, bond_lengths, dihedral_angles, frames,
                       radius_of_gyration, rmsd)
from .tica import TICAMetrics, _is_path_list, as_runs, integrated_autocorrelation_time

__all__ = ["ALANINE_BEADS", "detect_kind", "format_metrics", "load_native", "noise_floor", "read_reference_files",
           "report"]

#: Bead names of the alanine dipeptide backbone map: C(ACE) N CA C N(NME).
ALANINE_BEADS = ("C", "N", "CA", "C", "N")
#: Boltzmann constant in kJ/mol/K (OpenMM's value).
BOLTZMANN = 0.00831446261815324
ANGLE_RANGE = (-np.pi, np.pi)


def detect_kind(bead_names) -> str:
    """``"alanine"`` for the five backbone beads C N CA C N, ``"ca"`` for a CA trace, else ``"generic"``."""
    names = tuple(str(n).split(":")[0].strip().upper() for n in bead_names)
    if names == ALANINE_BEADS:
        return "alanine"
    if names and all(n == "CA" for n in names):
        return "ca"
    return "generic"


def load_native(native) -> np.ndarray:
    """A native structure (n_beads, 3) in nm from an array or a structure file (its CA atoms).

    Files are read with mdtraj; for a CA map the CA atoms are taken (any other file: all atoms).
    """
    if isinstance(native, (str, bytes)) or hasattr(native, "__fspath__"):
        import mdtraj

        traj = mdtraj.load(os.fspath(native))
        ca = traj.topology.select("name CA and protein") if traj.topology.n_atoms else []
        if len(ca) == 0:
            ca = traj.topology.select("name CA")
        return traj.xyz[0, ca].astype(float) if len(ca) else traj.xyz[0].astype(float)
    return frames(native)[0]


def format_metrics(metrics: dict) -> str:
    """A two-column text table of the metrics (lists shown in full, floats with 4 significant digits)."""
    lines = []
    width = max(len(k) for k in metrics) if metrics else 0
    for key, value in metrics.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + "]"
        else:
            text = str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def _autocorrelation_time(series):
    """Integrated autocorrelation time in frames, or None where the runs are too short to tell."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tau = integrated_autocorrelation_time(series)
    return None if caught or not np.isfinite(tau) else float(tau)


def read_reference_files(paths):
    """The runs of several trajectory files as one TrajectorySet (e.g. a long reference generated
    as two oracle sets side by side, one per core).

    The files must hold the same beads at the same temperature; the metadata are the first
    file's and the runs keep their order (file by file).

    Raises
    ------
    ValueError
        If the files differ in bead names, bead count or temperature.
    """
    import dataclasses

    from ..simulation.storage import read_trajectories

    sets = [read_trajectories(path) for path in paths]
    first = sets[0]
    for path, other in zip(paths[1:], sets[1:]):
        if other.n_beads != first.n_beads or list(other.bead_names) != list(first.bead_names):
            raise ValueError(f"{os.fspath(path)} has beads {list(other.bead_names)}, {os.fspath(paths[0])} "
                             f"{list(first.bead_names)}")
        if other.temperature != first.temperature:
            raise ValueError(f"{os.fspath(path)} is at {other.temperature} K, {os.fspath(paths[0])} at "
                             f"{first.temperature} K")
    return dataclasses.replace(
        first, coordinates=[x for one in sets for x in one.coordinates], steps=[x for one in sets for x in one.steps],
        trajectory_ids=np.arange(sum(len(one.coordinates) for one in sets)),
        forces=None if any(one.forces is None for one in sets) else [x for one in sets for x in one.forces])


def _blocks_per_run(lengths, n_blocks_per_run: Optional[int], what: str) -> int:
    """Blocks in time per run for block-averaged errors: the given number (default: 1 with 8 or
    more runs, else 4), at most the shortest run's frames, and 2 for a single run."""
    if n_blocks_per_run is None:
        n_blocks_per_run = 1 if len(lengths) >= 8 else 4
    n_blocks_per_run = max(1, min(int(n_blocks_per_run), min(lengths)))
    if len(lengths) == 1 and n_blocks_per_run == 1:
        n_blocks_per_run = 2 if lengths[0] >= 2 else 1
    if len(lengths) * n_blocks_per_run < 2:
        raise ValueError(f"the {what} has too few frames for populations with error bars")
    return n_blocks_per_run


def _alanine_basin_metrics(runs, prefix: str, n_blocks_per_run: Optional[int]) -> dict:
    """Basin populations and free energies of CG alanine runs (see analysis.basins.basin_metrics)."""
    angles = [alanine_phi_psi(r) for r in runs if len(r)]
    blocks = _blocks_per_run([len(phi) for phi, _ in angles], n_blocks_per_run, f"{prefix} set")
    return basin_metrics([phi for phi, _ in angles], [psi for _, psi in angles], units="radians", prefix=prefix,
                         n_blocks_per_run=blocks)


def _folded_metrics(runs, folded, name: str, n_blocks_per_run: Optional[int]) -> dict:
    """``folded_fraction_{name}`` and its block-averaged ``_error`` from the per-frame ``folded``
    flags of ``runs`` concatenated (blocks as :func:`_blocks_per_run`)."""
    lengths = [len(r) for r in runs]
    labels = np.split(folded.astype(np.int64), np.cumsum(lengths)[:-1])
    blocks = _blocks_per_run(lengths, n_blocks_per_run, f"{name} set")
    result = state_populations(labels, names=("unfolded", "folded"), n_blocks_per_run=blocks)
    fraction, error = result.population("folded")
    return {f"folded_fraction_{name}": fraction, f"folded_fraction_{name}_error": error}


def _max_deviation(metrics: dict, name: str, reference: str, relative_to: str = "beta") -> Optional[float]:
    """max over the basins of |dF_name - dF_reference| in kT; None where either is undefined."""
    deviations = []
    for basin in ALANINE_BASINS:
        if basin == relative_to:
            continue
        a, b = metrics.get(f"{name}_dF_{basin}_kT"), metrics.get(f"{reference}_dF_{basin}_kT")
        if a is None or b is None:
            return None
        deviations.append(abs(a - b))
    return float(max(deviations))


def _grid_axes(n_panels, panel=(3.2, 2.6), max_cols=4):
    cols = min(max_cols, n_panels)
    rows = int(math.ceil(n_panels / cols))
    axes = _plots.new_axes((panel[0] * cols, panel[1] * rows), ncols=cols, nrows=rows)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return axes


def _panel_plots(reference, model, path, label, names, bins, value_range=None, scale=1.0, max_panels=12):
    n = min(reference.shape[1], max_panels)
    axes = _grid_axes(n)
    for k in range(n):
        r = None if value_range is None else (value_range[0] * scale, value_range[1] * scale)
        _plots.plot_distributions(reference[:, k] * scale, model[:, k] * scale, ax=axes[k], bins=bins, range=r,
                                 xlabel=f"{label} {names[k]}")
    _plots.save(axes[0], path)


def report(reference, samples, output_dir=None, *, kind: str = "auto", bead_names=None, lagtime: int = 20,
           discard: float = 0.1, reference_stride: int = 1, stride: int = 1, native=None,
           temperature: Optional[float] = None, bins: int = 100, n_tics: int = 5, bounds="reference",
           max_kde_samples: Optional[int] = 20000, q_cutoff: float = 0.8, folded_rmsd: float = 0.3,
           plots: bool = True, training=None, basin_blocks: Optional[int] = None, model=None) -> dict:
    """Evaluate CG ``samples`` against the mapped all-atom ``reference``; write plots and metrics.

    Parameters
    ----------
    reference : path, list of paths, TrajectorySet, array or list of arrays
        CG-mapped reference frames (runs in time order; see :func:`~openmmcgml.analysis.tica.as_runs`);
        the runs of several files are pooled (:func:`read_reference_files`).
    samples : path, TrajectorySet, array or list of arrays
        Frames of the CG model (e.g. the output file of ``cgml simulate``).
    output_dir : str or path, optional
        Where to write ``metrics.json``, ``metrics.txt`` and the PNG plots; nothing is written
        without it.
    kind : {"auto", "alanine", "ca", "generic"}
        Which extra analyses to run: alanine dipeptide phi/psi (5 beads C N CA C N), or Q and RMSD
        of a CA chain (needs ``native``).  ``"auto"`` decides from the bead names.
    bead_names : sequence of str, optional
        Default: from the reference file's attributes.
    lagtime : int
        TICA lag in reference frames (20 in Bachelor et al. 2025).
    discard : float
        Fraction of each model run dropped at its start (burn-in; Bachelor et al. 2025 drop 10%, since
        runs start from reference frames).
    reference_stride, stride : int
        Frame strides of reference and samples.
    native : path or array, optional
        Native structure for Q and RMSD (CA chains).
    temperature : float, optional
        Kelvin, for free energies in kJ/mol (default: the reference file's; else in kT).
    bins : int
        Bins of 1-D histograms for JS distances (phi/psi 2-D: 50 x 50).
    n_tics : int
        TICA components scored one by one.
    bounds, max_kde_samples
        W1 grid settings, see :func:`~openmmcgml.analysis.distributions.kde_grid`.
    q_cutoff : float
        Native-contact cutoff (nm), see :class:`~openmmcgml.analysis.geometry.NativeContacts`.
    folded_rmsd : float
        A frame counts as folded when its CA RMSD to ``native`` is below this (nm; 0.3 nm = 3 Å,
        between chignolin's folded basin, about 1 Å, and its unfolded states, above 4 Å).
    plots : bool
        Write the PNG plots (about half a second per figure on a 2-core machine); with False
        only the metrics files are written.
    training : path, TrajectorySet, array or list of arrays, optional
        The CG-mapped training set, whose basin populations are reported next to the reference's
        and the model's (alanine only).
    basin_blocks : int, optional
        Blocks in time per run for the error bars of the basin populations and folded fractions (default: see
        :func:`~openmmcgml.analysis.basins.basin_populations`; fewer where a run is shorter).
    model : CGModel or path, optional
        The model the samples come from (alanine only): adds the scores of its exact (phi, psi)
        distribution (:func:`~openmmcgml.analysis.marginal.exact_scores`: ``exact_*``, and
        ``samples_vs_exact_js`` with its expected value), the model's error apart from the
        simulation's sampling error.

    Returns
    -------
    dict
        Flat metrics: ``tica_w1_2d``, ``tica_w1_1d``, ``tica_js``, ``bond_js``, ``angle_js``,
        ``dihedral_js`` (lists, per internal coordinate, and ``*_mean``), ``rg_*``, and for alanine
        ``phi_js``, ``psi_js``, ``phi_psi_js`` and the basins (:data:`~openmmcgml.analysis.basins.ALANINE_BASINS`)
        of reference, model and training set: ``{set}_population_{basin}`` and ``{set}_dF_{basin}_kT``
        relative to beta, each with ``_error`` (None where a basin is empty), and
        ``model_dF_max_deviation_kT``, the largest ``|dF_model - dF_reference|``; for CA chains with a native structure ``q_*``,
        ``rmsd_*`` and ``folded_fraction_{reference,model}`` with block-averaged ``_error`` (blocks as
        ``basin_blocks``); autocorrelation times of TIC 0 (frames of each data set).
    """
    if isinstance(reference, (str, bytes)) or hasattr(reference, "__fspath__"):
        from ..simulation.storage import read_trajectories

        reference = read_trajectories(reference)
    elif _is_path_list(reference):
        reference = read_reference_files(reference)
    if hasattr(reference, "bead_names") and hasattr(reference, "temperature"):  # a TrajectorySet
        if bead_names is None and reference.metadata is not None and reference.metadata.bead_names:
            bead_names = list(reference.bead_names)
        if temperature is None:
            temperature = reference.temperature
    ref_runs = as_runs(reference, stride=reference_stride)
    model_runs = [r[int(len(r) * discard):] for r in as_runs(samples, stride=stride)]
    model_runs = [r for r in model_runs if len(r)]
    if not model_runs:
        raise ValueError("no model frames left after discarding the burn-in")
    n_beads = ref_runs[0].shape[1]
    if model_runs[0].shape[1] != n_beads:
        raise ValueError(f"the reference has {n_beads} beads, the samples {model_runs[0].shape[1]}")
    bead_names = list(bead_names) if bead_names is not None else ["CG"] * n_beads
    if kind == "auto":
        kind = detect_kind(bead_names)
    ref_all, model_all = np.concatenate(ref_runs), np.concatenate(model_runs)
    finite = np.all(np.isfinite(model_all), axis=(1, 2))
    metrics = {
        "kind": kind,
        "n_beads": int(n_beads),
        "n_reference_frames": int(len(ref_all)),
        "n_model_frames": int(len(model_all)),
        "n_model_runs": int(len(model_runs)),
        "model_nonfinite_frames": int((~finite).sum()),
    }
    if not finite.all():
        model_runs = [r[np.all(np.isfinite(r), axis=(1, 2))] for r in model_runs]
        model_all = model_all[finite]
    if model is not None:
        from ..cgmodel import CGModel

        model = CGModel.load(model) if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__") else model
        if kind != "alanine" or model.n_beads != 5:
            raise ValueError(f"exact scores exist for alanine dipeptide's 5 beads (C N CA C N) only; these data are "
                             f"of kind {kind!r} and the model has {model.n_beads} beads")
    kT = BOLTZMANN * temperature if temperature else 1.0
    energy_unit = "kJ/mol" if temperature else "kT"
    folder = None if output_dir is None else os.fspath(output_dir)
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
    out = folder if plots else None  # where plots go

    # TICA on all pairwise distances, fitted on the reference
    if n_beads >= 3:
        tica = TICAMetrics(lagtime=lagtime, bounds=bounds, max_kde_samples=max_kde_samples).fit(ref_runs)
        model_tics = tica.transform(model_runs)
        metrics.update(tica.score(model_runs, n_tics, bins))
        metrics["tica_timescales_reference"] = [float(t) for t in tica.timescales()[:3]]
        for name, runs in (("reference", ref_runs), ("model", model_runs)):
            metrics[f"tic0_autocorrelation_time_{name}"] = _autocorrelation_time(
                [tica.model_.transform(tica.features(r))[:, 0] for r in runs])
        if out:
            ax = _plots.plot_tica_density(tica.reference_, model_tics,
                                         title=f"TICA (lag {lagtime}); W1 = {metrics['tica_w1_2d']:.3f}")
            _plots.save(ax, os.path.join(out, "tica_density.png"))
            k = min(n_tics, model_tics.shape[1])
            axes = _grid_axes(k, max_cols=5)
            for i in range(k):
                _plots.plot_distributions(tica.reference_[:, i], model_tics[:, i], ax=axes[i], bins=bins,
                                         xlabel=f"TIC {i}")
            _plots.save(axes[0], os.path.join(out, "tica_1d.png"))
            _plots.save(_plots.plot_time_series([tica.model_.transform(tica.features(r))[:, 0] for r in model_runs],
                                              ylabel="TIC 0", title="CG model runs"),
                       os.path.join(out, "tic0_time_series.png"))

    # internal coordinates along the chain
    internal = [("bond", bond_lengths, None, 1.0, "nm"), ("angle", bond_angles, None, 180 / np.pi, "deg"),
                ("dihedral", dihedral_angles, ANGLE_RANGE, 180 / np.pi, "deg")]
    for name, function, value_range, scale, _unit in internal:
        if n_beads < {"bond": 2, "angle": 3, "dihedral": 4}[name]:
            continue
        ref_values, model_values = function(ref_all), function(model_all)
        js = np.atleast_1d(histogram_js(ref_values, model_values, bins=bins, range=value_range))
        metrics[f"{name}_js"] = js.tolist()
        metrics[f"{name}_js_mean"] = float(np.mean(js))
        if out:
            labels = [f"{k}" for k in range(ref_values.shape[1])]
            _panel_plots(ref_values, model_values, os.path.join(out, f"{name}s.png"), name, labels, bins,
                         value_range, scale)

    rg_ref, rg_model = radius_of_gyration(ref_all), radius_of_gyration(model_all)
    metrics["rg_mean_reference"] = float(rg_ref.mean())
    metrics["rg_mean_model"] = float(rg_model.mean())
    metrics["rg_js"] = float(histogram_js(rg_ref, rg_model, bins=bins))
    if out:
        _plots.save(_plots.plot_distributions(rg_ref, rg_model, bins=bins, xlabel="radius of gyration (nm)"),
                   os.path.join(out, "radius_of_gyration.png"))

    if kind == "alanine":
        phi_r, psi_r = alanine_phi_psi(ref_all)
        phi_m, psi_m = alanine_phi_psi(model_all)
        metrics["phi_js"] = float(histogram_js(phi_r, phi_m, bins=bins, range=ANGLE_RANGE))
        metrics["psi_js"] = float(histogram_js(psi_r, psi_m, bins=bins, range=ANGLE_RANGE))
        metrics["phi_psi_js"] = histogram_js_2d(np.stack([phi_r, psi_r], 1), np.stack([phi_m, psi_m], 1), bins=50)
        if model is not None:
            from .marginal import angle_scores, phi_psi_density

            metrics.update(angle_scores(phi_psi_density(model), (phi_r, psi_r), (phi_m, psi_m)))
        basin_sets = [("reference", ref_runs), ("model", model_runs)]
        if training is not None:
            basin_sets.append(("training", as_runs(training)))
        for name, runs in basin_sets:
            metrics.update(_alanine_basin_metrics(runs, name, basin_blocks))
        metrics["model_dF_max_deviation_kT"] = _max_deviation(metrics, "model", "reference")
        if out:
            axes = _plots.new_axes((10.5, 4.3), ncols=2)
            vmax = 8.0 * kT
            _plots.plot_free_energy_2d(phi_r, psi_r, ax=axes[0], kT=kT, unit=energy_unit, vmax=vmax,
                                      title="reference", colorbar=False)
            _plots.plot_free_energy_2d(phi_m, psi_m, ax=axes[1], kT=kT, unit=energy_unit, vmax=vmax,
                                      title=f"CG model (JS {metrics['phi_psi_js']:.3f})")
            _plots.save(axes[0], os.path.join(out, "ramachandran.png"))
            axes = _plots.new_axes((10.0, 3.6), ncols=2)
            _plots.plot_free_energy_1d(phi_r, phi_m, ax=axes[0], kT=kT, unit=energy_unit, xlabel="phi (deg)")
            _plots.plot_free_energy_1d(psi_r, psi_m, ax=axes[1], kT=kT, unit=energy_unit, xlabel="psi (deg)")
            _plots.save(axes[0], os.path.join(out, "phi_psi_1d.png"))

    if kind == "ca" and native is not None:
        native_xyz = load_native(native)
        if native_xyz.shape != (n_beads, 3):
            raise ValueError(f"the native structure has {len(native_xyz)} CA atoms, the CG map {n_beads} beads")
        contacts = NativeContacts(cutoff=q_cutoff).fit(native_xyz)
        q_ref, q_model = contacts.transform(ref_all), contacts.transform(model_all)
        d_ref, d_model = rmsd(ref_all, native_xyz), rmsd(model_all, native_xyz)
        metrics.update({
            "n_native_contacts": int(len(contacts.pairs_)),
            "q_mean_reference": float(q_ref.mean()),
            "q_mean_model": float(q_model.mean()),
            "q_js": float(histogram_js(q_ref, q_model, bins=50, range=(0.0, 1.0))),
            "rmsd_mean_reference": float(d_ref.mean()),
            "rmsd_mean_model": float(d_model.mean()),
            "rmsd_js": float(histogram_js(d_ref, d_model, bins=bins)),
            "folded_rmsd": float(folded_rmsd),
        })
        for name, runs, distances in (("reference", ref_runs, d_ref), ("model", model_runs, d_model)):
            metrics.update(_folded_metrics(runs, distances < folded_rmsd, name, basin_blocks))
        if out:
            _plots.save(_plots.plot_distributions(q_ref, q_model, bins=50, range=(0, 1), xlabel="Q (native contacts)"),
                       os.path.join(out, "native_contacts.png"))
            _plots.save(_plots.plot_distributions(d_ref * 10, d_model * 10, bins=bins, xlabel="CA RMSD to native (Å)"),
                       os.path.join(out, "rmsd.png"))

    if folder:
        with open(os.path.join(folder, "metrics.json"), "w") as handle:
            json.dump(metrics, handle, indent=2)
        with open(os.path.join(folder, "metrics.txt"), "w") as handle:
            handle.write(format_metrics(metrics) + "\n")
    return metrics


def noise_floor(reference, sets, *, discard: float = 0.0, **options) -> dict:
    """The noise floor: independent all-atom sets (CG-mapped) scored against a long reference.

    A model cannot be expected to score better against ``reference`` than an all-atom set of
    the size of its training set does; the mean and spread over sets from different oracle seeds
    say how far a score is from that floor.

    Parameters
    ----------
    reference : path, TrajectorySet, array or list of arrays
        The long CG-mapped reference (e.g. from examples/configs/oracle-alanine-long-reference.yaml).
    sets : sequence
        At least two independent CG-mapped all-atom sets (same kinds as ``reference``), each scored
        as the samples of :func:`report`.
    discard : float
        Burn-in fraction of each run of a set (default 0: oracle runs are equilibrated before
        their first frame).
    **options
        Further options of :func:`report` (``bead_names``, ``lagtime``, ...); no plots are made.

    Returns
    -------
    dict
        ``per_set`` (the metrics of each set), ``n_sets``, and ``mean``, ``std`` (sample standard
        deviation, ddof 1), ``min`` and ``max`` of every numeric metric defined for every set.

    Examples
    --------
    >>> floor = noise_floor("long-reference-cg.h5", ["seed1-cg.h5", "seed2-cg.h5", "seed3-cg.h5"])  # doctest: +SKIP
    >>> floor["mean"]["phi_psi_js"], floor["std"]["phi_psi_js"]  # doctest: +SKIP
    """
    sets = list(sets)
    if len(sets) < 2:
        raise ValueError(f"a noise floor needs at least two independent sets, got {len(sets)}")
    if options.pop("plots", False) or options.pop("output_dir", None) is not None:
        raise ValueError("noise_floor makes no plots and writes no files; call report for one set")
    per_set = [report(reference, one, None, discard=discard, plots=False, **options) for one in sets]

    def numeric(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    keys = [key for key, value in per_set[0].items()
            if numeric(value) and all(numeric(m.get(key)) for m in per_set)]
    summary = {"per_set": per_set, "n_sets": len(sets), "mean": {}, "std": {}, "min": {}, "max": {}}
    for key in keys:
        values = np.array([m[key] for m in per_set], dtype=float)
        summary["mean"][key] = float(values.mean())
        summary["std"][key] = float(values.std(ddof=1))
        summary["min"][key] = float(values.min())
        summary["max"][key] = float(values.max())
    return summary
