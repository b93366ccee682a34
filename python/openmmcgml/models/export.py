"""A CGSchNet in OpenMM: the native ``CGSchNetForce`` and a TorchScript module for openmm-torch.

:class:`OpenMMExport` gives :class:`~openmmcgml.models.CGSchNet` its methods
:meth:`~OpenMMExport.to_force`, :meth:`~OpenMMExport.update_force`,
:meth:`~OpenMMExport.from_force`, :meth:`~OpenMMExport.filter_tabulation_error` and
:meth:`~OpenMMExport.to_torchscript`.  The native force stores every dense layer as a row-major
``inputs x outputs`` array (the transpose of ``nn.Linear.weight``); weights are copied in double
precision.
"""

from __future__ import annotations

import copy
import warnings
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from .layers import InteractionBlock, _CGSchNetCore
from .topology import CGTopology, _index_array, _typed_force

__all__ = ["OpenMMExport"]


class OpenMMExport:
    """The OpenMM export of a CGSchNet (a mix-in class of :class:`~openmmcgml.models.CGSchNet`).

    The methods read the model's modules (``embedding``, ``rbf``, ``interactions``, ``output``),
    its sizes and ``cutoff``, and check the topology with its ``_topology``.
    """

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
    def from_force(cls, force) -> "OpenMMExport":
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

    def __init__(self, model: _CGSchNetCore, topology: CGTopology, periodic: bool, particles=None):
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
