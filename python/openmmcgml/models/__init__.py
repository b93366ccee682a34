"""PyTorch models of the learned coarse-grained potentials.

:class:`CGSchNet` computes exactly the function of the native ``CGSchNetForce``
(see :mod:`openmmcgml.forces`); :meth:`CGSchNet.to_force` and
:meth:`CGSchNet.from_force` convert between the two.  :class:`Discriminator` is the teacher's
classifier, whose logit defines the bias potential of ``DiscriminatorBiasForce``.

Modules: :mod:`~openmmcgml.models.cgschnet` (the torch module),
:mod:`~openmmcgml.models.layers` (its building blocks), :mod:`~openmmcgml.models.topology`
(:class:`CGTopology`), :mod:`~openmmcgml.models.export` (the native force and TorchScript) and
:mod:`~openmmcgml.models.discriminator` (:class:`Discriminator`, :class:`BiasFeatures`).
"""

from .cgschnet import CGSchNet
from .discriminator import BiasFeatures, Discriminator
from .layers import Activation, InteractionBlock, RadialBasis, default_rbf_parameters
from .topology import CGTopology

__all__ = ["Activation", "BiasFeatures", "CGSchNet", "CGTopology", "Discriminator", "InteractionBlock", "RadialBasis", "default_rbf_parameters"]
