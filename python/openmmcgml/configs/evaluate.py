"""Settings and run of ``cgml evaluate``: CG samples scored against the mapped all-atom reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .._config import Settings, boolean, config_path, file_or_files, integer, number, one_of, save_config, text

__all__ = ["DEFAULTS", "EvaluateConfig", "RULES", "run_config"]


@dataclass
class EvaluateConfig(Settings):
    """Settings of ``cgml evaluate`` (examples/configs/evaluate-alanine.yaml); see
    :func:`openmmcgml.analysis.report` for what each one does.

    Attributes
    ----------
    reference : str or list of str
        CG-mapped reference trajectory file (docs/data-format.md), or several whose runs are
        pooled (e.g. a long reference generated as two oracle sets side by side).
    samples : str
        CG model trajectory file (``cgml simulate``'s output).
    training : str, optional
        CG-mapped training set: its alanine basin populations are reported beside the
        reference's and the model's.
    output : str, optional
        Folder for metrics.json, metrics.txt and the plots.
    kind : str
        ``auto``, ``alanine``, ``ca`` or ``generic``.
    native : str, optional
        Native structure (PDB etc.) for Q and RMSD of CA chains.
    lagtime : int
        TICA lag in reference frames.
    discard : float
        Burn-in fraction of each model run.
    reference_stride, stride : int
    temperature : float, optional
        Kelvin; None: the reference file's.
    bins, n_tics : int
    bounds : str
        W1 grid extent: ``reference`` or ``union``.
    max_kde_samples : int, optional
    q_cutoff : float
        nm.
    folded_rmsd : float
        nm: CA RMSD to native below which a frame counts as folded.
    plots : bool
        Write the PNG plots (else only metrics.json and metrics.txt).
    basin_blocks : int, optional
        Blocks in time per run for the error bars of the alanine basin populations (None: 1 with
        8 or more runs, else 4; see :func:`openmmcgml.analysis.basin_populations`).
    model : str, optional
        The CG model file (``cgml train``'s output) that the samples come from.  For alanine
        dipeptide's 5 beads this adds the scores of the model's exact equilibrium (phi, psi)
        distribution (``exact_*``, :func:`openmmcgml.analysis.marginal.exact_scores`) and how far
        the samples are from it (``samples_vs_exact_js``): the model's error apart from the
        simulation's sampling error.
    """

    WHAT = "evaluate"
    RULES = {
        "reference": file_or_files(), "samples": text(), "output": text(), "kind": one_of("auto", "alanine", "ca", "generic"),
        "native": text(), "lagtime": integer(1), "discard": number(0, below=1), "reference_stride": integer(1),
        "stride": integer(1), "temperature": number(above=0, optional=True), "bins": integer(2),
        "n_tics": integer(1), "bounds": one_of("reference", "union"), "max_kde_samples": integer(1, optional=True),
        "q_cutoff": number(above=0), "folded_rmsd": number(above=0), "plots": boolean(),
        "training": text(), "basin_blocks": integer(1, optional=True), "model": text(),
    }

    reference: Optional[Union[str, list]] = None
    samples: Optional[str] = None
    output: Optional[str] = "evaluation"
    kind: str = "auto"
    native: Optional[str] = None
    lagtime: int = 20
    discard: float = 0.1
    reference_stride: int = 1
    stride: int = 1
    temperature: Optional[float] = None
    bins: int = 100
    n_tics: int = 5
    bounds: str = "reference"
    max_kde_samples: Optional[int] = 20000
    q_cutoff: float = 0.8
    folded_rmsd: float = 0.3
    plots: bool = True
    training: Optional[str] = None
    basin_blocks: Optional[int] = None
    model: Optional[str] = None


#: Every setting with its default.
DEFAULTS = EvaluateConfig.defaults()

#: The type and range of each setting (see openmmcgml._config).
RULES = EvaluateConfig.rules()

# The settings that are options of analysis.report.
_REPORT_OPTIONS = ("kind", "native", "lagtime", "discard", "reference_stride", "stride", "temperature", "bins",
                   "n_tics", "bounds", "max_kde_samples", "q_cutoff", "folded_rmsd", "plots", "training",
                   "basin_blocks", "model")


def run_config(config, *, quiet: bool = False, print_fn=print) -> dict:
    """Evaluate as ``config`` (a dict or :class:`EvaluateConfig`) describes; returns the metrics.

    ``quiet`` leaves out the table of metrics (they are in ``metrics.json``).  The settings go to
    ``config.yaml`` in the output folder.
    """
    from ..analysis import format_metrics, report
    from ..data.trajectory import TrajectoryFile

    config = EvaluateConfig.from_dict(config)
    for key in ("reference", "samples", "training"):
        paths = getattr(config, key)
        if not paths:
            if key == "training":  # optional
                continue
            raise ValueError(f"the config needs '{key}'")
        for path in [paths] if isinstance(paths, str) else paths:
            with TrajectoryFile(path) as handle:
                if handle.n_frames == 0:
                    raise ValueError(f"{key} {path} holds no frames")
    metrics = report(config.reference, config.samples, config.output,
                     **{name: getattr(config, name) for name in _REPORT_OPTIONS})
    if not quiet:
        print_fn(format_metrics(metrics))
    if config.output:
        save_config(config, config_path(config.output, folder=True), "evaluate")
        print_fn(f"plots and metrics.json in {config.output}")
    return metrics

