"""phi_psi_density: the (phi, psi) distribution of a 5-bead model by integration, against exact
quadrature (a separable model) and against Langevin dynamics in OpenMM (a coupled one)."""

import numpy as np
import pytest

from openmmcgml.analysis.basins import ALANINE_BASINS, assign_basins
from openmmcgml.analysis.distributions import js_distance
from openmmcgml.analysis.geometry import alanine_phi_psi, build_chain
from openmmcgml.analysis.marginal import phi_psi_density
from openmmcgml.cgmodel import CGModel
from openmmcgml.priors import PriorSet
from openmmcgml.priors.terms import DihedralMap, HarmonicAngles, HarmonicBonds, Repulsion, dihedral_map_modes

KT = 0.0083144626 * 300.0
BONDS = [[0, 1], [1, 2], [2, 3], [3, 4]]


def _priors(map_cos, map_sin, repulsion=False):
    terms = [HarmonicBonds(BONDS, k=[4e5, 3e5, 3e5, 4e5], r0=[0.134, 0.147, 0.155, 0.134]),
             HarmonicAngles([[0, 1, 2], [1, 2, 3], [2, 3, 4]], k=[800.0, 800.0, 1000.0], theta0=[2.18, 1.98, 2.05]),
             DihedralMap([[0, 1, 2, 3, 4]], cos=[map_cos], sin=[map_sin])]
    if repulsion:
        terms.append(Repulsion([[0, 3], [0, 4], [1, 4]], epsilon=[KT] * 3, sigma=[0.29, 0.30, 0.28]))
    return PriorSet(5, BONDS, terms)


def _model(priors):
    return CGModel(None, priors, [0, 1, 2, 3, 1], bead_names=["C", "N", "CA", "C", "N"], masses=[12.0, 14.0, 13.0,
                   12.0, 14.0], temperature=300.0)


def _random_map(order, scale, seed):
    rng = np.random.default_rng(seed)
    n = len(dihedral_map_modes(order))
    return scale * rng.standard_normal(n), scale * rng.standard_normal(n)


def test_separable_model_matches_quadrature_of_the_map():
    # bonds and angles do not touch phi and psi: p(phi, psi) is exp(-U_map / kT) integrated over each bin
    cos, sin = _random_map(2, 1.5, seed=3)
    priors = _priors(cos, sin)
    density = phi_psi_density(_model(priors), bins=36, n_side=8)
    fine = 16
    edges = np.linspace(-np.pi, np.pi, 36 * fine + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    phi, psi = np.meshgrid(centres, centres, indexing="ij")
    energy = np.zeros_like(phi)
    for k, (m, n) in enumerate(dihedral_map_modes(2)):
        energy += cos[k] * np.cos(m * phi + n * psi) + sin[k] * np.sin(m * phi + n * psi)
    weights = np.exp(-(energy - energy.min()) / KT).reshape(36, fine, 36, fine).sum((1, 3))
    exact = weights / weights.sum()
    assert np.abs(density.probability - exact).max() < 3e-2 * exact.max()  # stratified points inside a bin
    assert js_distance(density.probability.ravel(), exact.ravel()) < 3e-3
    # the map is odd in the sine terms: flipping their sign mirrors the density, which must show
    mirrored = phi_psi_density(_model(_priors(cos, -sin)), bins=36, n_side=8)
    assert js_distance(mirrored.probability[::-1, ::-1].ravel(), density.probability.ravel()) < 3e-2
    assert js_distance(mirrored.probability.ravel(), density.probability.ravel()) > 0.2
    # energy drawn on phi's axis: the populations of the basins follow the bins' centres
    populations = density.basin_populations()
    labels = assign_basins(*np.meshgrid(density.centres, density.centres, indexing="ij"), units="radians")
    for k, name in enumerate(ALANINE_BASINS):
        assert populations[name] == pytest.approx(exact[labels == k].sum(), abs=2e-3)
    assert sum(populations.values()) == pytest.approx(1.0)


def test_coupled_model_matches_langevin_dynamics():
    """With repulsions between beads 1-4 and 1-5 apart, bonds and angles couple to phi and psi;
    long Langevin dynamics on OpenMM's Reference platform gives the same basin populations."""
    import openmm

    from openmmcgml.simulation.system import build_system

    cos, sin = _random_map(2, 2.0, seed=5)
    model = _model(_priors(cos, sin, repulsion=True))
    density = phi_psi_density(model, n_side=8)
    replicas, steps, every = 64, 20000, 100
    system = build_system(model, replicas)
    integrator = openmm.LangevinMiddleIntegrator(300.0, 20.0, 0.002)
    integrator.setRandomNumberSeed(7)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    rng = np.random.default_rng(2)
    start = [build_chain([0.134, 0.147, 0.155, 0.134], [2.18, 1.98, 2.05], rng.uniform(-np.pi, np.pi, 2))
             + [3.0 * k, 0.0, 0.0] for k in range(replicas)]
    context.setPositions(np.concatenate(start))
    context.setVelocitiesToTemperature(300.0, 3)
    integrator.step(2000)
    frames = []
    for _ in range(steps // every):
        integrator.step(every)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value.reshape(replicas, 5, 3))
    frames = np.concatenate(frames)
    phi, psi = alanine_phi_psi(frames)
    md = np.bincount(assign_basins(phi, psi, units="radians"), minlength=3) / len(phi)
    exact = density.basin_populations()
    # 12,800 frames, correlated over a few saves: a few 1e-3 of sampling error per basin
    for k, name in enumerate(ALANINE_BASINS):
        assert md[k] == pytest.approx(exact[name], abs=0.03), (name, md, exact)
    # the coupling matters: the map alone gives other populations
    alone = phi_psi_density(_model(_priors(cos, sin)), n_side=8).basin_populations()
    assert max(abs(alone[name] - exact[name]) for name in ALANINE_BASINS) > 0.05
    # the whole surface, on bins coarse enough for 12,800 frames: JS within twice what independent
    # draws of the same number from the density itself give
    coarse = phi_psi_density(model, bins=18, n_side=8)
    rng = np.random.default_rng(0)
    draws = [js_distance(rng.multinomial(len(phi), coarse.probability.ravel()), coarse.probability.ravel())
             for _ in range(20)]
    assert coarse.js_distance(phi, psi) < 2.0 * np.mean(draws), (coarse.js_distance(phi, psi), np.mean(draws))


def test_refuses_models_it_cannot_integrate():
    cos, sin = _random_map(1, 1.0, seed=1)
    model = _model(_priors(cos, sin))
    with pytest.raises(ValueError, match="temperature"):
        phi_psi_density(model, temperature=-5.0)
    no_angles = PriorSet(5, BONDS, [HarmonicBonds(BONDS, k=[4e5] * 4, r0=[0.14] * 4)])
    with pytest.raises(ValueError, match="bonds and angles"):
        phi_psi_density(_model(no_angles))
    six = PriorSet(6, None, [HarmonicBonds([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], k=[4e5] * 5, r0=[0.14] * 5)])
    with pytest.raises(ValueError, match="five-bead"):
        phi_psi_density(CGModel(None, six, [0] * 6, temperature=300.0))


def test_resampled_configurations_follow_the_density():
    cos, sin = _random_map(2, 1.5, seed=8)
    model = _model(_priors(cos, sin, repulsion=True))
    density = phi_psi_density(model, bins=24, n_side=6, keep_positions=True)
    frames = density.sample(40000, seed=1)
    assert frames.shape == (40000, 5, 3)
    phi, psi = alanine_phi_psi(frames)
    rng = np.random.default_rng(0)
    draws = [js_distance(rng.multinomial(len(phi), density.probability.ravel()), density.probability.ravel())
             for _ in range(10)]
    assert density.js_distance(phi, psi) < 1.5 * np.mean(draws)
    with pytest.raises(ValueError, match="keep_positions"):
        phi_psi_density(model, bins=8, n_side=2).sample(10)


def test_exact_scores_of_reference_and_samples():
    from openmmcgml.analysis.marginal import exact_scores

    cos, sin = _random_map(2, 1.5, seed=9)
    model = _model(_priors(cos, sin, repulsion=True))
    density = phi_psi_density(model, keep_positions=True)
    reference = density.sample(30000, seed=2)
    other = _model(_priors(cos, -sin, repulsion=True))
    same = exact_scores(model, reference, [density.sample(20000, seed=3)], discard=0.0, density=density)
    assert same["samples_vs_exact_js"] < 1.3 * same["samples_vs_exact_expected_js"]
    mirrored = exact_scores(other, reference)
    assert mirrored["exact_phi_psi_js"] > 2 * same["exact_phi_psi_js"]
    assert "samples_vs_exact_js" not in mirrored
    total = sum(same[f"exact_population_{name}"] for name in ALANINE_BASINS)
    assert total == pytest.approx(1.0)
