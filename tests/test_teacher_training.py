"""The discriminator's fit: its logit recovers a known log density ratio, indistinguishable data
are recognised as such with an honest error bar, held-out data are whole blocks, bad input."""

import numpy as np
import pytest
import torch

from openmmcgml.models import BiasFeatures, Discriminator
from openmmcgml.teacher import DiscriminatorTraining, held_out_blocks

SIGMA = 0.03


def pairs(mean, n, rng):
    """Two beads at a distance ~ N(mean, SIGMA) in a random direction: the densities of two such
    sets differ only through the distance, so the log ratio is that of the 1-D Gaussians."""
    r = rng.normal(mean, SIGMA, n)[:, None]
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return np.stack([np.zeros((n, 3)), r * direction], 1)


def at_distances(r):
    return torch.as_tensor(np.stack([np.zeros((len(r), 3)), np.c_[r, np.zeros((len(r), 2))]], 1))


def test_logit_recovers_the_log_density_ratio():
    rng = np.random.default_rng(0)
    reference = [pairs(0.50, 5000, rng) for _ in range(4)]
    samples = [pairs(0.53, 5000, rng) for _ in range(4)]
    trainer = DiscriminatorTraining(Discriminator(BiasFeatures(distances=[[0, 1]]), hidden=[16, 16]),
                                    max_epochs=40, patience=8, lr=3e-3, seed=1).fit(reference, samples)
    r = np.linspace(0.47, 0.56, 19)  # where both densities are above a fifth of their peaks
    exact = ((r - 0.53) ** 2 - (r - 0.50) ** 2) / (2 * SIGMA ** 2)
    with torch.no_grad():
        learned = trainer.fetch_model().logit(at_distances(r)).numpy()
    # 15,000 training frames per class: the logit's error is a few hundredths where the data are
    # dense and grows towards the tails; 0.25 is about 4 times the largest error seen over seeds
    assert np.max(np.abs(learned - exact)) < 0.25, np.round(learned - exact, 3)
    # the best possible balanced accuracy of two Gaussians 1 sigma apart is Phi(0.5) = 0.691
    assert trainer.validation_accuracy_ == pytest.approx(0.691, abs=3 * trainer.validation_accuracy_error_ + 0.01)
    assert not trainer.indistinguishable_


def test_the_same_distribution_is_indistinguishable_with_an_honest_error():
    rng = np.random.default_rng(2)
    reference = [pairs(0.50, 2000, rng) for _ in range(4)]
    samples = [pairs(0.50, 2000, rng) for _ in range(4)]
    trainer = DiscriminatorTraining(Discriminator(BiasFeatures(distances=[[0, 1]]), hidden=[8]),
                                    max_epochs=10, seed=3).fit(reference, samples)
    assert trainer.indistinguishable_
    # independent frames: the block error is close to the binomial one, sqrt(0.25 / n) / sqrt(2)
    # for a balanced accuracy over n = 2,000 held-out frames per class
    binomial = np.sqrt(0.25 / 2000) / np.sqrt(2)
    assert 0.5 * binomial < trainer.validation_accuracy_error_ < 2.0 * binomial


def test_held_out_data_are_whole_blocks_and_the_rest_trains():
    blocks = held_out_blocks([100, 100, 100, 100], 4, 0.25)
    assert len(blocks) == 16 and sum(b[3] for b in blocks) == 4
    assert {run for run, _, _, held in blocks if held} == {0, 1, 2, 3}  # spread over the runs
    assert all(b - a == 25 for _, a, b, _ in blocks)
    with pytest.raises(ValueError, match="at least two blocks"):
        held_out_blocks([10], 1, 0.25)


def test_only_the_newest_member_is_trained_and_it_alone_classifies():
    rng = np.random.default_rng(4)
    reference = [pairs(0.50, 3000, rng) for _ in range(2)]
    samples = [pairs(0.53, 3000, rng) for _ in range(2)]
    first = DiscriminatorTraining(Discriminator(BiasFeatures(distances=[[0, 1]]), hidden=[16]), max_epochs=20,
                                  lr=3e-3).fit(reference, samples).fetch_model()
    ensemble = first.copy()
    ensemble.add_network([16], "silu", 0.0)
    before = [p.detach().clone() for p in ensemble.networks[0].parameters()]
    second = DiscriminatorTraining(ensemble, max_epochs=20, lr=3e-3, standardize=False).fit(reference, samples)
    for old, new in zip(before, second.fetch_model().networks[0].parameters()):
        torch.testing.assert_close(new, old, rtol=0, atol=0)
    # trained alone on the same question, the new member finds the same log ratio
    r = np.linspace(0.47, 0.56, 10)
    exact = ((r - 0.53) ** 2 - (r - 0.50) ** 2) / (2 * SIGMA ** 2)
    with torch.no_grad():
        added = second.fetch_model().logit(at_distances(r), member=1).numpy()
    assert np.max(np.abs(added - exact)) < 0.3
    assert second.validation_accuracy_ > 0.6


def test_bad_input_is_refused_by_name():
    rng = np.random.default_rng(5)
    good = [pairs(0.5, 100, rng)]
    model = Discriminator(BiasFeatures(distances=[[0, 1]]), hidden=[4])
    bad = pairs(0.5, 100, rng)
    bad[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match="samples run 0 contains NaN"):
        DiscriminatorTraining(model).fit(good, [bad])
    with pytest.raises(ValueError, match="the reference has 2 beads, the samples 3"):
        DiscriminatorTraining(model).fit(good, [np.zeros((100, 3, 3))])
    with pytest.raises(ValueError, match=r"shape \(n_frames, n_beads, 3\)"):
        DiscriminatorTraining(model).fit(good, [np.zeros((100, 3))])
    with pytest.raises(TypeError, match="must be a Discriminator"):
        DiscriminatorTraining("model")
    with pytest.raises(ValueError, match="validation_fraction"):
        DiscriminatorTraining(model, validation_fraction=1.5).fit(good, good)
