"""The exact (phi, psi) distribution of a 5-bead alanine dipeptide CG model, without sampling.

A CG model of alanine dipeptide's backbone (beads C N CA C N) has nine internal coordinates: four
bond lengths, three angles and the dihedrals phi and psi.  Its equilibrium distribution of
(phi, psi) is an integral over the other seven,

.. code-block:: text

    p(phi, psi) ∝ ∫ exp(-U(x) / kT) J(r, theta) dr dtheta,     J = prod_i r_i^2 * prod_j sin(theta_j)

(``J`` is the Jacobian of Cartesian coordinates in internal ones, the overall position and
orientation integrated out).  Bond lengths and angles are stiff, so the integral is well done by
importance sampling from Gaussians around the model's bond and angle priors: for every (phi, psi)
bin, the same ``n_samples`` bond/angle draws (common random numbers, so that terms that do not
depend on phi and psi cancel exactly) at stratified points inside the bin.

This gives what a converged CG simulation would give, in seconds and with no question of
equilibration: the learned model can be scored against a reference with no sampling error on the
model's side, and simulations of it can be checked against it (:func:`phi_psi_density`).

Examples
--------
>>> from openmmcgml.cgmodel import CGModel          # doctest: +SKIP
>>> density = phi_psi_density(CGModel.load("models/alanine.pt"))  # doctest: +SKIP
>>> density.basin_populations()                      # doctest: +SKIP
{'alpha_R': 0.41, 'beta': 0.55, 'alpha_L': 0.04}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .basins import ALANINE_BASINS, assign_basins
from .distributions import js_distance

__all__ = ["PhiPsiDensity", "angle_scores", "exact_scores", "phi_psi_density"]

_BOLTZMANN = 0.0083144626  # kJ/mol/K


@dataclass
class PhiPsiDensity:
    """A (phi, psi) probability on a regular grid over [-pi, pi)^2 (radians).

    Attributes
    ----------
    probability : ndarray, shape (bins, bins)
        Probability of each bin (phi along the first axis), summing to 1.
    edges : ndarray, shape (bins + 1,)
        Bin edges in radians, the same for phi and psi.
    effective_samples : ndarray, shape (bins, bins)
        Kish's effective number of the importance-sampling draws in each bin: values near the
        number of draws mean the bonds and angles barely change the weights; values near 1 mean
        the bin's estimate rests on one draw (raise ``n_side`` or ``width``).
    temperature : float
        Kelvin.
    """

    probability: np.ndarray
    edges: np.ndarray
    effective_samples: np.ndarray
    temperature: float
    positions: Optional[np.ndarray] = None
    weights: Optional[np.ndarray] = None

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` configurations (n, 5, 3) in nm drawn from the model's equilibrium distribution
        (importance resampling of the integration's draws, with replacement), for analyses that
        need coordinates rather than (phi, psi), such as TICA.  Needs ``keep_positions=True``."""
        if self.positions is None or self.weights is None:
            raise ValueError("this density kept no configurations; compute it with keep_positions=True")
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(self.weights), size=int(n), replace=True, p=self.weights / self.weights.sum())
        return self.positions[np.sort(chosen)]

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def free_energy(self, kT: float = 1.0) -> np.ndarray:
        """``-kT ln p`` per bin, shifted to a minimum of 0 (inf where p is 0)."""
        with np.errstate(divide="ignore"):
            energy = -kT * np.log(self.probability)
        return energy - energy[np.isfinite(energy)].min()

    def basin_populations(self) -> dict:
        """Population of each alanine basin (:data:`~openmmcgml.analysis.basins.ALANINE_BASINS`),
        from the bin centres."""
        phi, psi = np.meshgrid(self.centres, self.centres, indexing="ij")
        labels = assign_basins(phi.ravel(), psi.ravel(), units="radians").reshape(phi.shape)
        return {name: float(self.probability[labels == k].sum()) for k, name in enumerate(ALANINE_BASINS)}

    def histogram(self, phi, psi) -> np.ndarray:
        """The normalised histogram of samples (radians) on this density's grid."""
        counts, _, _ = np.histogram2d(np.asarray(phi, dtype=float).ravel(), np.asarray(psi, dtype=float).ravel(),
                                      bins=(self.edges, self.edges))
        if counts.sum() == 0:
            raise ValueError("no samples inside the grid")
        return counts / counts.sum()

    def js_distance(self, phi, psi) -> float:
        """2-D JS distance between samples (e.g. reference frames) and this density, on its grid.

        The same number as :func:`~openmmcgml.analysis.distributions.histogram_js_2d` of the
        samples against a converged simulation of the model, with no sampling noise on the model's
        side."""
        return js_distance(self.histogram(phi, psi).ravel(), self.probability.ravel())

    def marginal_js_distances(self, phi, psi) -> tuple:
        """1-D JS distances of phi and psi (on this density's bins) between samples and the density."""
        h = self.histogram(phi, psi)
        return js_distance(h.sum(1), self.probability.sum(1)), js_distance(h.sum(0), self.probability.sum(0))


def _chain_positions(bonds: np.ndarray, angles: np.ndarray, dihedrals: np.ndarray) -> np.ndarray:
    """Positions (n, 5, 3) of 5-bead chains from bonds (n, 4), angles (n, 3), dihedrals (n, 2),
    in the convention of :func:`~openmmcgml.analysis.geometry.build_chain` (vectorised)."""
    n = len(bonds)
    x = np.zeros((n, 5, 3))
    x[:, 1, 0] = bonds[:, 0]
    turn = np.pi - angles[:, 0]
    x[:, 2] = x[:, 1] + bonds[:, 1:2] * np.stack([np.cos(turn), np.sin(turn), np.zeros(n)], axis=1)
    for i in (3, 4):
        a, b, c = x[:, i - 3], x[:, i - 2], x[:, i - 1]
        bc = c - b
        bc /= np.linalg.norm(bc, axis=1, keepdims=True)
        normal = np.cross(b - a, bc)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        m = np.cross(normal, bc)
        theta, phi = angles[:, i - 2], dihedrals[:, i - 3]
        x[:, i] = (c + (bonds[:, i - 1] * -np.cos(theta))[:, None] * bc
                   + (bonds[:, i - 1] * np.sin(theta) * np.cos(phi))[:, None] * m
                   + (bonds[:, i - 1] * np.sin(theta) * np.sin(phi))[:, None] * normal)
    return x


def _chain_priors(model, kT: float):
    """Means and standard deviations of the four bonds and three angles of the chain from the
    model's harmonic priors."""
    terms = getattr(model.priors, "terms", {})
    if "bonds" not in terms or "angles" not in terms:
        raise ValueError("phi_psi_density needs a model whose priors have harmonic bonds and angles (they set where "
                         "the bond lengths and angles are integrated)")
    chain_bonds = [(0, 1), (1, 2), (2, 3), (3, 4)]
    chain_angles = [(0, 1, 2), (1, 2, 3), (2, 3, 4)]

    def lookup(term, wanted, value_name):
        rows = [tuple(int(i) for i in row) for row in term.indices.tolist()]
        means, widths = [], []
        for item in wanted:
            matches = [k for k, row in enumerate(rows) if row == item or row == item[::-1]]
            if not matches:
                raise ValueError(f"the model's priors have no {term.name} term over beads {item}: phi_psi_density "
                                 "needs the five beads of alanine dipeptide's backbone chain C N CA C N")
            k = matches[0]
            means.append(float(term.parameters[value_name][k]))
            widths.append(math.sqrt(kT / float(term.parameters["k"][k])))
        return np.array(means), np.array(widths)

    return lookup(terms["bonds"], chain_bonds, "r0"), lookup(terms["angles"], chain_angles, "theta0")


def phi_psi_density(model, *, temperature: Optional[float] = None, bins: int = 50, n_side: int = 8,
                    width: float = 1.0, seed: int = 0, batch_size: int = 20000,
                    beads: Sequence[int] = (0, 1, 2, 3, 4), keep_positions: bool = False) -> PhiPsiDensity:
    """The equilibrium (phi, psi) distribution of a 5-bead alanine CG model, by integration.

    Parameters
    ----------
    model : CGModel
        A model of the five beads C N CA C N (network and priors, or priors alone) whose priors
        include harmonic bonds and angles along the chain.
    temperature : float, optional
        Kelvin; default the model's training temperature.
    bins : int
        Bins per dihedral over [-pi, pi) (50: the grid of the 2-D JS distance of
        :func:`~openmmcgml.analysis.report.report`).
    n_side : int
        Each bin is cut into ``n_side x n_side`` cells with one point in each (a jittered grid),
        each point with its own bond/angle draw: ``n_side**2`` draws per bin, the same in every bin.
    width : float
        Proposal widths in units of the priors' thermal widths ``sqrt(kT / k)``.  At 1 the draws
        follow the priors' own bond and angle distributions, so the weights vary only with the
        Jacobian and the rest of the energy (the least noise); raise it when the network widens or
        shifts bonds and angles, as ``effective_samples`` well below ``n_side**2`` shows.
    seed : int
        Seeds the draws.
    batch_size : int
        Configurations per energy evaluation.
    beads : five ints
        The beads C(ACE), N, CA, C, N(NME) among the model's beads (only five-bead models).
    keep_positions : bool
        Keep every draw's configuration and weight, for :meth:`PhiPsiDensity.sample`
        (``bins**2 * n_side**2`` configurations: 19 MB at the defaults).

    Returns
    -------
    PhiPsiDensity

    Raises
    ------
    ValueError
        For a model that is not a five-bead chain with bond and angle priors, or no temperature.
    """
    import torch

    if model.n_beads != 5 or tuple(int(b) for b in beads) != (0, 1, 2, 3, 4):
        raise ValueError(f"phi_psi_density integrates five-bead chains C N CA C N in bead order (the model has "
                         f"{model.n_beads} beads)")
    temperature = model.temperature if temperature is None else temperature
    if temperature is None or not (float(temperature) > 0):
        raise ValueError("phi_psi_density needs a temperature (the model has none; pass temperature=)")
    if int(bins) < 2 or int(n_side) < 1 or not (width > 0):
        raise ValueError("bins must be at least 2, n_side at least 1 and width positive")
    bins, n_samples = int(bins), int(n_side) ** 2
    kT = _BOLTZMANN * float(temperature)
    (bond_mean, bond_width), (angle_mean, angle_width) = _chain_priors(model, kT)
    bond_width, angle_width = width * bond_width, width * angle_width

    rng = np.random.default_rng(seed)
    bonds = bond_mean + bond_width * rng.standard_normal((n_samples, 4))
    angles = angle_mean + angle_width * rng.standard_normal((n_samples, 3))
    # stratified points inside a bin: one random point in each cell of an n_side x n_side grid
    cells = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij"), axis=-1).reshape(-1, 2)
    offsets = (cells + rng.random((n_samples, 2))) / n_side
    valid = (bonds > 0).all(1) & (angles > 0).all(1) & (angles < np.pi).all(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_proposal = (-0.5 * ((bonds - bond_mean) / bond_width) ** 2).sum(1) \
            + (-0.5 * ((angles - angle_mean) / angle_width) ** 2).sum(1)
        log_jacobian = 2 * np.log(np.abs(bonds)).sum(1) + np.log(np.abs(np.sin(angles))).sum(1)
    log_factor = np.where(valid, log_jacobian - log_proposal, -np.inf)

    edges = np.linspace(-np.pi, np.pi, bins + 1)
    step = edges[1] - edges[0]
    grid_phi, grid_psi = np.meshgrid(edges[:-1], edges[:-1], indexing="ij")
    log_weights = np.empty((bins * bins, n_samples))
    kept = np.empty((bins * bins * n_samples, 5, 3)) if keep_positions else None
    flat_phi, flat_psi = grid_phi.ravel(), grid_psi.ravel()
    per_batch = max(1, batch_size // n_samples)
    with torch.no_grad():
        for start in range(0, bins * bins, per_batch):
            stop = min(start + per_batch, bins * bins)
            count = stop - start
            dihedrals = np.stack([
                (flat_phi[start:stop, None] + step * offsets[None, :, 0]).ravel(),
                (flat_psi[start:stop, None] + step * offsets[None, :, 1]).ravel()], axis=1)
            positions = _chain_positions(np.tile(bonds, (count, 1)), np.tile(angles, (count, 1)), dihedrals)
            if kept is not None:
                kept[start * n_samples:stop * n_samples] = positions
            energy = model.energy(positions).detach().cpu().numpy().reshape(count, n_samples)
            log_weights[start:stop] = -energy / kT + log_factor[None, :]
    if not np.isfinite(log_weights).any():
        raise ValueError("every draw has zero weight; the model's energies are not finite")
    top = np.max(log_weights)
    weights = np.exp(log_weights - top)
    totals = weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        effective = np.where(totals > 0, totals ** 2 / (weights ** 2).sum(1), 0.0)
    probability = (totals / totals.sum()).reshape(bins, bins)
    return PhiPsiDensity(probability, edges, effective.reshape(bins, bins), float(temperature),
                         kept, weights.ravel() if keep_positions else None)


def _phi_psi_of(data, discard: float = 0.0):
    """(phi, psi) of every frame of ``data`` (anything :func:`~openmmcgml.analysis.tica.as_runs`
    reads, or a list of trajectory files), the first ``discard`` of each run dropped."""
    from .geometry import alanine_phi_psi
    from .tica import _is_path_list, as_runs

    if _is_path_list(data):
        runs = [run for path in data for run in as_runs(path)]
    else:
        runs = as_runs(data)
    kept = np.concatenate([run[int(discard * len(run)):] for run in runs])
    return alanine_phi_psi(kept)


def exact_scores(model, reference, samples=None, *, discard: float = 0.1, density: Optional[PhiPsiDensity] = None,
                 **options) -> dict:
    """Scores of a 5-bead alanine model's exact (phi, psi) distribution.

    Parameters
    ----------
    model : CGModel
    reference : path, list of paths, TrajectorySet or arrays
        CG-mapped reference frames (as :func:`~openmmcgml.analysis.report.report` takes them).
    samples : same kinds, optional
        A simulation of ``model``: how far its (phi, psi) histogram is from the exact
        distribution measures its sampling error (equilibration and length together).
    discard : float
        Fraction of each sample run dropped at its start.
    density : PhiPsiDensity, optional
        Reuse a computed density (else :func:`phi_psi_density` with ``options``).

    Returns
    -------
    dict
        ``exact_phi_psi_js``, ``exact_phi_js``, ``exact_psi_js`` (reference against the exact
        distribution), ``exact_population_<basin>``, ``exact_min_effective_samples``, and with
        samples ``samples_vs_exact_js`` (2-D JS of the samples against the exact distribution) and
        ``samples_vs_exact_expected_js`` (the mean 2-D JS of as many independent draws from the
        exact distribution: what a converged simulation of uncorrelated frames would score).
    """
    density = density or phi_psi_density(model, **options)
    return angle_scores(density, _phi_psi_of(reference), None if samples is None else _phi_psi_of(samples, discard))


def angle_scores(density: PhiPsiDensity, reference_angles, sample_angles=None) -> dict:
    """The scores of :func:`exact_scores` from (phi, psi) angles already at hand (radians):
    ``reference_angles`` and ``sample_angles`` are ``(phi, psi)`` pairs of arrays."""
    scores = {"exact_phi_psi_js": density.js_distance(*reference_angles)}
    scores["exact_phi_js"], scores["exact_psi_js"] = density.marginal_js_distances(*reference_angles)
    for name, value in density.basin_populations().items():
        scores[f"exact_population_{name}"] = value
    scores["exact_min_effective_samples"] = float(density.effective_samples.min())
    if sample_angles is not None:
        phi, psi = sample_angles
        scores["samples_vs_exact_js"] = density.js_distance(phi, psi)
        rng = np.random.default_rng(0)
        p = density.probability.ravel()
        scores["samples_vs_exact_expected_js"] = float(np.mean(
            [js_distance(rng.multinomial(len(phi), p), p) for _ in range(10)]))
    return {key: float(value) for key, value in scores.items()}
