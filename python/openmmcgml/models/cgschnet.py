"""The CGSchNet potential in PyTorch.

The model computes exactly the function of the native ``CGSchNetForce`` (see
docs/cgschnet.md, "CGSchNetForce: the function it computes"), so a trained model
can be copied into an OpenMM System with :meth:`CGSchNet.to_force` and the two
agree to rounding error.

This module holds the torch module only: its building blocks are in
:mod:`~openmmcgml.models.layers`, the bead topology in :mod:`~openmmcgml.models.topology`,
and the export to OpenMM (``to_force``, ``update_force``, ``from_force``,
``filter_tabulation_error``, ``to_torchscript``, inherited from
:class:`~openmmcgml.models.export.OpenMMExport`) in :mod:`~openmmcgml.models.export`.

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

import math
from numbers import Integral, Real
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .export import OpenMMExport
from .layers import (ACTIVATIONS, RBF_KINDS, Activation, InteractionBlock, RadialBasis, _CGSchNetCore,
                     default_rbf_parameters)
from .topology import CGTopology

# the building blocks are re-exported: the model's choices (ACTIVATIONS, RBF_KINDS) are read from here
__all__ = ["ACTIVATIONS", "Activation", "CGSchNet", "CGTopology", "InteractionBlock", "RBF_KINDS", "RadialBasis",
           "default_rbf_parameters"]


# the marker of the files CGModel.save writes (openmmcgml.cgmodel; that module imports this one)
_CGMODEL_FORMAT = "openmm-cgml-model"


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer (got {value!r})")
    return int(value)


class CGSchNet(OpenMMExport, _CGSchNetCore):
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

        The file holds the network alone.  A trained model as ``cgml train`` writes it (network,
        priors, beads and mapping) is a different file, written by
        :meth:`openmmcgml.cgmodel.CGModel.save` and read by :meth:`openmmcgml.cgmodel.CGModel.load`,
        whose ``model`` attribute is the network.

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
        """Load a model written by :meth:`save`, in the dtype it was saved in.

        Raises
        ------
        ValueError
            If the file is not one :meth:`save` writes; a model file of ``cgml train``
            (:meth:`openmmcgml.cgmodel.CGModel.save`) is named as such, with its loader.
        """
        data = torch.load(path, map_location=map_location, weights_only=True)
        if isinstance(data, dict) and data.get("format") == _CGMODEL_FORMAT:
            raise ValueError(f"{path} is a CGModel file (network, priors and beads, as cgml train and CGModel.save "
                             "write it), not a bare CGSchNet network; load it with "
                             "openmmcgml.cgmodel.CGModel.load(path), whose .model is the network")
        if not isinstance(data, dict) or not {"config", "state_dict"} <= set(data):
            raise ValueError(f"{path} is not a CGSchNet network file (CGSchNet.save writes a dictionary with "
                             "'config' and 'state_dict')")
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
