"""openmmcgml.analysis.basins: alanine basin labels, populations and their error bars against analytic cases."""

import doctest

import numpy as np
import pytest

from openmmcgml.analysis import basins
from openmmcgml.analysis.basins import ALANINE_BASINS, assign_basins


def test_doctests():
    assert doctest.testmod(basins, optionflags=doctest.ELLIPSIS).failed == 0


def test_assign_basins_on_a_grid_matches_the_definitions_written_out():
    # every point of a 1-degree grid (offset by half a degree) against the definitions
    phi, psi = np.meshgrid(np.arange(-179.5, 180.0, 1.0), np.arange(-179.5, 180.0, 1.0), indexing="ij")
    labels = assign_basins(phi, psi, units="degrees")
    expected = np.where(phi >= 0, "alpha_L", np.where((psi > -120) & (psi < 50), "alpha_R", "beta"))
    assert labels.shape == phi.shape
    assert (np.array(ALANINE_BASINS)[labels] == expected).all()
    # area fractions of the torus: alpha-R 170/720, beta 190/720, alpha-L 1/2
    np.testing.assert_allclose(np.bincount(labels.ravel()) / labels.size, [170 / 720, 190 / 720, 0.5])


def test_assign_basins_boundaries_wrapping_and_radians():
    phi = [-1e-9, 0.0, -60.0, -60.0, -60.0, -60.0, 300.0, -420.0]
    psi = [0.0, 0.0, -120.0, -119.999, 50.0, 49.999, 0.0, 170.0]
    # 300 deg wraps to -60 (alpha-R); -420 wraps to -60 with psi 170 (beta)
    assert assign_basins(phi, psi, units="degrees").tolist() == [0, 2, 1, 0, 1, 0, 0, 1]
    # radians: points off the boundaries (a boundary value does not round-trip through radians exactly)
    radians = assign_basins(np.radians([-60.0, -60.0, -60.0, 300.0, 10.0]), np.radians([-150.0, -30.0, 60.0, 0.0, 0.0]),
                            units="radians")
    assert radians.tolist() == [1, 0, 1, 0, 2]


@pytest.mark.parametrize("phi, psi, units, message", [
    ([0.0, np.nan], [0.0, 0.0], "degrees", "phi contains NaN"),
    ([0.0], [np.inf], "degrees", "psi contains NaN"),
    ([0.0, 1.0], [0.0], "degrees", "differ in shape"),
    ([0.0], [0.0], "deg", "units must be"),
])
def test_assign_basins_refuses_bad_input(phi, psi, units, message):
    with pytest.raises(ValueError, match=message):
        assign_basins(phi, psi, units=units)


# ------------------------------------------------------------------------ populations and errors

#: A reversible three-state chain (alpha-R, beta, alpha-L) with slow exchange: symmetric rates
#: times the stationary distribution below, so that detailed balance holds by construction.
STATIONARY = np.array([0.3, 0.6, 0.1])
_RATES = np.array([[0.0, 0.02, 0.01], [0.02, 0.0, 0.005], [0.01, 0.005, 0.0]])
TRANSITIONS = _RATES * STATIONARY[None, :]
TRANSITIONS[np.diag_indices(3)] = 1.0 - TRANSITIONS.sum(axis=1)
#: A (phi, psi) in degrees inside each basin, to turn states into angles.
STATE_ANGLES = np.array([[-65.0, -40.0], [-80.0, 150.0], [60.0, 40.0]])


def asymptotic_covariance(transitions, stationary):
    """Exact lim N * Cov(mean of indicators) of a stationary reversible chain.

    With Z = (I - P + 1 pi^T)^-1 the fundamental matrix, sum_{t>=0} (P^t - 1 pi^T) = Z - 1 pi^T, so
    Sigma_jk = pi_j (Z - Pi)_jk + pi_k (Z - Pi)_kj - (pi_j delta_jk - pi_j pi_k) (lag 0 counted once).
    """
    n = len(stationary)
    projector = np.outer(np.ones(n), stationary)
    deviation = np.linalg.inv(np.eye(n) - transitions + projector) - projector
    pi = stationary
    return pi[:, None] * deviation + (pi[:, None] * deviation).T - (np.diag(pi) - np.outer(pi, pi))


def markov_runs(n_datasets, n_runs, n_steps, seed):
    """States of n_datasets x n_runs independent stationary chains, shape (n_datasets, n_runs, n_steps)."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(TRANSITIONS, axis=1)
    states = np.empty((n_datasets * n_runs, n_steps), dtype=np.int64)
    states[:, 0] = rng.choice(3, size=len(states), p=STATIONARY)
    for t in range(1, n_steps):
        u = rng.random(len(states))
        states[:, t] = (u[:, None] > cumulative[states[:, t - 1]]).sum(axis=1)
    return states.reshape(n_datasets, n_runs, n_steps)


def test_markov_chain_construction_is_consistent():
    np.testing.assert_allclose(TRANSITIONS.sum(axis=1), 1.0)
    np.testing.assert_allclose(STATIONARY @ TRANSITIONS, STATIONARY, atol=1e-15)
    flux = STATIONARY[:, None] * TRANSITIONS
    np.testing.assert_allclose(flux, flux.T, atol=1e-15)
    # the asymptotic variance of each indicator against a brute-force sum of its autocovariance
    power, brute = np.eye(3), np.diag(STATIONARY * (1 - STATIONARY))
    for _ in range(20000):
        power = power @ TRANSITIONS
        brute += 2 * np.diag(STATIONARY * np.diag(power) - STATIONARY**2)
    np.testing.assert_allclose(np.diag(asymptotic_covariance(TRANSITIONS, STATIONARY)), np.diag(brute), rtol=1e-6)


@pytest.fixture(scope="module")
def markov_data():
    # 300 data sets of 8 runs x 4000 steps: the integrated autocorrelation time of the
    # indicators is tens of steps, so a run holds about a hundred independent samples
    return markov_runs(n_datasets=300, n_runs=8, n_steps=4000, seed=11)


def _estimates(data, relative_to="beta", **options):
    from openmmcgml.analysis.basins import basin_free_energies, basin_populations

    results = []
    for runs in data:
        angles = STATE_ANGLES[runs]  # (n_runs, n_steps, 2)
        result = basin_populations(list(angles[..., 0]), list(angles[..., 1]), units="degrees", **options)
        energies = basin_free_energies(result, relative_to)
        results.append((result.populations, result.errors,
                        np.array([energies[name][0] for name in ALANINE_BASINS]),
                        np.array([energies[name][1] for name in ALANINE_BASINS])))
    return [np.array(column) for column in zip(*results)]


@pytest.mark.parametrize("n_blocks_per_run", [1, 5])
def test_populations_and_error_bars_match_the_exact_markov_chain_values(markov_data, n_blocks_per_run):
    n_runs, n_steps = markov_data.shape[1:]
    sigma = asymptotic_covariance(TRANSITIONS, STATIONARY)
    true_errors = np.sqrt(np.diag(sigma) / (n_runs * n_steps))
    populations, errors, _, _ = _estimates(markov_data, n_blocks_per_run=n_blocks_per_run)
    # the estimator is unbiased: the mean over 300 data sets within 4 of its standard errors
    np.testing.assert_array_less(np.abs(populations.mean(axis=0) - STATIONARY), 4 * true_errors / np.sqrt(300))
    # the spread of the estimates is the exact standard error (to the 10% a 300-sample std allows)
    np.testing.assert_allclose(populations.std(axis=0, ddof=1), true_errors, rtol=0.15)
    # the error bars: their root-mean-square equals the true error within 15%, and a single data
    # set's bar is mostly within a factor 2 of it (8 blocks, 7 degrees of freedom: chi2_7 / 7 is
    # between 1/4 and 4 with probability 0.97; more blocks, more often)
    np.testing.assert_allclose(np.sqrt(np.mean(errors**2, axis=0)), true_errors, rtol=0.15)
    within = np.mean((errors > true_errors / 2) & (errors < 2 * true_errors), axis=0)
    assert (within > 0.93).all(), within
    # coverage: the true population within 2 error bars in about 95% of the data sets
    covered = np.mean(np.abs(populations - STATIONARY) < 2 * errors, axis=0)
    assert ((covered > 0.88) & (covered < 0.99)).all(), covered


def test_error_bars_ignoring_correlation_are_too_small(markov_data):
    # the check above can fail: one block per frame (the naive binomial error) is several times too small
    n_runs, n_steps = markov_data.shape[1:]
    true_errors = np.sqrt(np.diag(asymptotic_covariance(TRANSITIONS, STATIONARY)) / (n_runs * n_steps))
    _, errors, _, _ = _estimates(markov_data[:5], n_blocks_per_run=n_steps)
    assert (errors.mean(axis=0) < true_errors / 3).all()


def test_free_energy_differences_and_their_propagated_errors(markov_data):
    n_runs, n_steps = markov_data.shape[1:]
    sigma = asymptotic_covariance(TRANSITIONS, STATIONARY) / (n_runs * n_steps)
    p, r = STATIONARY, 1  # relative to beta
    exact = -np.log(p / p[r])
    gradient = np.zeros((3, 3))  # d(dF_k)/d(p_j) = -delta_kj / p_k + delta_rj / p_r
    for k in range(3):
        gradient[k, k] -= 1 / p[k]
        gradient[k, r] += 1 / p[r]
    true_errors = np.sqrt(np.diag(gradient @ sigma @ gradient.T))
    _, _, energies, energy_errors = _estimates(markov_data, n_blocks_per_run=5)
    assert energies[:, r].tolist() == [0.0] * len(energies) and energy_errors[:, r].tolist() == [0.0] * len(energies)
    others = [0, 2]
    # -ln is convex: to second order the mean is exact + C_kk / (2 p_k^2) - C_rr / (2 p_r^2)
    second_order = exact + np.diag(sigma) / (2 * p**2) - sigma[r, r] / (2 * p[r] ** 2)
    np.testing.assert_array_less(np.abs(energies.mean(axis=0) - second_order)[others],
                                 4 * true_errors[others] / np.sqrt(len(energies)))
    np.testing.assert_allclose(energies.std(axis=0, ddof=1)[others], true_errors[others], rtol=0.15)
    np.testing.assert_allclose(np.sqrt(np.mean(energy_errors**2, axis=0))[others], true_errors[others], rtol=0.15)


def test_populations_unequal_runs_and_bad_input():
    from openmmcgml.analysis.basins import basin_free_energies, basin_populations

    # frames pooled: 3 of 4 + 1 of 2 in alpha-R
    result = basin_populations([np.array([-60.0] * 4), np.array([-60.0, -60.0])],
                               [np.array([0.0, 0.0, 0.0, 100.0]), np.array([0.0, 100.0])], units="degrees",
                               n_blocks_per_run=2)
    np.testing.assert_allclose(result.populations, [4 / 6, 2 / 6, 0.0])
    assert result.population("alpha_L") == (0.0, 0.0)
    energies = basin_free_energies(result, "alpha_R")
    assert energies["alpha_L"][0] == np.inf and np.isnan(energies["alpha_L"][1])
    with pytest.raises(ValueError, match="holds no frames"):
        basin_free_energies(result, "alpha_L")
    with pytest.raises(ValueError, match="unknown basin"):
        basin_free_energies(result, "C7eq")
    with pytest.raises(ValueError, match="no error estimate"):
        basin_populations(np.zeros(10), np.zeros(10), units="degrees", n_blocks_per_run=1)
    with pytest.raises(ValueError, match="fewer than n_blocks_per_run"):
        basin_populations([np.zeros(3), np.zeros(10)], [np.zeros(3), np.zeros(10)], units="degrees",
                          n_blocks_per_run=4)
    with pytest.raises(ValueError, match="runs"):
        basin_populations([np.zeros(3), np.zeros(3)], [np.zeros(3)], units="degrees")
    with pytest.raises(ValueError, match="run 0"):
        basin_populations([np.zeros(3)], [np.zeros(4)], units="degrees", n_blocks_per_run=1)
    with pytest.raises(ValueError, match="positive integer"):
        basin_populations(np.zeros(10), np.zeros(10), units="degrees", n_blocks_per_run=0)
    with pytest.raises(ValueError, match="1-D"):
        basin_populations(np.zeros((2, 5)), np.zeros((2, 5)), units="degrees")


# ------------------------------------------------------------------------ report and noise floor

ALANINE_NAMES = ["C", "N", "CA", "C", "N"]


def alanine_frames(phi_psi_degrees, seed):
    """5-bead alanine backbones (nm) with the given (phi, psi) in degrees, bonds and angles jittered."""
    from openmmcgml.analysis import build_chain

    rng = np.random.default_rng(seed)
    frames = [build_chain(np.array([0.133, 0.146, 0.152, 0.133]) + rng.normal(scale=0.003, size=4),
                          1.95 + rng.normal(scale=0.05, size=3), np.radians(angles)) for angles in phi_psi_degrees]
    return np.array(frames)


def basin_run(labels, seed):
    """A run whose frames sit in the basins ``labels`` (0, 1, 2), angles scattered inside each basin."""
    rng = np.random.default_rng(seed)
    centres = STATE_ANGLES[np.asarray(labels)]
    return alanine_frames(centres + rng.uniform(-15, 15, size=centres.shape), seed)


def test_report_gives_basin_populations_and_free_energies_of_reference_model_and_training():
    from openmmcgml.analysis import report

    rng = np.random.default_rng(3)
    labels = {"reference": [rng.choice(3, 80, p=[0.3, 0.6, 0.1]) for _ in range(3)],
              "model": [rng.choice(3, 80, p=[0.5, 0.45, 0.05]) for _ in range(2)],
              "training": [rng.choice(3, 80, p=[0.2, 0.7, 0.1]) for _ in range(2)]}
    runs = {name: [basin_run(r, seed=k) for k, r in enumerate(value)] for name, value in labels.items()}
    metrics = report(runs["reference"], runs["model"], bead_names=ALANINE_NAMES, lagtime=5, bins=30, plots=False,
                     training=runs["training"], basin_blocks=4)
    for key in ("phi_psi_js", "tica_w1_2d", "phi_js", "psi_js"):  # today's metrics are still there
        assert key in metrics
    expected = {}
    for name, value in labels.items():
        if name == "model":  # the report drops the first 10% of each model run (8 of 80 frames)
            value = [r[8:] for r in value]
        counts = np.bincount(np.concatenate(value), minlength=3)
        populations = counts / counts.sum()
        expected[name] = -np.log(populations / populations[1])
        for k, basin in enumerate(ALANINE_BASINS):
            assert metrics[f"{name}_population_{basin}"] == pytest.approx(populations[k], abs=1e-12), (name, basin)
            assert metrics[f"{name}_population_{basin}_error"] > 0
        for k in (0, 2):
            assert metrics[f"{name}_dF_{ALANINE_BASINS[k]}_kT"] == pytest.approx(expected[name][k], abs=1e-12)
            assert metrics[f"{name}_dF_{ALANINE_BASINS[k]}_kT_error"] > 0
        assert metrics[f"{name}_basin_blocks"] == 4 * len(value)
    assert metrics["model_dF_max_deviation_kT"] == pytest.approx(np.abs(expected["model"] - expected["reference"]).max())


def test_report_basins_of_a_model_that_misses_a_basin_are_none_not_infinite():
    import json

    from openmmcgml.analysis import report

    reference = [basin_run(np.repeat([0, 1, 2, 1], 15), seed=k) for k in range(2)]
    model = [basin_run(np.repeat([0, 1, 1, 1], 15), seed=5 + k) for k in range(2)]
    metrics = report(reference, model, bead_names=ALANINE_NAMES, lagtime=5, bins=30, plots=False, discard=0.0)
    assert metrics["model_population_alpha_L"] == 0.0
    assert metrics["model_dF_alpha_L_kT"] is None and metrics["model_dF_max_deviation_kT"] is None
    json.loads(json.dumps(metrics), parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))


def test_noise_floor_mean_and_spread_over_sets():
    from openmmcgml.analysis import noise_floor, report

    rng = np.random.default_rng(8)
    reference = [basin_run(rng.choice(3, 60, p=[0.3, 0.6, 0.1]), seed=k) for k in range(3)]
    sets = [[basin_run(rng.choice(3, 60, p=[0.3, 0.6, 0.1]), seed=10 * s + k) for k in range(2)] for s in range(3)]
    options = {"bead_names": ALANINE_NAMES, "lagtime": 5, "bins": 30}
    floor = noise_floor(reference, sets, **options)
    assert floor["n_sets"] == 3 and len(floor["per_set"]) == 3
    # each set scored as report scores it with no burn-in; the summary statistics of those scores
    scores = [report(reference, one, discard=0.0, plots=False, **options) for one in sets]
    for key in ("phi_psi_js", "tica_w1_2d", "model_population_beta"):
        values = np.array([m[key] for m in scores])
        assert floor["mean"][key] == pytest.approx(values.mean())
        assert floor["std"][key] == pytest.approx(values.std(ddof=1))
        assert floor["min"][key] == pytest.approx(values.min()) and floor["max"][key] == pytest.approx(values.max())
    assert scores[0]["n_model_frames"] == 120
    with pytest.raises(ValueError, match="at least two"):
        noise_floor(reference, sets[:1], **options)


def test_cli_evaluate_reports_the_basins_of_a_training_set(tmp_path, capsys):
    import json
    import os

    from cg_standin import write_cg_dataset
    from openmmcgml.cli import main

    rng = np.random.default_rng(4)
    files = {}
    for name, n_runs in (("reference", 2), ("samples", 2), ("training", 3)):
        runs = [basin_run(rng.choice(3, 50, p=[0.3, 0.6, 0.1]), seed=20 + k) for k in range(n_runs)]
        files[name] = write_cg_dataset(tmp_path / f"{name}.h5", runs, ALANINE_NAMES)
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "configs",
                          "evaluate-alanine.yaml")
    arguments = ["evaluate", config, "--quiet"] + [item for key, value in files.items()
                                                   for item in ("--set", f"{key}={value}")]
    arguments += ["--set", f"output={tmp_path / 'evaluation'}", "--set", "lagtime=5", "--set", "plots=false",
                  "--set", "basin_blocks=2"]
    assert main(arguments) == 0
    metrics = json.load(open(tmp_path / "evaluation" / "metrics.json"))
    for name in ("reference", "model", "training"):
        populations = [metrics[f"{name}_population_{basin}"] for basin in ALANINE_BASINS]
        assert sum(populations) == pytest.approx(1.0)
    assert metrics["training_basin_blocks"] == 6 and metrics["reference_basin_blocks"] == 4
    capsys.readouterr()
    assert main(arguments[:-2] + ["--set", f"training={tmp_path / 'missing.h5'}"]) != 0
    assert "missing.h5" in capsys.readouterr().err


def test_noise_floor_script(tmp_path, capsys):
    import importlib.util
    import json
    import os

    from cg_standin import write_cg_dataset

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("noise_floor_script", os.path.join(root, "benchmarks", "noise_floor.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(9)
    paths = []
    for k in range(4):
        runs = [basin_run(rng.choice(3, 50, p=[0.3, 0.6, 0.1]), seed=30 + 2 * k + j) for j in range(2)]
        paths.append(str(write_cg_dataset(tmp_path / f"set{k}.h5", runs, ALANINE_NAMES)))
    output = tmp_path / "floor.json"
    assert script.main([paths[0], *paths[1:], "--lagtime", "5", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "3 sets against" in printed and "phi_psi_js" in printed
    summary = json.load(open(output))
    js = [m["phi_psi_js"] for m in summary["per_set"]]
    assert summary["n_sets"] == 3 and summary["mean"]["phi_psi_js"] == pytest.approx(np.mean(js))
    assert summary["std"]["phi_psi_js"] == pytest.approx(np.std(js, ddof=1))


def test_a_reference_in_several_files_scores_as_one(tmp_path, capsys):
    import json
    import os

    from cg_standin import write_cg_dataset
    from openmmcgml.analysis import report
    from openmmcgml.cli import main

    rng = np.random.default_rng(12)
    runs = [basin_run(rng.choice(3, 50, p=[0.3, 0.6, 0.1]), seed=40 + k) for k in range(4)]
    model = [basin_run(rng.choice(3, 50, p=[0.4, 0.5, 0.1]), seed=50 + k) for k in range(2)]
    whole = write_cg_dataset(tmp_path / "whole.h5", runs, ALANINE_NAMES)
    first = write_cg_dataset(tmp_path / "a.h5", runs[:2], ALANINE_NAMES)
    second = write_cg_dataset(tmp_path / "b.h5", runs[2:], ALANINE_NAMES)
    options = {"lagtime": 5, "bins": 30, "plots": False}
    one = report(whole, model, **options)
    split = report([first, second], model, **options)
    assert split.keys() == one.keys()
    for key, value in one.items():
        assert split[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    hot = write_cg_dataset(tmp_path / "hot.h5", runs[2:], ALANINE_NAMES, temperature=350.0)
    with pytest.raises(ValueError, match="350.0 K"):
        report([first, hot], model, **options)
    samples = write_cg_dataset(tmp_path / "model.h5", model, ALANINE_NAMES)
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "configs",
                          "evaluate-alanine.yaml")
    output = tmp_path / "evaluation"
    assert main(["evaluate", config, "--quiet", "--set", f"reference=[{first}, {second}]", "--set", f"samples={samples}",
                 "--set", f"output={output}", "--set", "lagtime=5", "--set", "bins=30", "--set", "plots=false"]) == 0
    assert json.load(open(output / "metrics.json"))["n_reference_frames"] == 200
    assert main(["evaluate", config, "--quiet", "--set", "reference=[]", "--set", f"samples={samples}"]) != 0
    assert "reference" in capsys.readouterr().err


def test_state_populations_equal_blocks_match_the_textbook_standard_error():
    """With equal blocks the error is the standard deviation of the block means over sqrt(B)."""
    from openmmcgml.analysis.basins import state_populations

    rng = np.random.default_rng(7)
    runs = [(rng.random(100) < 0.3).astype(int) for _ in range(4)]
    result = state_populations(runs, names=("unfolded", "folded"), n_blocks_per_run=5)
    block_means = np.array([block.mean() for run in runs for block in np.split(run, 5)])
    assert result.n_blocks == 20 and result.block_frames == 20
    assert result.population("folded")[0] == pytest.approx(np.concatenate(runs).mean(), abs=1e-15)
    assert result.population("folded")[1] == pytest.approx(block_means.std(ddof=1) / np.sqrt(20), rel=1e-12)
    assert result.errors[0] == pytest.approx(result.errors[1], rel=1e-12)  # two states: same error


def test_state_populations_refuses_labels_that_are_not_state_indices():
    from openmmcgml.analysis.basins import state_populations

    names = ("unfolded", "folded")
    with pytest.raises(ValueError, match="non-negative integers"):
        state_populations([np.array([0, -1, 1, 0])], names=names, n_blocks_per_run=2)
    with pytest.raises(ValueError, match="non-negative integers"):
        state_populations([np.array([0.0, 0.5, 1.0, 0.0])], names=names, n_blocks_per_run=2)
    with pytest.raises(ValueError, match="non-negative integers"):
        state_populations([np.array([0.0, np.nan, 1.0, 0.0])], names=names, n_blocks_per_run=2)
    with pytest.raises(ValueError, match="2 state names given for labels up to 2"):
        state_populations([np.array([0, 2, 1, 0])], names=names, n_blocks_per_run=2)
