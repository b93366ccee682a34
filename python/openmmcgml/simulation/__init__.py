"""Coarse-grained simulations: build the CG System, run many replicas, write and read trajectories.

A trained CG model (:class:`openmmcgml.cgmodel.CGModel`: bead masses, prior forces and a learned
``CGSchNetForce``) becomes an OpenMM System of ``n_replicas`` independent copies in one Context;
each copy is its own molecule of the learned force, and the priors never couple copies.

Examples
--------
>>> from openmmcgml.simulation import CGSimulation, initial_structures   # doctest: +SKIP
>>> sim = CGSimulation(model, n_replicas=100, timestep=0.002, seed=1)     # doctest: +SKIP
>>> sim.set_positions(initial_structures("alanine-cg.h5", 100, seed=1))   # doctest: +SKIP
>>> sim.run(50_000, report_interval=100, output="cg-run.h5", checkpoint="cg-run.chk",
...         checkpoint_interval=5_000, progress=True)                     # doctest: +SKIP
>>> runs = read_trajectories("cg-run.h5")                                 # doctest: +SKIP
>>> runs.to_mdtraj(0)                                                     # doctest: +SKIP
"""

from .runner import ArrayReporter, CGSimulation, TemperatureMismatchWarning, load_cg_model, warn_if_temperature_differs
from .storage import HDF5TrajectoryReporter, SimulationBlewUp, TrajectorySet, read_trajectories, topology_pdb
from .system import (REFERENCE_PLATFORM_LIMIT, arrange_replicas, build_system, cg_topology, default_platform,
                     initial_structures)

__all__ = [
    "ArrayReporter",
    "CGSimulation",
    "HDF5TrajectoryReporter",
    "REFERENCE_PLATFORM_LIMIT",
    "SimulationBlewUp",
    "TemperatureMismatchWarning",
    "TrajectorySet",
    "arrange_replicas",
    "build_system",
    "cg_topology",
    "default_platform",
    "initial_structures",
    "load_cg_model",
    "read_trajectories",
    "topology_pdb",
    "warn_if_temperature_differs",
]
