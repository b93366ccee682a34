"""Settings and run of ``cgml fit-priors``: prior terms fitted to a CG-mapped dataset by
Boltzmann inversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .._config import Rule, Settings, boolean, config_path, integer, number, save_config, text

__all__ = ["DEFAULTS", "FitPriorsConfig", "RULES", "run_config"]


def _bead_pairs(value):
    if isinstance(value, str) or not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in value):
        raise ValueError("not pairs")
    return value


def _term_names(value):
    if isinstance(value, str) or not all(isinstance(name, str) for name in value):
        raise ValueError("not a list of names")
    return value


@dataclass
class FitPriorsConfig(Settings):
    """Settings of ``cgml fit-priors`` (examples/configs/fit-priors-alanine.yaml).

    Attributes
    ----------
    data : str
        CG HDF5 dataset (docs/data-format.md).
    output : str
        The PriorSet as JSON.
    plot : str, optional
        PNG of the Boltzmann-inverted data against the fitted terms.
    temperature : float, optional
        Kelvin; None: the dataset's.
    terms : list of str
        Of ``bonds``, ``angles``, ``dihedrals``, ``repulsion``.
    bonds : list of [i, j], optional
        None: consecutive beads of a chain.
    stride : int
        Use every stride-th frame.
    n_bins, dihedral_order : int
    repulsion_min_separation : int
        Bonds between repulsion pairs (3: no 1-2 or 1-3 pairs).
    repulsion_epsilon : float, optional
        kJ/mol; None: kT.
    repulsion_sigma_scale : float
        sigma = scale x smallest observed distance of the pair.
    pool_by_type : bool
        Terms with the same bead types share one fit.
    """

    WHAT = "fit-priors"
    RULES = {
        "data": text(), "output": text(optional=False), "plot": text(), "temperature": number(above=0, optional=True),
        "terms": Rule("a list of term names (bonds, angles, dihedrals, repulsion)", _term_names),
        "bonds": Rule("a list of bead pairs [i, j]", _bead_pairs, optional=True), "stride": integer(1),
        "n_bins": integer(5), "dihedral_order": integer(1), "repulsion_min_separation": integer(1),
        "repulsion_epsilon": number(above=0, optional=True), "repulsion_sigma_scale": number(above=0),
        "pool_by_type": boolean(),
    }

    data: Optional[str] = None
    output: str = "priors.json"
    plot: Optional[str] = None
    temperature: Optional[float] = None
    terms: list = field(default_factory=lambda: ["bonds", "angles", "repulsion"])
    bonds: Optional[list] = None
    stride: int = 1
    n_bins: int = 100
    dihedral_order: int = 3
    repulsion_min_separation: int = 3
    repulsion_epsilon: Optional[float] = None
    repulsion_sigma_scale: float = 1.0
    pool_by_type: bool = False


#: Every setting with its default.
DEFAULTS = FitPriorsConfig.defaults()

#: The type and range of each setting (see openmmcgml._config).
RULES = FitPriorsConfig.rules()


def run_config(config, *, quiet: bool = False, print_fn=print):
    """Fit priors as ``config`` (a dict or :class:`FitPriorsConfig`) describes; returns the PriorSet.

    ``quiet`` prints the one-line summary without the table of fitted parameters.  The settings
    go to ``<output>.config.yaml``.
    """
    import os

    from ..data.trajectory import read_trajectory
    from ..priors import fit_priors

    config = FitPriorsConfig.from_dict(config)
    if not config.data:
        raise ValueError("the config needs 'data': the path of a coarse-grained HDF5 dataset")
    data = read_trajectory(config.data, frames=slice(None, None, config.stride), resolution="coarse-grained")
    stated = data.metadata.temperature  # NaN when the dataset states none
    temperature = config.temperature or (stated if stated == stated else None)
    if not temperature:
        raise ValueError(f"the dataset {config.data} states no temperature; set 'temperature' in the config")
    bead_types = data.metadata.bead_types if config.pool_by_type else None
    if config.pool_by_type and bead_types is None:
        raise ValueError(f"pool_by_type needs bead types, and the dataset {config.data} has none")
    priors = fit_priors(data.coordinates, config.bonds, float(temperature), terms=tuple(config.terms),
                        n_bins=config.n_bins, dihedral_order=config.dihedral_order,
                        repulsion_min_separation=config.repulsion_min_separation,
                        repulsion_epsilon=config.repulsion_epsilon,
                        repulsion_sigma_scale=config.repulsion_sigma_scale, bead_types=bead_types)
    output = config.output
    if os.path.dirname(os.path.abspath(output)):
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    priors.save(output)
    print_fn(f"fitted {priors} on {data.n_frames} frames at {temperature} K -> {output}")
    names = data.metadata.bead_names or [str(i) for i in range(priors.n_beads)]
    for name, term in (priors.terms.items() if not quiet else ()):
        for row, beads in enumerate(term.indices.tolist()):
            label = "-".join(names[b] for b in beads)
            values = ", ".join(f"{key}={_short(value[row])}" for key, value in term.parameters.items())
            print_fn(f"  {name:<9} {str(beads):<14} {label:<16} {values}")
    if config.plot:
        _plot(priors, data.coordinates, config.plot)
        print_fn(f"plot -> {config.plot}")
    save_config(config, config_path(output), "fit-priors")
    return priors


def _short(value):
    import numpy as np

    value = np.asarray(value)
    if value.ndim == 0:
        return f"{float(value):.4g}"
    return "[" + ", ".join(f"{v:.4g}" for v in value.ravel()) + "]"


def _plot(priors, coordinates, path, max_columns=4):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..priors import plot_prior_fit

    rows = list(priors.terms)
    columns = max(1, min(max_columns, max(len(term) for term in priors.terms.values())))
    figure, axes = plt.subplots(len(rows), columns, figsize=(3.6 * columns, 2.8 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        for c in range(columns):
            if c < len(priors.terms[name]):
                plot_prior_fit(priors, coordinates, name, index=c, ax=axes[r, c])
            else:
                axes[r, c].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
