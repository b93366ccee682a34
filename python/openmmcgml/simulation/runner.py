"""Running many CG replicas in one OpenMM Context, with checkpoints and trajectory output."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from typing import Optional, Sequence

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

from .._atomic import atomic_write
from .storage import HDF5TrajectoryReporter, SimulationBlewUp, jsonable, topology_pdb
from .system import arrange_replicas, build_system, cg_topology, default_platform

__all__ = ["ArrayReporter", "CGSimulation", "TemperatureMismatchWarning", "load_cg_model", "warn_if_temperature_differs"]

CHECKPOINT_FORMAT = "openmm-cgml-checkpoint"


class TemperatureMismatchWarning(UserWarning):
    """A CG model is simulated at a temperature other than that of its training data."""


def warn_if_temperature_differs(model, temperature, stacklevel: int = 2) -> bool:
    """Warn (:class:`TemperatureMismatchWarning`) if ``temperature`` is not the model's training temperature.

    A CG potential learned by force matching is a free energy (potential of mean force) at the
    temperature of its training data; at another temperature it does not give the CG distribution
    of the all-atom model there.

    Parameters
    ----------
    model
        Has ``temperature`` (K), the training temperature; a model without one is not checked.
    temperature : float or None
        Kelvin; None means the model's own.
    stacklevel : int
        As for :func:`warnings.warn`, counted from the caller of this function: 2 names its caller's caller.

    Returns
    -------
    bool
        Whether it warned.
    """
    trained_at = getattr(model, "temperature", None)
    if temperature is None or trained_at is None:
        return False
    trained_at, temperature = float(trained_at), float(temperature)
    if abs(temperature - trained_at) <= 1e-6 * trained_at:
        return False
    warnings.warn(f"the CG model was trained at {trained_at:g} K but runs at {temperature:g} K: its potential is a "
                  f"free energy at {trained_at:g} K, so the ensemble at {temperature:g} K is not the all-atom "
                  "model's CG ensemble at that temperature", TemperatureMismatchWarning, stacklevel=stacklevel + 1)
    return True


def load_cg_model(path):
    """Load a trained CG model saved with ``CGModel.save`` (see :mod:`openmmcgml.cgmodel`)."""
    from ..cgmodel import CGModel

    return CGModel.load(path)


class ArrayReporter:
    """OpenMM reporter keeping replica positions in memory: for short runs and tests.

    After a run, :attr:`coordinates` has shape (n_reports, n_replicas, n_beads, 3) in nm and
    :attr:`steps` the step of each report.
    """

    def __init__(self, report_interval: int, n_replicas: int, n_beads: int, forces: bool = False):
        self.report_interval = int(report_interval)
        self.n_replicas, self.n_beads = int(n_replicas), int(n_beads)
        self.forces = bool(forces)
        self._xyz, self._forces, self.steps = [], [], []

    def describeNextReport(self, simulation):
        steps = self.report_interval - simulation.currentStep % self.report_interval
        return {"steps": steps, "periodic": False, "include": ["positions", "forces"] if self.forces else ["positions"]}

    def report(self, simulation, state):
        shape = (self.n_replicas, self.n_beads, 3)
        self._xyz.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer).reshape(shape))
        if self.forces:
            f = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
            self._forces.append(np.asarray(f).reshape(shape))
        self.steps.append(simulation.currentStep)

    @property
    def coordinates(self) -> np.ndarray:
        return np.array(self._xyz).reshape(-1, self.n_replicas, self.n_beads, 3)

    @property
    def force_values(self) -> np.ndarray:
        return np.array(self._forces).reshape(-1, self.n_replicas, self.n_beads, 3)

    def replica(self, r: int) -> np.ndarray:
        """Frames of replica ``r``, shape (n_reports, n_beads, 3)."""
        return self.coordinates[:, r]


def _write_atomically(path, data: bytes):
    with atomic_write(path) as handle:
        handle.write(data)


def _pack_checkpoint(blob: bytes, metadata: dict) -> bytes:
    header = json.dumps(dict(metadata, format=CHECKPOINT_FORMAT)).encode()
    return len(header).to_bytes(8, "little") + header + blob


def _unpack_checkpoint(data: bytes):
    size = int.from_bytes(data[:8], "little")
    try:
        metadata = json.loads(data[8:8 + size].decode())
    except (UnicodeDecodeError, ValueError):
        metadata = {}
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not an openmm-cgml checkpoint file")
    return metadata, data[8 + size:]


def _residues(model, n_beads):
    """Residue names, ids and elements of the beads, from the model's map (``mapping["beads"]``)."""
    mapping = jsonable(getattr(model, "mapping", None) or {})
    beads = mapping.get("beads") if isinstance(mapping, dict) else None
    if isinstance(beads, list) and len(beads) == n_beads and all(isinstance(b, dict) and "residue" in b for b in beads):
        return ([str(b["residue"]) for b in beads], [int(b.get("residue_index", 0)) + 1 for b in beads],
                [b.get("element") for b in beads])
    return None, None, None


class CGSimulation:
    """Langevin dynamics of ``n_replicas`` copies of a CG model in one OpenMM Context.

    The copies are separate molecules of the learned force and the priors never couple them, so
    they are independent simulations; they are placed apart in space only for viewing.

    Parameters
    ----------
    model
        A CG model with the interface of :class:`openmmcgml.cgmodel.CGModel` (``masses``,
        ``bead_names``, ``temperature``, ``prior_forces(n)``, ``learned_force(n)``; the residues
        of the topology come from ``mapping["beads"]`` when the map lists them).
    n_replicas : int
    temperature : float, optional
        Kelvin; default ``model.temperature``.
    timestep : float
        ps (default 0.002).
    friction : float
        1/ps (default 1.0).
    platform : str, optional
        OpenMM platform name; default :func:`default_platform` of the System (CPU with a learned
        force; priors alone: Reference below 1000 particles, else CPU).  The name is kept in :attr:`platform_name`.
    platform_properties : dict, optional
        E.g. ``{"Threads": "2"}`` for CPU, ``{"Precision": "mixed"}`` for CUDA/OpenCL.
    seed : int, optional
        Seed of the integrator's random numbers and of the initial velocities; default random.

    Attributes
    ----------
    system : openmm.System
    topology : openmm.app.Topology
        One chain per replica.
    simulation : openmm.app.Simulation
        Its ``reporters`` list takes any OpenMM reporter (DCDReporter, StateDataReporter, ...).

    Examples
    --------
    A three-bead model with a small random network, four replicas:

    >>> import os, tempfile
    >>> from openmmcgml.cgmodel import CGModel
    >>> from openmmcgml.models import CGSchNet
    >>> from openmmcgml.priors import HarmonicBonds, PriorSet
    >>> from openmmcgml.simulation import read_trajectories
    >>> priors = PriorSet(3, terms=[HarmonicBonds([[0, 1], [1, 2]], k=[2e3, 2e3], r0=[0.38, 0.38])])
    >>> model = CGModel(CGSchNet(2, 8, 8, 4, 1, cutoff=1.0), priors, bead_types=[0, 1, 0], masses=[110.0] * 3)
    >>> sim = CGSimulation(model, n_replicas=4, timestep=0.002, seed=1)
    >>> sim.platform_name
    'CPU'
    >>> sim.set_positions([[0.0, 0.0, 0.0], [0.38, 0.0, 0.0], [0.76, 0.1, 0.0]])  # every replica
    >>> folder = tempfile.mkdtemp()
    >>> result = sim.run(100, report_interval=10, output=os.path.join(folder, "run.h5"),
    ...                  checkpoint=os.path.join(folder, "run.chk"), checkpoint_interval=50)
    >>> result["frames"], sim.get_positions().shape
    (40, (4, 3, 3))
    >>> runs = read_trajectories(os.path.join(folder, "run.h5"))
    >>> len(runs.coordinates), runs.coordinates[0].shape
    (4, (10, 3, 3))

    Starting structures drawn from reference data: ``initial_structures("reference-cg.h5",
    n_replicas, seed=1)``.
    """

    def __init__(self, model, n_replicas: int = 1, *, temperature: Optional[float] = None, timestep: float = 0.002,
                 friction: float = 1.0, platform: Optional[str] = None, platform_properties: Optional[dict] = None,
                 seed: Optional[int] = None):
        self.model = model
        if isinstance(n_replicas, bool) or int(n_replicas) != n_replicas or n_replicas < 1:
            raise ValueError(f"n_replicas must be a positive integer (got {n_replicas!r})")
        self.n_replicas = int(n_replicas)
        self.n_beads = len(model.masses)
        self.temperature = float(model.temperature if temperature is None else temperature)
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature must be positive (got {self.temperature} K)")
        self.timestep, self.friction = float(timestep), float(friction)
        if not 0 < self.timestep < math.inf:
            raise ValueError(f"timestep must be positive (got {timestep} ps)")
        if not 0 <= self.friction < math.inf:
            raise ValueError(f"friction must be zero or positive (got {friction} 1/ps)")
        self.seed = int(seed) if seed is not None else int(np.random.default_rng().integers(1, 2**31 - 1))
        self.system = build_system(model, self.n_replicas)
        self.bead_names = list(getattr(model, "bead_names", None) or ["CG"] * self.n_beads)
        self._residues = _residues(model, self.n_beads)
        self.topology = cg_topology(self.bead_names, self.n_replicas, *self._residues)
        self.platform_name = platform or default_platform(self.system)
        try:
            chosen = openmm.Platform.getPlatformByName(self.platform_name)
        except openmm.OpenMMException as error:
            names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
            raise ValueError(f"OpenMM has no platform {self.platform_name!r}; available: {', '.join(names)}") from error
        # OpenMM takes property values as strings only
        self.platform_properties = {str(k): str(v) for k, v in (platform_properties or {}).items()}
        known = set(chosen.getPropertyNames())
        if platform is None:
            # properties given for the platform an automatic choice might make (CPU threads, say)
            # do not apply when it chose another
            self.platform_properties = {k: v for k, v in self.platform_properties.items() if k in known}
        unknown = sorted(set(self.platform_properties) - known)
        if unknown:
            raise ValueError(f"platform property {', '.join(unknown)} is not one of the {self.platform_name} "
                             f"platform's ({', '.join(sorted(known)) or 'none'})")
        self.integrator = openmm.LangevinMiddleIntegrator(self.temperature * unit.kelvin,
                                                          self.friction / unit.picosecond,
                                                          self.timestep * unit.picoseconds)
        # OpenMM treats seed 0 as "pick one": keep seeds positive so runs are reproducible
        self.integrator.setRandomNumberSeed(self.seed % (2**31 - 1) + 1)
        self.simulation = app.Simulation(self.topology, self.system, self.integrator,
                                         chosen, self.platform_properties or None)
        self.context = self.simulation.context
        self._positions_set = False
        self._single = None
        # once per run: all replicas share this one Context
        warn_if_temperature_differs(model, temperature)

    # ------------------------------------------------------------------------------ state

    @property
    def n_particles(self) -> int:
        return self.n_replicas * self.n_beads

    @property
    def step_count(self) -> int:
        return self.simulation.currentStep

    def single_topology(self) -> app.Topology:
        """The topology of one replica."""
        return cg_topology(self.bead_names, 1, *self._residues)

    def set_positions(self, structures, velocities: bool = True, spacing: Optional[float] = None, seed=None):
        """Set the replicas' coordinates and draw velocities at the temperature.

        Parameters
        ----------
        structures : array_like
            (n_replicas, n_beads, 3), or (n_beads, 3) for every replica, in nm.  Replicas are
            centred on the points of a cubic grid (see :func:`arrange_replicas`).  Use
            :func:`initial_structures` to draw frames from reference data.
        velocities : bool
            Draw Maxwell-Boltzmann velocities (seeded by ``seed``, default the simulation seed).
        """
        structures = np.asarray(structures, dtype=float)
        if structures.ndim == 2:
            structures = np.broadcast_to(structures, (self.n_replicas,) + structures.shape)
        if structures.shape != (self.n_replicas, self.n_beads, 3):
            raise ValueError(f"structures must have shape ({self.n_replicas}, {self.n_beads}, 3) "
                             f"(got {structures.shape})")
        if not np.all(np.isfinite(structures)):
            raise ValueError("structures contain non-finite coordinates")
        self.context.setPositions(arrange_replicas(structures, spacing))
        if velocities:
            self.context.setVelocitiesToTemperature(self.temperature * unit.kelvin,
                                                    int(self.seed if seed is None else seed) % (2**31 - 1) + 1)
        self._positions_set = True

    def get_positions(self) -> np.ndarray:
        """Current coordinates, shape (n_replicas, n_beads, 3), nm."""
        xyz = self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        return np.asarray(xyz).reshape(self.n_replicas, self.n_beads, 3)

    def get_forces(self) -> np.ndarray:
        """Current forces, shape (n_replicas, n_beads, 3), kJ/mol/nm."""
        f = self.context.getState(getForces=True).getForces(asNumpy=True)
        return np.asarray(f.value_in_unit(unit.kilojoule_per_mole / unit.nanometer)).reshape(
            self.n_replicas, self.n_beads, 3)

    def potential_energy(self) -> float:
        """Total potential energy of all replicas, kJ/mol."""
        return self.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    def replica_energies(self, structures=None) -> np.ndarray:
        """Potential energy of each replica (kJ/mol), evaluated in a one-replica Reference Context.

        Parameters
        ----------
        structures : array_like, optional
            (n, n_beads, 3) frames to evaluate; default the current replicas.
        """
        if structures is None:
            structures = self.get_positions()
        structures = np.asarray(structures, dtype=float).reshape(-1, self.n_beads, 3)
        if self._single is None:
            system = build_system(self.model, 1)
            self._single = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                          openmm.Platform.getPlatformByName("Reference"))
        energies = np.empty(len(structures))
        for k, xyz in enumerate(structures):
            self._single.setPositions(xyz)
            energies[k] = self._single.getState(getEnergy=True).getPotentialEnergy().value_in_unit(
                unit.kilojoule_per_mole)
        return energies

    def minimize(self, tolerance: float = 10.0, max_iterations: int = 0):
        """Local energy minimisation of all replicas (tolerance in kJ/mol/nm)."""
        self._require_positions()
        openmm.LocalEnergyMinimizer.minimize(self.context, tolerance, max_iterations)

    def _require_positions(self):
        if not self._positions_set:
            raise RuntimeError("set the replicas' positions first (set_positions)")

    # ------------------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path, **metadata):
        """Write an OpenMM checkpoint (positions, velocities, step, random state) plus metadata.

        The file is replaced atomically.  It can be loaded only by a simulation of the same System
        on the same platform and OpenMM version (OpenMM's rule for checkpoints).
        """
        info = {
            "step": self.step_count,
            "n_replicas": self.n_replicas,
            "n_beads": self.n_beads,
            "platform": self.platform_name,
            "openmm_version": openmm.version.version,
            "temperature": self.temperature,
            "timestep": self.timestep,
            "seed": self.seed,
        }
        info.update(metadata)
        _write_atomically(path, _pack_checkpoint(self.context.createCheckpoint(), info))

    def load_checkpoint(self, path) -> dict:
        """Restore a checkpoint written by :meth:`save_checkpoint`; returns its metadata."""
        with open(path, "rb") as handle:
            metadata, blob = _unpack_checkpoint(handle.read())
        for key in ("n_replicas", "n_beads", "platform"):
            mine = {"n_replicas": self.n_replicas, "n_beads": self.n_beads, "platform": self.platform_name}[key]
            if metadata.get(key) != mine:
                hint = f" (pass platform={metadata.get(key)!r} to resume it)" if key == "platform" else ""
                raise ValueError(f"checkpoint {path} was written with {key} = {metadata.get(key)!r}, "
                                 f"this simulation has {mine!r}{hint}")
        self.context.loadCheckpoint(blob)
        self._positions_set = True
        return metadata

    # ------------------------------------------------------------------------------ running

    def trajectory_metadata(self):
        """The root attributes of the trajectory file (docs/data-format.md) as ``TrajectoryMetadata``."""
        from ..data.trajectory import TrajectoryMetadata

        model = self.model
        metadata = getattr(model, "metadata", None) or {}
        mapping = jsonable(getattr(model, "mapping", None) or {})
        type_names = mapping.get("type_names") if isinstance(mapping, dict) else None
        return TrajectoryMetadata(
            resolution="coarse-grained",
            system=str(metadata.get("system", "")),
            sequence=str(metadata.get("sequence", "")),
            forcefield=[],
            temperature=self.temperature,
            timestep=self.timestep,
            topology_pdb=topology_pdb(self.single_topology(), self.get_positions()[0]) if self._positions_set else "",
            mapping=mapping or None,
            bead_names=list(self.bead_names),
            bead_types=[int(t) for t in getattr(model, "bead_types", [])] or None,
            type_names=list(type_names) if type_names else None,
            extra={"source": "cg-simulation", "platform": self.platform_name, "friction": self.friction,
                   "seed": self.seed, "n_replicas": self.n_replicas, "openmm_version": openmm.version.version},
        )

    def run(self, n_steps: int, report_interval: Optional[int] = None, output=None, *, forces: bool = False,
            checkpoint=None, checkpoint_interval: Optional[int] = None, resume: bool = True,
            overwrite: bool = False, progress: bool = False, reporters: Sequence = ()) -> dict:
        """Run until the step counter reaches ``n_steps``, writing frames and checkpoints.

        ``n_steps`` is the total length of the run counted from step 0, so a run resumed from a
        checkpoint continues to the same end; call again with a larger ``n_steps`` to extend it.

        Parameters
        ----------
        n_steps : int
            Total steps.
        report_interval : int, optional
            Steps between saved frames (needed with ``output``).
        output : str or path, optional
            HDF5 trajectory file (docs/data-format.md layout, resolution ``"coarse-grained"``): one
            row per replica per report, ``trajectory`` = replica index.
        forces : bool
            Also store forces.
        checkpoint : str or path, optional
            Checkpoint file, written every ``checkpoint_interval`` steps and at the end.  If it
            exists and ``resume`` is true the run continues from it: the trajectory file is cut
            back to the frames the checkpoint vouches for (frames written after it are made again,
            identically on the platform that wrote them), so no frame is lost or duplicated.
        checkpoint_interval : int, optional
            Steps between checkpoints (default: only at the end).  A multiple of
            ``report_interval`` keeps the output's frame spacing regular across a resume.
        resume : bool
            Continue from an existing checkpoint (default).  With False, an existing checkpoint is
            ignored and overwritten.
        overwrite : bool
            Replace an existing output file when not resuming.
        progress : bool
            Show a tqdm progress bar.
        reporters : sequence
            Extra OpenMM reporters for this run (they see all replicas as one System).

        Returns
        -------
        dict
            ``steps`` (run now), ``seconds``, ``steps_per_second``, ``resumed_from`` (step or None),
            ``frames`` (rows in the output, or None), ``platform``.
        """
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer (got {n_steps!r})")
        n_steps = int(n_steps)
        resumed_from, resume_rows = None, None
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            metadata = self.load_checkpoint(checkpoint)
            resumed_from = metadata["step"]
            if output is not None:
                if metadata.get("output_rows") is None:
                    raise ValueError(f"checkpoint {checkpoint} records no trajectory file; cannot resume {output}")
                resume_rows = int(metadata["output_rows"])
                if metadata.get("output") and metadata["output"] != os.path.abspath(output):
                    warnings.warn(f"checkpoint {checkpoint} was written for {metadata['output']}; resuming "
                                  f"{output} instead")
                if metadata.get("report_interval") not in (None, report_interval):
                    raise ValueError(f"checkpoint {checkpoint} was written with report_interval "
                                     f"{metadata['report_interval']}, not {report_interval}")
        self._require_positions()
        if checkpoint_interval is not None and int(checkpoint_interval) < 1:
            raise ValueError("checkpoint_interval must be at least 1")
        writer = None
        if output is not None:
            if report_interval is None:
                raise ValueError("an output file needs a report_interval")
            writer = HDF5TrajectoryReporter(output, report_interval, self.n_replicas, self.n_beads,
                                            metadata=None if resume_rows is not None else self.trajectory_metadata(),
                                            masses=self.model.masses, forces=forces, resume_rows=resume_rows,
                                            overwrite=overwrite)
        saved_reporters = list(self.simulation.reporters)
        self.simulation.reporters = ([writer] if writer is not None else []) + list(reporters) + saved_reporters
        start_step = self.step_count
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, initial=min(start_step, n_steps), unit="step", dynamic_ncols=True,
                       desc=f"{self.n_replicas} replica(s) on {self.platform_name}")
        chunk = max(1, (n_steps - start_step) // 200) if progress else max(1, n_steps - start_step)

        saved_step = [resumed_from]  # the step of this run's checkpoint file, for a blow-up's message

        def write_checkpoint():
            if checkpoint is None:
                return
            rows = None
            if writer is not None:
                writer.flush()
                rows = writer.n_rows
            self.save_checkpoint(checkpoint, output=os.path.abspath(output) if output is not None else None,
                                 output_rows=rows, report_interval=report_interval)
            saved_step[0] = self.step_count

        started = time.perf_counter()
        try:
            while self.step_count < n_steps:
                current = self.step_count
                stop = min(n_steps, current + chunk)
                if checkpoint_interval:
                    stop = min(stop, (current // checkpoint_interval + 1) * checkpoint_interval)
                try:
                    self.simulation.step(stop - current)
                except SimulationBlewUp as error:
                    if saved_step[0] is not None:
                        error.args = (f"{error.args[0]}; the checkpoint {checkpoint} holds step {saved_step[0]}",)
                    raise
                if bar is not None:
                    bar.update(stop - current)
                if checkpoint_interval and self.step_count % checkpoint_interval == 0 and self.step_count < n_steps:
                    write_checkpoint()
            seconds = time.perf_counter() - started
            write_checkpoint()
            frames = writer.n_rows if writer is not None else None
        finally:
            self.simulation.reporters = saved_reporters
            if writer is not None:
                writer.close()
            if bar is not None:
                bar.close()
        steps = self.step_count - start_step
        return {"steps": steps, "seconds": seconds, "steps_per_second": steps / seconds if seconds > 0 else float("inf"),
                "resumed_from": resumed_from, "frames": frames, "platform": self.platform_name}
