"""Plots of fitted priors against the Boltzmann inversion of the data they were fitted to."""

from __future__ import annotations

import math

import numpy as np

from ..geometry import compute_angles, compute_dihedrals, compute_distances
from .fitting import BOLTZMANN, _as_coordinates
from .priorset import PriorSet
from .terms import PriorTerm

__all__ = ["plot_prior_fit"]


def _internal_values(term: PriorTerm, coordinates, row: int):
    indices = term.indices[row:row + 1]
    if term.name in ("bonds", "repulsion"):
        return compute_distances(coordinates, indices)[:, 0], (lambda r: r * r), "distance (nm)"
    if term.name == "angles":
        return compute_angles(coordinates, indices)[:, 0], np.sin, "angle (rad)"
    return compute_dihedrals(coordinates, indices)[:, 0], (lambda phi: np.ones_like(phi)), "dihedral (rad)"


def _term_energy_1d(term: PriorTerm, row: int, grid: np.ndarray) -> np.ndarray:
    p = {key: value[row] for key, value in term.parameters.items()}
    if term.name == "bonds":
        return 0.5 * p["k"] * (grid - p["r0"]) ** 2
    if term.name == "angles":
        return 0.5 * p["k"] * (grid - p["theta0"]) ** 2
    if term.name == "dihedrals":
        n = np.arange(1, len(p["k"]) + 1)
        return (p["k"] * (1 + np.cos(np.outer(grid, n) - p["phase"]))).sum(-1)
    return p["epsilon"] * (p["sigma"] / grid) ** 6


def plot_prior_fit(priors: PriorSet, cg_coordinates, term: str, index: int = 0, temperature=None, n_bins: int = 100,
                   ax=None):
    """Plot the Boltzmann-inverted free energy of one internal coordinate and its fitted prior.

    Points: ``-kT ln(p(x) / J(x))`` from the histogram of the data; line: the prior term.  Both
    are shifted to a minimum of 0 (for the repulsion, the energy is drawn as is).

    Parameters
    ----------
    priors : PriorSet
    cg_coordinates : array_like, shape (n_frames, n_beads, 3)
    term : str
        A name in ``priors.terms``.
    index : int
        Which bond/angle/dihedral/pair of the term.
    temperature : float, optional
        Kelvin; default ``priors.temperature`` (300 K if unknown).
    n_bins : int
    ax : matplotlib Axes, optional
        Drawn into; default a new figure's axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    if term not in priors.terms:
        raise ValueError(f"the priors have no {term!r} term (they have {list(priors.terms)})")
    item = priors.terms[term]
    if not 0 <= index < len(item):
        raise ValueError(f"{term} has {len(item)} entries; index {index} is out of range")
    temperature = temperature or priors.temperature or 300.0
    kT = BOLTZMANN * temperature
    x = _as_coordinates(cg_coordinates)
    values, jacobian, label = _internal_values(item, x, index)
    span = (-math.pi, math.pi) if term == "dihedrals" else (values.min(), values.max())
    counts, edges = np.histogram(values, bins=n_bins, range=span)
    centers = 0.5 * (edges[1:] + edges[:-1])
    keep = counts > 0
    beads = "-".join(str(b) for b in item.indices[index])
    if term == "repulsion":
        grid = np.linspace(0.8 * values.min(), values.max(), 200)
        line = ax.plot(grid, _term_energy_1d(item, index, grid), label=f"{term} {beads} prior")[0]
        twin = ax.twinx()
        twin.hist(values, bins=n_bins, color=line.get_color(), alpha=0.3)
        twin.set_ylabel("counts")
    else:
        free = -kT * np.log(counts[keep] / jacobian(centers[keep]))
        free -= free.min()
        grid = np.linspace(*span, 200)
        energy = _term_energy_1d(item, index, grid)
        line = ax.plot(grid, energy - energy.min(), label=f"{term} {beads} prior")[0]
        ax.plot(centers[keep], free, "o", ms=3, color=line.get_color(), alpha=0.6, label="Boltzmann inversion")
        top = free.max() if len(free) else 1.0
        ax.set_ylim(-0.05 * top, 1.2 * top)
    ax.set_xlabel(label)
    ax.set_ylabel("energy (kJ/mol)")
    ax.legend(fontsize="small")
    return ax
