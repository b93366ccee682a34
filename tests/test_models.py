"""Tests of the torch CGSchNet model (no plugin needed)."""

import itertools
import math

import numpy as np
import pytest
import torch

from openmmcgml.models import CGSchNet, CGTopology, default_rbf_parameters
from openmmcgml.models.cgschnet import Activation


# ----------------------------------------------------------------------------- helpers

def make_model(activation="ssp", rbf="gaussian", cutoff=1.0, rbf_lower_cutoff=0.0, output_hidden=(7, 5),
               n_types=3, seed=0):
    torch.manual_seed(seed)
    model = CGSchNet(n_types, n_features=6, n_filters=5, n_rbf=7, n_interactions=2, cutoff=cutoff,
                     activation=activation, rbf=rbf, rbf_lower_cutoff=rbf_lower_cutoff,
                     output_hidden=output_hidden).double()
    # larger weights than the default initialisation make every term matter
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    return model


def random_positions(n, scale=0.5, seed=1, frames=None):
    rng = np.random.default_rng(seed)
    shape = (n, 3) if frames is None else (frames, n, 3)
    return torch.tensor(rng.uniform(0, scale, size=shape), dtype=torch.float64)


def np_act(kind, x):
    if kind == "ssp":
        return np.logaddexp(x, 0.0) - math.log(2.0)
    if kind == "tanh":
        return np.tanh(x)
    return x / (1.0 + np.exp(-x))


def reference_energy(model, positions, types, molecules=None, exclusions=(), box=None):
    """The CGSchNet function written out pair by pair in numpy.

    With a box, every periodic image of every pair within the cutoff is summed; with the
    cutoff at most half the smallest box width there is at most one such image per pair.
    Returns (energy, largest number of images of one pair within the cutoff).
    """
    x = np.asarray(positions, dtype=float)
    n = len(types)
    molecules = np.zeros(n, int) if molecules is None else np.asarray(molecules)
    excluded = {frozenset(map(int, e)) for e in exclusions}
    rc = model.cutoff
    kind = model.activation
    W = lambda lin: lin.weight.detach().numpy().T  # noqa: E731  (inputs x outputs)
    b = lambda lin: lin.bias.detach().numpy()  # noqa: E731
    mu = model.rbf.centers.detach().numpy()
    gamma = model.rbf.widths.detach().numpy()

    pairs, max_images = [], 0
    for i in range(n):
        for j in range(i + 1, n):
            if molecules[i] != molecules[j] or frozenset((i, j)) in excluded:
                continue
            d = x[j] - x[i]
            if box is None:
                images = [np.linalg.norm(d)]
            else:
                box = np.asarray(box, dtype=float)
                s = d @ np.linalg.inv(box)
                d0 = (s - np.round(s)) @ box
                images = [np.linalg.norm(d0 + np.array(k) @ box) for k in itertools.product(range(-2, 3), repeat=3)]
            inside = [r for r in images if r < rc]
            max_images = max(max_images, len(inside))
            pairs += [(i, j, r) for r in inside]

    def basis(r):
        if model.rbf.kind == "gaussian":
            return np.exp(-gamma * (r - mu) ** 2)
        alpha = 5.0 / (rc - model.rbf.lower_cutoff)
        return np.exp(-gamma * (np.exp(-alpha * (r - model.rbf.lower_cutoff)) - mu) ** 2)

    h = model.embedding.weight.detach().numpy()[np.asarray(types)].copy()
    for block in model.interactions:
        m = np.zeros((n, block.message.out_features))
        hb = h @ W(block.message)
        for i, j, r in pairs:
            fc = 0.5 * (math.cos(math.pi * r / rc) + 1)
            w = (np_act(kind, basis(r) @ W(block.filter[0]) + b(block.filter[0])) @ W(block.filter[2])
                 + b(block.filter[2])) * fc
            m[i] += hb[j] * w
            m[j] += hb[i] * w
        u1, u2 = block.update[0], block.update[2]
        h = h + np_act(kind, m @ W(u1) + b(u1)) @ W(u2) + b(u2)
    layers = [mod for mod in model.output if isinstance(mod, torch.nn.Linear)]
    for k, layer in enumerate(layers):
        h = h @ W(layer) + b(layer)
        if k < len(layers) - 1:
            h = np_act(kind, h)
    return h.sum(), max_images


def finite_difference_forces(model, positions, *args, step=1e-6, **kwargs):
    x = positions.clone()
    forces = torch.zeros_like(x)
    with torch.no_grad():
        for idx in itertools.product(*map(range, x.shape)):
            xp, xm = x.clone(), x.clone()
            xp[idx] += step
            xm[idx] -= step
            forces[idx] = -(model(xp, *args, **kwargs) - model(xm, *args, **kwargs)) / (2 * step)
    return forces


TYPES = [0, 1, 2, 1, 0, 2]
ALL_FORMS = [(a, r) for a in ("ssp", "tanh", "silu") for r in ("gaussian", "expnormal")]


# ---------------------------------------------------------------------------- function

@pytest.mark.parametrize("activation, rbf", ALL_FORMS)
def test_matches_pairwise_reference(activation, rbf):
    lower = 0.1 if rbf == "expnormal" else 0.0
    model = make_model(activation, rbf, rbf_lower_cutoff=lower)
    x = random_positions(6, scale=1.0)
    energy = model(x, TYPES).item()
    expected, _ = reference_energy(model, x, TYPES)
    assert energy == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # the configuration has pairs on both sides of the cutoff
    r = torch.pdist(x)
    assert (r < model.cutoff).any() and (r > model.cutoff).any()


@pytest.mark.parametrize("activation, rbf", ALL_FORMS)
def test_forces_match_finite_differences(activation, rbf):
    lower = 0.1 if rbf == "expnormal" else 0.0
    model = make_model(activation, rbf, rbf_lower_cutoff=lower)
    x = random_positions(6, scale=0.9, seed=2)
    energy, forces = model.energy_and_forces(x, TYPES)
    assert energy.shape == () and forces.shape == x.shape
    fd = finite_difference_forces(model, x, TYPES)
    scale = forces.abs().max().item()
    assert scale > 1e-2
    assert torch.allclose(forces, fd, rtol=0, atol=5e-9 * max(scale, 1.0))


def test_second_derivatives():
    # force matching differentiates forces with respect to the weights: needs double backward
    model = make_model(output_hidden=(3,))
    x = random_positions(4, scale=0.7, seed=3).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda p: model(p, [0, 1, 2, 0]), (x,))
    energy, forces = model.energy_and_forces(x.detach(), [0, 1, 2, 0], create_graph=True)
    (forces ** 2).sum().backward()
    # only the last output bias does not enter the forces
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == ["output.2.bias"]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.embedding.weight.grad.abs().sum() > 0


def test_batched_equals_per_frame():
    model = make_model()
    x = random_positions(6, scale=0.9, frames=4, seed=4)
    batched = model(x, TYPES)
    assert batched.shape == (4,)
    single = torch.stack([model(frame, TYPES) for frame in x])
    assert torch.allclose(batched, single, rtol=1e-13, atol=0)
    _, forces = model.energy_and_forces(x, TYPES)
    for k in range(4):
        _, f = model.energy_and_forces(x[k], TYPES)
        assert torch.allclose(forces[k], f, rtol=1e-12, atol=1e-14)
    # a box per frame
    boxes = torch.stack([torch.eye(3, dtype=torch.float64) * s for s in (2.0, 2.1, 2.2, 2.3)])
    batched = model(x, TYPES, box=boxes)
    single = torch.stack([model(x[k], TYPES, box=boxes[k]) for k in range(4)])
    assert torch.allclose(batched, single, rtol=1e-13, atol=0)


def test_float32_model_agrees_with_float64():
    model = make_model()
    x = random_positions(6, scale=0.9)
    single = CGSchNet(**model.config)
    single.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    assert single(x, TYPES).dtype == torch.float32
    assert single(x, TYPES).item() == pytest.approx(model(x, TYPES).item(), rel=1e-5)


@pytest.mark.parametrize("shift", [0.0, 5.0])
def test_molecules_do_not_interact(shift):
    model = make_model()
    a = random_positions(4, scale=0.8, seed=5)
    b = random_positions(3, scale=0.8, seed=6) + torch.tensor([shift, 0.0, 0.0], dtype=torch.float64)
    types_a, types_b = [0, 1, 2, 0], [2, 2, 1]
    both = torch.cat([a, b])
    # interleave the beads of the two molecules
    order = [0, 4, 1, 5, 2, 6, 3]
    molecules = [0, 0, 0, 0, 1, 1, 1]
    energy = model(both[order], [(types_a + types_b)[k] for k in order], molecules=[molecules[k] for k in order])
    expected = model(a, types_a) + model(b, types_b)
    assert energy.item() == pytest.approx(expected.item(), rel=1e-12)
    # molecule ids are labels only
    again = model(both, types_a + types_b, molecules=[7, 7, 7, 7, 3, 3, 3])
    assert again.item() == pytest.approx(expected.item(), rel=1e-12)
    # without molecule ids the two interact (when close)
    if shift == 0.0:
        assert model(both, types_a + types_b).item() != pytest.approx(expected.item(), rel=1e-6)


def test_exclusion_removes_exactly_that_pair():
    model = make_model()
    types = [0, 1, 2]
    centre = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.1, 0.0], [0.5, 0.4, 0.2], [0.3, 0.3, 0.3]], dtype=torch.float64)

    def rotated(angle):
        # move bead 1 on a sphere around bead 2: r_12 and r_02 fixed, r_01 changes
        c, s = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
        y = x.clone()
        y[1] = centre + (x[1] - centre) @ rot.T
        return y

    angles = [0.0, 0.7, 1.9]
    assert all(torch.linalg.norm(rotated(t)[0] - rotated(t)[1]) < model.cutoff for t in angles)
    excluded = [model(rotated(t), types, exclusions=[(1, 0)]).item() for t in angles]
    assert excluded == pytest.approx([excluded[0]] * 3, rel=1e-13)
    included = [model(rotated(t), types).item() for t in angles]
    assert abs(included[1] - included[0]) > 1e-4
    # and against the pairwise reference, with more beads and exclusions
    y = random_positions(6, scale=0.9, seed=7)
    exclusions = [(0, 1), (4, 2), (3, 5)]
    expected, _ = reference_energy(model, y, TYPES, exclusions=exclusions)
    assert model(y, TYPES, exclusions=exclusions).item() == pytest.approx(expected, rel=1e-12)


def test_topology_pairs():
    top = CGTopology([0, 1, 0, 1, 0], molecules=[1, 0, 1, 0, 1], exclusions=[(4, 0)])
    assert top.pairs.tolist() == [[0, 2], [1, 3], [2, 4]]
    assert top.exclusions.tolist() == [[0, 4]]
    model = make_model()
    x = random_positions(5, seed=8)
    assert model(x, top).item() == model(x, [0, 1, 0, 1, 0], [1, 0, 1, 0, 1], [(0, 4)]).item()


# ---------------------------------------------------------------------------- periodic

def test_translation_by_box_vectors():
    model = make_model()
    box = torch.tensor([[2.5, 0, 0], [0.6, 2.4, 0], [-0.9, 0.8, 2.3]], dtype=torch.float64)
    x = random_positions(6, scale=0.9, seed=9)
    molecules = [0, 0, 0, 1, 1, 1]
    energy = model(x, TYPES, molecules, box=box).item()
    y = x.clone()
    y[:3] += box[0] - 2 * box[2]  # a whole molecule
    y[4] += box[1]  # a single bead
    y[5] -= box[0] + box[1] + box[2]
    assert model(y, TYPES, molecules, box=box).item() == pytest.approx(energy, rel=1e-12)
    assert model(y, TYPES, molecules).item() != pytest.approx(energy, rel=1e-6)


def test_triclinic_minimum_image_matches_image_sum():
    model = make_model(cutoff=1.2)
    box = torch.tensor([[2.5, 0, 0], [1.1, 2.4, 0], [-1.2, 0.9, 2.45]], dtype=torch.float64)
    rng = np.random.default_rng(10)
    # positions spread over and beyond the box, so that pairs cross every face
    fractional = rng.uniform(-0.7, 1.7, size=(8, 3))
    x = torch.tensor(fractional, dtype=torch.float64) @ box
    types = [0, 1, 2, 0, 1, 2, 0, 1]
    expected, max_images = reference_energy(model, x, types, box=box)
    assert max_images == 1
    energy = model(x, types, box=box).item()
    assert energy == pytest.approx(expected, rel=1e-12)
    # periodic forces match finite differences too
    _, forces = model.energy_and_forces(x, types, box=box)
    fd = finite_difference_forces(model, x, types, box=box)
    assert torch.allclose(forces, fd, rtol=0, atol=5e-9 * max(1.0, forces.abs().max().item()))


# ------------------------------------------------------------------------------ cutoff

@pytest.mark.parametrize("rbf", ["gaussian", "expnormal"])
def test_cutoff_continuity(rbf):
    model = make_model(rbf=rbf)
    rc = model.cutoff
    direction = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64) / 3.0

    def two_beads(r):
        return torch.stack([torch.zeros(3, dtype=torch.float64), r * direction])

    far, far_forces = model.energy_and_forces(two_beads(rc + 0.3), [0, 1])
    at, at_forces = model.energy_and_forces(two_beads(rc), [0, 1])
    assert at.item() == far.item()
    assert (at_forces == 0).all() and (far_forces == 0).all()
    gaps, forces = [], []
    for delta in (1e-3, 1e-4, 1e-5):
        e, f = model.energy_and_forces(two_beads(rc - delta), [0, 1])
        gaps.append(abs(e.item() - far.item()))
        forces.append(f.abs().max().item())
    # f_c(rc - d) ~ (pi d / rc)^2 / 4: the energy gap falls as d^2 and the force as d
    assert gaps[0] > 0 and forces[0] > 0
    assert gaps[1] / gaps[0] == pytest.approx(1e-2, rel=0.05)
    assert gaps[2] / gaps[1] == pytest.approx(1e-2, rel=0.05)
    assert forces[1] / forces[0] == pytest.approx(1e-1, rel=0.05)
    assert forces[2] / forces[1] == pytest.approx(1e-1, rel=0.05)


# ------------------------------------------------------------------- building blocks

def test_activations():
    x = torch.tensor([-800.0, -3.0, 0.0, 0.5, 40.0, 800.0], dtype=torch.float64, requires_grad=True)
    ssp = Activation("ssp")(x)
    expected = np.log(0.5 * np.exp(np.array([-3.0, 0.0, 0.5])) + 0.5)
    assert np.allclose(ssp[1:4].detach().numpy(), expected, rtol=1e-15, atol=1e-16)
    assert ssp[5].item() == 800.0 - math.log(2.0) and ssp[0].item() == -math.log(2.0)
    (grad,) = torch.autograd.grad(ssp.sum(), x)
    assert grad[2].item() == 0.5  # sigmoid(0), including at exactly zero
    assert torch.allclose(grad, torch.sigmoid(x.detach()), rtol=1e-15)
    assert torch.equal(Activation("tanh")(x), torch.tanh(x))
    silu = Activation("silu")(x).detach().numpy()
    assert np.allclose(silu[1:5], np_act("silu", x.detach().numpy()[1:5]), rtol=1e-15)


def test_default_rbf_parameters():
    mu, gamma = default_rbf_parameters(7, 1.2)
    assert np.allclose(mu, np.linspace(0, 1.2, 7), rtol=1e-15, atol=0)
    assert np.allclose(gamma, 0.5 / 0.2**2, rtol=1e-14)
    mu, gamma = default_rbf_parameters(1, 1.2)
    assert mu.tolist() == [0.0] and gamma.tolist() == [0.5 / 1.2**2]
    mu, gamma = default_rbf_parameters(10, 1.2, "expnormal", 0.2)
    start = math.exp(-5.0)
    assert mu[0] == pytest.approx(start, rel=1e-15) and mu[-1] == 1.0
    assert np.allclose(gamma, (2 / 10 * (1 - start)) ** -2, rtol=1e-14)
    # the expnormal basis of the model is the documented formula
    model = make_model(rbf="expnormal", rbf_lower_cutoff=0.2)
    r = torch.tensor([0.15, 0.5, 0.99], dtype=torch.float64)
    alpha = 5.0 / (1.0 - 0.2)
    mu_t, gamma_t = model.rbf.centers, model.rbf.widths
    expected = torch.exp(-gamma_t * (torch.exp(-alpha * (r[:, None] - 0.2)) - mu_t) ** 2)
    assert torch.allclose(model.rbf(r), expected, rtol=1e-15)


def test_trainable_rbf_and_config_round_trip(tmp_path):
    model = CGSchNet(2, 4, 4, 3, 1, cutoff=0.9, rbf="expnormal", rbf_lower_cutoff=0.1, trainable_rbf=True).double()
    names = {n for n, _ in model.named_parameters()}
    assert {"rbf.centers", "rbf.widths"} <= names
    assert CGSchNet(2, 4, 4, 3, 1).rbf.centers.requires_grad is False
    copy = CGSchNet.from_config(model.config)
    assert copy.config == model.config
    model.save(tmp_path / "model.pt")
    loaded = CGSchNet.load(tmp_path / "model.pt")
    assert loaded.embedding.weight.dtype == torch.float64
    x = random_positions(2, seed=11)
    assert loaded(x, [0, 1]).item() == model(x, [0, 1]).item()


# ----------------------------------------------------------------------------- errors

def _error_cases():
    x = random_positions(4, seed=12)
    box = torch.eye(3, dtype=torch.float64) * 3.0
    return [
        (dict(positions=x[:3]), "3 beads but the topology has 4"),
        (dict(positions=x[:, :2]), "shape"),
        (dict(positions=x[None, None]), "shape"),
        (dict(positions=torch.where(torch.arange(12).view(4, 3) == 5, math.nan, x)), "NaN"),
        (dict(positions=torch.ones(4, 3, dtype=torch.int64)), "floating point"),
        (dict(bead_types=[0, 1, 3, 0]), "bead type 3 of bead 2 is out of range"),
        (dict(bead_types=[0, -1, 1, 0]), "bead type -1 of bead 1 is negative"),
        (dict(bead_types=[0.0, 1.0, 1.0, 0.0]), "bead_types must be integers"),
        (dict(bead_types=[[0, 1], [1, 0]]), "one-dimensional"),
        (dict(molecules=[0, 0, 1]), "molecules has shape"),
        (dict(molecules=[0, 0, -1, 1]), "molecule id -1 of bead 2 is negative"),
        (dict(exclusions=[(0, 4)]), r"exclusion 0 \(0, 4\) refers to a bead out of range"),
        (dict(exclusions=[(-1, 2)]), "out of range"),
        (dict(exclusions=[(2, 2)]), "pairs a bead with itself"),
        (dict(exclusions=[(0, 1), (2, 3), (1, 0)]), r"exclusion 2 \(1, 0\) is a duplicate"),
        (dict(exclusions=[(0, 1, 2)]), "exclusions must have shape"),
        (dict(molecules=[0, 0, 1, 1], exclusions=[(1, 2)]), "joins two different molecules"),
        (dict(box=box[:2]), "box must have shape"),
        (dict(box=torch.eye(3, dtype=torch.float64) * 1.5), "larger than half the smallest box width"),
        (dict(box=torch.tensor([[3.0, 0.1, 0], [0, 3, 0], [0, 0, 3]])), "parallel to x"),
        (dict(box=torch.tensor([[3.0, 0, 0], [0, 3, 0.1], [0, 0, 3]])), "x-y plane"),
        (dict(box=torch.tensor([[3.0, 0, 0], [1.6, 3, 0], [0, 0, 3]])), "reduced form"),
        (dict(box=box * math.inf), "NaN or infinite"),
    ]


@pytest.mark.parametrize("change, message", _error_cases())
def test_invalid_inputs_raise(change, message):
    model = make_model()
    args = dict(positions=random_positions(4, seed=12), bead_types=[0, 1, 2, 0], molecules=None, exclusions=None,
                box=None)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        model(**args)


def test_topology_object_excludes_extra_arguments():
    model = make_model()
    with pytest.raises(ValueError, match="must be None when a CGTopology is given"):
        model(random_positions(2), CGTopology([0, 1]), molecules=[0, 0])
    with pytest.raises(ValueError, match="must not be empty"):
        CGTopology([])


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_types=0), "n_types must be a positive integer"),
    (dict(n_features=2.5), "n_features must be a positive integer"),
    (dict(n_interactions=0), "n_interactions must be a positive integer"),
    (dict(cutoff=-1.0), "cutoff must be a positive finite number"),
    (dict(cutoff=math.nan), "cutoff must be a positive finite number"),
    (dict(activation="relu"), "unknown activation 'relu'"),
    (dict(rbf="bessel"), "unknown radial basis 'bessel'"),
    (dict(rbf_lower_cutoff=0.1), "expnormal basis only"),
    (dict(rbf="expnormal", rbf_lower_cutoff=1.2), r"rbf_lower_cutoff must lie in \[0, cutoff\)"),
    (dict(output_hidden=(4, 0)), "each output_hidden width must be a positive integer"),
])
def test_invalid_hyperparameters_raise(kwargs, message):
    args = dict(n_types=2, n_features=4, n_filters=4, n_rbf=3, n_interactions=1, cutoff=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        CGSchNet(**args)


# ------------------------------------------------------------------------- TorchScript

# openmm-torch loads TorchScript, which torch marks deprecated
pytestmark_torchscript = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytestmark_torchscript
def test_torchscript_round_trip(tmp_path):
    model = make_model()
    x = random_positions(6, scale=0.9, seed=13)
    exclusions = [(0, 3)]
    path = tmp_path / "model.pt"
    model.to_torchscript(path, TYPES, exclusions=exclusions)
    loaded = torch.jit.load(str(path))
    y = x.clone().requires_grad_(True)
    energy = loaded(y)
    assert energy.shape == ()
    energy.backward()
    expected, forces = model.energy_and_forces(x, TYPES, exclusions=exclusions)
    assert energy.item() == pytest.approx(expected.item(), rel=1e-14)
    assert torch.allclose(-y.grad, forces, rtol=1e-13, atol=1e-15)
    # openmm-torch may pass float32 positions: they are cast to the model's dtype
    assert loaded(x.float()).item() == pytest.approx(expected.item(), rel=1e-6)
    # the exported weights do not collect gradients
    assert not any(p.requires_grad for p in loaded.parameters())


@pytestmark_torchscript
def test_torchscript_periodic_with_particle_subset(tmp_path):
    model = make_model()
    box = torch.tensor([[2.5, 0, 0], [0.6, 2.4, 0], [-0.9, 0.8, 2.3]], dtype=torch.float64)
    beads = random_positions(6, scale=2.0, seed=14)
    molecules = [0, 0, 0, 1, 1, 1]
    particles = [9, 2, 4, 0, 7, 5]
    system = torch.zeros(10, 3, dtype=torch.float64)
    system[particles] = beads
    path = tmp_path / "periodic.pt"
    model.to_torchscript(path, TYPES, molecules, periodic=True, particles=particles)
    loaded = torch.jit.load(str(path))
    y = system.clone().requires_grad_(True)
    energy = loaded(y, box)
    energy.backward()
    expected, forces = model.energy_and_forces(beads, TYPES, molecules, box=box)
    assert energy.item() == pytest.approx(expected.item(), rel=1e-14)
    assert torch.allclose(-y.grad[particles], forces, rtol=1e-13, atol=1e-15)
    others = [k for k in range(10) if k not in particles]
    assert (y.grad[others] == 0).all()
    with pytest.raises(Exception, match="needs box vectors"):
        loaded(system)


# ------------------------------------------------------------------- files and modules

def test_each_loader_names_the_loader_of_the_other_file(tmp_path):
    from openmmcgml.cgmodel import CGModel, CGModelFileError
    from openmmcgml.priors import HarmonicBonds, PriorSet

    network = make_model(n_types=2)
    bare, full, other = tmp_path / "network.pt", tmp_path / "model.pt", tmp_path / "other.pt"
    network.save(bare)
    priors = PriorSet(3, terms=[HarmonicBonds([[0, 1], [1, 2]], k=[2e3, 2e3], r0=[0.38, 0.38])])
    CGModel(network, priors, bead_types=[0, 1, 0]).save(full)  # what cgml train writes
    with pytest.raises(ValueError, match=r"model\.pt is a CGModel file .*load it with "
                                         r"openmmcgml\.cgmodel\.CGModel\.load\(path\), whose \.model is the network"):
        CGSchNet.load(full)
    with pytest.raises(CGModelFileError, match=r"network\.pt is not an openmm-cgml model file but a bare CGSchNet "
                                               r"network .*load it with openmmcgml\.models\.CGSchNet\.load\(path\)"):
        CGModel.load(bare)
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="other.pt is not a CGSchNet network file"):
        CGSchNet.load(other)
    # each loader reads its own file back to the same network (CGModel.load(path).model, as the
    # example cg_chain_in_openmm.py says for a model of cgml train)
    x = random_positions(3, seed=4)
    expected = network(x, [0, 1, 0])
    assert torch.equal(CGSchNet.load(bare)(x, [0, 1, 0]), expected)
    assert torch.equal(CGModel.load(full).model(x, [0, 1, 0]), expected)


@pytest.mark.parametrize("module", ["cgschnet", "layers", "topology", "export"])
def test_docstring_examples_of_the_models_modules(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"openmmcgml.models.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_model_module_holds_no_openmm_export():
    """The export lives in models/export.py; the model file is the torch module (and inherits it)."""
    import inspect

    import openmmcgml.models.cgschnet as model_module
    from openmmcgml.models.export import OpenMMExport

    source = inspect.getsource(model_module)
    for name in ("to_force", "update_force", "from_force", "to_torchscript", "filter_tabulation_error"):
        assert f"def {name}(" not in source
        assert getattr(CGSchNet, name).__qualname__ == f"OpenMMExport.{name}"
    assert issubclass(CGSchNet, OpenMMExport) and "openmmcgml.forces" not in source
