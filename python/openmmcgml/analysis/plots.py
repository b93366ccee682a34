"""Plots of an evaluation (matplotlib, Agg; no pyplot state is touched).

Every function takes ``ax=None`` and returns the axes it drew on; without ``ax`` it makes a new
figure with an Agg canvas, so ``ax.figure.savefig("plot.png")`` works on a machine without a
display and without changing the user's matplotlib backend.

Colours: reference (mapped all-atom) blue, CG model red.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .distributions import free_energy_1d, free_energy_2d, kde_grid, reference_range

__all__ = [
    "new_axes",
    "plot_distributions",
    "plot_free_energy_1d",
    "plot_free_energy_2d",
    "plot_implied_timescales",
    "plot_tica_density",
    "plot_time_series",
    "save",
]

REFERENCE_COLOR = "tab:blue"
MODEL_COLOR = "tab:red"


def new_axes(figsize=(5.0, 4.0), ncols: int = 1, nrows: int = 1):
    """Axes on a new Agg figure (an array of axes when there are several)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=True)
    return axes


def save(ax, path, dpi: int = 120):
    """Write the figure of ``ax`` (or of the first of an array of axes) to ``path``."""
    first = np.ravel(ax)[0] if isinstance(ax, np.ndarray) else ax
    first.figure.savefig(path, dpi=dpi)
    return path


def _ax(ax, figsize=(5.0, 4.0)):
    return new_axes(figsize) if ax is None else ax


def plot_tica_density(reference, model=None, ax=None, n_grid: int = 50, padding: float = 0.1, levels: int = 7,
                      components=(0, 1), max_samples: Optional[int] = 20000, title: Optional[str] = None):
    """KDE contours of two TICA components: reference in blue, model in red.

    ``reference`` and ``model`` are projections (n, >= 2), e.g. from
    :meth:`~openmmcgml.analysis.tica.TICAMetrics.transform`.  The grid spans the reference range
    padded by ``padding`` (50 x 50 points for the picture; the W1 metric uses its own 25 x 25 grid).
    """
    ax = _ax(ax)
    i, j = components
    ref = np.asarray(reference)[:, [i, j]]
    mod = None if model is None else np.asarray(model)[:, [i, j]]
    x, y, p_ref, p_mod = kde_grid(ref, mod, n_grid=n_grid, padding=padding, max_samples=max_samples)
    ax.contour(x, y, p_ref.T, levels=levels, colors=REFERENCE_COLOR, linewidths=1.5)
    handles = [ax.plot([], [], color=REFERENCE_COLOR, label="reference")[0]]
    if p_mod is not None:
        ax.contour(x, y, p_mod.T, levels=levels, colors=MODEL_COLOR, linewidths=1.5)
        handles.append(ax.plot([], [], color=MODEL_COLOR, label="CG model")[0])
    ax.set_xlabel(f"TIC {i}")
    ax.set_ylabel(f"TIC {j}")
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_distributions(reference, model=None, ax=None, bins: int = 100, range=None, xlabel: str = "",
                       title: Optional[str] = None, labels=("reference", "CG model")):
    """Histogram densities (step lines) of a reference and a model sample on a common range."""
    ax = _ax(ax)
    reference = np.ravel(np.asarray(reference, dtype=float))
    reference = reference[np.isfinite(reference)]
    if range is None:
        lo, hi = reference_range(reference, 0.1)
        if model is not None:
            m = np.ravel(np.asarray(model, dtype=float))
            m = m[np.isfinite(m)]
            if len(m):
                lo, hi = min(lo, np.percentile(m, 0.5)), max(hi, np.percentile(m, 99.5))
        range = (lo, hi)
    ax.hist(reference, bins=bins, range=range, density=True, histtype="step", color=REFERENCE_COLOR,
            linewidth=1.5, label=labels[0])
    if model is not None:
        ax.hist(np.ravel(model), bins=bins, range=range, density=True, histtype="step", color=MODEL_COLOR,
                linewidth=1.5, label=labels[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_free_energy_1d(reference, model=None, ax=None, bins: int = 50, range=(-np.pi, np.pi), kT: float = 1.0,
                        xlabel: str = "", unit: str = "kT", degrees: bool = True, title: Optional[str] = None):
    """1-D free energy ``-kT ln p`` of reference and model, minimum 0 (angles shown in degrees)."""
    ax = _ax(ax)
    scale = 180.0 / np.pi if degrees else 1.0
    for values, color, label in ((reference, REFERENCE_COLOR, "reference"), (model, MODEL_COLOR, "CG model")):
        if values is None:
            continue
        f, edges = free_energy_1d(values, bins, range, kT)
        centres = 0.5 * (edges[1:] + edges[:-1]) * scale
        ax.plot(centres, np.where(np.isfinite(f), f, np.nan), color=color, label=label)
    ax.set_xlim(range[0] * scale, range[1] * scale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"free energy ({unit})")
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_free_energy_2d(x, y, ax=None, bins: int = 50, range=((-np.pi, np.pi), (-np.pi, np.pi)), kT: float = 1.0,
                        vmax: Optional[float] = None, unit: str = "kT", labels=("phi (deg)", "psi (deg)"),
                        degrees: bool = True, title: Optional[str] = None, colorbar: bool = True):
    """2-D free-energy surface (e.g. a Ramachandran plot of phi/psi from the CG beads)."""
    ax = _ax(ax, (5.4, 4.4))
    f, xe, ye = free_energy_2d(x, y, bins, range, kT)
    scale = 180.0 / np.pi if degrees else 1.0
    finite = f[np.isfinite(f)]
    vmax = vmax if vmax is not None else (float(finite.max()) if len(finite) else 1.0)
    mesh = ax.pcolormesh(xe * scale, ye * scale, np.where(np.isfinite(f), f, np.nan).T, cmap="viridis", vmin=0,
                         vmax=vmax, shading="flat")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=f"free energy ({unit})")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if degrees:
        ax.set_xticks([-180, -90, 0, 90, 180])
        ax.set_yticks([-180, -90, 0, 90, 180])
    if title:
        ax.set_title(title)
    return ax


def plot_time_series(values, ax=None, time: Optional[Sequence[float]] = None, ylabel: str = "",
                     xlabel: str = "frame", max_runs: int = 10, title: Optional[str] = None):
    """A scalar observable against time for up to ``max_runs`` runs (a list of 1-D arrays)."""
    ax = _ax(ax, (6.0, 3.2))
    runs = values if isinstance(values, (list, tuple)) else [values]
    for k, run in enumerate(runs[:max_runs]):
        t = np.arange(len(run)) if time is None else np.asarray(time)[: len(run)]
        ax.plot(t, run, linewidth=0.8, alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def plot_implied_timescales(lagtimes, timescales, ax=None, unit: str = "frames", title: Optional[str] = None):
    """Implied timescales against the lag time (log scale), with the ``t = lag`` line."""
    ax = _ax(ax)
    lagtimes = np.asarray(lagtimes, dtype=float)
    timescales = np.atleast_2d(np.asarray(timescales, dtype=float))
    for k in np.arange(timescales.shape[1]):
        ax.plot(lagtimes, timescales[:, k], marker="o", markersize=3)
    ax.fill_between(lagtimes, 0, lagtimes, color="grey", alpha=0.3)
    ax.set_yscale("log")
    ax.set_xlabel(f"lag time ({unit})")
    ax.set_ylabel(f"implied timescale ({unit})")
    if title:
        ax.set_title(title)
    return ax
