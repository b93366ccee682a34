"""Settings and run of ``cgml simulate``: a trained CG model, many replicas in one OpenMM Context."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from .._config import (Settings, boolean, config_path, integer, mapping, number, one_of, openmm_platform,
                       save_config, text)
from ..analysis.basins import ALANINE_BASINS

__all__ = ["DEFAULTS", "RULES", "SimulateConfig", "run_config"]


@dataclass
class SimulateConfig(Settings):
    """Settings of ``cgml simulate`` (examples/configs/simulate-alanine.yaml).

    Attributes
    ----------
    model : str
        A CGModel file (``CGModel.save``, ``cgml train``).
    replicas : int
    steps : int
        Total steps per replica; a run resumed from its checkpoint continues to this.
    report_interval : int
        Steps between saved frames.
    timestep : float
        ps.
    friction : float
        1/ps.
    temperature : float, optional
        Kelvin; None: the model's.
    platform : str
        ``auto``: CPU (the plugin's kernel) with a learned force; priors alone: Reference below
        1000 beads.
    platform_properties : dict
    seed : int, optional
    initial : dict
        ``{reference: HDF5 file}`` (random frames of it) or ``{structure: .npy/.pdb/...}``.  With
        ``basin`` (``alpha_R``, ``beta`` or ``alpha_L``; alanine dipeptide's 5-bead backbone map
        only) the replicas start only from reference frames in that basin
        (:func:`openmmcgml.analysis.equilibration.basin_frames`).
    spacing : float, optional
        nm between replica copies (for viewing only); None: automatic.
    minimize : bool
    output : str
        HDF5 trajectory (docs/data-format.md).
    forces : bool
        Store the forces too.
    checkpoint : str, optional
        Default: the output path with ``.chk``.
    checkpoint_interval : int, optional
    resume : bool
        Continue from the checkpoint if there is one.
    overwrite : bool
    progress : bool
        A progress bar (also off with ``--quiet``).
    """

    WHAT = "simulate"
    RULES = {
        "model": text(), "replicas": integer(1), "steps": integer(1), "report_interval": integer(1),
        "timestep": number(above=0), "friction": number(0), "temperature": number(above=0, optional=True),
        "platform": openmm_platform(), "platform_properties": mapping(), "seed": integer(optional=True),
        "initial": mapping(), "initial.basin": one_of(*ALANINE_BASINS, optional=True),
        "spacing": number(above=0, optional=True), "minimize": boolean(),
        "output": text(), "forces": boolean(), "checkpoint": text(), "checkpoint_interval": integer(1, optional=True),
        "resume": boolean(), "overwrite": boolean(), "progress": boolean(),
    }

    model: Optional[str] = None
    replicas: int = 1
    steps: int = 10000
    report_interval: int = 100
    timestep: float = 0.002
    friction: float = 1.0
    temperature: Optional[float] = None
    platform: str = "auto"
    platform_properties: dict = field(default_factory=dict)
    seed: Optional[int] = 1
    initial: dict = field(default_factory=dict)
    spacing: Optional[float] = None
    minimize: bool = False
    output: str = "trajectory.h5"
    forces: bool = False
    checkpoint: Optional[str] = None
    checkpoint_interval: Optional[int] = None
    resume: bool = True
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        unknown = sorted(set(self.initial) - {"reference", "structure", "basin"})
        if unknown:
            raise ValueError(f"unknown simulate setting(s) {', '.join('initial.' + k for k in unknown)}; known: "
                             "initial.reference, initial.structure, initial.basin")
        if self.initial.get("reference") and self.initial.get("structure"):
            raise ValueError("give initial.reference or initial.structure, not both")
        if self.initial.get("basin") is not None and not self.initial.get("reference"):
            raise ValueError(f"initial.basin {self.initial['basin']} picks frames of initial.reference: give "
                             "initial.reference (a CG trajectory file of alanine dipeptide's backbone map)")


#: Every setting with its default.
DEFAULTS = SimulateConfig.defaults()

#: The type and range of each setting (see openmmcgml._config).
RULES = SimulateConfig.rules()


def _structures(initial: dict, n_replicas: int, n_beads: int, seed):
    import numpy as np

    from ..simulation import initial_structures

    if not initial:
        raise ValueError("the config needs initial.reference (an HDF5 trajectory) or initial.structure")
    if initial.get("reference"):
        from ..data.trajectory import TrajectoryFile

        with TrajectoryFile(initial["reference"]) as handle:
            if handle.n_frames == 0:
                raise ValueError(f"initial.reference {initial['reference']} holds no frames to start from")
        if initial.get("basin") is not None:
            from ..analysis.equilibration import basin_frames

            try:
                frames = basin_frames(initial["reference"], initial["basin"])
            except ValueError as error:
                raise ValueError(f"initial.basin {initial['basin']} with initial.reference {initial['reference']}: "
                                 f"{error}") from None
            return initial_structures(frames, n_replicas, n_beads, seed=seed)
        return initial_structures(initial["reference"], n_replicas, n_beads, seed=seed)
    path = initial.get("structure")
    if not path:
        raise ValueError(f"unknown initial settings {sorted(initial)}: use 'reference' or 'structure'")
    if str(path).endswith(".npy"):
        array = np.load(path)
    else:
        import mdtraj

        traj = mdtraj.load(path)
        if traj.n_atoms != n_beads:
            raise ValueError(f"{path} has {traj.n_atoms} atoms but the model has {n_beads} beads")
        array = traj.xyz.astype(float)
    return initial_structures(array, n_replicas, n_beads, seed=seed)


def run_config(config, *, quiet: bool = False, print_fn=print) -> dict:
    """Run the simulation ``config`` (a dict or :class:`SimulateConfig`) describes; returns what
    :meth:`~openmmcgml.simulation.CGSimulation.run` returns.

    ``quiet``: no progress bar (as ``progress: false``).  The settings go to ``<output>.config.yaml``.
    """
    from .. import simulation

    config = SimulateConfig.from_dict(config)
    if not config.model:
        raise ValueError("the config needs 'model': the path of a saved CGModel")
    model = simulation.load_cg_model(config.model)
    platform = None if config.platform in (None, "auto") else config.platform
    sim = simulation.CGSimulation(model, config.replicas, temperature=config.temperature, timestep=float(config.timestep),
                                  friction=float(config.friction), platform=platform,
                                  platform_properties=config.platform_properties, seed=config.seed)
    output = config.output
    checkpoint = config.checkpoint or (os.path.splitext(output)[0] + ".chk" if output else None)
    resuming = checkpoint is not None and config.resume and os.path.exists(checkpoint)
    if not resuming:
        structures = _structures(config.initial, sim.n_replicas, sim.n_beads, config.seed)
        sim.set_positions(structures, spacing=config.spacing)
        if config.minimize:
            sim.minimize()
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    print_fn(f"{sim.n_replicas} replica(s) x {sim.n_beads} beads on the {sim.platform_name} platform, "
             f"{sim.temperature:g} K, time step {sim.timestep:g} ps" + (f"; resuming from {checkpoint}" if resuming else ""))
    result = sim.run(config.steps, config.report_interval, output, forces=config.forces, checkpoint=checkpoint,
                     checkpoint_interval=config.checkpoint_interval, resume=config.resume, overwrite=config.overwrite,
                     progress=config.progress and not quiet)
    if output:
        save_config(config, config_path(output), "simulate")
    print_fn(f"{result['steps']} steps in {result['seconds']:.1f} s ({result['steps_per_second']:.0f} steps/s); "
             f"{result['frames']} frames in {output}")
    return result
