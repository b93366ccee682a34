"""openmmcgml.analysis against independent references: analytic values, mdtraj, PeptideBuilder structures."""

import doctest
import importlib
import json
import os

import numpy as np
import pytest

from cg_standin import ALANINE_BONDS, ALANINE_NAMES, write_cg_dataset
from openmmcgml.analysis import (NativeContacts, TICAMetrics, alanine_phi_psi, autocorrelation, bond_angles,
                                 bond_lengths, build_chain, dihedral_angles, free_energy_1d, free_energy_2d,
                                 histogram_js, histogram_js_2d, integrated_autocorrelation_time, js_distance,
                                 msm_implied_timescales, plots, radius_of_gyration, report, rmsd, w1_kde_1d,
                                 w1_kde_2d, w1_samples_1d)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQRT_LN2 = np.sqrt(np.log(2.0))

#: Backbone phi/psi (degrees) of chignolin CLN025 (YYDPETGTWY), measured on the crystal structure
#: PDB 5AWL; phi of residues 2-10 and psi of residues 1-9.  PeptideBuilder rebuilds the hairpin
#: from them to 0.4 A CA RMSD.
CLN025 = "YYDPETGTWY"
CLN025_PHI = [-93.3, -75.6, -71.8, -91.9, -106.3, 70.4, -104.0, -80.6, -136.8]
CLN025_PSI = [150.4, 138.4, 133.6, -20.9, -40.8, -17.1, 17.0, 153.3, 133.2]


def peptide(sequence, phi, psi):
    """A Bio.PDB structure built by PeptideBuilder (phi[k], psi[k] of residue k + 2 and k + 1)."""
    PeptideBuilder = pytest.importorskip("PeptideBuilder")
    from PeptideBuilder import Geometry

    structure = PeptideBuilder.initialize_res(Geometry.geometry(sequence[0]))
    for k, residue in enumerate(sequence[1:]):
        geometry = Geometry.geometry(residue)
        geometry.phi, geometry.psi_im1 = phi[k], psi[k]
        structure = PeptideBuilder.add_residue(structure, geometry)
    return structure


def ca_trace(structure):
    return np.array([atom.coord for atom in structure.get_atoms() if atom.get_id() == "CA"], dtype=float) / 10.0


def random_rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def synthetic_alanine(n_runs, n_frames, seed, beta_weight=0.5, stay=0.97):
    """Runs of 5-bead alanine backbones hopping between alpha-helical and beta basins."""
    rng = np.random.default_rng(seed)
    centres = np.radians([[-63.0, -42.0], [-120.0, 130.0]])
    runs = []
    for _ in range(n_runs):
        state = int(rng.random() < beta_weight)
        run = []
        for _ in range(n_frames):
            if rng.random() > stay:
                state = int(rng.random() < beta_weight)
            torsions = centres[state] + rng.normal(scale=0.2, size=2)
            bonds = np.array(ALANINE_BONDS) + rng.normal(scale=0.003, size=4)
            angles = 1.95 + rng.normal(scale=0.05, size=3)
            run.append(build_chain(bonds, angles, torsions) + rng.normal(size=3))
        runs.append(np.array(run))
    return runs


# ------------------------------------------------------------------------------ distances of distributions

def test_js_distance_identical_and_disjoint():
    assert js_distance([3, 1, 2], [3, 1, 2]) == 0.0
    assert js_distance([3, 1, 2], [6, 2, 4]) == 0.0  # counts are normalised
    assert js_distance([1, 0, 0, 0], [0, 0, 0, 1]) == pytest.approx(SQRT_LN2, rel=1e-12)
    # a subnormal probability against an empty bin (a model with all its weight elsewhere): no NaN,
    # and not the 0 it once rounded to
    assert js_distance([1e-300, 0.0, 1.0 - 1e-300, 2e-323], [0.5, 0.5, 0.0, 0.0]) == pytest.approx(SQRT_LN2)
    # against scipy where scipy is well defined
    from scipy.spatial.distance import jensenshannon

    p, q = np.random.default_rng(5).random((2, 40))
    q[:8] = 0.0
    assert js_distance(p, q) == pytest.approx(float(jensenshannon(p, q)), rel=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        js_distance([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="negative"):
        js_distance([1.0, -1.0, 1.0], [1.0, 1.0, 1.0])
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert histogram_js(a, a) == 0.0
    assert histogram_js(a, a + 100.0) == pytest.approx(SQRT_LN2)  # the overflow bin catches the model
    assert histogram_js(a, rng.normal(size=5000)) < 0.08
    torsions = rng.uniform(-np.pi, np.pi, size=(4000, 2))
    assert histogram_js_2d(torsions, torsions) == 0.0
    assert histogram_js_2d(torsions[torsions[:, 0] < 0], torsions[torsions[:, 0] > 0]) == pytest.approx(SQRT_LN2)
    # per-column input gives one distance per column
    assert histogram_js(rng.normal(size=(100, 3)), rng.normal(size=(100, 3))).shape == (3,)


def test_w1_kde_grid_sanity_figures():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(6000, 2))
    same = rng.normal(size=(6000, 2))
    shift = np.array([0.6, 0.8])  # |shift| = 1
    assert w1_kde_2d(reference, reference) == pytest.approx(0.0, abs=1e-9)
    assert w1_kde_2d(reference, same) < 0.06
    assert w1_kde_2d(reference, same + shift) == pytest.approx(1.0, rel=0.05)
    assert w1_kde_2d(reference, same + 2 * shift, bounds="union") == pytest.approx(2.0, rel=0.05)
    # 1-D on a 100-point grid, against the exact W1 of the samples
    assert w1_kde_1d(reference[:, 0], same[:, 0] + 0.5) == pytest.approx(0.5, rel=0.05)
    assert w1_samples_1d(reference[:, 0], reference[:, 0] + 0.5) == pytest.approx(0.5)
    with pytest.warns(UserWarning, match="inf"):
        assert w1_kde_2d(reference, same + 100.0) == float("inf")


def test_free_energies():
    values = np.repeat([0.5, 1.5], [100, 10])
    f, edges = free_energy_1d(values, bins=2, range=(0, 2), kT=2.5)
    assert f == pytest.approx([0.0, 2.5 * np.log(10)])
    f2, xe, ye = free_energy_2d([0.5, 0.5, 1.5], [0.5, 0.5, 0.5], bins=2, range=((0, 2), (0, 2)))
    assert f2[0, 0] == 0 and f2[1, 0] == pytest.approx(np.log(2)) and np.isinf(f2[0, 1])


# ------------------------------------------------------------------------------ geometry

def test_internal_coordinates_roundtrip_and_mdtraj_convention():
    md = pytest.importorskip("mdtraj")
    rng = np.random.default_rng(2)
    bonds, angles, torsions = rng.uniform(0.3, 0.4, 6), rng.uniform(1.2, 2.6, 5), rng.uniform(-np.pi, np.pi, 4)
    x = build_chain(bonds, angles, torsions)
    np.testing.assert_allclose(bond_lengths(x)[0], bonds, atol=1e-12)
    np.testing.assert_allclose(bond_angles(x)[0], angles, atol=1e-12)
    np.testing.assert_allclose(dihedral_angles(x)[0], torsions, atol=1e-12)
    top = md.Topology()
    residue = top.add_residue("GLY", top.add_chain())
    for _ in range(7):
        top.add_atom("CA", md.element.carbon, residue)
    quads = [(i, i + 1, i + 2, i + 3) for i in range(4)]
    np.testing.assert_allclose(md.compute_dihedrals(md.Trajectory(x[None], top), quads)[0], torsions, atol=1e-5)


def test_alanine_phi_psi_from_cg_beads_equal_mdtraj_on_all_atom_structure(tmp_path):
    md = pytest.importorskip("mdtraj")
    PDBIO = pytest.importorskip("Bio.PDB").PDBIO

    for phi, psi in [(-63.0, -42.0), (-120.0, 130.0), (60.0, 45.0), (-150.0, -170.0)]:
        structure = peptide("AAA", [phi, -70.0], [150.0, psi])  # the middle residue has (phi, psi)
        io = PDBIO()
        io.set_structure(structure)
        path = str(tmp_path / "aaa.pdb")
        io.save(path)
        traj = md.load(path)
        atoms = {(a.residue.index, a.name): a.index for a in traj.topology.atoms}
        beads = [atoms[(0, "C")], atoms[(1, "N")], atoms[(1, "CA")], atoms[(1, "C")], atoms[(2, "N")]]
        cg = traj.xyz[:, beads].astype(float)
        cg_phi, cg_psi = alanine_phi_psi(cg)
        _, md_phi = md.compute_phi(traj)
        _, md_psi = md.compute_psi(traj)
        assert cg_phi[0] == pytest.approx(md_phi[0, 0], abs=1e-5)  # phi of residue 2
        assert cg_psi[0] == pytest.approx(md_psi[0, 1], abs=1e-5)  # psi of residue 2
        # PeptideBuilder places atoms to about 0.05 degrees of the requested torsions
        assert np.degrees(cg_phi[0]) == pytest.approx(phi, abs=0.1)
        assert np.degrees(cg_psi[0]) == pytest.approx(psi, abs=0.1)


def test_native_contacts_and_rmsd_on_a_chignolin_hairpin():
    md = pytest.importorskip("mdtraj")
    native = ca_trace(peptide(CLN025, CLN025_PHI, CLN025_PSI))
    extended = ca_trace(peptide(CLN025, [-120.0] * 9, [120.0] * 9))
    assert native.shape == (10, 3)
    contacts = NativeContacts().fit(native)
    expected = [(i, j) for i in range(10) for j in range(i + 3, 10) if np.linalg.norm(native[i] - native[j]) < 0.8]
    assert contacts.pairs_.tolist() == [list(p) for p in expected] and len(expected) > 10
    assert contacts.transform(native)[0] == pytest.approx(1.0, abs=1e-4)
    assert contacts.transform(extended)[0] < 0.01
    hard = NativeContacts(method="hard").fit(native)
    assert hard.transform(native)[0] == 1.0 and hard.transform(extended)[0] == 0.0

    rotated = native @ random_rotation(3).T + [1.0, -2.0, 0.5]
    assert rmsd(rotated, native)[0] == pytest.approx(0.0, abs=1e-10)
    assert contacts.transform(rotated)[0] == pytest.approx(contacts.transform(native)[0])
    assert radius_of_gyration(rotated)[0] == pytest.approx(radius_of_gyration(native)[0])
    assert radius_of_gyration(extended)[0] > 1.5 * radius_of_gyration(native)[0]
    # against mdtraj's RMSD (float32) on noisy copies
    rng = np.random.default_rng(4)
    noisy = native[None] + rng.normal(scale=0.05, size=(20, 10, 3))
    top = md.Topology()
    chain = top.add_chain()
    for _ in range(10):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
    expected = md.rmsd(md.Trajectory(noisy, top), md.Trajectory(native[None], top))
    np.testing.assert_allclose(rmsd(noisy, native), expected, atol=2e-5)
    assert rmsd(extended, native)[0] > 0.3


# ------------------------------------------------------------------------------ TICA and dynamics

def test_tica_metrics_fit_on_reference_only():
    reference = synthetic_alanine(3, 300, seed=0)
    tica = TICAMetrics(lagtime=5).fit(reference)
    assert tica.reference_.shape == (900, 10)  # 10 pairwise distances, all components kept
    assert tica.w1_2d(reference) == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(tica.js(reference), 0.0)
    same = synthetic_alanine(3, 300, seed=1)
    other = synthetic_alanine(3, 300, seed=2, beta_weight=0.95)
    assert tica.w1_2d(same) < 0.5 * tica.w1_2d(other)
    before = tica.reference_.copy()
    tica.transform(other)
    np.testing.assert_array_equal(tica.reference_, before)  # scoring never refits
    assert tica.timescales()[0] > tica.timescales()[1] > 0
    assert len(tica.w1_1d(same, n_components=3)) == 3


def test_autocorrelation_time_of_an_ar1_process():
    from scipy.signal import lfilter

    a = 0.8
    x = lfilter([1.0], [1.0, -a], np.random.default_rng(5).normal(size=200_000))
    np.testing.assert_allclose(autocorrelation(x, 4), a ** np.arange(5), atol=0.01)
    assert integrated_autocorrelation_time(x) == pytest.approx((1 + a) / (1 - a), rel=0.1)
    its = msm_implied_timescales([x[:20_000, None]], lagtimes=[1, 4], n_clusters=20, n_timescales=2)
    assert its.shape == (2, 2) and its[1, 0] == pytest.approx(-1 / np.log(a), rel=0.3)


# ------------------------------------------------------------------------------ plots and report

def test_plot_functions_take_and_return_axes(tmp_path):
    rng = np.random.default_rng(6)
    points = rng.normal(size=(500, 3))
    ax = plots.plot_tica_density(points, points + 0.5)
    assert ax.get_xlabel() == "TIC 0"
    axes = plots.new_axes((8, 3), ncols=3)
    assert plots.plot_distributions(points[:, 0], points[:, 1], ax=axes[0]) is axes[0]
    assert plots.plot_free_energy_1d(points[:, 0], points[:, 1], ax=axes[1]) is axes[1]
    assert plots.plot_free_energy_2d(points[:, 0], points[:, 1], ax=axes[2]) is axes[2]
    plots.plot_time_series([points[:, 0]], ylabel="x")
    plots.plot_implied_timescales([1, 2, 4], [[10, 3], [11, 3], [11, 4]])
    path = plots.save(axes[0], tmp_path / "panel.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_alanine(tmp_path):
    reference = synthetic_alanine(3, 300, seed=0)
    same = report(reference, synthetic_alanine(2, 300, seed=1), bead_names=ALANINE_NAMES, lagtime=5, bins=50)
    assert same["kind"] == "alanine"
    other = report(reference, synthetic_alanine(2, 300, seed=2, beta_weight=0.95), tmp_path / "eval",
                   bead_names=ALANINE_NAMES, lagtime=5, bins=50, temperature=300.0, plots=False)
    for key in ("phi_psi_js", "tica_w1_2d", "psi_js"):
        assert same[key] < other[key], key
    assert len(other["bond_js"]) == 4 and len(other["angle_js"]) == 3 and len(other["dihedral_js"]) == 2
    assert other["n_model_frames"] == 2 * 270  # 10% burn-in dropped per run
    assert sorted(os.listdir(tmp_path / "eval")) == ["metrics.json", "metrics.txt"]
    assert json.load(open(tmp_path / "eval" / "metrics.json"))["phi_psi_js"] == pytest.approx(other["phi_psi_js"])


def test_report_ca_chain_with_native():
    rng = np.random.default_rng(7)
    native = ca_trace(peptide(CLN025, CLN025_PHI, CLN025_PSI))
    extended = ca_trace(peptide(CLN025, [-120.0] * 9, [120.0] * 9))
    folded = native[None] + rng.normal(scale=0.03, size=(400, 10, 3))
    unfolded = extended[None] + rng.normal(scale=0.03, size=(400, 10, 3))
    metrics = report([folded[:200], folded[200:]], [np.concatenate([folded[:200], unfolded[:200]])],
                     bead_names=["CA"] * 10, native=native, lagtime=5, discard=0.0)
    assert metrics["kind"] == "ca" and metrics["n_native_contacts"] == len(NativeContacts().fit(native).pairs_)
    assert metrics["q_mean_reference"] > 0.95
    assert metrics["q_mean_model"] == pytest.approx(0.5 * metrics["q_mean_reference"], abs=0.05)
    assert metrics["rmsd_mean_model"] > metrics["rmsd_mean_reference"]
    # the noise (0.03 nm per coordinate) keeps the folded frames near 0.5 Å of native, and the
    # extended chain is several Å away: half the model's frames are folded, all the reference's
    assert metrics["folded_fraction_reference"] == 1.0 and metrics["folded_fraction_model"] == 0.5
    # block errors: the model's one run in 4 blocks of 100 frames (folded 1, 1, 0, 0): std / sqrt(4)
    assert metrics["folded_fraction_model_error"] == pytest.approx(np.std([1, 1, 0, 0], ddof=1) / 2, rel=1e-12)
    assert metrics["folded_fraction_reference_error"] == 0.0


def test_cli_evaluate_example_config(tmp_path, capsys):
    from openmmcgml.cli import main

    reference = write_cg_dataset(tmp_path / "reference.h5", synthetic_alanine(2, 200, seed=0), ALANINE_NAMES)
    samples = write_cg_dataset(tmp_path / "samples.h5", synthetic_alanine(2, 100, seed=1), ALANINE_NAMES)
    config = os.path.join(ROOT, "examples", "configs", "evaluate-alanine.yaml")
    output = tmp_path / "evaluation"
    assert main(["evaluate", config, "--set", f"reference={reference}", "--set", f"samples={samples}",
                 "--set", f"output={output}", "--set", "lagtime=5", "--set", "bins=50"]) == 0
    text = capsys.readouterr().out
    assert "phi_psi_js" in text and "tica_w1_2d" in text
    metrics = json.load(open(output / "metrics.json"))
    assert metrics["kind"] == "alanine" and metrics["n_reference_frames"] == 400
    written = sorted(os.listdir(output))
    for name in ("metrics.json", "metrics.txt", "tica_density.png", "ramachandran.png", "phi_psi_1d.png",
                 "bonds.png", "angles.png", "dihedrals.png", "radius_of_gyration.png", "tica_1d.png",
                 "tic0_time_series.png"):
        assert name in written


@pytest.mark.parametrize("name", ["openmmcgml.analysis", "openmmcgml.analysis.geometry",
                                  "openmmcgml.analysis.distributions", "openmmcgml.analysis.tica"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
