"""The ``cgml`` potential of openmm-ml: a CG System from a saved :class:`~openmmcgml.cgmodel.CGModel`.

openmm-ml finds this module through the ``openmmml.potentials`` entry point of this package, so
``import openmmml`` makes the potential available under the name ``"cgml"``.  openmm-ml imports
this module and instantiates the factory while it is itself being imported, so the module imports
neither openmm-ml nor anything heavy (torch, the model classes) until a potential is created: the
factory has the interface of openmm-ml's ``MLPotentialImplFactory`` without deriving from it (that
would import openmm-ml from here, which fails when this module is imported first), and the
potential, a real ``MLPotentialImpl`` subclass, lives in :mod:`openmmcgml._openmmml_impl`.

The Topology holds ``n_replicas`` copies of the model's molecule, bead after bead, in the particle
order of :func:`openmmcgml.simulation.build_system`; ``cg_topology(model.bead_names, n_replicas)``
(:func:`openmmcgml.simulation.cg_topology`) makes one.  The forces are the model's priors and its
learned ``CGSchNetForce``, added by the same code as the project's own CG System builder.  openmm-ml
gives a particle without an element mass 0, which would freeze it, so every bead gets its mass
from the model.

Examples
--------
A three-bead model with a small random network, saved to a file; four copies of its molecule:

>>> import os, tempfile
>>> from openmmml import MLPotential
>>> from openmmcgml.cgmodel import CGModel
>>> from openmmcgml.models import CGSchNet
>>> from openmmcgml.priors import HarmonicBonds, PriorSet
>>> from openmmcgml.simulation import cg_topology
>>> priors = PriorSet(3, terms=[HarmonicBonds([[0, 1], [1, 2]], k=[2e3, 2e3], r0=[0.38, 0.38])])
>>> model = CGModel(CGSchNet(2, 8, 8, 4, 1, cutoff=1.0), priors, bead_types=[0, 1, 0], masses=[110.0] * 3)
>>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
>>> model.save(path)
>>> potential = MLPotential("cgml", model=path)
>>> system = potential.createSystem(cg_topology(model.bead_names, n_replicas=4), temperature=300.0)
>>> system.getNumParticles(), system.getParticleMass(5)
(12, 110.0 Da)

``temperature`` is optional; when given and different from the model's training temperature, a
:class:`~openmmcgml.simulation.TemperatureMismatchWarning` is issued.
"""

from __future__ import annotations

__all__ = ["CGMLPotentialImpl", "CGMLPotentialImplFactory"]


class CGMLPotentialImplFactory:
    """Creates :class:`CGMLPotentialImpl` objects for ``MLPotential("cgml", model=...)``.

    It has the interface of openmm-ml's ``MLPotentialImplFactory`` (openmm-ml calls only
    :meth:`createImpl`).
    """

    def createImpl(self, name: str, model=None, **args):
        """Create the potential of one CG model.

        Parameters
        ----------
        name : str
            The potential's name (``"cgml"``).
        model : str, path or CGModel
            A model file written by ``CGModel.save`` (network and priors), or a CGModel.

        Returns
        -------
        CGMLPotentialImpl

        Raises
        ------
        TypeError
            If no model is given, or an argument is not understood.
        """
        if model is None:
            raise TypeError(f"MLPotential({name!r}) needs model=: the path of a CG model file (CGModel.save) "
                            "or a CGModel")
        if args:
            raise TypeError(f"MLPotential({name!r}) got unexpected arguments {sorted(args)}: it takes model= only")
        from ._openmmml_impl import CGMLPotentialImpl

        return CGMLPotentialImpl(model)


def __getattr__(name):
    # The potential class derives from openmm-ml's MLPotentialImpl: import it on first use only.
    if name == "CGMLPotentialImpl":
        from ._openmmml_impl import CGMLPotentialImpl

        return CGMLPotentialImpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
