"""openmmcgml.geometry: distances, angles and dihedrals, numpy and torch faces, against independent references.

References: mpmath at 50 digits (arccos of the normalised dot product, and the dihedral from the
projections of the outer bonds onto the plane normal to the middle bond), mdtraj for the sign
convention, and finite differences (torch.autograd.gradcheck) for the torch face's gradients.
"""

import subprocess
import sys

import mdtraj as md
import mpmath
import numpy as np
import pytest
import torch

import openmmcgml.analysis as analysis
import openmmcgml.priors as priors
from openmmcgml.geometry import compute_angles, compute_dihedrals, compute_distances, compute_squared_distances

mpmath.mp.dps = 50


def random_frames(seed, n_frames=40, n_beads=6):
    return np.random.default_rng(seed).normal(scale=0.3, size=(n_frames, n_beads, 3))


def mp_vector(x):
    return mpmath.matrix([mpmath.mpf(float(v)) for v in x])


def mp_dot(a, b):
    return sum(a[i] * b[i] for i in range(3))


def mp_cross(a, b):
    return mpmath.matrix([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def mp_angle(xi, xj, xk):
    u, v = mp_vector(xi) - mp_vector(xj), mp_vector(xk) - mp_vector(xj)
    return float(mpmath.acos(mp_dot(u, v) / mpmath.sqrt(mp_dot(u, u) * mp_dot(v, v))))


def mp_dihedral(xi, xj, xk, xl):
    """The angle between the projections of (i - j) and (l - k) on the plane normal to (k - j), IUPAC sign."""
    a, b, c, d = (mp_vector(x) for x in (xi, xj, xk, xl))
    axis = (c - b) / mpmath.sqrt(mp_dot(c - b, c - b))
    p = (a - b) - axis * mp_dot(a - b, axis)
    q = (d - c) - axis * mp_dot(d - c, axis)
    return float(mpmath.atan2(mp_dot(mp_cross(p, q), axis), mp_dot(p, q)))


ANGLES = [[0, 1, 2], [1, 2, 3], [5, 0, 3], [2, 4, 1]]
DIHEDRALS = [[0, 1, 2, 3], [1, 2, 3, 4], [5, 3, 0, 2], [4, 1, 5, 0]]


def test_numpy_face_against_50_digit_references_on_random_frames():
    x = random_frames(0)
    angles, dihedrals = compute_angles(x, ANGLES), compute_dihedrals(x, DIHEDRALS)
    assert angles.dtype == np.float64 and angles.shape == (40, 4) and dihedrals.shape == (40, 4)
    expected_angles = [[mp_angle(*frame[t]) for t in ANGLES] for frame in x]
    expected_dihedrals = [[mp_dihedral(*frame[t]) for t in DIHEDRALS] for frame in x]
    np.testing.assert_allclose(angles, expected_angles, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dihedrals, expected_dihedrals, rtol=0, atol=1e-13)
    pairs = [[0, 1], [3, 5]]
    expected = [[float(mpmath.norm(mp_vector(frame[j]) - mp_vector(frame[i]))) for i, j in pairs] for frame in x]
    np.testing.assert_allclose(compute_distances(x, pairs), expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(compute_squared_distances(x, pairs), np.square(expected), rtol=1e-14, atol=0)


def test_sign_convention_and_values_equal_mdtraj():
    x = random_frames(1, n_frames=30)
    top = md.Topology()
    residue = top.add_residue("GLY", top.add_chain())
    for _ in range(x.shape[1]):
        top.add_atom("CA", md.element.carbon, residue)
    trajectory = md.Trajectory(x, top)  # mdtraj computes in float32
    np.testing.assert_allclose(compute_dihedrals(x, DIHEDRALS), md.compute_dihedrals(trajectory, DIHEDRALS), atol=2e-5)
    np.testing.assert_allclose(compute_angles(x, ANGLES), md.compute_angles(trajectory, ANGLES), atol=2e-4)
    np.testing.assert_allclose(compute_distances(x, [[0, 4]]), md.compute_distances(trajectory, [[0, 4]]), rtol=1e-6)


@pytest.mark.parametrize("angle", [1e-6, np.pi - 1e-6])
def test_nearly_collinear_angles_keep_full_precision(angle):
    """atan2 of the two projections: an angle 1e-6 from 0 or pi comes out to ~1e-16 (arccos: ~1e-10)."""
    rng = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    u = np.array([0.3, 0.0, 0.0])
    v = 0.25 * np.array([np.cos(angle), np.sin(angle), 0.0])
    x = np.stack([u, np.zeros(3), v]) @ rotation.T + rng.normal(size=3)
    expected = mp_angle(*x)
    assert abs(compute_angles(x[None], [[0, 1, 2]])[0, 0] - expected) < 1e-13
    # the dihedral of four beads in one plane, a tiny step out of it
    y = np.array([[0.1, 0.2, 0.0], [0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.4, 0.2, 1e-9]])
    assert abs(compute_dihedrals(y, [[0, 1, 2, 3]])[0] - mp_dihedral(*y)) < 1e-15


def test_torch_face_equals_numpy_face_and_keeps_dtype_device_and_leading_axes():
    x = random_frames(3, n_frames=12).reshape(3, 4, 6, 3)
    for function, tuples in ((compute_distances, [[0, 1], [2, 5]]), (compute_squared_distances, [[0, 1]]),
                             (compute_angles, ANGLES), (compute_dihedrals, DIHEDRALS)):
        reference = function(x, tuples)
        assert reference.shape == (3, 4, len(tuples))
        result = function(torch.tensor(x), tuples)
        assert isinstance(result, torch.Tensor) and result.dtype == torch.float64
        np.testing.assert_allclose(result.numpy(), reference, rtol=1e-15, atol=1e-15)
        # index tensors are taken as they are; float32 positions give float32 values
        result32 = function(torch.tensor(x, dtype=torch.float32), torch.tensor(tuples))
        assert result32.dtype == torch.float32
        np.testing.assert_allclose(result32.numpy(), reference, rtol=1e-5, atol=2e-5)


def test_torch_face_gradients_equal_finite_differences():
    x = torch.tensor(random_frames(4, n_frames=3), requires_grad=True)
    for function, tuples in ((compute_distances, [[0, 1], [2, 5]]), (compute_squared_distances, [[3, 4]]),
                             (compute_angles, ANGLES), (compute_dihedrals, DIHEDRALS)):
        assert torch.autograd.gradcheck(lambda positions: function(positions, tuples), (x,), eps=1e-6, atol=1e-7)


def test_analysis_and_priors_use_the_same_implementation():
    x = random_frames(5)
    assert priors.compute_angles is compute_angles and priors.compute_dihedrals is compute_dihedrals
    assert priors.compute_distances is compute_distances
    chain3 = [[i, i + 1, i + 2] for i in range(4)]
    chain4 = [[i, i + 1, i + 2, i + 3] for i in range(3)]
    assert np.array_equal(analysis.bond_angles(x), compute_angles(x, chain3))
    assert np.array_equal(analysis.dihedral_angles(x), compute_dihedrals(x, chain4))
    assert np.array_equal(analysis.bond_lengths(x), compute_distances(x, [[i, i + 1] for i in range(5)]))


def test_bad_input_is_named():
    x = random_frames(6, n_frames=2, n_beads=4)
    with pytest.raises(ValueError, match=r"angles refer to beads outside \[0, 4\)"):
        compute_angles(x, [[0, 1, 4]])
    with pytest.raises(ValueError, match=r"dihedrals refer to beads outside \[0, 4\)"):
        compute_dihedrals(torch.tensor(x), [[-1, 0, 1, 2]])
    with pytest.raises(ValueError, match="must be integer bead indices"):
        compute_distances(x, [[0, 1.5]])
    with pytest.raises(ValueError, match="must hold bead 3-tuples"):
        compute_angles(x, [[0, 1]])
    with pytest.raises(ValueError, match=r"coordinates must have shape \(\.\.\., n_beads, 3\)"):
        compute_distances(np.zeros((2, 4, 2)), [[0, 1]])
    with pytest.raises(ValueError, match="coordinates must be floating point"):
        compute_distances(torch.zeros((2, 4, 3), dtype=torch.int64), [[0, 1]])
    # integral float indices are read as integers (as the priors always accepted)
    np.testing.assert_array_equal(compute_distances(x, [[0.0, 1.0]]), compute_distances(x, [[0, 1]]))


def test_numpy_face_does_not_import_torch():
    code = ("import sys, numpy as np; from openmmcgml.geometry import compute_dihedrals; "
            "compute_dihedrals(np.random.rand(2, 4, 3), [[0, 1, 2, 3]]); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generalized_force_operator_inverts_forces_of_internal_coordinates():
    """G F = -dU/dq for a force F = -grad U of a function of the internal coordinates (here linear
    in them, so dU/dq is known), and rigid-body forces give zero."""
    import torch

    from openmmcgml.geometry import generalized_force_operator
    from openmmcgml.priors import chain_internal_coordinates

    rng = np.random.default_rng(4)
    n = 6
    bonds, angles, dihedrals = chain_internal_coordinates(n, [[i, i + 1] for i in range(n - 1)])
    x = torch.tensor(np.cumsum(rng.normal(0.0, 0.15, size=(7, n, 3)), axis=1), requires_grad=True)
    slopes = torch.tensor(rng.normal(size=3 * n - 6))
    q = torch.cat([compute_distances(x, bonds), compute_angles(x, angles), compute_dihedrals(x, dihedrals)], dim=-1)
    (gradient,) = torch.autograd.grad((q * slopes).sum(), x)
    operator = generalized_force_operator(x.detach(), bonds, angles, dihedrals, batch_size=3)
    generalized = torch.einsum("fij,fj->fi", operator, (-gradient).reshape(7, -1))
    np.testing.assert_allclose(generalized.numpy(), -slopes.expand(7, -1).numpy(), rtol=0, atol=1e-9)
    centre = x.detach().mean(1, keepdim=True)
    torque = torch.cross(torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64).expand_as(x), x.detach() - centre, dim=-1)
    for rigid in (torch.ones_like(x) * torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64), torque):
        assert torch.einsum("fij,fj->fi", operator, rigid.reshape(7, -1)).abs().max() < 1e-9
    with pytest.raises(ValueError, match="3 n - 6"):
        generalized_force_operator(x.detach(), bonds, angles, dihedrals[:1])
    straight = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0.1, 0]]], dtype=torch.float64)
    with pytest.raises(ValueError, match="singular"):
        generalized_force_operator(straight, [[0, 1], [1, 2], [2, 3]], [[0, 1, 2], [1, 2, 3]], [[0, 1, 2, 3]])
