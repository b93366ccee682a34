"""The ``cgml`` potential of openmm-ml (see :mod:`openmmcgml.openmmml_potential`, its entry point)."""

from __future__ import annotations

from openmmml.mlpotential import MLPotentialImpl

__all__ = ["CGMLPotentialImpl"]


class CGMLPotentialImpl(MLPotentialImpl):
    """A CG model as an openmm-ml potential: bead masses, prior forces and the learned force.

    Parameters
    ----------
    model : str, path or CGModel
        A model file written by ``CGModel.save``, or the model itself.

    Attributes
    ----------
    model : CGModel
    """

    def __init__(self, model):
        from .cgmodel import CGModel

        if not isinstance(model, CGModel):
            model = CGModel.load(model)
        self.model = model

    def addForces(self, topology, system, atoms, forceGroup: int, temperature=None, **args):
        """Set the bead masses and add the model's forces to ``system`` (called by ``createSystem``).

        Parameters
        ----------
        topology : openmm.app.Topology
            ``n_replicas`` copies of the model's molecule, one bead per atom, in order.
        system : openmm.System
            The System openmm-ml is building, one particle per atom of ``topology``.
        atoms : iterable of int or None
            None, or every particle in order: a CG model describes whole molecules.
        forceGroup : int
            Force group of the added forces.
        temperature : float or openmm.unit.Quantity, optional
            The temperature (K) the System will be simulated at; a warning is issued if it is not
            the model's training temperature.

        Raises
        ------
        ValueError
            If the particles are not whole copies of the model's molecule, or ``atoms`` picks a subset.
        TypeError
            If an argument is not understood.
        """
        from openmm import unit

        from .simulation.runner import warn_if_temperature_differs
        from .simulation.system import add_model_forces, bead_masses

        if args:
            raise TypeError(f"the cgml potential got unexpected arguments {sorted(args)}: it takes temperature= only")
        n_particles = system.getNumParticles()
        n_beads = self.model.n_beads
        if atoms is not None and list(atoms) != list(range(n_particles)):
            raise ValueError("the cgml potential acts on every particle of the System, in order (a CG model "
                             "describes whole molecules); it cannot be applied to a subset of atoms")
        if topology.getNumAtoms() != n_particles:
            raise ValueError(f"the Topology has {topology.getNumAtoms()} atoms but the System {n_particles} particles")
        if n_particles == 0 or n_particles % n_beads:
            raise ValueError(f"the Topology has {n_particles} atoms, which is not a whole number of copies of the "
                             f"model's {n_beads}-bead molecule")
        n_replicas = n_particles // n_beads
        if temperature is not None:
            if unit.is_quantity(temperature):
                temperature = temperature.value_in_unit(unit.kelvin)
            # addForces <- createSystem <- the caller, who chose the temperature
            warn_if_temperature_differs(self.model, temperature, stacklevel=3)
        for index, mass in enumerate(bead_masses(self.model, n_replicas)):
            system.setParticleMass(index, float(mass))
        add_model_forces(system, self.model, n_replicas, force_group=forceGroup)
