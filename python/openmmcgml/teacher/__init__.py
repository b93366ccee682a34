"""The teacher: a discriminator that judges a CG model against all-atom reference frames, and the
bias force that its logit defines (:class:`~openmmcgml.models.Discriminator`,
``DiscriminatorBiasForce``).

Modules: :mod:`~openmmcgml.teacher.training` (:class:`DiscriminatorTraining`, the classifier's fit
with held-out blocks and a balanced accuracy with its standard error) and
:mod:`~openmmcgml.teacher.loop` (:class:`Teacher`, the rounds of sampling, judging and biasing).
"""

from .loop import Teacher
from .training import DiscriminatorTraining, held_out_blocks

__all__ = ["DiscriminatorTraining", "Teacher", "held_out_blocks"]
