"""PyTorch models of the learned coarse-grained potentials.

:class:`CGSchNet` computes exactly the function of the native ``CGSchNetForce``
(see :mod:`openmmcgml.forces`); :meth:`CGSchNet.to_force` and
:meth:`CGSchNet.from_force` convert between the two.

Modules: :mod:`~openmmcgml.models.cgschnet` (the torch module),
:mod:`~openmmcgml.models.layers` (its building blocks), :mod:`~openmmcgml.models.topology`
(:class:`CGTopology`) and :mod:`~openmmcgml.models.export` (the native force and TorchScript).
"""

from .cgschnet import CGSchNet
from .layers import Activation, InteractionBlock, RadialBasis, default_rbf_parameters
from .topology import CGTopology

__all__ = ["Activation", "CGSchNet", "CGTopology", "InteractionBlock", "RadialBasis", "default_rbf_parameters"]
