"""The all-atom oracle: OpenMM MD of a peptide in implicit solvent, saving coordinates and forces.

:func:`run_oracle` builds (or reads) the peptide, adds hydrogens, minimises, and runs Langevin
dynamics (``LangevinMiddleIntegrator``), saving every ``save_every`` steps the positions, the
force-field forces and the potential energy to an HDF5 trajectory file (``docs/data-format.md``),
and, if asked, the same frames mapped to coarse-grained coordinates and forces to a second file
(so a long run can be mapped where it runs and only the small CG file has to travel).

Runs are resumable: every ``flush_every`` frames the run writes a portable checkpoint (OpenMM
State XML, the System XML, the frames of the chunk; see :mod:`openmmcgml.data.checkpoint`) and
then appends the chunk to the HDF5 files. Calling :func:`run_oracle` again with the same
configuration, on any machine and platform, continues from the checkpoint; frames are never lost
or duplicated.

Random numbers: the Langevin integrator of run ``r`` is seeded with a hash of (seed, r, step at
which the Context was created), and initial velocities with a hash of (seed, r). A run is
reproducible on one platform; a resumed run continues with a fresh, reproducible random stream
(statistically, not bitwise, the same as an uninterrupted one: OpenMM's integrator random state
is not part of any portable checkpoint).

Default force field: ``amber99sbildn.xml`` + ``amber99_obc.xml`` (native ``GBSAOBCForce``, about 5
times faster on a CPU than amber14 with GBn2), no cutoff, ``HBonds`` constraints, 2 fs time step,
friction 1/ps. Platform ``"auto"`` picks Reference below 100 atoms (alanine dipeptide on a 2-core
VM: about 19,000 steps/s against 3,000-5,000 on the CPU platform) and CPU from there on (chignolin:
about 650-830 steps/s against 385 on Reference); see ``docs/oracle.md``.

Examples
--------
>>> import os, tempfile
>>> from openmmcgml.data import OracleConfig, run_oracle, read_trajectory
>>> folder = tempfile.mkdtemp()
>>> config = OracleConfig(system="alanine-dipeptide", output=os.path.join(folder, "aa.h5"), n_steps=40, save_every=10)
>>> result = run_oracle(config)
>>> data = read_trajectory(result.output)
>>> data.coordinates.shape, data.step.tolist()
((4, 22, 3), [10, 20, 30, 40])
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform as platform_module
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

from .. import _config
from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .peptides import Molecule, add_hydrogens, build_peptide, load_pdb
from .progress import progress_reporter
from .systems import builtin_system
from .trajectory import TrajectoryFile, TrajectoryMetadata, append_frames, create_trajectory_file, truncate_frames

__all__ = [
    "DEFAULT_FORCEFIELD",
    "OracleConfig",
    "OracleResult",
    "create_oracle_system",
    "evaluate_frames",
    "generate_oracle",
    "prepare_molecule",
    "resolve_platform",
    "resume_oracle",
    "run_oracle",
]

logger = logging.getLogger(__name__)

#: Force field of the oracle unless a configuration names another.
DEFAULT_FORCEFIELD = ("amber99sbildn.xml", "amber99_obc.xml")
#: Below this many atoms the Reference platform is faster than the CPU platform.
REFERENCE_PLATFORM_BELOW = 100
_CONSTRAINTS = {"none": None, "hbonds": app.HBonds, "allbonds": app.AllBonds, "hangles": app.HAngles}
# Settings a resumed run must share with the checkpoint (anything else may change between sittings).
_MUST_MATCH = (
    "system", "sequence", "name", "forcefield", "temperature", "timestep", "friction", "constraints", "hydrogen_mass",
    "ph", "n_steps", "save_every", "equilibration_steps", "mapping", "force_map", "minimize", "seed",
)


@dataclass
class OracleConfig(_config.Settings):
    """Settings of an oracle run (the keys of an ``oracle`` YAML config; ``cgml oracle``).

    Exactly one of `system`, `sequence` and `pdb` says what to simulate; at least one of `output`
    and `cg_output` says where frames go.

    Attributes
    ----------
    system : str, optional
        A built-in system: ``"alanine-dipeptide"`` or ``"chignolin"``.
    sequence : str, optional
        A peptide to build (see :func:`~openmmcgml.data.peptides.parse_sequence`), extended.
    pdb : str, optional
        A user's PDB file.
    name : str, optional
        The system name stored in the files (default: the built-in name, the sequence, or the
        PDB file name).
    output : str, optional
        All-atom HDF5 file.
    cg_output : str, optional
        Coarse-grained HDF5 file, mapped on the fly with `mapping`.
    mapping : str or dict, optional
        The CG map (:func:`openmmcgml.mapping.build_map`); default: the built-in system's map or
        ``"ca"``.
    force_map : str
        ``"aggregate"`` (default, correct with constraints), ``"partition"`` (also correct, and
        much less noisy: every atom's force goes to the bead that carries its mass) or ``"slice"``.
    forcefield : list of str
        OpenMM force-field files (default amber99sbildn + OBC implicit solvent).
    temperature : float, optional
        Kelvin (default: the built-in system's, else 300).
    timestep : float
        ps (default 0.002).
    friction : float
        1/ps (default 1).
    constraints : str
        ``"HBonds"`` (default), ``"AllBonds"``, ``"HAngles"`` or ``"none"``.
    hydrogen_mass : float, optional
        Hydrogen mass in amu for mass repartitioning (e.g. 1.5 or 4 with a 4 fs step).
    ph : float
        pH for protonation states (default 7).
    add_missing_atoms : bool
        Let PDBFixer build missing heavy atoms of `pdb` (default: raise).
    n_steps : int
        Production steps per run (a multiple of `save_every`).
    save_every : int
        Steps between saved frames.
    equilibration_steps : int
        Unsaved steps at the start of each run.
    n_runs : int
        Independent runs from the minimised structure, with different random streams
        (frames carry the run index in the ``trajectory`` dataset).
    seed : int, optional
        Base random seed (None: drawn once and stored in the checkpoint and files).
    minimize : bool
        Minimise the structure before the first run (default True).
    platform : str
        ``"auto"`` (default), ``"Reference"``, ``"CPU"``, ``"CUDA"``, ``"OpenCL"``.
    threads : int, optional
        CPU platform threads.
    flush_every : int
        Frames per chunk: each chunk is checkpointed, then appended to the files.
    checkpoint : str, optional
        Checkpoint file (default: the first output path + ``.chk``).
    compression : str, optional
        HDF5 filter (``"gzip"``, ``"lzf"`` or None).
    coordinate_decimals, force_decimals : int, optional
        Lossy rounding of the CG file's coordinates / forces (see
        :func:`~openmmcgml.data.create_trajectory_file`); the all-atom file stays exact.
    """

    WHAT = "oracle"
    # The type and range of each setting, checked by from_dict (see openmmcgml._config);
    # validate() checks how they fit together.
    RULES = {
        "system": _config.text(), "sequence": _config.text(), "pdb": _config.text(), "name": _config.text(),
        "output": _config.text(), "cg_output": _config.text(), "temperature": _config.number(above=0, optional=True),
        "timestep": _config.number(above=0), "friction": _config.number(above=0),
        "hydrogen_mass": _config.number(above=0, optional=True), "ph": _config.number(0, maximum=14),
        "add_missing_atoms": _config.boolean(), "n_steps": _config.integer(1), "save_every": _config.integer(1),
        "equilibration_steps": _config.integer(0), "n_runs": _config.integer(1),
        "seed": _config.integer(optional=True), "minimize": _config.boolean(), "platform": _config.openmm_platform(),
        "threads": _config.integer(1, optional=True), "flush_every": _config.integer(1), "checkpoint": _config.text(),
        "coordinate_decimals": _config.integer(0, optional=True), "force_decimals": _config.integer(optional=True),
    }

    system: str | None = None
    sequence: str | None = None
    pdb: str | None = None
    name: str | None = None
    output: str | None = None
    cg_output: str | None = None
    mapping: str | dict | None = None
    force_map: str = "aggregate"
    forcefield: list = field(default_factory=lambda: list(DEFAULT_FORCEFIELD))
    temperature: float | None = None
    timestep: float = 0.002
    friction: float = 1.0
    constraints: str = "HBonds"
    hydrogen_mass: float | None = None
    ph: float = 7.0
    add_missing_atoms: bool = False
    n_steps: int = 10000
    save_every: int = 100
    equilibration_steps: int = 0
    n_runs: int = 1
    seed: int | None = 0
    minimize: bool = True
    platform: str = "auto"
    threads: int | None = None
    flush_every: int = 100
    checkpoint: str | None = None
    compression: str | None = "gzip"
    coordinate_decimals: int | None = None
    force_decimals: int | None = None

    @classmethod
    def from_dict(cls, values, *, source=""):
        """A config from a dict (e.g. parsed YAML): unknown keys are an error naming them, each
        setting is checked against :attr:`RULES`, then :meth:`validate` (the package's one loader,
        :func:`openmmcgml._config.load_settings`).  An OracleConfig is returned as it is.

        Examples
        --------
        >>> OracleConfig.from_dict({"system": "chignolin", "output": "aa.h5", "n_step": 10})
        Traceback (most recent call last):
        ...
        ValueError: unknown oracle setting(s) n_step; known settings: add_missing_atoms, cg_output, checkpoint, compression, constraints, coordinate_decimals, equilibration_steps, flush_every, force_decimals, force_map, forcefield, friction, hydrogen_mass, mapping, minimize, n_runs, n_steps, name, output, pdb, ph, platform, save_every, seed, sequence, system, temperature, threads, timestep
        """
        return _config.load_settings(cls, values, source=source)

    def to_dict(self):
        """The settings as a plain dict (JSON/YAML-serialisable)."""
        return asdict(self)

    def validate(self):
        """Check types and ranges; raises ValueError naming the bad setting."""
        sources = [key for key in ("system", "sequence", "pdb") if getattr(self, key)]
        if len(sources) != 1:
            raise ValueError(f"give exactly one of system, sequence, pdb (got {', '.join(sources) or 'none'})")
        if not self.output and not self.cg_output:
            raise ValueError("give output (all-atom file) and/or cg_output (coarse-grained file)")
        if self.output and self.cg_output and os.path.abspath(self.output) == os.path.abspath(self.cg_output):
            raise ValueError("output and cg_output are the same file")
        if isinstance(self.forcefield, str):
            self.forcefield = [self.forcefield]
        self.forcefield = [str(item) for item in self.forcefield]
        for key in ("n_steps", "save_every", "n_runs", "flush_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{key} must be a positive integer, not {value!r}")
        if isinstance(self.equilibration_steps, bool) or not isinstance(self.equilibration_steps, (int, np.integer)) or self.equilibration_steps < 0:
            raise ValueError(f"equilibration_steps must be a non-negative integer, not {self.equilibration_steps!r}")
        if self.n_steps % self.save_every:
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of save_every ({self.save_every})")
        for key in ("timestep", "friction"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{key} must be a positive number, not {value!r}")
        if self.temperature is not None and (not isinstance(self.temperature, (int, float)) or self.temperature <= 0):
            raise ValueError(f"temperature must be a positive number of kelvin, not {self.temperature!r}")
        if self.hydrogen_mass is not None and (not isinstance(self.hydrogen_mass, (int, float)) or self.hydrogen_mass <= 0):
            raise ValueError(f"hydrogen_mass must be a positive number of amu, not {self.hydrogen_mass!r}")
        if str(self.constraints).lower() not in _CONSTRAINTS and self.constraints is not None:
            raise ValueError(f"constraints must be one of HBonds, AllBonds, HAngles, none; not {self.constraints!r}")
        from ..mapping.forcemap import FORCE_MAPS

        if self.force_map not in FORCE_MAPS:
            raise ValueError(f"force_map must be one of {', '.join(FORCE_MAPS)}, not {self.force_map!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or null, not {self.seed!r}")
        if self.system:
            builtin_system(self.system)  # raises for an unknown name

    def checkpoint_path(self):
        """The checkpoint file of this run."""
        return self.checkpoint or f"{self.output or self.cg_output}.chk"

    def resolved(self):
        """A copy with defaults filled in from the built-in system (name, temperature, mapping)."""
        values = self.to_dict()
        if self.system:
            spec = builtin_system(self.system)
            values["system"] = spec.name
            values["name"] = self.name or spec.name
            if self.temperature is None:
                values["temperature"] = spec.temperature
            if self.mapping is None:
                values["mapping"] = spec.cg_map
        else:
            if self.sequence:
                from .peptides import format_sequence, parse_sequence

                values["name"] = self.name or format_sequence(parse_sequence(self.sequence))
            else:
                values["name"] = self.name or os.path.splitext(os.path.basename(self.pdb))[0]
            if self.temperature is None:
                values["temperature"] = 300.0
            if self.mapping is None:
                values["mapping"] = "ca"
        values["temperature"] = float(values["temperature"])
        values["constraints"] = "none" if self.constraints is None else str(self.constraints)
        return OracleConfig(**values)


@dataclass
class OracleResult:
    """What :func:`run_oracle` did.

    Attributes
    ----------
    output, cg_output, checkpoint : str or None
        Files written.
    n_frames : int
        Frames now in the files.
    new_frames : int
        Frames saved by this call.
    steps : int
        MD steps integrated by this call (equilibration included).
    seconds : float
        Wall time of this call's MD loop (including the writing of frames).
    timestep : float
        ps.
    n_atoms : int
    platform : str
    complete : bool
        Whether every run has reached `n_steps`.
    """

    output: str | None
    cg_output: str | None
    checkpoint: str
    n_frames: int
    new_frames: int
    steps: int
    seconds: float
    timestep: float
    n_atoms: int
    platform: str
    complete: bool

    @property
    def ns_per_day(self):
        """Simulated nanoseconds per day of wall time in this call."""
        return self.steps * self.timestep * 1e-3 * 86400.0 / self.seconds if self.seconds > 0 else float("nan")

    @property
    def frames_per_second(self):
        """Saved frames per second of wall time in this call."""
        return self.new_frames / self.seconds if self.seconds > 0 else float("nan")

    def summary(self):
        """One line for humans."""
        written = ", ".join(path for path in (self.output, self.cg_output) if path)
        return (
            f"{self.n_frames} frames in {written} ({self.new_frames} new, {self.n_atoms} atoms, {self.platform}): "
            f"{self.frames_per_second:.1f} frames/s, {self.ns_per_day:.1f} ns/day"
            + ("" if self.complete else " [incomplete]")
        )


# ----------------------------------------------------------------------------------- building


def resolve_platform(name, n_atoms):
    """An OpenMM platform by name; ``"auto"``: Reference below :data:`REFERENCE_PLATFORM_BELOW` atoms, else CPU.

    Raises
    ------
    ValueError
        If OpenMM has no platform of that name (the message lists those it has).
    """
    if name is None or str(name).lower() == "auto":
        name = "Reference" if n_atoms < REFERENCE_PLATFORM_BELOW else "CPU"
    try:
        return openmm.Platform.getPlatformByName(str(name))
    except Exception as error:
        available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
        raise ValueError(f"OpenMM has no platform {name!r}; available: {', '.join(available)}") from error


def _platform_properties(platform, threads):
    if platform.getName() == "CPU" and threads:
        return {"Threads": str(int(threads))}
    if platform.getName() in ("CUDA", "OpenCL", "HIP"):
        return {"Precision": "mixed"}
    return {}


def prepare_molecule(config, platform="CPU"):
    """The all-atom molecule of a config: built or read, then completed with hydrogens.

    Returns
    -------
    (Molecule, openmm.app.ForceField)
    """
    config = OracleConfig.from_dict(config)
    if config.system:
        molecule = builtin_system(config.system).build()
    elif config.sequence:
        molecule = build_peptide(config.sequence)
    else:
        molecule = load_pdb(config.pdb, add_missing_atoms=config.add_missing_atoms, platform=platform)
    try:
        forcefield = app.ForceField(*config.forcefield)
    except Exception as error:
        raise ValueError(f"cannot load force field {config.forcefield}: {error}") from error
    return add_hydrogens(molecule, forcefield, pH=config.ph, platform=platform), forcefield


def create_oracle_system(topology, forcefield=DEFAULT_FORCEFIELD, constraints="HBonds", hydrogen_mass=None):
    """The OpenMM System of the oracle: no cutoff (vacuum or implicit solvent), no CM-motion remover.

    Parameters
    ----------
    topology : openmm.app.Topology
        With hydrogens.
    forcefield : openmm.app.ForceField or sequence of str
    constraints : str or None
        ``"HBonds"``, ``"AllBonds"``, ``"HAngles"`` or None/``"none"``.
    hydrogen_mass : float, optional
        amu.

    Examples
    --------
    >>> from openmmcgml.data import builtin_system, add_hydrogens
    >>> import openmm.app as app
    >>> forcefield = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
    >>> molecule = add_hydrogens(builtin_system("alanine-dipeptide").build(), forcefield)
    >>> create_oracle_system(molecule.topology, forcefield).getNumConstraints()
    12
    """
    if not isinstance(forcefield, app.ForceField):
        forcefield = app.ForceField(*forcefield)
    key = "none" if constraints is None else str(constraints).lower()
    if key not in _CONSTRAINTS:
        raise ValueError(f"constraints must be one of HBonds, AllBonds, HAngles, none; not {constraints!r}")
    options = {"nonbondedMethod": app.NoCutoff, "constraints": _CONSTRAINTS[key], "removeCMMotion": False}
    if hydrogen_mass is not None:
        options["hydrogenMass"] = float(hydrogen_mass) * unit.amu
    return forcefield.createSystem(topology, **options)


def evaluate_frames(system, coordinates, platform="auto"):
    """Potential energies and forces of a System at many frames (e.g. backmapped structures).

    Parameters
    ----------
    system : openmm.System or str
        A System or its XML.
    coordinates : array_like
        ``(n_frames, n_atoms, 3)`` in nm.
    platform : str

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Energies ``(n_frames,)`` in kJ/mol and forces ``(n_frames, n_atoms, 3)`` in kJ/mol/nm.
    """
    if isinstance(system, str):
        system = openmm.XmlSerializer.deserialize(system)
    coordinates = np.asarray(coordinates, dtype=np.float64)
    if coordinates.ndim == 2:
        coordinates = coordinates[None]
    if coordinates.shape[1:] != (system.getNumParticles(), 3):
        raise ValueError(f"coordinates have shape {coordinates.shape}; the System has {system.getNumParticles()} particles")
    chosen = resolve_platform(platform, system.getNumParticles())
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), chosen)
    energies = np.empty(len(coordinates))
    forces = np.empty(coordinates.shape)
    for index, frame in enumerate(coordinates):
        context.setPositions(frame)
        state = context.getState(getEnergy=True, getForces=True)
        energies[index] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        forces[index] = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energies, forces


def _derive_seed(*parts):
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") % 2147483646 + 1  # OpenMM reads 0 as "pick one at random"


# ----------------------------------------------------------------------------------- the run


class _Run:
    """One oracle run: its System, files and checkpoint (internal to :func:`run_oracle`)."""

    def __init__(self, config, checkpoint_path):
        self.config = config
        self.checkpoint_path = checkpoint_path
        self.outputs = {}
        if config.output:
            self.outputs["aa"] = config.output
        if config.cg_output:
            self.outputs["cg"] = config.cg_output

    # -- starting ----------------------------------------------------------------------
    def start(self, overwrite):
        config = self.config
        for path in self.outputs.values():
            if os.path.exists(path) and not overwrite:
                raise FileExistsError(
                    f"{path} exists but there is no checkpoint {self.checkpoint_path} to resume from; "
                    "delete it, choose another output, or pass overwrite=True"
                )
        build_platform = "CPU" if config.platform in (None, "auto", "OpenCL") else config.platform
        molecule, forcefield = prepare_molecule(config, platform=build_platform)
        system = create_oracle_system(molecule.topology, forcefield, config.constraints, config.hydrogen_mass)
        platform = resolve_platform(config.platform, system.getNumParticles())
        integrator = openmm.LangevinMiddleIntegrator(config.temperature, config.friction, config.timestep)
        context = openmm.Context(system, integrator, platform, _platform_properties(platform, config.threads))
        context.setPositions(molecule.positions)
        if config.minimize:
            openmm.LocalEnergyMinimizer.minimize(context, 10.0, 0)
        start_state = context.getState(getPositions=True, getVelocities=True, getParameters=True)
        positions = start_state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        minimised = Molecule(molecule.topology, positions, name=config.name)
        del context

        self.system = system
        self.topology = minimised.topology
        self.topology_pdb = minimised.to_pdb_string()
        self.start_state_xml = openmm.XmlSerializer.serialize(start_state)
        self.system_xml = openmm.XmlSerializer.serialize(system)
        self.seed = int(config.seed) if config.seed is not None else secrets.randbelow(2**31 - 2) + 1
        self.run_id = uuid.uuid4().hex
        self.cg_map = self._build_map()

        metadata = TrajectoryMetadata(
            resolution="all-atom",
            system=config.name,
            sequence=minimised.sequence,
            forcefield=list(config.forcefield),
            temperature=float(config.temperature),
            timestep=float(config.timestep),
            save_interval=int(config.save_every),
            topology_pdb=self.topology_pdb,
            extra=self._extra_metadata(),
        )
        masses = np.array([system.getParticleMass(i).value_in_unit(unit.amu) for i in range(system.getNumParticles())])
        constraints = self._constraints()
        if "aa" in self.outputs:
            create_trajectory_file(
                self.outputs["aa"], metadata, system.getNumParticles(), masses=masses, constraints=constraints,
                system_xml=self.system_xml, chunk_frames=min(config.flush_every, 1000), compression=config.compression,
                overwrite=overwrite,
            )
        if "cg" in self.outputs:
            from ..mapping.apply import cg_metadata

            cg_meta = cg_metadata(self.cg_map, metadata, self.cg_map.map_coordinates(positions))
            create_trajectory_file(
                self.outputs["cg"], cg_meta, self.cg_map.n_beads, masses=self.cg_map.masses,
                chunk_frames=min(config.flush_every, 1000), compression=config.compression,
                coordinate_decimals=config.coordinate_decimals, force_decimals=config.force_decimals, overwrite=overwrite,
            )
        self.info = {
            "config": config.to_dict(),
            "run_id": self.run_id,
            "seed": self.seed,
            "n_atoms": system.getNumParticles(),
            "run": 0,
            "step": 0,
            "run_started": False,
            "n_frames": 0,
            "n_pending": 0,
            "complete": False,
            "history": [],
        }
        self._write_checkpoint(None, {})
        logger.info("started %s: %d atoms, checkpoint %s", config.name, system.getNumParticles(), self.checkpoint_path)

    def _build_map(self):
        if "cg" not in self.outputs:
            return None
        from ..mapping.builders import build_map

        return build_map(self.config.mapping, self.topology, self._constraints(), force_map=self.config.force_map)

    def _constraints(self):
        from ..mapping.forcemap import system_constraints

        return system_constraints(self.system)

    def _extra_metadata(self):
        config = self.config
        return {
            "run_id": self.run_id,
            "seed": self.seed,
            "friction": float(config.friction),
            "constraints": config.constraints,
            "hydrogen_mass": config.hydrogen_mass,
            "ph": float(config.ph),
            "n_runs": int(config.n_runs),
            "equilibration_steps": int(config.equilibration_steps),
            "integrator": "LangevinMiddleIntegrator",
            "nonbonded_method": "NoCutoff",
            "openmm_version": openmm.__version__,
        }

    # -- resuming ----------------------------------------------------------------------
    def resume(self, checkpoint):
        config = self.config
        stored = OracleConfig(**checkpoint.info["config"])
        changed = [key for key in _MUST_MATCH if getattr(stored, key) != getattr(config, key)]
        if config.n_runs < stored.n_runs:
            changed.append("n_runs")
        if changed:
            described = "; ".join(f"{key}: {getattr(stored, key)!r} -> {getattr(config, key)!r}" for key in changed)
            raise ValueError(
                f"the checkpoint {self.checkpoint_path} was written with other settings ({described}); "
                "restore them, or start a new run with other output files"
            )
        stored_outputs = {key for key in ("output", "cg_output") if getattr(stored, key)}
        current_outputs = {key for key in ("output", "cg_output") if getattr(config, key)}
        if not current_outputs <= stored_outputs:
            # A run may drop its all-atom file (keep only CG frames from here on), not add one.
            raise ValueError(
                f"the checkpoint {self.checkpoint_path} belongs to a run writing {', '.join(sorted(stored_outputs))}; "
                f"it cannot start writing {', '.join(sorted(current_outputs - stored_outputs))}"
            )
        self.info = dict(checkpoint.info)
        self.info["config"] = config.to_dict()
        self.run_id = self.info["run_id"]
        self.seed = int(self.info["seed"])
        self.system_xml = checkpoint.texts["system.xml"]
        self.system = openmm.XmlSerializer.deserialize(self.system_xml)
        self.topology_pdb = checkpoint.texts["topology.pdb"]
        self.topology = Molecule.from_pdb_string(self.topology_pdb).topology
        self.start_state_xml = checkpoint.texts["start.xml"]
        self.state_xml = checkpoint.texts.get("state.xml")
        self.cg_map = None
        if "cg" in self.outputs:
            from ..mapping.linear import LinearMap

            self.cg_map = LinearMap.from_dict(checkpoint.texts["map.json"])
        base = self.info["n_frames"] - self.info["n_pending"]
        for key, path in self.outputs.items():
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"the checkpoint {self.checkpoint_path} continues {path}, which is missing; copy it along with the checkpoint"
                )
            with TrajectoryFile(path) as handle:
                held, run_id = handle.n_frames, handle.metadata.extra.get("run_id")
            if run_id != self.run_id:
                raise ValueError(f"{path} comes from another run (run_id {run_id}) than the checkpoint {self.checkpoint_path} ({self.run_id})")
            if held < base:
                raise ValueError(
                    f"{path} holds {held} frames but the checkpoint {self.checkpoint_path} expects at least {base}: "
                    "frames were lost (an older copy of the file?)"
                )
            truncate_frames(path, base)
            if self.info["n_pending"]:
                self._append(key, checkpoint.arrays)
        logger.info(
            "resuming %s: run %d, step %d, %d frames", config.name, self.info["run"], self.info["step"], self.info["n_frames"]
        )

    # -- writing -----------------------------------------------------------------------
    def _write_checkpoint(self, state_xml, arrays):
        texts = {"system.xml": self.system_xml, "start.xml": self.start_state_xml, "topology.pdb": self.topology_pdb}
        if state_xml is not None:
            texts["state.xml"] = state_xml
        if self.cg_map is not None:
            texts["map.json"] = self.cg_map.to_json()
        write_checkpoint(self.checkpoint_path, Checkpoint(info=self.info, texts=texts, arrays=arrays))

    def _append(self, key, arrays):
        if key == "aa":
            append_frames(self.outputs["aa"], arrays["aa_coordinates"], arrays["aa_forces"], arrays["potential_energy"], arrays["trajectory"], arrays["step"])
        else:
            append_frames(self.outputs["cg"], arrays["cg_coordinates"], arrays["cg_forces"], np.nan, arrays["trajectory"], arrays["step"])

    def _commit(self, frames, run, state_xml):
        """Checkpoint first (with the chunk's frames of run `run`), then append the chunk to the files."""
        arrays = {}
        if frames:
            positions = np.stack([frame[0] for frame in frames])
            forces = np.stack([frame[1] for frame in frames])
            arrays = {
                "potential_energy": np.array([frame[2] for frame in frames]),
                "trajectory": np.full(len(frames), run, dtype=np.int32),
                "step": np.array([frame[3] for frame in frames], dtype=np.int64),
            }
            if "aa" in self.outputs:
                arrays["aa_coordinates"] = positions.astype(np.float32)
                arrays["aa_forces"] = forces.astype(np.float32)
            if "cg" in self.outputs:
                arrays["cg_coordinates"] = self.cg_map.map_coordinates(positions).astype(np.float32)
                arrays["cg_forces"] = self.cg_map.map_forces(forces).astype(np.float32)
        self.info["n_frames"] += len(frames)
        self.info["n_pending"] = len(frames)
        self._write_checkpoint(state_xml, arrays)
        if frames:
            for key in self.outputs:
                self._append(key, arrays)

    # -- integrating -------------------------------------------------------------------
    def integrate(self, progress):
        config = self.config
        frames_per_run = config.n_steps // config.save_every
        total_frames = frames_per_run * config.n_runs
        report = progress_reporter(progress, total_frames, config.name)
        report(self.info["n_frames"])
        platform = resolve_platform(config.platform, self.system.getNumParticles())
        properties = _platform_properties(platform, config.threads)
        total_steps = config.equilibration_steps + config.n_steps
        energy_unit, force_unit = unit.kilojoule_per_mole, unit.kilojoule_per_mole / unit.nanometer
        steps_done, new_frames = 0, 0
        began = time.perf_counter()
        self.info["complete"] = self.info["run"] >= config.n_runs
        while self.info["run"] < config.n_runs:
            run = self.info["run"]
            integrator = openmm.LangevinMiddleIntegrator(config.temperature, config.friction, config.timestep)
            if self.info["run_started"]:
                state = openmm.XmlSerializer.deserialize(self.state_xml)
                step = int(state.getStepCount())
                integrator.setRandomNumberSeed(_derive_seed(self.seed, run, step))
                context = openmm.Context(self.system, integrator, platform, properties)
                context.setState(state)
            else:
                step = 0
                integrator.setRandomNumberSeed(_derive_seed(self.seed, run, step))
                context = openmm.Context(self.system, integrator, platform, properties)
                context.setState(openmm.XmlSerializer.deserialize(self.start_state_xml))
                context.setVelocitiesToTemperature(config.temperature, _derive_seed(self.seed, run, "velocities"))
                context.setStepCount(0)
                context.setTime(0.0)
                self.info["run_started"] = True
            self.info["history"].append(
                {"run": run, "step": step, "platform": platform.getName(), "host": platform_module.node(), "time": time.time()}
            )
            frames = []
            while step < total_steps:
                if step < config.equilibration_steps:
                    target = config.equilibration_steps
                else:
                    produced = step - config.equilibration_steps
                    target = config.equilibration_steps + (produced // config.save_every + 1) * config.save_every
                integrator.step(target - step)
                steps_done += target - step
                step = target
                if step > config.equilibration_steps:
                    state = context.getState(getPositions=True, getForces=True, getEnergy=True)
                    frames.append(
                        (
                            state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                            state.getForces(asNumpy=True).value_in_unit(force_unit),
                            state.getPotentialEnergy().value_in_unit(energy_unit),
                            step - config.equilibration_steps,
                        )
                    )
                if len(frames) >= config.flush_every or step == total_steps:
                    finished = step == total_steps
                    self.info["step"] = 0 if finished else step
                    if finished:
                        self.info["run"] = run + 1
                        self.info["run_started"] = False
                        self.info["complete"] = self.info["run"] >= config.n_runs
                        state_xml = None
                    else:
                        state_xml = openmm.XmlSerializer.serialize(
                            context.getState(getPositions=True, getVelocities=True, getParameters=True)
                        )
                    self._commit(frames, run, state_xml)
                    new_frames += len(frames)
                    frames = []
                    report(self.info["n_frames"])
            del context
        report.close()
        seconds = time.perf_counter() - began
        return OracleResult(
            output=self.outputs.get("aa"),
            cg_output=self.outputs.get("cg"),
            checkpoint=self.checkpoint_path,
            n_frames=self.info["n_frames"],
            new_frames=new_frames,
            steps=steps_done,
            seconds=seconds,
            timestep=config.timestep,
            n_atoms=self.system.getNumParticles(),
            platform=platform.getName(),
            complete=self.info["complete"],
        )


def run_oracle(config, *, resume=True, overwrite=False, progress=None):
    """Run (or continue) an all-atom oracle simulation.

    Parameters
    ----------
    config : OracleConfig or dict
        The settings (see :class:`OracleConfig`).
    resume : bool, optional
        Continue from the checkpoint if there is one (default). With False an existing
        checkpoint is an error.
    overwrite : bool, optional
        Replace output files that exist without a checkpoint (default: raise FileExistsError).
    progress : None, bool or callable, optional
        True for a tqdm bar; a callable gets ``(frames_done, frames_total)`` after each chunk.

    Returns
    -------
    OracleResult

    Raises
    ------
    ValueError
        For bad settings, an unknown residue, a PDB with missing atoms, or a checkpoint written
        with other settings.
    FileExistsError
        If an output exists without a checkpoint (and not `overwrite`), or a checkpoint exists
        and `resume` is False.
    FileNotFoundError
        If a PDB file, or an output file the checkpoint continues, is missing.
    """
    config = OracleConfig.from_dict(config).resolved()
    checkpoint_path = config.checkpoint_path()
    run = _Run(config, checkpoint_path)
    if os.path.exists(checkpoint_path):
        if not resume:
            raise FileExistsError(f"{checkpoint_path} exists: resume that run (resume=True) or delete it and its output files")
        run.resume(read_checkpoint(checkpoint_path))
    else:
        if config.pdb and not os.path.exists(config.pdb):
            raise FileNotFoundError(f"PDB file not found: {config.pdb}")
        run.start(overwrite)
    return run.integrate(progress)


def resume_oracle(checkpoint, *, progress=None, **changes):
    """Continue a run from its checkpoint file alone (settings read from it).

    `changes` may set what can differ between sittings: ``platform``, ``threads``,
    ``flush_every``, or the paths ``output``/``cg_output`` if the files moved, and ``n_runs`` to
    add runs.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> first = generate_oracle("alanine-dipeptide", n_steps=20, save_every=10, out=os.path.join(folder, "aa.h5"))
    >>> resume_oracle(first.checkpoint, n_runs=2).n_frames
    4
    """
    stored = read_checkpoint(checkpoint).info["config"]
    stored.update(changes)
    stored["checkpoint"] = os.fspath(checkpoint)
    return run_oracle(OracleConfig.from_dict(stored), progress=progress)


def generate_oracle(
    system="alanine-dipeptide",
    n_steps=100_000,
    save_every=100,
    temperature=None,
    seed=0,
    out=None,
    cg_out=None,
    *,
    progress=None,
    **options,
):
    """Reference data of a built-in system in one call (resumes if interrupted).

    Parameters
    ----------
    system : str
        ``"alanine-dipeptide"`` (default) or ``"chignolin"``.
    n_steps, save_every : int
        Production steps (2 fs each by default) and steps between frames.
    temperature : float, optional
        Kelvin; default the system's (300 K for alanine dipeptide, 340 K for chignolin).
    seed : int
    out : str, optional
        All-atom file (default ``<system>.h5``).
    cg_out : str, optional
        Coarse-grained file, mapped on the fly with the system's map.
    progress : None, bool or callable
    **options
        Any other :class:`OracleConfig` setting.

    Returns
    -------
    OracleResult

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> result = generate_oracle("alanine-dipeptide", n_steps=50, save_every=10,
    ...                          out=os.path.join(folder, "aa.h5"), cg_out=os.path.join(folder, "cg.h5"))
    >>> result.n_frames, result.complete
    (5, True)
    """
    if out is None and cg_out is None:
        out = f"{builtin_system(system).name}.h5"
    config = OracleConfig(
        system=system, n_steps=n_steps, save_every=save_every, temperature=temperature, seed=seed, output=out, cg_output=cg_out,
        **options,
    )
    return run_oracle(config, progress=progress)
