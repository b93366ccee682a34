"""The force-noise estimator (openmmcgml.analysis.force_noise) on synthetic data whose noise
variance is known: a mean force from pair terms of a 4-bead chain in random orientations plus
Gaussian noise."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openmmcgml.analysis.force_noise import (ForceNoiseEstimate, _superpose, estimate_force_noise,
                                             format_force_split)

REFERENCE = np.array([[0.0, 0.0, 0.0], [0.38, 0.0, 0.0], [0.5, 0.36, 0.0], [0.8, 0.4, 0.3]])
R0 = np.linalg.norm(REFERENCE[:, None] - REFERENCE[None], axis=-1)


def mean_force(x, k=5000.0, cubic=3e4):
    """Minus the gradient of sum over pairs of k/2 (r - r0)^2 + cubic/3 (r - r0)^3 (anharmonic,
    so the mean force is not linear in the coordinates)."""
    delta = x[:, :, None, :] - x[:, None, :, :]
    eye = np.eye(x.shape[1])
    r = np.linalg.norm(delta, axis=-1) + eye
    stretch = r - R0 - eye
    magnitude = (k * stretch + cubic * stretch ** 2) * (1 - eye)
    return -np.sum((magnitude / r)[..., None] * delta, axis=2)


def synthetic(n_frames, variance, seed, spread=0.03):
    """Frames around REFERENCE, each in a random orientation, with noisy forces."""
    rng = np.random.default_rng(seed)
    x = REFERENCE + rng.normal(scale=spread, size=(n_frames, 4, 3))
    f = mean_force(x)
    rotation = Rotation.random(n_frames, random_state=seed).as_matrix()
    x, f = x @ rotation, f @ rotation
    return x, f + rng.normal(scale=np.sqrt(variance), size=x.shape), f


@pytest.mark.parametrize("variance", [300.0, 3000.0, 30000.0])
@pytest.mark.parametrize("n_frames", [1500, 6000])
def test_recovers_known_noise_variance(variance, n_frames):
    x, f, exact = synthetic(n_frames, variance, seed=int(variance) + n_frames)
    # The mean force changes between neighbours by much more than the smallest noise: the pairs'
    # raw half squared difference is far above the noise, the extrapolation removes it.
    estimate = estimate_force_noise(x, f, n_bootstrap=100)
    assert estimate.n_frames == n_frames and estimate.n_pairs > n_frames // 4
    assert abs(estimate.variance - variance) < 3.0 * estimate.error + 0.02 * variance, estimate
    # The error bar is useful: a fraction of the noise where the noise is large, a fraction of the
    # mean-force change between neighbours where it is small.
    assert estimate.error < 0.1 * variance + 0.4 * estimate.mean_half_squared_difference
    if variance == 300.0:
        assert estimate.mean_half_squared_difference > 5 * variance
    # The split of a perfect model's MSE: model error zero within the noise's error.
    split = estimate.split(float(np.mean((f - exact) ** 2)))
    assert abs(split["model_error"]) < 3.0 * estimate.error + 0.02 * variance


def test_error_bar_covers_the_truth_over_seeds():
    # Over independent datasets the estimates scatter about the truth as their error bars say.
    variance = 2000.0
    estimates = [estimate_force_noise(*synthetic(2000, variance, seed)[:2], n_bootstrap=60) for seed in range(6)]
    values = np.array([e.variance for e in estimates])
    errors = np.array([e.error for e in estimates])
    assert abs(values.mean() - variance) < 3.0 * errors.mean() / np.sqrt(len(values))
    assert 0.4 < values.std(ddof=1) / errors.mean() < 2.5


def test_noise_free_forces_give_zero():
    x, _, exact = synthetic(3000, 0.0, seed=3)
    estimate = estimate_force_noise(x, exact, n_bootstrap=50)
    assert abs(estimate.variance) < 3 * estimate.error + 1.0
    assert estimate.mean_half_squared_difference > 1000.0


def test_rotating_frames_changes_nothing():
    # Forces are compared after superposition, with the forces rotated as the coordinates.
    x, f, _ = synthetic(1500, 1000.0, seed=4)
    rotation = Rotation.random(len(x), random_state=11).as_matrix()
    first = estimate_force_noise(x, f, n_bootstrap=0)
    second = estimate_force_noise(x @ rotation, f @ rotation, n_bootstrap=0)
    assert second.variance == pytest.approx(first.variance, rel=1e-9)
    assert np.isnan(first.error)
    # Without rotating the forces the estimate would be far off: the superposition matters.
    wrong = estimate_force_noise(x @ rotation, f, n_bootstrap=0)
    assert abs(wrong.variance - first.variance) > 0.5 * first.variance


def test_superposition_is_a_proper_rotation():
    rng = np.random.default_rng(5)
    first = rng.normal(size=(3, 5, 3))
    turn = Rotation.random(3, random_state=2).as_matrix()
    rotation, rmsd = _superpose(first, first @ turn + 1.0)
    np.testing.assert_allclose(rotation, np.transpose(turn, (0, 2, 1)), atol=1e-10)
    np.testing.assert_allclose(rmsd, 0.0, atol=1e-10)
    # A mirror image is not superposed by a reflection.
    rotation, rmsd = _superpose(first, first * np.array([1.0, 1.0, -1.0]))
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0)
    assert (rmsd > 0.1).all()


def test_trajectory_exclusion_and_rmsd_regressor():
    x, f, _ = synthetic(2000, 5000.0, seed=6)
    ids = np.repeat(np.arange(4), 500)
    # Consecutive frames of a trajectory that were the nearest neighbours are no longer paired.
    order = np.argsort(np.linalg.norm(x - x[:1], axis=(1, 2)))
    xs, fs = x[order], f[order]
    everything = estimate_force_noise(xs, fs, ids, n_bootstrap=0)
    apart = estimate_force_noise(xs, fs, ids, exclude_within=2, n_bootstrap=0)
    assert everything.n_pairs > 0 and apart.n_pairs > 0
    assert apart.median_pair_rmsd >= everything.median_pair_rmsd * 0.99
    single = estimate_force_noise(x, f, regressors="rmsd", n_bootstrap=20)
    assert single.regressors == "rmsd" and np.isfinite(single.variance)


def test_split_and_format():
    estimate = ForceNoiseEstimate(variance=800.0, error=20.0, n_frames=10, n_pairs=8, median_pair_rmsd=0.01,
                                  mean_half_squared_difference=900.0, regressors="distances")
    split = estimate.split(1000.0)
    assert split == {"mse": 1000.0, "noise": 800.0, "noise_error": 20.0, "model_error": 200.0,
                     "noise_fraction": 0.8}
    assert format_force_split(split) == ("force MSE 1000 = noise 800 ± 20 + model error 200 (kJ/mol/nm)^2 "
                                         "(noise 80.0 % of the MSE)")
    assert estimate.to_dict()["variance"] == 800.0
    with pytest.raises(ValueError, match="finite non-negative"):
        estimate.split(float("nan"))


@pytest.mark.parametrize("change, message", [
    (lambda x, f: (x[:, :, :2], f[:, :, :2]), "shape"),
    (lambda x, f: (x, f[:-1]), "forces have shape"),
    (lambda x, f: (x, np.where(np.arange(f.size).reshape(f.shape) == 7, np.nan, f)), "NaN"),
    (lambda x, f: (x[:20], f[:20]), "too few"),
])
def test_bad_input(change, message):
    x, f, _ = synthetic(400, 100.0, seed=7)
    with pytest.raises(ValueError, match=message):
        estimate_force_noise(*change(x, f), n_bootstrap=0)
    with pytest.raises(ValueError, match="regressors"):
        estimate_force_noise(x, f, regressors="angles")
    with pytest.raises(ValueError, match="trajectory_ids"):
        estimate_force_noise(x, f, np.zeros(3))
    with pytest.raises(ValueError, match="n_neighbours"):
        estimate_force_noise(x, f, n_neighbours=0)


def test_training_summary_splits_the_validation_mse():
    # What `cgml train` records in the model's metadata and prints (configs/train.py).
    from openmmcgml.configs.train import _force_noise_summary
    from openmmcgml.data import Trajectory

    x, f, exact = synthetic(2000, 2500.0, seed=8)
    data = Trajectory(x, f, trajectory=np.repeat(np.arange(4), 500))
    mse = float(np.mean((f - exact) ** 2)) + 700.0       # a model 700 (kJ/mol/nm)^2 off
    summary = _force_noise_summary(data, mse)
    assert summary["mse"] == mse and summary["model_error"] == pytest.approx(mse - summary["noise"])
    assert abs(summary["model_error"] - 700.0) < 3 * summary["noise_error"] + 50.0
    assert summary["estimate"]["n_frames"] == 2000
    assert summary["summary"].startswith("validation force MSE ") and "+ model error" in summary["summary"]
    assert _force_noise_summary(Trajectory(x[:30], f[:30]), mse)["summary"].startswith("force noise not estimated")


def test_docstring_example():
    import doctest

    import openmmcgml.analysis.force_noise as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_loss_plot_draws_the_noise_level(tmp_path, monkeypatch):
    # `cgml train` redraws loss.png with the estimated noise as a horizontal line.
    import openmmcgml.estimator as estimator

    drawn = []
    original = estimator.plot_loss_curve

    def spy(history, ax=None, noise_level=None):
        result = original(history, ax=ax, noise_level=noise_level)
        drawn.append([line.get_ydata() for line in result.get_lines()])
        return result

    monkeypatch.setattr(estimator, "plot_loss_curve", spy)
    history = [{"epoch": 1, "train_loss": 5.0, "val_loss": 4.0}, {"epoch": 2, "train_loss": 3.0, "val_loss": 2.5}]
    estimator.write_loss_plot(history, tmp_path / "loss.png", noise_level=1.75)
    assert (tmp_path / "loss.png").stat().st_size > 0
    assert any(len(y) == 2 and np.allclose(y, 1.75) for y in drawn[0])
