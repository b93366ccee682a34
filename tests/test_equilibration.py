"""Equilibration of CG sampling: replicas started only from one basin (``initial.basin``) and the
comparison of two such sets over growing windows (openmmcgml.analysis.equilibration)."""

import doctest
import math

import numpy as np
import pytest

from cg_standin import ALANINE_BONDS, ALANINE_NAMES, real_alanine_cgmodel, write_cg_dataset
from openmmcgml.analysis import equilibration
from openmmcgml.analysis.basins import ALANINE_BASINS
from openmmcgml.analysis.distributions import histogram_js_2d
from openmmcgml.analysis.equilibration import basin_frames, compare_starts
from openmmcgml.analysis.geometry import alanine_phi_psi, build_chain

#: (phi, psi) centres in degrees of the two basins the synthetic chains visit.
CENTRES = np.radians([[-70.0, -40.0], [-120.0, 140.0]])


def two_state_chains(start, n_chains, n_frames, to_beta, to_alpha, seed, spread=0.25):
    """Runs of (phi, psi) of a two-state Markov chain (0: alpha-R, 1: beta) recorded after every step.

    The chance to leave alpha-R per step is ``to_beta``, to leave beta ``to_alpha``; the population
    gap between chains started in either state decays as ``(1 - to_beta - to_alpha) ** t``.
    """
    rng = np.random.default_rng(seed)
    state = np.full(n_chains, start)
    runs = np.empty((n_chains, n_frames, 2))
    for k in range(n_frames):
        leave = rng.random(n_chains) < np.where(state == 0, to_beta, to_alpha)
        state = np.where(leave, 1 - state, state)
        runs[:, k] = CENTRES[state] + rng.normal(scale=spread, size=(n_chains, 2))
    return list(runs)


def relaxation_time(to_beta, to_alpha, frame_time=1.0):
    return -frame_time / math.log(1.0 - to_beta - to_alpha)


def predicted_agreement(tau, gap):
    """The T at which the mean population gap over (0, T], tau (1 - exp(-T / tau)) / T, falls to ``gap``."""
    from scipy.optimize import brentq

    return brentq(lambda t: tau * (1.0 - math.exp(-t / tau)) / t - gap, 1e-6 * tau, 1e6 * tau)


def test_agreement_time_follows_the_relaxation_time():
    """Chains started in alpha-R and in beta: the first window from which the populations agree within
    0.1 lies where the analytic mean gap tau/T reaches 0.1, and scales with tau."""
    found = {}
    for switch in (0.02, 0.05):
        tau = relaxation_time(switch, switch)
        alpha = two_state_chains(0, 400, 600, switch, switch, seed=1)
        beta = two_state_chains(1, 400, 600, switch, switch, seed=2)
        check = compare_starts(beta, alpha, frame_time=1.0, windows=np.arange(10, 601, 10),
                               population_tolerance=0.1, labels=("beta", "alpha_R"))
        expected = predicted_agreement(tau, 0.1)
        assert 0.75 * expected <= check.agreement_time <= 1.35 * expected, (tau, expected, check.agreement_time)
        found[switch] = check.agreement_time
        # the gap the table reports is the analytic one (to the noise of 400 chains)
        gap = check.populations_first[:, 1] - check.populations_second[:, 1]
        ends = check.window_ends
        analytic = -tau * (1.0 - np.exp(-ends / tau)) / ends  # beta start minus alpha-R start, alpha-R column
        assert np.abs(check.populations_first[:, 0] - check.populations_second[:, 0] - analytic)[5:].max() < 0.04
        assert np.all(gap[5:] > 0)
        # the populations sum to one; alpha-L holds only the far tail of the beta Gaussian
        assert np.allclose(check.populations_first.sum(axis=1), 1.0)
        assert np.all(check.populations_first[:, 2] < 1e-3)
    # 2.5 times slower relaxation, 2.5 times later agreement (within the noise)
    ratio = found[0.02] / found[0.05]
    assert 1.8 < ratio < 3.3, found


def test_a_burn_in_of_several_relaxation_times_removes_the_start():
    switch = 0.05
    tau = relaxation_time(switch, switch)
    alpha = two_state_chains(0, 200, 400, switch, switch, seed=3)
    beta = two_state_chains(1, 200, 400, switch, switch, seed=4)
    # the noise floor at the window sizes below: two sets of chains started from equilibrium
    mixed = [two_state_chains(k % 2, 1, 400, switch, switch, seed=10 + k)[0] for k in range(400)]
    floor = compare_starts(mixed[:200], mixed[200:], frame_time=1.0, burn_in=8 * tau, windows=4,
                           population_tolerance=1.0)
    tolerance = 1.3 * floor.js.max()
    late = compare_starts(beta, alpha, frame_time=1.0, burn_in=8 * tau, windows=4, tolerance=tolerance)
    assert late.agreement_time == pytest.approx(late.window_ends[0])
    # without a burn-in the first windows carry the start: the beta set is 80 % beta over its first 10 ps
    early = compare_starts(beta, alpha, frame_time=1.0, burn_in=0.0, windows=[10, 20, 40, 100, 200, 400],
                           tolerance=tolerance)
    assert not early.agrees[0] and early.js[0] > 3 * tolerance
    assert early.populations_first[0, 1] > 0.75 and early.populations_second[0, 0] > 0.75
    assert 4 * tau < early.agreement_time <= 400
    assert "agree (JS <= " in late.table()


def test_different_equilibria_never_agree():
    """A model whose beta start keeps other populations (a second, unconnected beta well, say) is found out."""
    alpha = two_state_chains(0, 100, 300, 0.05, 0.05, seed=5)
    beta = two_state_chains(1, 100, 300, 0.02, 0.08, seed=6)  # equilibrium 80 % alpha-R
    check = compare_starts(beta, alpha, frame_time=1.0, windows=5, population_tolerance=0.1)
    assert check.agreement_time is None
    assert abs(check.populations_first[-1, 0] - 0.8) < 0.05 and abs(check.populations_second[-1, 0] - 0.5) < 0.06
    assert "do not agree" in check.table() and "run longer" in check.table()
    assert check.to_dict()["agreement_time_ps"] is None


def test_js_and_populations_against_direct_counts():
    rng = np.random.default_rng(7)
    a = [CENTRES[0] + rng.normal(scale=0.1, size=(50, 2)) for _ in range(3)]
    b = [CENTRES[1] + rng.normal(scale=0.1, size=(50, 2)) for _ in range(3)]
    apart = compare_starts(a, b, frame_time=2.0, windows=[20.0, 100.0], tolerance=0.1)
    # no bin in common: the JS distance is sqrt(ln 2)
    assert np.allclose(apart.js, math.sqrt(math.log(2.0)))
    assert apart.frames_first.tolist() == [30, 150] and apart.frames_second.tolist() == [30, 150]
    assert np.allclose(apart.populations_first, [1, 0, 0]) and np.allclose(apart.populations_second, [0, 1, 0])
    same = compare_starts(a, a, frame_time=2.0, windows=[20.0, 100.0], tolerance=0.0)
    assert np.all(same.js == 0.0) and same.agreement_time == 20.0
    # max_frames: the JS distance of evenly strided frames, the populations of all
    c = [CENTRES[0] + rng.normal(scale=0.3, size=(50, 2)) for _ in range(3)]
    thinned = compare_starts(a, c, frame_time=2.0, windows=[100.0], tolerance=1.0, max_frames=30)
    pick = np.linspace(0, 149, 30).round().astype(int)
    assert thinned.js[0] == pytest.approx(histogram_js_2d(np.concatenate(a)[pick], np.concatenate(c)[pick]), abs=1e-12)
    assert thinned.js[0] > compare_starts(a, c, frame_time=2.0, windows=[100.0], tolerance=1.0).js[0]
    assert thinned.frames_first.tolist() == [150] and thinned.to_dict()["max_frames"] == 30
    # the burn-in drops the frames at t <= burn_in: 50 frames at 2 ps, 10 of them by 20 ps
    burnt = compare_starts(a, b, frame_time=2.0, burn_in=20.0, windows=[100.0], tolerance=1)
    assert burnt.frames_first.tolist() == [120]


def test_bad_input_is_refused_by_name():
    runs = [np.zeros((10, 2))]
    with pytest.raises(ValueError, match="give tolerance"):
        compare_starts(runs, runs, frame_time=1.0)
    with pytest.raises(ValueError, match="frame_time"):
        compare_starts(runs, runs, tolerance=0.1)
    with pytest.raises(ValueError, match="burn-in of 20 ps"):
        compare_starts(runs, runs, frame_time=1.0, burn_in=20.0, tolerance=0.1)
    with pytest.raises(ValueError, match="last window ends at 50 ps"):
        compare_starts(runs, runs, frame_time=1.0, windows=[5.0, 50.0], tolerance=0.1)
    with pytest.raises(ValueError, match="tolerance must be"):
        compare_starts(runs, runs, frame_time=1.0, tolerance=-1.0)
    with pytest.raises(ValueError, match="max_frames must be"):
        compare_starts(runs, runs, frame_time=1.0, tolerance=0.1, max_frames=0)
    with pytest.raises(ValueError, match="5 beads"):
        compare_starts([np.zeros((10, 4, 3))], runs, frame_time=1.0, tolerance=0.1)


def chain(phi, psi):
    return build_chain(ALANINE_BONDS, [1.95] * 3, np.radians([phi, psi]))


def reference_frames():
    """Frames in alpha-R (3), beta (2) and alpha-L (1), with their basin index."""
    angles = [(-60, -45), (-80, -20), (-100, 30), (-120, 140), (-70, -150), (60, 40)]
    return np.stack([chain(*a) for a in angles]), [0, 0, 0, 1, 1, 2]


def test_basin_frames_selects_by_the_shared_basin_definition(tmp_path):
    frames, basins = reference_frames()
    path = write_cg_dataset(tmp_path / "ref.h5", [frames[:4], frames[4:]], ALANINE_NAMES)
    for index, name in enumerate(ALANINE_BASINS):
        chosen = basin_frames(path, name)
        assert len(chosen) == basins.count(index)
        phi, psi = np.degrees(alanine_phi_psi(chosen))
        expected = np.array([a for a, b in zip([(-60, -45), (-80, -20), (-100, 30), (-120, 140), (-70, -150),
                                                (60, 40)], basins) if b == index], dtype=float)
        assert np.allclose(np.stack([phi, psi], 1), expected, atol=1e-3)
    with pytest.raises(ValueError, match="unknown basin 'helix'"):
        basin_frames(path, "helix")
    with pytest.raises(ValueError, match=r"no frame .* in basin alpha_L \(frames per basin: alpha_R 3, beta 2, "
                                         r"alpha_L 0\)"):
        basin_frames(frames[:5], "alpha_L")
    ca = write_cg_dataset(tmp_path / "ca.h5", [frames], ["CA"] * 5)
    with pytest.raises(ValueError, match="beads CA, CA, CA, CA, CA"):
        basin_frames(ca, "beta")


def test_simulate_setting_initial_basin_is_checked():
    from openmmcgml.configs.simulate import SimulateConfig

    config = SimulateConfig.from_dict({"initial": {"reference": "ref.h5", "basin": "beta"}})
    assert config.initial["basin"] == "beta"
    with pytest.raises(ValueError, match=r"simulate setting 'initial.basin' must be one of alpha_R, beta, alpha_L"):
        SimulateConfig.from_dict({"initial": {"reference": "ref.h5", "basin": "helix"}})
    with pytest.raises(ValueError, match="give initial.reference"):
        SimulateConfig.from_dict({"initial": {"structure": "start.pdb", "basin": "beta"}})
    with pytest.raises(ValueError, match="unknown simulate setting.*initial.basn"):
        SimulateConfig.from_dict({"initial": {"reference": "ref.h5", "basn": "beta"}})


def test_replicas_from_each_basin_in_a_tiny_cg_run(tmp_path):
    """cgml simulate with initial.basin starts every replica in that basin; compare_starts reads the
    two output files with their own time axis."""
    pytest.importorskip("openmm")
    from openmmcgml.configs.simulate import run_config
    from openmmcgml.simulation import read_trajectories

    model = real_alanine_cgmodel(seed=1)
    if model is None:
        pytest.skip("openmmcgml.cgmodel is missing")
    model_path = tmp_path / "model.pt"
    model.save(model_path)
    rng = np.random.default_rng(0)
    frames, basins = reference_frames()
    noisy = frames[np.repeat(np.arange(6), 4)] + rng.normal(scale=0.002, size=(24, 5, 3))
    reference = write_cg_dataset(tmp_path / "reference.h5", [noisy], ALANINE_NAMES)
    outputs = {}
    for basin in ("beta", "alpha_R"):
        outputs[basin] = str(tmp_path / f"{basin}.h5")
        run_config({"model": str(model_path), "replicas": 6, "steps": 200, "report_interval": 10, "timestep": 0.001,
                    "initial": {"reference": str(reference), "basin": basin}, "output": outputs[basin],
                    "progress": False, "seed": 3}, quiet=True, print_fn=lambda text: None)
        first_frames = np.stack([run[0] for run in read_trajectories(outputs[basin]).coordinates])
        phi, psi = alanine_phi_psi(first_frames)
        from openmmcgml.analysis.basins import assign_basins

        # 10 fs after the start every replica is still in its basin
        assert np.all(assign_basins(phi, psi, units="radians") == ALANINE_BASINS.index(basin))
    check = compare_starts(outputs["beta"], outputs["alpha_R"], windows=2, tolerance=1.0, labels=("beta", "alpha_R"))
    assert check.window_ends.tolist() == pytest.approx([0.1, 0.2])
    assert check.frames_first.tolist() == [60, 120]
    # the first 0.1 ps still carry the start
    assert check.populations_first[0, 1] > 0.6 and check.populations_second[0, 0] > 0.6
    with pytest.raises(ValueError, match="no frame of the starting data lies in basin alpha_L"):
        run_config({"model": str(model_path), "replicas": 2, "steps": 10, "initial": {
            "reference": str(write_cg_dataset(tmp_path / "no-l.h5", [frames[:5]], ALANINE_NAMES)),
            "basin": "alpha_L"}, "output": str(tmp_path / "l.h5"), "progress": False}, quiet=True,
            print_fn=lambda text: None)


def test_docstring_examples():
    failures, attempted = doctest.testmod(equilibration)
    assert attempted > 5 and failures == 0


def test_population_errors_come_from_independent_replicas():
    """From 8 replicas on, a population's error is the spread of the replicas' own fractions / sqrt(n)."""
    switch = 0.05
    alpha = two_state_chains(0, 12, 300, switch, switch, seed=20)
    beta = two_state_chains(1, 12, 300, switch, switch, seed=21)
    check = compare_starts(beta, alpha, frame_time=1.0, windows=[100, 300], population_sigmas=2.0)
    for k, end in enumerate([100, 300]):
        fractions = np.array([np.mean(run[:end, 1] > np.radians(50.0)) for run in beta])  # beta: psi >= 50 here
        assert check.populations_first[k, 1] == pytest.approx(fractions.mean())
        assert check.errors_first[k, 1] == pytest.approx(fractions.std(ddof=1) / math.sqrt(12))
    assert "+- " in check.table() and "standard errors" in check.table()
    # different equilibria (80 % and 50 % alpha-R): the gap is many standard errors
    far = compare_starts(two_state_chains(1, 40, 300, 0.02, 0.08, seed=22),
                         two_state_chains(0, 40, 300, switch, switch, seed=23), frame_time=1.0,
                         burn_in=100.0, windows=2, population_sigmas=3.0)
    assert far.agreement_time is None
    # one set of 3 replicas: 4 blocks in time per replica; a single frame per replica gives no error
    few = compare_starts(beta[:3], alpha[:3], frame_time=1.0, windows=[1, 300], population_sigmas=2.0)
    assert np.isnan(few.errors_first[0]).all() and not few.agrees[0] and np.isfinite(few.errors_first[1]).all()
