"""The CGSchNet potential in PyTorch.

The model computes exactly the function of the native ``CGSchNetForce`` (see the
design notes, "CGSchNetForce: the exact function"), so a trained model can be
copied into an OpenMM System with :meth:`CGSchNet.to_force` and the two agree
to rounding error.

Beads ``i`` carry a type ``t_i`` and a molecule id ``g_i``.  Every unordered
pair ``{i, j}`` of beads of the same molecule that is not excluded and has
``r_ij < cutoff`` interacts:

.. code-block:: text

    h_i  = E[t_i]
    for each interaction block:
        W_ij = (act(e(r_ij) A1 + a1) A2 + a2) * f_c(r_ij)
        m_i  = sum over pairs {i, j} of (h_j B) (.) W_ij
        h_i  = h_i + act(m_i C1 + c1) C2 + c2
    U = sum_i MLP(h_i)                                   (kJ/mol)

with ``f_c(r) = 0.5 (cos(pi r / cutoff) + 1)`` and the radial basis ``e(r)``
described in :class:`RadialBasis`.  The native force multiplies ``U`` by a
global scale parameter; the torch model has no scale.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral, Real
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Activation", "CGSchNet", "CGTopology", "InteractionBlock", "RadialBasis", "default_rbf_parameters"]

ACTIVATIONS = ("ssp", "tanh", "silu")
RBF_KINDS = ("gaussian", "expnormal")


# --------------------------------------------------------------------------------------
# Topology
# --------------------------------------------------------------------------------------

def _index_array(value, name: str) -> np.ndarray:
    """Convert ``value`` to an int64 array, refusing anything that is not integer-typed."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers (got an array of dtype {array.dtype})")
    return array.astype(np.int64)


def _typed_force(force):
    """``force`` as a ``CGSchNetForce``; a plain ``openmm.Force`` (``system.getForce(i)``) is cast."""
    from openmmcgml.forces import CGSchNetForce

    return force if isinstance(force, CGSchNetForce) else CGSchNetForce.cast(force)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class CGTopology:
    """The beads a :class:`CGSchNet` acts on: bead types, molecule ids and exclusions.

    A topology is validated once on construction and then caches its candidate
    pair list, so passing one topology to many model calls avoids rebuilding it.

    Parameters
    ----------
    bead_types : array_like of int, shape (n_beads,)
        The type of each bead, in ``[0, n_types)`` of the model it is used with.
    molecules : array_like of int, shape (n_beads,), optional
        A non-negative molecule id per bead; beads of different molecules never
        interact.  Default: every bead in molecule 0.
    exclusions : array_like of int, shape (n_exclusions, 2), optional
        Unordered pairs of bead indices of the same molecule that do not
        interact.  A pair listed twice (in either order), a bead paired with
        itself, an index out of range or a pair joining two molecules is an error.

    Attributes
    ----------
    bead_types, molecules : ndarray of int64, shape (n_beads,)
        Read-only copies of the inputs (``molecules`` filled with zeros if not given).
    exclusions : ndarray of int64, shape (n_exclusions, 2)
        Read-only copy of the exclusions in the given order, each written ``(min, max)``.

    Raises
    ------
    ValueError
        Naming the first problem found.

    Examples
    --------
    Two copies of a three-bead molecule, with the 1-2 neighbours excluded:

    >>> top = CGTopology([0, 1, 0, 0, 1, 0], molecules=[0, 0, 0, 1, 1, 1],
    ...                  exclusions=[(0, 1), (1, 2), (3, 4), (4, 5)])
    >>> top.n_beads
    6
    >>> top.pairs.tolist()
    [[0, 2], [3, 5]]
    """

    bead_types: np.ndarray
    molecules: Optional[np.ndarray] = None
    exclusions: Optional[np.ndarray] = None

    def __post_init__(self):
        types = _index_array(self.bead_types, "bead_types")
        if types.ndim != 1:
            raise ValueError(f"bead_types must be one-dimensional (got shape {types.shape})")
        n = types.shape[0]
        if n == 0:
            raise ValueError("bead_types must not be empty")
        if (types < 0).any():
            i = int(np.flatnonzero(types < 0)[0])
            raise ValueError(f"bead type {types[i]} of bead {i} is negative")

        if self.molecules is None:
            molecules = np.zeros(n, dtype=np.int64)
        else:
            molecules = _index_array(self.molecules, "molecules")
            if molecules.shape != (n,):
                raise ValueError(f"molecules has shape {molecules.shape} but there are {n} beads")
            if (molecules < 0).any():
                i = int(np.flatnonzero(molecules < 0)[0])
                raise ValueError(f"molecule id {molecules[i]} of bead {i} is negative")

        if self.exclusions is None:
            exclusions = np.zeros((0, 2), dtype=np.int64)
        else:
            exclusions = _index_array(self.exclusions, "exclusions")
            if exclusions.size == 0:
                exclusions = exclusions.reshape(0, 2)
            if exclusions.ndim != 2 or exclusions.shape[1] != 2:
                raise ValueError(f"exclusions must have shape (n_exclusions, 2) (got {exclusions.shape})")
            seen = set()
            for e, (i, j) in enumerate(exclusions.tolist()):
                where = f"exclusion {e} ({i}, {j})"
                if not (0 <= i < n and 0 <= j < n):
                    raise ValueError(f"{where} refers to a bead out of range [0, {n})")
                if i == j:
                    raise ValueError(f"{where} pairs a bead with itself")
                if molecules[i] != molecules[j]:
                    raise ValueError(f"{where} joins two different molecules")
                key = (min(i, j), max(i, j))
                if key in seen:
                    raise ValueError(f"{where} is a duplicate")
                seen.add(key)
            exclusions = np.sort(exclusions, axis=1)

        object.__setattr__(self, "bead_types", _readonly(types))
        object.__setattr__(self, "molecules", _readonly(molecules))
        object.__setattr__(self, "exclusions", _readonly(exclusions))

    @property
    def n_beads(self) -> int:
        """The number of beads."""
        return self.bead_types.shape[0]

    @cached_property
    def pairs(self) -> np.ndarray:
        """The candidate pairs ``(i, j)``, ``i < j``, same molecule, not excluded, sorted.

        Which of them interact depends on the positions (``r_ij < cutoff``).
        """
        n = self.n_beads
        order = np.argsort(self.molecules, kind="stable")
        _, starts, counts = np.unique(self.molecules[order], return_index=True, return_counts=True)
        chunks = [np.zeros((0, 2), dtype=np.int64)]
        for start, count in zip(starts, counts):
            beads = order[start:start + count]  # ascending: the sort is stable
            a, b = np.triu_indices(count, 1)
            chunks.append(np.stack([beads[a], beads[b]], axis=1))
        pairs = np.concatenate(chunks)
        if len(self.exclusions):
            excluded = np.isin(pairs[:, 0] * n + pairs[:, 1], self.exclusions[:, 0] * n + self.exclusions[:, 1])
            pairs = pairs[~excluded]
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        return _readonly(pairs)

    def check_types(self, n_types: int) -> None:
        """Raise ValueError if a bead type is not in ``[0, n_types)``."""
        bad = np.flatnonzero(self.bead_types >= n_types)
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"bead type {self.bead_types[i]} of bead {i} is out of range [0, {n_types})")

    @classmethod
    def coerce(cls, bead_types, molecules=None, exclusions=None) -> "CGTopology":
        """Return ``bead_types`` if it is a topology already, else build one from the arguments."""
        if isinstance(bead_types, CGTopology):
            if molecules is not None or exclusions is not None:
                raise ValueError("molecules and exclusions must be None when a CGTopology is given")
            return bead_types
        return cls(bead_types, molecules, exclusions)

    @classmethod
    def from_force(cls, force) -> "CGTopology":
        """Read the bead types, molecules and exclusions of a ``CGSchNetForce``.

        Bead ``i`` of the topology is entry ``i`` of ``force.getParticles()``
        (System particle ``i`` when that list is empty).  A plain ``openmm.Force``
        holding a CGSchNetForce (as ``system.getForce(i)`` returns) is accepted.
        """
        force = _typed_force(force)
        types = list(force.getBeadTypes())
        molecules = list(force.getMolecules()) or None
        exclusions = [tuple(force.getExclusionParticles(e)) for e in range(force.getNumExclusions())]
        return cls(types, molecules, exclusions or None)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

class Activation(nn.Module):
    """One of the activations the native force knows.

    Parameters
    ----------
    kind : {"ssp", "tanh", "silu"}
        ``"ssp"`` is the shifted softplus ``ln(0.5 e^x + 0.5) = softplus(x) - ln 2``,
        ``"silu"`` is ``x / (1 + e^-x)``.
    """

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ACTIVATIONS:
            raise ValueError(f"unknown activation {kind!r}; choose one of {ACTIVATIONS}")
        self.kind = kind
        self.log2 = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "ssp":
            # logaddexp is exact for large |x| and has derivative sigmoid(x) everywhere
            return torch.logaddexp(x, torch.zeros_like(x)) - self.log2
        if self.kind == "tanh":
            return torch.tanh(x)
        return torch.nn.functional.silu(x)

    def extra_repr(self) -> str:
        return repr(self.kind)


def default_rbf_parameters(n_rbf: int, cutoff: float, kind: str = "gaussian",
                           lower_cutoff: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The default centres ``mu_k`` and widths ``gamma_k`` of a radial basis.

    Parameters
    ----------
    n_rbf : int
        The number K of basis functions.
    cutoff : float
        The cutoff ``r_c``, in nm.
    kind : {"gaussian", "expnormal"}
        ``"gaussian"``: K centres evenly spaced on ``[0, r_c]`` and
        ``gamma = 0.5 / spacing^2`` (spacing ``r_c`` when K = 1), as the native
        force's constructor sets them.
        ``"expnormal"`` (PhysNet, TorchMD-Net): with ``alpha = 5 / (r_c - r_lo)``
        and ``s = exp(-alpha (r_c - r_lo)) = exp(-5)``, K centres evenly spaced
        on ``[s, 1]`` and ``gamma = (2 / K (1 - s))^-2``.
    lower_cutoff : float
        ``r_lo`` of the expnormal form, in nm.

    Returns
    -------
    centers, widths : ndarray of float64, shape (n_rbf,)

    Examples
    --------
    >>> mu, gamma = default_rbf_parameters(5, 1.0)
    >>> mu.tolist(), float(gamma[0])
    ([0.0, 0.25, 0.5, 0.75, 1.0], 8.0)
    """
    if kind == "gaussian":
        spacing = cutoff / (n_rbf - 1) if n_rbf > 1 else cutoff
        centers = np.array([k * spacing for k in range(n_rbf)]) if n_rbf > 1 else np.zeros(1)
        widths = np.full(n_rbf, 0.5 / spacing**2)
    elif kind == "expnormal":
        start = math.exp(-5.0)  # exp(-alpha (r_c - r_lo)) with alpha = 5 / (r_c - r_lo)
        centers = np.linspace(start, 1.0, n_rbf)
        widths = np.full(n_rbf, (2.0 / n_rbf * (1.0 - start)) ** -2)
    else:
        raise ValueError(f"unknown radial basis {kind!r}; choose one of {RBF_KINDS}")
    return centers, widths


class RadialBasis(nn.Module):
    """Radial basis ``e_k(r)``, K functions of the pair distance.

    ``"gaussian"``: ``e_k(r) = exp(-gamma_k (r - mu_k)^2)``.

    ``"expnormal"``: ``e_k(r) = exp(-gamma_k (exp(-alpha (r - r_lo)) - mu_k)^2)``
    with ``alpha = 5 / (cutoff - r_lo)``.

    The centres ``mu_k`` and widths ``gamma_k`` are stored explicitly (defaults
    from :func:`default_rbf_parameters`), as buffers or, with ``trainable=True``,
    as parameters.

    Parameters
    ----------
    n_rbf : int
    cutoff : float
        In nm.
    kind : {"gaussian", "expnormal"}
    lower_cutoff : float
        ``r_lo`` in nm, ``0 <= r_lo < cutoff``; must be 0 for ``"gaussian"``.
    trainable : bool
        Whether centres and widths are trained.
    """

    def __init__(self, n_rbf: int, cutoff: float, kind: str = "gaussian", lower_cutoff: float = 0.0,
                 trainable: bool = False):
        super().__init__()
        if kind not in RBF_KINDS:
            raise ValueError(f"unknown radial basis {kind!r}; choose one of {RBF_KINDS}")
        if kind == "gaussian" and lower_cutoff != 0.0:
            raise ValueError("rbf_lower_cutoff applies to the expnormal basis only; it must be 0 for gaussian")
        if not (0.0 <= lower_cutoff < cutoff):
            raise ValueError(f"rbf_lower_cutoff must lie in [0, cutoff) (got {lower_cutoff} with cutoff {cutoff})")
        centers, widths = default_rbf_parameters(n_rbf, cutoff, kind, lower_cutoff)
        centers = torch.tensor(centers, dtype=torch.get_default_dtype())
        widths = torch.tensor(widths, dtype=torch.get_default_dtype())
        if trainable:
            self.centers = nn.Parameter(centers)
            self.widths = nn.Parameter(widths)
        else:
            self.register_buffer("centers", centers)
            self.register_buffer("widths", widths)
        self.kind = kind
        self.cutoff = float(cutoff)
        self.lower_cutoff = float(lower_cutoff)
        self.alpha = 5.0 / (self.cutoff - self.lower_cutoff)

    def forward(self, r: Tensor) -> Tensor:
        """Evaluate the basis at distances ``r`` (shape (P,)); returns shape (P, K)."""
        x = r
        if self.kind == "expnormal":
            x = torch.exp(-self.alpha * (r - self.lower_cutoff))
        return torch.exp(-self.widths * (x.unsqueeze(-1) - self.centers) ** 2)

    def extra_repr(self) -> str:
        return f"{self.kind!r}, n_rbf={self.centers.shape[0]}, cutoff={self.cutoff}, lower_cutoff={self.lower_cutoff}"


class InteractionBlock(nn.Module):
    """One continuous-filter interaction.

    ``W_ij = filter(e(r_ij)) * f_c(r_ij)``, ``m_i = sum_j message(h_j) * W_ij``,
    ``h_i <- h_i + update(m_i)``, where ``filter`` is K -> NF -> NF, ``message``
    is a bias-free F -> NF map and ``update`` is NF -> F -> F, the two-layer
    maps with the activation in between.
    """

    def __init__(self, n_features: int, n_filters: int, n_rbf: int, activation: str):
        super().__init__()
        self.filter = nn.Sequential(nn.Linear(n_rbf, n_filters), Activation(activation),
                                    nn.Linear(n_filters, n_filters))
        self.message = nn.Linear(n_features, n_filters, bias=False)
        self.update = nn.Sequential(nn.Linear(n_filters, n_features), Activation(activation),
                                    nn.Linear(n_features, n_features))

    def forward(self, h: Tensor, rbf: Tensor, cutoff_value: Tensor, index_i: Tensor, index_j: Tensor) -> Tensor:
        """New features from ``h`` (n, F), the basis (P, K) and cutoff values (P,) of pairs ``(index_i, index_j)``."""
        w = self.filter(rbf) * cutoff_value.unsqueeze(-1)
        hb = self.message(h)
        # messages flow both ways along each unordered pair
        m = torch.zeros_like(hb).index_add(0, index_i, hb[index_j] * w).index_add(0, index_j, hb[index_i] * w)
        return h + self.update(m)


def _minimum_image(delta: Tensor, box: Tensor) -> Tensor:
    """Minimum image of pair vectors ``delta`` (B, P, 3) by OpenMM's rule for reduced boxes.

    ``box`` holds the box vectors as rows, shape (3, 3) or (B, 3, 3).
    """
    if box.dim() == 2:
        box = box.unsqueeze(0)
    a = box[:, 0].unsqueeze(1)
    b = box[:, 1].unsqueeze(1)
    c = box[:, 2].unsqueeze(1)
    # floor(x + 0.5), not round(): OpenMM's rounding, which differs from round-half-even at ties
    delta = delta - c * torch.floor(delta[:, :, 2:3] / c[:, :, 2:3] + 0.5)
    delta = delta - b * torch.floor(delta[:, :, 1:2] / b[:, :, 1:2] + 0.5)
    delta = delta - a * torch.floor(delta[:, :, 0:1] / a[:, :, 0:1] + 0.5)
    return delta


class _CGSchNetCore(nn.Module):
    """The TorchScript-compatible evaluation shared by :class:`CGSchNet` and its exported form.

    Subclasses provide ``embedding``, ``rbf``, ``interactions``, ``output`` and ``cutoff``.
    """

    def _energies(self, positions: Tensor, types: Tensor, pairs: Tensor, box: Optional[Tensor]) -> Tensor:
        """Energies (B,) of frames ``positions`` (B, N, 3) with candidate pairs ``pairs`` (P, 2)."""
        n_frames = positions.shape[0]
        n_beads = positions.shape[1]
        delta = positions[:, pairs[:, 1]] - positions[:, pairs[:, 0]]
        if box is not None:
            delta = _minimum_image(delta, box)
        r2 = (delta * delta).sum(-1)
        # select on r^2 so that no square root (and no NaN gradient) is taken outside the cutoff
        inside = torch.nonzero(r2 < self.cutoff * self.cutoff)
        frame = inside[:, 0]
        pair = inside[:, 1]
        r = torch.sqrt(r2[frame, pair])
        offset = frame * n_beads
        index_i = offset + pairs[pair, 0]
        index_j = offset + pairs[pair, 1]
        rbf = self.rbf(r)
        cutoff_value = 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0)
        h = self.embedding(types).repeat(n_frames, 1)  # (B * N, F), frame-major
        for block in self.interactions:
            h = block(h, rbf, cutoff_value, index_i, index_j)
        return self.output(h).view(n_frames, n_beads).sum(1)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------

def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer (got {value!r})")
    return int(value)


class CGSchNet(_CGSchNetCore):
    """A SchNet-type coarse-grained potential, the torch twin of ``CGSchNetForce``.

    The bead topology (types, molecules, exclusions) is not part of the module:
    it is passed to every call, either as arrays or as a :class:`CGTopology`, so
    one model serves any system built from its bead types.

    Parameters
    ----------
    n_types : int
        The number of bead types.
    n_features : int
        The width F of the bead features.
    n_filters : int
        The width NF of the continuous filters.
    n_rbf : int
        The number K of radial basis functions.
    n_interactions : int
        The number L of interaction blocks (at least 1).
    cutoff : float
        The cutoff distance ``r_c`` in nm.
    activation : {"ssp", "tanh", "silu"}
        Shifted softplus ``ln(0.5 e^x + 0.5)``, tanh or SiLU; used in the
        filter, update and output networks.
    rbf : {"gaussian", "expnormal"}
        The radial basis; see :class:`RadialBasis` and
        :func:`default_rbf_parameters` for the forms and default centres/widths.
    rbf_lower_cutoff : float
        ``r_lo`` of the expnormal basis in nm (must be 0 for gaussian).
    output_hidden : sequence of int
        Hidden widths of the per-bead output network F -> ... -> 1, with the
        activation between layers and none after the last.
    trainable_rbf : bool
        Whether the basis centres and widths are trained.

    Notes
    -----
    Energies are in kJ/mol for positions in nm.  The model evaluates every
    candidate pair of a frame (no neighbour list), which suits the small
    systems of training.  Dense layers are ``nn.Linear`` modules; their
    ``weight`` (outputs x inputs) is the transpose of the native force's
    row-major ``inputs x outputs`` arrays.

    Examples
    --------
    >>> import torch
    >>> model = CGSchNet(n_types=3, n_features=16, n_filters=16, n_rbf=8, n_interactions=2).double()
    >>> positions = 0.38 * torch.arange(15, dtype=torch.float64).reshape(5, 3) / 3
    >>> model(positions, [0, 1, 2, 1, 0]).shape
    torch.Size([])
    >>> energy, forces = model.energy_and_forces(positions.expand(4, 5, 3), [0, 1, 2, 1, 0])
    >>> energy.shape, forces.shape
    (torch.Size([4]), torch.Size([4, 5, 3]))
    """

    def __init__(self, n_types: int, n_features: int = 128, n_filters: int = 128, n_rbf: int = 50,
                 n_interactions: int = 6, cutoff: float = 1.2, activation: str = "ssp", rbf: str = "gaussian",
                 rbf_lower_cutoff: float = 0.0, output_hidden: Sequence[int] = (64,), trainable_rbf: bool = False):
        super().__init__()
        n_types = _positive_int(n_types, "n_types")
        n_features = _positive_int(n_features, "n_features")
        n_filters = _positive_int(n_filters, "n_filters")
        n_rbf = _positive_int(n_rbf, "n_rbf")
        n_interactions = _positive_int(n_interactions, "n_interactions")
        if isinstance(cutoff, bool) or not isinstance(cutoff, Real) or not (0 < cutoff < math.inf):
            raise ValueError(f"cutoff must be a positive finite number (got {cutoff!r})")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        output_hidden = tuple(_positive_int(w, "each output_hidden width") for w in output_hidden)

        self.embedding = nn.Embedding(n_types, n_features)
        self.rbf = RadialBasis(n_rbf, float(cutoff), rbf, float(rbf_lower_cutoff), trainable_rbf)
        self.interactions = nn.ModuleList(
            [InteractionBlock(n_features, n_filters, n_rbf, activation) for _ in range(n_interactions)])
        widths = (n_features,) + output_hidden + (1,)
        layers = []
        for k in range(len(widths) - 1):
            if k > 0:
                layers.append(Activation(activation))
            layers.append(nn.Linear(widths[k], widths[k + 1]))
        self.output = nn.Sequential(*layers)
        self.cutoff = float(cutoff)
        self.n_types, self.n_features, self.n_filters = n_types, n_features, n_filters
        self.n_rbf, self.n_interactions = n_rbf, n_interactions
        self.activation, self.output_hidden = activation, output_hidden
        self._config = dict(n_types=n_types, n_features=n_features, n_filters=n_filters, n_rbf=n_rbf,
                            n_interactions=n_interactions, cutoff=float(cutoff), activation=activation, rbf=rbf,
                            rbf_lower_cutoff=float(rbf_lower_cutoff), output_hidden=output_hidden,
                            trainable_rbf=bool(trainable_rbf))

    # ----------------------------------------------------------------------------- config

    @property
    def config(self) -> dict:
        """The constructor arguments; ``CGSchNet(**model.config)`` builds an untrained copy."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> "CGSchNet":
        """Build a model from :attr:`config` (weights freshly initialised)."""
        return cls(**config)

    def save(self, path) -> None:
        """Save configuration and weights to ``path`` (read back with :meth:`load`).

        Examples
        --------
        >>> import tempfile, os
        >>> model = CGSchNet(2, 8, 8, 4, 1)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
        >>> model.save(path)
        >>> CGSchNet.load(path).config == model.config
        True
        """
        torch.save({"config": self.config, "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path, map_location="cpu") -> "CGSchNet":
        """Load a model written by :meth:`save`, in the dtype it was saved in."""
        data = torch.load(path, map_location=map_location, weights_only=True)
        model = cls.from_config(data["config"])
        model.to(data["state_dict"]["embedding.weight"].dtype)
        model.load_state_dict(data["state_dict"])
        return model

    @property
    def _dtype(self) -> torch.dtype:
        return self.embedding.weight.dtype

    @property
    def _device(self) -> torch.device:
        return self.embedding.weight.device

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}"

    # ------------------------------------------------------------------------ evaluation

    def _topology(self, bead_types, molecules, exclusions) -> CGTopology:
        topology = CGTopology.coerce(bead_types, molecules, exclusions)
        topology.check_types(self.n_types)
        return topology

    def _positions(self, positions, n_beads: int) -> Tensor:
        positions = torch.as_tensor(positions, device=self._device)
        if not positions.is_floating_point():
            raise ValueError(f"positions must be floating point (got {positions.dtype})")
        positions = positions.to(self._dtype)
        if positions.dim() not in (2, 3) or positions.shape[-1] != 3:
            raise ValueError(f"positions must have shape (n_beads, 3) or (n_frames, n_beads, 3) "
                             f"(got {tuple(positions.shape)})")
        if positions.shape[-2] != n_beads:
            raise ValueError(f"positions have {positions.shape[-2]} beads but the topology has {n_beads}")
        if not bool(torch.isfinite(positions).all()):
            raise ValueError("positions contain NaN or infinite values")
        return positions

    def _box(self, box, n_frames: int) -> Optional[Tensor]:
        if box is None:
            return None
        box = torch.as_tensor(box, device=self._device)
        if not box.is_floating_point():
            box = box.to(torch.float64)
        if box.shape != (3, 3) and box.shape != (n_frames, 3, 3):
            raise ValueError(f"box must have shape (3, 3) or (n_frames, 3, 3) = ({n_frames}, 3, 3) "
                             f"(got {tuple(box.shape)})")
        for v in box.detach().cpu().double().numpy().reshape(-1, 3, 3):
            if not np.isfinite(v).all():
                raise ValueError("box contains NaN or infinite values")
            # the checks of OpenMM's Context.setPeriodicBoxVectors
            if v[0, 1] != 0 or v[0, 2] != 0:
                raise ValueError("the first box vector must be parallel to x")
            if v[1, 2] != 0:
                raise ValueError("the second box vector must lie in the x-y plane")
            if (v[0, 0] <= 0 or v[1, 1] <= 0 or v[2, 2] <= 0 or v[0, 0] < 2 * abs(v[1, 0])
                    or v[0, 0] < 2 * abs(v[2, 0]) or v[1, 1] < 2 * abs(v[2, 1])):
                raise ValueError("the box vectors must be in OpenMM's reduced form")
            width = min(v[0, 0], v[1, 1], v[2, 2])
            if self.cutoff > 0.5 * width:
                raise ValueError(f"the cutoff ({self.cutoff} nm) is larger than half the smallest box width "
                                 f"({width} nm)")
        return box.to(self._dtype)

    def forward(self, positions, bead_types, molecules=None, exclusions=None, box=None) -> Tensor:
        """Energy of one frame or a batch of frames, in kJ/mol.

        Parameters
        ----------
        positions : Tensor or array_like, shape (n_beads, 3) or (n_frames, n_beads, 3)
            Bead positions in nm; converted to the model's dtype and device.
        bead_types : array_like of int or CGTopology
            The type of each bead, or a complete :class:`CGTopology` (then
            ``molecules`` and ``exclusions`` must be None).
        molecules : array_like of int, optional
            Molecule id of each bead (see :class:`CGTopology`).
        exclusions : array_like of int, shape (n_exclusions, 2), optional
            Excluded pairs (see :class:`CGTopology`).
        box : Tensor or array_like, shape (3, 3) or (n_frames, 3, 3), optional
            Periodic box vectors as rows, in OpenMM's reduced form; None for no
            periodic boundary conditions.  The cutoff may not exceed half the
            smallest box width.

        Returns
        -------
        Tensor
            Shape () for one frame, (n_frames,) for a batch.
        """
        topology = self._topology(bead_types, molecules, exclusions)
        positions = self._positions(positions, topology.n_beads)
        single = positions.dim() == 2
        if single:
            positions = positions.unsqueeze(0)
        box = self._box(box, positions.shape[0])
        types = torch.tensor(topology.bead_types, device=self._device)
        pairs = torch.tensor(topology.pairs, device=self._device)
        energy = self._energies(positions, types, pairs, box)
        return energy[0] if single else energy

    def energy_and_forces(self, positions, bead_types, molecules=None, exclusions=None, box=None,
                          create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """Energies and forces ``-dU/dx`` (by autograd).

        Takes the arguments of :meth:`forward`, plus

        Parameters
        ----------
        create_graph : bool
            Keep the graph of the forces, so that a loss on them can be
            differentiated with respect to the weights (force matching).

        Returns
        -------
        energy : Tensor, shape () or (n_frames,)
        forces : Tensor, the shape of ``positions``, in kJ/mol/nm
        """
        topology = self._topology(bead_types, molecules, exclusions)
        positions = self._positions(positions, topology.n_beads).detach().requires_grad_(True)
        with torch.enable_grad():
            energy = self.forward(positions, topology, box=box)
            (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
        if not create_graph:
            energy = energy.detach()
        return energy, -gradient

    # ---------------------------------------------------------------------- native force

    @staticmethod
    def _flat(tensor: Tensor) -> list:
        return tensor.detach().double().cpu().numpy().ravel().tolist()

    def _block_arrays(self, block: InteractionBlock) -> list:
        """The nine arrays of a block, row-major inputs x outputs, in CGSchNetForce.BlockArray order."""
        f1, f2 = block.filter[0], block.filter[2]
        u1, u2 = block.update[0], block.update[2]
        return [self._flat(f1.weight.T), self._flat(f1.bias), self._flat(f2.weight.T), self._flat(f2.bias),
                self._flat(block.message.weight.T), self._flat(u1.weight.T), self._flat(u1.bias),
                self._flat(u2.weight.T), self._flat(u2.bias)]

    def _output_layers(self) -> list:
        return [m for m in self.output if isinstance(m, nn.Linear)]

    def _set_scalars(self, force) -> None:
        from openmmcgml.forces import CGSchNetForce

        activation = {"ssp": CGSchNetForce.ShiftedSoftplus, "tanh": CGSchNetForce.Tanh,
                      "silu": CGSchNetForce.SiLU}[self.activation]
        rbf_type = {"gaussian": CGSchNetForce.Gaussian, "expnormal": CGSchNetForce.ExpNormal}[self.rbf.kind]
        force.setActivation(activation)
        centers, widths = self._flat(self.rbf.centers), self._flat(self.rbf.widths)
        # the force requires r_lo < cutoff at every step, so order the two updates accordingly
        if self.cutoff > force.getRBFLowerCutoff():
            force.setCutoff(self.cutoff)
            force.setRBFParameters(rbf_type, centers, widths, self.rbf.lower_cutoff)
        else:
            force.setRBFParameters(rbf_type, centers, widths, self.rbf.lower_cutoff)
            force.setCutoff(self.cutoff)
        force.setEmbedding(self._flat(self.embedding.weight))

    def to_force(self, bead_types, molecules=None, exclusions=None, periodic: bool = False, particles=None,
                 scale_parameter: str = "cgmlScale", scale: float = 1.0, filter_tabulation_points: int = 0):
        """Build the native ``CGSchNetForce`` computing this model (times a global scale).

        Parameters
        ----------
        bead_types, molecules, exclusions
            The topology, as in :meth:`forward`.  Exclusions are indices into
            the bead list, not System indices.
        periodic : bool
            Whether the force uses periodic boundary conditions.
        particles : sequence of int, optional
            The System particle of each bead.  Default: every particle of the
            System, in order (the System must then have exactly n_beads particles).
        scale_parameter : str
            Name of the global parameter ``s`` multiplying the energy.
        scale : float
            Its default value.
        filter_tabulation_points : int
            0 (the default) evaluates the filters exactly; N >= 2 selects the fast
            mode that interpolates each block's filter from a table of N points on
            ``[0, cutoff]`` (see :meth:`filter_tabulation_error` for its accuracy).

        Returns
        -------
        openmmcgml.forces.CGSchNetForce
            Weights are copied in double precision.
        """
        from openmmcgml.forces import CGSchNetForce

        topology = self._topology(bead_types, molecules, exclusions)
        if particles is not None:
            particles = _index_array(particles, "particles")
            if particles.shape != (topology.n_beads,):
                raise ValueError(f"particles has shape {particles.shape} but there are {topology.n_beads} beads")
            if (particles < 0).any():
                raise ValueError(f"particle index {particles[particles < 0][0]} is negative")
            if len(np.unique(particles)) != len(particles):
                raise ValueError("particles lists a particle more than once")
        force = CGSchNetForce(self.n_types, self.n_features, self.n_filters, self.n_rbf, self.cutoff)
        self._set_scalars(force)
        for block in self.interactions:
            force.addInteractionBlock(*self._block_arrays(block))
        for layer in self._output_layers():
            force.addOutputLayer(self._flat(layer.weight.T), self._flat(layer.bias))
        if particles is not None:
            force.setParticles(particles.tolist())
        force.setBeadTypes(topology.bead_types.tolist())
        force.setMolecules(topology.molecules.tolist())
        for i, j in topology.exclusions.tolist():
            force.addExclusion(i, j)
        force.setScaleParameterName(scale_parameter)
        force.setDefaultScale(float(scale))
        force.setUsesPeriodicBoundaryConditions(bool(periodic))
        force.setFilterTabulationPoints(int(filter_tabulation_points))
        return force

    def filter_tabulation_error(self, n_points: int) -> dict:
        """How closely a filter table of ``n_points`` points reproduces this model's filters.

        The fast mode of the native force (``to_force(..., filter_tabulation_points=n)``)
        interpolates each block's filter ``w0(r)`` with cubic Hermite splines on a
        uniform grid of spacing ``h = cutoff / (n - 1)``; the error of ``W = w0 f_c``
        is at most ``h^4 / 384 max|d^4 w0 / dr^4|``, that of ``dW/dr`` about
        ``sqrt(3) h^3 / 216`` times the same maximum.  This measures both for the
        current weights (with ``CGSchNetForce.computeFilterTabulationError``): the
        largest differences over all blocks and channels at the points of each
        table interval where the interpolation errors peak.

        Returns
        -------
        dict
            ``max_error`` (largest ``|W - W_table|``), ``max_derivative_error``
            (largest ``|dW/dr - dW_table/dr|``, 1/nm), and for scale ``max_filter``
            and ``max_filter_derivative`` (largest ``|W|`` and ``|dW/dr|``).
        """
        values = self.to_force([0]).computeFilterTabulationError(int(n_points))
        return dict(zip(("max_error", "max_derivative_error", "max_filter", "max_filter_derivative"), values))

    def _check_force_shapes(self, force) -> None:
        mine = (self.n_types, self.n_features, self.n_filters, self.n_rbf, len(self.interactions),
                [layer.out_features for layer in self._output_layers()])
        theirs = (force.getNumTypes(), force.getNumFeatures(), force.getNumFilters(), force.getNumRBF(),
                  force.getNumInteractionBlocks(),
                  [force.getOutputLayerSize(i) for i in range(force.getNumOutputLayers())])
        names = ("n_types", "n_features", "n_filters", "n_rbf", "number of interaction blocks",
                 "output layer sizes")
        for name, a, b in zip(names, mine, theirs):
            if a != b:
                raise ValueError(f"the force's {name} ({b}) differs from the model's ({a})")

    def update_force(self, force) -> None:
        """Copy this model's weights and scalar settings into an existing force of the same shapes.

        The activation, cutoff, radial basis, embedding, interaction blocks and
        output layers are replaced; particles, topology and scale are kept.
        Call ``force.updateParametersInContext(context)`` afterwards to update
        a running Context.

        Raises
        ------
        ValueError
            If any array shape or the number of blocks or layers differs.
        """
        force = _typed_force(force)
        self._check_force_shapes(force)
        self._set_scalars(force)
        for index, block in enumerate(self.interactions):
            force.setInteractionBlockParameters(index, *self._block_arrays(block))
        for index, layer in enumerate(self._output_layers()):
            force.setOutputLayerParameters(index, self._flat(layer.weight.T), self._flat(layer.bias))

    @classmethod
    def from_force(cls, force) -> "CGSchNet":
        """Rebuild the model from a ``CGSchNetForce`` (the inverse of :meth:`to_force`).

        The model is returned in float64, so the weights are exactly those of
        the force.  Its topology is :meth:`CGTopology.from_force`; the scale
        parameter is not part of the model.  A plain ``openmm.Force`` holding a
        CGSchNetForce (as ``system.getForce(i)`` returns) is accepted.
        """
        from openmmcgml.forces import CGSchNetForce

        force = _typed_force(force)
        activation = {CGSchNetForce.ShiftedSoftplus: "ssp", CGSchNetForce.Tanh: "tanh",
                      CGSchNetForce.SiLU: "silu"}[force.getActivation()]
        rbf = {CGSchNetForce.Gaussian: "gaussian", CGSchNetForce.ExpNormal: "expnormal"}[force.getRBFType()]
        sizes = [force.getOutputLayerSize(i) for i in range(force.getNumOutputLayers())]
        if not sizes or sizes[-1] != 1:
            raise ValueError(f"the force's output layers (sizes {sizes}) must end in a single output")
        if force.getNumInteractionBlocks() < 1:
            raise ValueError("the force has no interaction blocks")
        model = cls(force.getNumTypes(), force.getNumFeatures(), force.getNumFilters(), force.getNumRBF(),
                    force.getNumInteractionBlocks(), force.getCutoff(), activation, rbf,
                    force.getRBFLowerCutoff() if rbf == "expnormal" else 0.0, tuple(sizes[:-1])).double()

        def load(target: Tensor, values, transpose: bool = False):
            values = torch.tensor(values, dtype=torch.float64)
            if transpose:
                values = values.view(target.shape[1], target.shape[0]).T
            target.copy_(values.view(target.shape))

        with torch.no_grad():
            load(model.rbf.centers, force.getRBFCenters())
            load(model.rbf.widths, force.getRBFWidths())
            load(model.embedding.weight, force.getEmbedding())
            for index, block in enumerate(model.interactions):
                targets = [(block.filter[0].weight, True), (block.filter[0].bias, False),
                           (block.filter[2].weight, True), (block.filter[2].bias, False),
                           (block.message.weight, True),
                           (block.update[0].weight, True), (block.update[0].bias, False),
                           (block.update[2].weight, True), (block.update[2].bias, False)]
                for array, (target, transpose) in enumerate(targets):
                    load(target, force.getInteractionBlockArray(index, array), transpose)
            for index, layer in enumerate(model._output_layers()):
                load(layer.weight, force.getOutputLayerWeights(index), True)
                load(layer.bias, force.getOutputLayerBias(index))
        return model

    # ----------------------------------------------------------------------- TorchScript

    def to_torchscript(self, path, bead_types, molecules=None, exclusions=None, periodic: bool = False,
                       particles=None) -> torch.jit.ScriptModule:
        """Save a TorchScript module for openmm-torch's ``TorchForce``.

        The module follows openmm-torch's convention: ``forward(positions)``
        (or ``forward(positions, boxvectors)`` when periodic) takes the
        positions of all System particles, shape (n_particles, 3) in nm, and
        returns the energy in kJ/mol as a scalar.  Create the TorchForce with
        ``setUsesPeriodicBoundaryConditions(periodic)``.  The weights are frozen
        (no gradients) in the model's current dtype; positions are cast to it.

        Parameters
        ----------
        path : str or path-like
            Where to write the module.
        bead_types, molecules, exclusions
            The topology, as in :meth:`forward`.
        periodic : bool
            Whether ``forward`` takes box vectors and applies the minimum image.
        particles : sequence of int, optional
            The System particle of each bead; default: particle i is bead i.

        Returns
        -------
        torch.jit.ScriptModule
            The module that was saved.
        """
        topology = self._topology(bead_types, molecules, exclusions)
        with warnings.catch_warnings():
            # TorchScript is what openmm-torch loads, although torch marks it deprecated
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
            module = torch.jit.script(_TorchForceModule(self, topology, periodic, particles))
        module.save(str(path))
        return module


class _TorchForceModule(_CGSchNetCore):
    """A frozen CGSchNet bound to one topology, with openmm-torch's calling convention."""

    def __init__(self, model: CGSchNet, topology: CGTopology, periodic: bool, particles=None):
        super().__init__()
        model = copy.deepcopy(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.embedding = model.embedding
        self.rbf = model.rbf
        self.interactions = model.interactions
        self.output = model.output
        self.cutoff = model.cutoff
        self.periodic = bool(periodic)
        device = model.embedding.weight.device
        self.register_buffer("types", torch.tensor(topology.bead_types, device=device))
        self.register_buffer("pairs", torch.tensor(topology.pairs, device=device))
        self.select = particles is not None
        if particles is None:
            particles = np.arange(topology.n_beads)
        particles = _index_array(particles, "particles")
        if particles.shape != (topology.n_beads,) or (particles < 0).any():
            raise ValueError(f"particles must list {topology.n_beads} non-negative System indices")
        self.register_buffer("particles", torch.as_tensor(particles, device=device))

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        if self.select:
            positions = positions.index_select(0, self.particles)
        elif positions.shape[0] != self.types.shape[0]:
            raise ValueError("the number of positions differs from the number of beads")
        dtype = self.embedding.weight.dtype
        box: Optional[Tensor] = None
        if self.periodic:
            if boxvectors is None:
                raise ValueError("this model is periodic and needs box vectors")
            box = boxvectors.to(dtype)
            if self.cutoff > 0.5 * float(torch.min(torch.diagonal(box))):
                raise ValueError("the cutoff is larger than half the smallest box width")
        return self._energies(positions.to(dtype).unsqueeze(0), self.types, self.pairs, box)[0]
