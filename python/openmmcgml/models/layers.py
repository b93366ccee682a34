"""The building blocks of CGSchNet and the evaluation it shares with its TorchScript export.

:class:`Activation`, :class:`RadialBasis` (defaults from :func:`default_rbf_parameters`),
:class:`InteractionBlock`, and ``_CGSchNetCore._energies``: the energy of frames from these
blocks, written in TorchScript's subset of Python so that the exported module runs the same code.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "Activation", "InteractionBlock", "RBF_KINDS", "RadialBasis", "default_rbf_parameters"]

ACTIVATIONS = ("ssp", "tanh", "silu")
RBF_KINDS = ("gaussian", "expnormal")


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
