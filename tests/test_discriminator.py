"""The torch Discriminator: features against the package's geometry, forces against finite
differences, invariances, the ensemble and clamp, degenerate geometry and bad input."""

import math

import numpy as np
import pytest
import torch

from openmmcgml.geometry import compute_angles, compute_dihedrals, compute_distances
from openmmcgml.models.discriminator import BOLTZMANN, DIHEDRAL_EPSILON, BiasFeatures, Discriminator

DISTANCES = [[0, 3], [1, 4], [0, 4]]
ANGLES = [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
DIHEDRALS = [[0, 1, 2, 3], [1, 2, 3, 4]]


def chain(n_frames, seed=0, n_beads=5):
    """Random chains with bonds of 0.38 nm and bond angles between 60 and 150 degrees."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n_frames, n_beads, 3))
    for f in range(n_frames):
        x = [np.zeros(3), np.array([0.38, 0.0, 0.0])]
        while len(x) < n_beads:
            previous = x[-1] - x[-2]
            previous /= np.linalg.norm(previous)
            while True:
                step = rng.normal(size=3)
                step /= np.linalg.norm(step)
                angle = math.degrees(math.acos(np.clip(-previous @ step, -1, 1)))
                if 60 < angle < 150:
                    break
            x.append(x[-1] + 0.38 * step)
        frames[f] = np.array(x)
    return torch.as_tensor(frames)


def model(seed=0, clamp=0.0, hidden=(16, 16), activation="silu"):
    torch.manual_seed(seed)
    features = BiasFeatures(DISTANCES, ANGLES, DIHEDRALS)
    m = Discriminator(features, hidden=hidden, activation=activation, clamp=clamp, temperature=350.0).double()
    m.set_standardization(np.linspace(0.2, 0.8, features.n_features), np.linspace(0.5, 1.5, features.n_features))
    return m


def test_features_are_the_packages_internal_coordinates():
    x = chain(20)
    s = BiasFeatures(DISTANCES, ANGLES, DIHEDRALS)(x)
    assert s.shape == (20, 3 + 3 + 4)
    torch.testing.assert_close(s[:, :3], compute_distances(x, DISTANCES), rtol=0, atol=1e-14)
    torch.testing.assert_close(s[:, 3:6], torch.cos(compute_angles(x, ANGLES)), rtol=0, atol=1e-14)
    phi = compute_dihedrals(x, DIHEDRALS)
    # exact up to the regularisation, (cos, sin) * rho / sqrt(rho^2 + eps^2): below 2e-5 for angles below 150 deg
    tolerance = 0.5 * DIHEDRAL_EPSILON ** 2 / math.sin(math.radians(150)) ** 4
    torch.testing.assert_close(s[:, 6::2], torch.cos(phi), rtol=0, atol=tolerance)
    torch.testing.assert_close(s[:, 7::2], torch.sin(phi), rtol=0, atol=tolerance)
    assert BiasFeatures(DISTANCES, ANGLES, DIHEDRALS).names()[-2:] == ["cos t(1,2,3,4)", "sin t(1,2,3,4)"]


@pytest.mark.parametrize("activation", ["ssp", "tanh", "silu"])
def test_forces_match_finite_differences(activation):
    m = model(activation=activation, clamp=2.0)
    x = chain(3, seed=1)
    _, forces = m.energy_and_forces(x)
    h = 1e-6
    numeric = torch.zeros_like(x)
    for index in np.ndindex(*x.shape):
        plus, minus = x.clone(), x.clone()
        plus[index] += h
        minus[index] -= h
        numeric[index] = -(m.energy(plus) - m.energy(minus)) / (2 * h)
    torch.testing.assert_close(forces, numeric, rtol=1e-6, atol=1e-7)
    assert forces.abs().max() > 1e-2  # a test of something


def test_energy_is_rigid_motion_invariant_and_replicas_add_up():
    m = model(seed=2)
    x = chain(4, seed=2)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    moved = x @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    per_molecule = m.energy(x, molecules=False)
    torch.testing.assert_close(m.energy(moved, molecules=False), per_molecule, rtol=1e-12, atol=1e-12)
    _, forces = m.energy_and_forces(x)
    _, moved_forces = m.energy_and_forces(moved)
    torch.testing.assert_close(moved_forces, forces @ q.T, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m.energy(x), per_molecule.sum(), rtol=1e-14, atol=0)
    # the energy is -scale kT logit
    torch.testing.assert_close(m.energy(x, scale=0.5, molecules=False), -0.5 * BOLTZMANN * 350.0 * m.logit(x))


def test_clamp_bounds_each_network_and_average_members_gives_the_mean():
    m = model(seed=4, clamp=0.3)
    with torch.no_grad():
        m.networks[0].layers[-1].bias.fill_(50.0)  # a logit far beyond the clamp
    x = chain(10, seed=4)
    assert torch.all(m.logit(x) <= 0.3) and torch.all(m.logit(x) > 0.29)
    ensemble = model(seed=5)
    ensemble.add_network([8], "tanh", 0.0)
    ensemble.add_network([4, 4], "ssp", 1.5)
    members = [ensemble.logit(x, member=k) for k in range(3)]
    torch.testing.assert_close(ensemble.logit(x), sum(members))
    ensemble.average_members()
    torch.testing.assert_close(ensemble.logit(x), sum(members) / 3)


def test_collinear_beads_give_finite_documented_values_and_forces():
    m = model(seed=6)
    straight = torch.tensor([[0.0, 0, 0], [0.38, 0, 0], [0.76, 0, 0], [0.76, 0.38, 0], [0.9, 0.5, 0.3]],
                            dtype=torch.float64)
    s = m.features(straight)
    assert s[3].item() == -1.0  # cos(180 deg), exactly
    assert s[6].item() == 0.0 and s[7].item() == 0.0  # dihedral (0,1,2,3): undefined -> (0, 0)
    energy, forces = m.energy_and_forces(straight)
    assert math.isfinite(energy.item()) and torch.isfinite(forces).all()
    # just next to it the function is smooth: forces match finite differences
    near = straight.clone()
    near[2, 1] += 1e-4
    _, forces = m.energy_and_forces(near)
    h = 1e-8
    for index in [(2, 1), (0, 0), (1, 2), (3, 1)]:
        plus, minus = near.clone(), near.clone()
        plus[index] += h
        minus[index] -= h
        numeric = -(m.energy(plus) - m.energy(minus)) / (2 * h)
        assert forces[index].item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-6), index


def test_standardize_sets_mean_and_std_from_frames():
    m = model()
    x = chain(50, seed=7)
    m.standardize(x)
    s = m.features(x)
    torch.testing.assert_close(m.mean, s.mean(0))
    torch.testing.assert_close(m.std, s.std(0))


def test_bad_input_is_refused_with_a_named_problem():
    with pytest.raises(ValueError, match="at least one feature"):
        BiasFeatures()
    with pytest.raises(ValueError, match="negative bead index"):
        BiasFeatures(distances=[[0, -1]])
    with pytest.raises(ValueError, match="repeats a bead"):
        BiasFeatures(angles=[[0, 1, 0]])
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        BiasFeatures(dihedrals=[[0, 1, 2]])
    with pytest.raises(ValueError, match="integer bead indices"):
        BiasFeatures(distances=[[0, 1.5]])
    features = BiasFeatures(DISTANCES, ANGLES, DIHEDRALS)
    with pytest.raises(ValueError, match="molecule has 4 beads"):
        features(torch.zeros(2, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="std must be positive"):
        Discriminator(features, std=np.r_[np.ones(9), 0.0])
    with pytest.raises(ValueError, match="mean contains NaN"):
        Discriminator(features, mean=np.r_[np.zeros(9), np.nan])
    with pytest.raises(ValueError, match=r"mean must have shape \(10,\)"):
        Discriminator(features, mean=np.zeros(9))
    with pytest.raises(ValueError, match="unknown activation"):
        Discriminator(features, activation="relu")
    with pytest.raises(ValueError, match="clamp must be"):
        Discriminator(features, clamp=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        Discriminator(features, temperature=0.0)
