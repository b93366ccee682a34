"""Prior terms: Boltzmann-inversion fits, OpenMM forces == torch forces, replicas never coupled."""

import doctest
import importlib
import json
import math

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from openmmcgml.priors import (
    BOLTZMANN,
    DihedralMap,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorSet,
    Repulsion,
    angle_list,
    chain_bonds,
    compute_angles,
    compute_dihedrals,
    dihedral_list,
    dihedral_map_modes,
    dihedral_pairs,
    fit_priors,
    plot_prior_fit,
    repulsion_pairs,
)

T = 300.0
KT = BOLTZMANN * T


def random_unit_vectors(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample_rejection(rng, n, propose, accept_probability):
    """n exact samples of a density proportional to proposal x acceptance (acceptance <= 1)."""
    out = []
    while sum(len(o) for o in out) < n:
        x = propose(4 * n)
        out.append(x[rng.uniform(size=x.shape) < accept_probability(x)])
    return np.concatenate(out)[:n]


def fisher_std(features, n):
    """Asymptotic standard deviations of the log-linear MLE: sqrt(diag(Cov(features)^-1) / n)."""
    return np.sqrt(np.diag(np.linalg.inv(np.cov(features, rowvar=False))) / n)


# ------------------------------------------------------------------------------------ fits

def test_topology_helpers():
    bonds = [[0, 1], [1, 2], [2, 3], [1, 4]]  # a branch at bead 1
    assert angle_list(5, bonds).tolist() == [[0, 1, 2], [0, 1, 4], [1, 2, 3], [2, 1, 4]]
    assert dihedral_list(5, bonds).tolist() == [[0, 1, 2, 3], [3, 2, 1, 4]]
    assert repulsion_pairs(5, bonds).tolist() == [[0, 3], [3, 4]]
    assert repulsion_pairs(5, bonds, min_separation=2).tolist() == [[0, 2], [0, 3], [0, 4], [1, 3], [2, 4], [3, 4]]
    assert chain_bonds(1).shape == (0, 2)


def test_harmonic_bond_recovered_with_r2_jacobian():
    """Samples of p(r) ~ r^2 exp(-k (r - r0)^2 / 2kT) give back k and r0.

    The fit is the maximum-likelihood estimate on a fine histogram, so its errors are those of
    the MLE of a near-Gaussian: std(r0) = s / sqrt(n) and std(k) / k = sqrt(2 / n), with
    s = sqrt(kT / k) = 0.035 nm.  Binning adds a relative bias of order h^2 / 12 s^2 ~ 1e-3
    (h ~ 10 s / 100 bins).  We allow 5 standard deviations (over 30 seeds the scaled errors had
    standard deviations 0.97 and 0.78).  Not dividing out r^2 would shift r0 by about
    2 s^2 / r0 = 6.6e-3 nm, over 80 standard deviations.
    """
    rng = np.random.default_rng(1)
    k, r0, n = 2000.0, 0.38, 200_000
    s = math.sqrt(KT / k)
    rmax = r0 + 8 * s
    r = sample_rejection(rng, n, lambda m: rng.normal(r0, s, m), lambda x: np.clip(x / rmax, 0, 1) ** 2)
    coordinates = np.zeros((n, 2, 3))
    coordinates[:, 1] = r[:, None] * random_unit_vectors(rng, n)
    priors = fit_priors(coordinates, temperature=T, terms=["bonds"])
    assert list(priors.terms) == ["bonds"]
    bonds = priors["bonds"]
    assert abs(bonds.r0[0] - r0) < 5 * s / math.sqrt(n)
    assert abs(bonds.k[0] / k - 1) < 5 * math.sqrt(2 / n)
    # the Jacobian matters: the plain Gaussian fit of r is biased by ~ 2 s^2 / r0
    assert abs(r.mean() - r0) > 20 * s / math.sqrt(n)


def test_harmonic_angle_recovered_with_sin_jacobian():
    """Samples of p(theta) ~ sin(theta) exp(-k (theta - theta0)^2 / 2kT) give back k and theta0.

    Tolerances as for bonds: 5 standard deviations of the MLE of a Gaussian of width s.
    """
    rng = np.random.default_rng(2)
    k, theta0, n = 60.0, 1.9, 200_000
    s = math.sqrt(KT / k)
    theta = sample_rejection(rng, n, lambda m: rng.normal(theta0, s, m),
                             lambda x: np.where((x > 0) & (x < math.pi), np.sin(np.clip(x, 0, math.pi)), 0.0))
    coordinates = np.zeros((n, 3, 3))
    coordinates[:, 0] = [0.38, 0.0, 0.0]
    coordinates[:, 2] = 0.38 * np.stack([np.cos(theta), np.sin(theta), np.zeros(n)], axis=1)
    assert np.allclose(compute_angles(coordinates, [[0, 1, 2]])[:, 0], theta)
    priors = fit_priors(coordinates, temperature=T, terms=["angles"])
    angles = priors["angles"]
    assert angles.indices.tolist() == [[0, 1, 2]]
    assert abs(angles.theta0[0] - theta0) < 5 * s / math.sqrt(n)
    assert abs(angles.k[0] / k - 1) < 5 * math.sqrt(2 / n)


def dihedral_chain(phi, rng):
    """Four beads per frame whose dihedral is phi (bead 3's azimuth about the 1-2 axis), randomly rotated."""
    n = len(phi)
    x = np.zeros((n, 4, 3))
    x[:, 0] = [0.3, 0.0, -0.1]
    x[:, 2] = [0.0, 0.0, 0.38]
    x[:, 3] = np.stack([0.3 * np.cos(phi), 0.3 * np.sin(phi), np.full(n, 0.48)], axis=1)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    return x @ rotation.T + rng.normal(size=3)


def test_dihedral_fourier_series_recovered():
    """Samples of exp(-U(phi)/kT), U a two-term Fourier series, give back its coefficients.

    Each fitted coefficient a_n, b_n (U = sum a_n cos n phi + b_n sin n phi) must lie within 5
    standard deviations of the truth, the standard deviations of the MLE being kT sqrt(diag(
    Cov(features)^-1) / n) (Fisher information of the log-linear model).
    """
    rng = np.random.default_rng(3)
    n, order = 200_000, 3
    k_true, phase_true = np.array([2.0, 0.0, 1.5]), np.array([0.4, 0.0, -1.0])

    def energy(phi):
        m = np.arange(1, order + 1)
        return (k_true * (1 + np.cos(np.outer(phi, m) - phase_true))).sum(-1)

    phi = sample_rejection(rng, n, lambda m: rng.uniform(-math.pi, math.pi, m),
                           lambda x: np.exp(-(energy(x) - 0.0) / KT))
    coordinates = dihedral_chain(phi, rng)
    measured = compute_dihedrals(coordinates, [[0, 1, 2, 3]])[:, 0]
    assert np.allclose(np.angle(np.exp(1j * (measured - phi))), 0, atol=1e-9)  # the sign convention
    priors = fit_priors(coordinates, temperature=T, terms=["dihedrals"], dihedral_order=order)
    term = priors["dihedrals"]
    assert term.order == order
    m = np.arange(1, order + 1)
    features = np.concatenate([np.cos(np.outer(phi, m)), np.sin(np.outer(phi, m))], axis=1)
    std = KT * fisher_std(features, n)
    fitted = np.concatenate([term.k[0] * np.cos(term.phase[0]), term.k[0] * np.sin(term.phase[0])])
    truth = np.concatenate([k_true * np.cos(phase_true), k_true * np.sin(phase_true)])
    assert np.all(np.abs(fitted - truth) < 5 * std), (fitted, truth, std)


def test_repulsion_sigma_is_smallest_distance_and_pooling_by_type():
    rng = np.random.default_rng(4)
    zigzag = np.array([[0.0, 0, 0], [0.3, 0.2, 0], [0.6, 0, 0.1], [0.9, 0.2, 0], [1.2, 0, 0.1]])
    x = zigzag + rng.normal(scale=0.02, size=(3000, 5, 3))
    priors = fit_priors(x, temperature=T, terms=["bonds", "angles", "repulsion"])
    rep = priors["repulsion"]
    assert rep.indices.tolist() == [[0, 3], [0, 4], [1, 4]]
    smallest = np.linalg.norm(x[:, [3, 4, 4]] - x[:, [0, 0, 1]], axis=-1).min(axis=0)
    np.testing.assert_allclose(rep.sigma, smallest)
    np.testing.assert_allclose(rep.epsilon, KT)
    pooled = fit_priors(x, temperature=T, bead_types=[0, 1, 0, 1, 0])
    assert np.ptp(pooled["bonds"].k) == 0 and np.ptp(pooled["bonds"].r0) == 0  # all bonds are type (0, 1)
    assert pooled["angles"].k[0] == pooled["angles"].k[2] != pooled["angles"].k[1]
    assert pooled["repulsion"].sigma[0] == pooled["repulsion"].sigma[2] == min(smallest[0], smallest[2])


def test_fit_bad_input():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(100, 4, 3))
    with pytest.raises(ValueError, match=r"shape \(n_frames, n_beads, 3\)"):
        fit_priors(x[..., :2])
    with pytest.raises(ValueError, match="unknown prior terms"):
        fit_priors(x, terms=["bond"])
    with pytest.raises(ValueError, match="out of range"):
        fit_priors(x, bonds=[[0, 4]])
    with pytest.raises(ValueError, match="NaN"):
        fit_priors(np.where(x > 2, np.nan, x))
    # two narrow peaks at the ends of the observed range: more spread than a flat distribution,
    # so Boltzmann inversion gives a negative curvature and no harmonic prior exists
    theta = np.concatenate([rng.normal(1.0, 0.05, 5000), rng.normal(2.5, 0.05, 5000)])
    bent = np.zeros((10000, 3, 3))
    bent[:, 0] = [0.38, 0.0, 0.0]
    bent[:, 2] = 0.38 * np.stack([np.cos(theta), np.sin(theta), np.zeros(10000)], axis=1)
    with pytest.raises(ValueError, match=r"angle \[0, 1, 2\] is not peaked"):
        fit_priors(bent, terms=["angles"])


# --------------------------------------------------------------------------- torch == OpenMM

def random_prior_set(rng, n_beads=6):
    bonds = [[0, 1], [1, 2], [2, 3], [3, 4], [2, 5]]
    angles = angle_list(n_beads, bonds)
    dihedrals = dihedral_list(n_beads, bonds)
    pairs = repulsion_pairs(n_beads, bonds)
    return PriorSet(n_beads, bonds, [
        Repulsion(pairs, epsilon=rng.uniform(0.5, 3, len(pairs)), sigma=rng.uniform(0.3, 0.5, len(pairs))),
        HarmonicBonds(bonds, k=rng.uniform(1000, 5000, len(bonds)), r0=rng.uniform(0.35, 0.4, len(bonds))),
        FourierDihedrals(dihedrals, k=rng.uniform(-1, 3, (len(dihedrals), 3)),
                         phase=rng.uniform(-math.pi, math.pi, (len(dihedrals), 3))),
        HarmonicAngles(angles, k=rng.uniform(20, 100, len(angles)), theta0=rng.uniform(1.5, 2.5, len(angles))),
    ], temperature=T)


def random_frames(rng, n_frames, n_beads):
    base = np.array([[0.0, 0, 0], [0.38, 0, 0], [0.55, 0.33, 0], [0.9, 0.4, 0.1], [1.1, 0.7, 0.0], [0.4, 0.5, 0.3]])
    return base[:n_beads] + rng.normal(scale=0.05, size=(n_frames, n_beads, 3))


def openmm_energy_forces(forces, positions, masses=1.0):
    system = openmm.System()
    for _ in range(len(positions)):
        system.addParticle(masses)
    for force in forces:
        system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def test_term_order_and_serialisation(tmp_path):
    priors = random_prior_set(np.random.default_rng(6))
    assert list(priors.terms) == ["bonds", "angles", "dihedrals", "repulsion"]
    data = json.loads(json.dumps(priors.to_dict()))
    again = PriorSet.from_dict(data)
    x = torch.as_tensor(random_frames(np.random.default_rng(7), 3, 6))
    assert torch.equal(again.energy(x), priors.energy(x))
    priors.save(tmp_path / "p.json")
    assert torch.equal(PriorSet.load(tmp_path / "p.json").energy(x), priors.energy(x))
    with pytest.raises(ValueError, match="not an openmm-cgml priors"):
        PriorSet.from_dict({"n_beads": 3})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PriorSet.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PriorSet.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="two 'bonds' terms"):
        PriorSet(3, terms=[HarmonicBonds([[0, 1]], k=[1.0], r0=[1.0]), HarmonicBonds([[1, 2]], k=[1.0], r0=[1.0])])
    with pytest.raises(ValueError, match="out of range"):
        PriorSet(2, terms=[HarmonicBonds([[0, 2]], k=[1.0], r0=[1.0])])
    with pytest.raises(ValueError, match="shape"):
        priors.energy_and_forces(torch.zeros(2, 5, 3, dtype=torch.float64))


def test_openmm_forces_equal_torch():
    rng = np.random.default_rng(8)
    priors = random_prior_set(rng)
    frames = random_frames(rng, 5, 6)
    energy, forces = priors.energy_and_forces(torch.as_tensor(frames))
    assert energy.dtype == torch.float64 and forces.shape == (5, 6, 3)
    for frame in range(len(frames)):
        e, f = openmm_energy_forces(priors.to_openmm_forces(), frames[frame])
        assert abs(e - float(energy[frame])) <= 1e-8 * abs(e)
        assert np.linalg.norm(f - forces[frame].numpy()) <= 1e-8 * np.linalg.norm(f)
    # each term separately as well
    for name, term in priors.terms.items():
        single = PriorSet(6, priors.bonds, [term])
        e, f = openmm_energy_forces(single.to_openmm_forces(), frames[0])
        te, tf = single.energy_and_forces(torch.as_tensor(frames[:1]))
        assert abs(e - float(te[0])) <= 1e-8 * max(abs(e), 1e-12), name
        assert np.linalg.norm(f - tf[0].numpy()) <= 1e-8 * np.linalg.norm(f), name


def test_dihedral_map_term():
    """The 2-D Fourier map over dihedral pairs: torch equals OpenMM, round trips, mirror images differ."""
    rng = np.random.default_rng(12)
    bonds = chain_bonds(6)
    pairs = dihedral_pairs(6, bonds)
    assert pairs.tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    assert dihedral_pairs(5, [[0, 1], [1, 2], [2, 3], [1, 4]]).size == 0  # a branch: no dihedral pair
    term = DihedralMap(pairs, cos=rng.normal(size=(2, 12)), sin=rng.normal(size=(2, 12)))
    assert term.order == 2 and term.modes == dihedral_map_modes(2)
    priors = PriorSet(6, bonds, [term], temperature=T)
    frames = random_frames(rng, 4, 6)
    energy, forces = priors.energy_and_forces(torch.as_tensor(frames))
    for frame in range(len(frames)):
        e, f = openmm_energy_forces(priors.to_openmm_forces(), frames[frame])
        assert abs(e - float(energy[frame])) <= 1e-8 * max(abs(e), 1.0)
        assert np.linalg.norm(f - forces[frame].numpy()) <= 1e-7 * np.linalg.norm(f)
    # by hand: phi and psi of the first pair in OpenMM's sign convention
    phi, psi = compute_dihedrals(frames, pairs[:1, :4])[:, 0], compute_dihedrals(frames, pairs[:1, 1:])[:, 0]
    single = PriorSet(6, bonds, [DihedralMap(pairs[:1], cos=np.zeros((1, 4)), sin=[[0.0, 0.0, 0.0, 1.0]])])
    assert np.allclose(single.energy(torch.as_tensor(frames)).numpy(), np.sin(phi + psi))
    mirrored = frames * np.array([1.0, 1.0, -1.0])  # a mirror image: every dihedral changes sign
    assert not np.allclose(single.energy(torch.as_tensor(mirrored)).numpy(), np.sin(phi + psi))
    again = PriorSet.from_dict(json.loads(json.dumps(priors.to_dict())))
    assert torch.equal(again.energy(torch.as_tensor(frames)), priors.energy(torch.as_tensor(frames)))
    with pytest.raises(ValueError, match="not 2 N"):
        DihedralMap(pairs, cos=np.zeros((2, 5)), sin=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="learned by force matching"):
        fit_priors(frames, bonds, T, terms=["bonds", "dihedral_map"])


def test_replicas_never_coupled():
    """n overlapping copies have n times the energy of one; forces per copy are those of one."""
    rng = np.random.default_rng(9)
    priors = random_prior_set(rng)
    frame = random_frames(rng, 1, 6)[0]
    e1, f1 = openmm_energy_forces(priors.to_openmm_forces(1), frame)
    n = 4
    stacked = np.concatenate([frame] * n)  # every copy at the same place: maximal overlap
    en, fn = openmm_energy_forces(priors.to_openmm_forces(n), stacked)
    assert abs(en - n * e1) <= 1e-10 * abs(n * e1)
    np.testing.assert_allclose(fn.reshape(n, 6, 3), np.broadcast_to(f1, (n, 6, 3)), rtol=1e-10, atol=1e-10)
    # copies at different places: the energy is the sum of the copies' energies
    frames = random_frames(rng, n, 6)
    energy, forces = priors.energy_and_forces(torch.as_tensor(frames))
    en, fn = openmm_energy_forces(priors.to_openmm_forces(n), frames.reshape(-1, 3))
    assert abs(en - float(energy.sum())) <= 1e-8 * abs(en)
    np.testing.assert_allclose(fn, forces.reshape(-1, 3).numpy(), rtol=1e-8, atol=1e-8)
    for force in priors.to_openmm_forces(n):
        assert not force.usesPeriodicBoundaryConditions()
        assert force.getName().startswith("CGPrior:")
    with pytest.raises(ValueError, match="n_replicas"):
        priors.to_openmm_forces(0)


def test_fitted_priors_in_openmm(tmp_path):
    """A fit with all four terms builds forces that OpenMM accepts and that equal torch."""
    rng = np.random.default_rng(10)
    zigzag = np.array([[0.0, 0, 0], [0.3, 0.2, 0], [0.6, 0, 0.1], [0.9, 0.2, 0], [1.2, 0, 0.1]])
    x = zigzag + rng.normal(scale=0.03, size=(5000, 5, 3))
    priors = fit_priors(x, temperature=T, terms=["bonds", "angles", "dihedrals", "repulsion"])
    assert list(priors.terms) == ["bonds", "angles", "dihedrals", "repulsion"]
    energy, forces = priors.energy_and_forces(x[:2])
    e, f = openmm_energy_forces(priors.to_openmm_forces(), x[0])
    assert abs(e - float(energy[0])) <= 1e-8 * abs(e)
    assert np.linalg.norm(f - forces[0].numpy()) <= 1e-8 * np.linalg.norm(f)

    import matplotlib

    matplotlib.use("Agg")
    for term in priors.terms:
        ax = plot_prior_fit(priors, x, term)
        assert ax.get_xlabel()
    with pytest.raises(ValueError, match="index 9 is out of range"):
        plot_prior_fit(priors, x, "bonds", index=9)


# ------------------------------------------------------------------------------ command line

def write_cg_file(path, coordinates, runs, bead_names):
    import h5py

    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "openmm-cgml-trajectory", "format_version": 1, "resolution": "coarse-grained",
                             "system": "toy", "temperature": T, "bead_names": json.dumps(bead_names),
                             "bead_types": json.dumps([0, 1, 2, 0, 1]), "mapping": json.dumps({})})
        handle["coordinates"] = coordinates.astype(np.float32)
        handle["forces"] = np.zeros_like(coordinates, dtype=np.float32)
        handle["trajectory"] = runs.astype(np.int32)
    return path


def test_cli_fit_priors_with_example_config(tmp_path, capsys):
    import os

    from openmmcgml.cli import main

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = os.path.join(root, "examples", "configs", "fit-priors-alanine.yaml")
    rng = np.random.default_rng(11)
    zigzag = np.array([[0.0, 0, 0], [0.13, 0.05, 0], [0.2, 0.18, 0.02], [0.34, 0.2, 0.0], [0.4, 0.33, 0.06]])
    data = write_cg_file(tmp_path / "cg.h5", zigzag + rng.normal(scale=0.01, size=(3000, 5, 3)),
                         np.repeat([0, 1, 2], 1000), ["C", "N", "CA", "C", "N"])
    output, plot = tmp_path / "out" / "priors.json", tmp_path / "priors.png"
    assert main(["fit-priors", config, "--set", f"data={data}", "--set", f"output={output}",
                 "--set", f"plot={plot}", "--set", "stride=2", "--set", "terms=[bonds, angles, dihedrals, repulsion]"]) == 0
    priors = PriorSet.load(output)
    assert list(priors.terms) == ["bonds", "angles", "dihedrals", "repulsion"]
    assert priors.temperature == T and priors["dihedrals"].order == 3
    assert plot.stat().st_size > 10000
    printed = capsys.readouterr().out
    assert "on 1500 frames" in printed and "C-N-CA-C" in printed
    assert main(["fit-priors", config, "--set", "bins=3"]) == 2
    assert "cgml fit-priors: error: unknown fit-priors setting(s) bins" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["topology", "terms", "priorset", "fitting", "plots"])
def test_docstring_examples_of_the_package_modules(module):
    # test_cgmodel runs the package's own docstring; these are the examples of its modules
    result = doctest.testmod(importlib.import_module(f"openmmcgml.priors.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_every_public_name_is_exported_by_the_package():
    import openmmcgml.priors as priors

    for module in ("topology", "terms", "priorset", "fitting", "plots"):
        for name in importlib.import_module(f"openmmcgml.priors.{module}").__all__:
            assert name in priors.__all__ and getattr(priors, name) is getattr(
                importlib.import_module(f"openmmcgml.priors.{module}"), name), name
