"""PyTorch models of the learned coarse-grained potentials.

:class:`CGSchNet` computes exactly the function of the native ``CGSchNetForce``
(see :mod:`openmmcgml.forces`); :meth:`CGSchNet.to_force` and
:meth:`CGSchNet.from_force` convert between the two.
"""

from .cgschnet import Activation, CGSchNet, CGTopology, InteractionBlock, RadialBasis, default_rbf_parameters

__all__ = ["Activation", "CGSchNet", "CGTopology", "InteractionBlock", "RadialBasis", "default_rbf_parameters"]
