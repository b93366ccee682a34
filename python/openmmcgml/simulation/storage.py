"""CG trajectories on disk in the layout of docs/data-format.md: an OpenMM reporter and a reader.

A CG simulation of R replicas writes, at every report, R rows to the frame datasets: row ``k`` of a
report holds replica ``k``, its ``trajectory`` entry is ``k`` (plus an offset) and its ``step`` the
MD step.  Reading groups the rows by ``trajectory`` and orders each run by ``step``.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["HDF5TrajectoryReporter", "SimulationBlewUp", "TrajectorySet", "read_trajectories", "topology_pdb"]


def topology_pdb(topology, positions) -> str:
    """PDB text of ``topology`` at ``positions`` (nm, shape (n_atoms, 3))."""
    import openmm.app as app
    from openmm import unit

    text = io.StringIO()
    app.PDBFile.writeFile(topology, np.asarray(positions, dtype=float) * unit.nanometer, text, keepIds=True)
    return text.getvalue()


def jsonable(value):
    """``value`` as plain JSON data (dicts, lists, ...): a map object by its ``to_dict()``."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    try:
        return json.loads(json.dumps(value))
    except TypeError:
        return str(value)


class SimulationBlewUp(FloatingPointError):
    """A replica reached coordinates (or forces) that are not finite or overflow float32.

    Attributes
    ----------
    step : int
        The MD step of the report that found it.
    replicas : list of int
        The replicas affected.
    """

    def __init__(self, step: int, replicas, quantity: str = "coordinates", frames_kept=None, path=None):
        self.step, self.replicas = int(step), [int(r) for r in replicas]
        shown = ", ".join(str(r) for r in self.replicas[:5]) + (", ..." if len(self.replicas) > 5 else "")
        kept = f"; {path} keeps the {frames_kept} finite frames of each replica before it" if path is not None else ""
        super().__init__(f"the simulation blew up at step {self.step}: replica{'s' if len(self.replicas) > 1 else ''} "
                         f"{shown} reached {quantity} that are not finite in float32 (time step too large, or the "
                         f"model is unstable there){kept}")


class HDF5TrajectoryReporter:
    """OpenMM reporter writing the replicas of a CG simulation to an HDF5 trajectory file.

    Usable with any ``openmm.app.Simulation`` whose particles are ``n_replicas`` consecutive copies
    of ``n_beads`` beads.  The file is written with :mod:`openmmcgml.data.trajectory` (each write
    opens, appends and closes the file, so a killed process never leaves it half-written).  Rows
    are buffered in memory; :meth:`flush` writes them (done before every checkpoint, so a resumed
    run finds every frame up to its checkpoint on disk).

    Parameters
    ----------
    path : str or path
        The file; created unless ``resume_rows`` is given.
    report_interval : int
        Steps between frames (stored as ``save_interval``).
    n_replicas, n_beads : int
    metadata : openmmcgml.data.trajectory.TrajectoryMetadata, optional
        Root attributes; ``resolution`` must be ``"coarse-grained"``.  ``save_interval`` is set
        to ``report_interval``.
    masses : array_like, optional
        Bead masses (amu) of one copy, stored as the ``masses`` dataset.
    forces : bool
        Also store the forces on the beads (kJ/mol/nm); otherwise the forces dataset holds NaN.
    trajectory_offset : int
        Added to the replica index in the ``trajectory`` dataset.
    resume_rows : int, optional
        Open an existing file and cut it to this many rows (the rows a checkpoint vouches for),
        then append.
    overwrite : bool
        Replace an existing file when not resuming (otherwise an existing file is an error).
    buffer_rows : int
        Rows kept in memory before a write.
    """

    def __init__(self, path, report_interval: int, n_replicas: int, n_beads: int, metadata=None, masses=None,
                 forces: bool = False, trajectory_offset: int = 0, resume_rows: Optional[int] = None,
                 overwrite: bool = False, buffer_rows: int = 4096):
        from dataclasses import replace

        from ..data.trajectory import TrajectoryFile, TrajectoryMetadata, create_trajectory_file, truncate_frames

        self.path = os.fspath(path)
        self.report_interval = int(report_interval)
        if self.report_interval < 1:
            raise ValueError(f"report_interval must be at least 1 (got {report_interval})")
        self.n_replicas, self.n_beads = int(n_replicas), int(n_beads)
        self.forces = bool(forces)
        self.trajectory_offset = int(trajectory_offset)
        self.buffer_rows = max(int(buffer_rows), self.n_replicas)
        self._buffer = []
        if resume_rows is not None:
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"cannot resume: the trajectory file {self.path} is missing")
            with TrajectoryFile(self.path) as existing:
                rows, n_particles = existing.n_frames, existing.n_particles
                interval = existing.metadata.save_interval
            if n_particles != self.n_beads:
                raise ValueError(f"{self.path} holds frames of {n_particles} beads, not {self.n_beads}")
            if int(interval) != self.report_interval:
                raise ValueError(f"{self.path} was written every {interval} steps, not {self.report_interval}")
            if rows < resume_rows:
                raise ValueError(f"cannot resume: {self.path} has {rows} frames but the checkpoint expects "
                                 f"{resume_rows}; frames were lost")
            truncate_frames(self.path, int(resume_rows))
            self._rows = int(resume_rows)
        else:
            metadata = metadata if metadata is not None else TrajectoryMetadata("coarse-grained")
            if metadata.resolution != "coarse-grained":
                raise ValueError("a CG simulation writes coarse-grained trajectories")
            metadata = replace(metadata, save_interval=self.report_interval)
            create_trajectory_file(self.path, metadata, self.n_beads, masses=masses, overwrite=overwrite,
                                   chunk_frames=max(1, min(1024, 4 * self.n_replicas)))
            self._rows = 0

    # ------------------------------------------------------------------------------ reporter API

    def describeNextReport(self, simulation):
        steps = self.report_interval - simulation.currentStep % self.report_interval
        include = ["positions", "forces"] if self.forces else ["positions"]
        return {"steps": steps, "periodic": False, "include": include}

    def report(self, simulation, state):
        from openmm import unit

        shape = (self.n_replicas, self.n_beads, 3)
        xyz = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        # what is stored is float32: a float64 coordinate of 1e39 is finite but stores as inf, so
        # the check runs on the stored values
        with np.errstate(over="ignore", invalid="ignore"):
            frame = {"coordinates": xyz.astype(np.float32).reshape(shape), "step": simulation.currentStep}
            if self.forces:
                f = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
                frame["forces"] = np.asarray(f, dtype=np.float32).reshape(shape)
        for name in ("coordinates", "forces") if self.forces else ("coordinates",):
            finite = np.isfinite(frame[name]).reshape(self.n_replicas, -1).all(axis=1)
            if not finite.all():
                raise SimulationBlewUp(simulation.currentStep, np.flatnonzero(~finite).tolist(), name,
                                       self.n_rows // self.n_replicas, self.path)
        self._buffer.append(frame)
        if len(self._buffer) * self.n_replicas >= self.buffer_rows:
            self.flush()

    # ------------------------------------------------------------------------------ writing

    @property
    def n_rows(self) -> int:
        """Rows written or buffered."""
        return self._rows + len(self._buffer) * self.n_replicas

    def flush(self):
        """Write the buffered frames to the file."""
        from ..data.trajectory import append_frames

        if not self._buffer:
            return
        replicas = np.arange(self.n_replicas, dtype=np.int32) + self.trajectory_offset
        self._rows = append_frames(
            self.path,
            np.concatenate([f["coordinates"] for f in self._buffer]),
            np.concatenate([f["forces"] for f in self._buffer]) if self.forces else None,
            trajectory=np.tile(replicas, len(self._buffer)),
            step=np.repeat([f["step"] for f in self._buffer], self.n_replicas),
        )
        self._buffer = []

    def close(self):
        """Write what is buffered (the file itself is never left open)."""
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------- reading

@dataclass
class TrajectorySet:
    """Frames of a CG system, split into independent runs and ordered by step.

    Attributes
    ----------
    coordinates : list of ndarray, shape (n_frames_k, n_beads, 3)
        One array per run (nm, float64).
    steps : list of ndarray of int64
    trajectory_ids : ndarray of int
        The ``trajectory`` id of each run.
    forces : list of ndarray or None
    metadata : openmmcgml.data.trajectory.TrajectoryMetadata or None
        The file's root attributes.
    """

    coordinates: list
    steps: list
    trajectory_ids: np.ndarray
    forces: Optional[list] = None
    metadata: Optional[object] = None

    @property
    def n_beads(self) -> int:
        return self.coordinates[0].shape[1]

    @property
    def n_frames(self) -> int:
        """Frames in all runs together."""
        return int(sum(len(x) for x in self.coordinates))

    def _meta(self, name):
        value = getattr(self.metadata, name, None) if self.metadata is not None else None
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    @property
    def bead_names(self) -> list:
        names = self._meta("bead_names")
        return list(names) if names is not None else ["CG"] * self.n_beads

    @property
    def temperature(self) -> Optional[float]:
        """Kelvin, if the file says."""
        return self._meta("temperature")

    @property
    def timestep(self) -> Optional[float]:
        """ps, if the file says."""
        return self._meta("timestep")

    @property
    def frame_time(self) -> Optional[float]:
        """Time between saved frames in ps (``timestep * save_interval``), if both are known."""
        interval = self._meta("save_interval")
        return self.timestep * int(interval) if self.timestep and interval else None

    def concatenated(self) -> np.ndarray:
        """All frames in one array (n_frames, n_beads, 3)."""
        return np.concatenate(self.coordinates)

    def topology(self):
        """An mdtraj Topology of one copy (from ``topology_pdb``, else one residue per bead)."""
        import mdtraj
        import openmm.app as app

        text = self._meta("topology_pdb")
        if text:
            return mdtraj.Topology.from_openmm(app.PDBFile(io.StringIO(text)).topology)
        from .system import cg_topology

        return mdtraj.Topology.from_openmm(cg_topology(self.bead_names))

    def to_mdtraj(self, run: int = 0):
        """Run ``run`` (an index into :attr:`coordinates`) as an ``mdtraj.Trajectory``; time in ps."""
        import mdtraj

        time = self.steps[run] * self.timestep if self.timestep else None
        return mdtraj.Trajectory(self.coordinates[run].astype(np.float32), self.topology(), time=time)


def read_trajectories(path, stride: int = 1, trajectories: Optional[Sequence[int]] = None,
                      forces: bool = False, start: int = 0) -> TrajectorySet:
    """Read a trajectory file of the docs/data-format.md layout, one array per run.

    Rows are grouped by the ``trajectory`` dataset and each run is ordered by ``step``.

    Parameters
    ----------
    path : str or path
    stride : int
        Keep every ``stride``-th frame of each run.
    trajectories : sequence of int, optional
        Only these ``trajectory`` ids.
    forces : bool
        Also read the forces.
    start : int
        Drop the first ``start`` frames of each run (before striding).

    Returns
    -------
    TrajectorySet
    """
    from ..data.trajectory import TrajectoryFile

    with TrajectoryFile(path) as handle:
        ids = handle.dataset("trajectory")[:]
        steps = handle.dataset("step")[:]
        if len(ids) == 0:
            raise ValueError(f"{path} holds no frames")
        wanted = np.unique(ids) if trajectories is None else np.asarray(list(trajectories))
        rows_per_run = []
        for tid in wanted:
            rows = np.flatnonzero(ids == tid)
            if len(rows) == 0:
                raise ValueError(f"{path} has no frames of trajectory {tid}")
            rows_per_run.append(rows[np.argsort(steps[rows], kind="stable")][int(start)::int(stride)])
        everything = np.concatenate(rows_per_run) if rows_per_run else np.zeros(0, dtype=int)
        # one contiguous read (h5py fancy indexing is slow), then pick the rows
        lo, hi = (int(everything.min()), int(everything.max()) + 1) if len(everything) else (0, 0)
        block = handle.dataset("coordinates")[lo:hi].astype(np.float64)
        fblock = handle.dataset("forces")[lo:hi].astype(np.float64) if forces else None
        metadata = handle.metadata
    coordinates = [block[rows - lo] for rows in rows_per_run]
    force_list = [fblock[rows - lo] for rows in rows_per_run] if forces else None
    return TrajectorySet(coordinates, [steps[rows] for rows in rows_per_run], np.asarray(wanted), force_list, metadata)
