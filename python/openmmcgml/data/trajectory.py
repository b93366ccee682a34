"""Trajectory datasets on disk (HDF5): all-atom oracle output and its coarse-grained mapping.

The layout is written down in ``docs/data-format.md``; this module is its only writer and the
reader every other part of the package uses (the oracle, the mapper, priors fitting, force
matching, CG simulations and their analysis), with one set of layout checks:

- :class:`Trajectory` holds frames in memory (numpy arrays) with their :class:`TrajectoryMetadata`;
- :func:`read_trajectory` / :func:`load_trajectories` read one file or several (``resolution=``
  refuses a file of the other resolution, ``frames=slice(None, None, stride)`` thins it);
- :class:`TrajectoryFile` reads lazily (large all-atom files, streaming in chunks);
- :class:`TrajectoryInfo` is a file's header (sizes and metadata) without its frames;
- :func:`create_trajectory_file`, :func:`append_frames` and :func:`truncate_frames` are the
  append-only writer the oracle uses: each call opens the file, writes, and closes it again, so a
  process killed between calls never leaves the file half-written;
- :func:`write_trajectory` writes a whole :class:`Trajectory` at once.

Examples
--------
>>> import numpy as np, os, tempfile
>>> from openmmcgml.data.trajectory import Trajectory, TrajectoryMetadata, write_trajectory, read_trajectory
>>> rng = np.random.default_rng(0)
>>> frames = Trajectory(coordinates=rng.normal(size=(4, 5, 3)), forces=rng.normal(size=(4, 5, 3)),
...                     metadata=TrajectoryMetadata(resolution="coarse-grained", system="toy", temperature=300.0))
>>> path = os.path.join(tempfile.mkdtemp(), "toy.h5")
>>> write_trajectory(path, frames)
>>> back = read_trajectory(path)
>>> back.n_frames, back.n_particles, back.metadata.temperature
(4, 5, 300.0)
>>> read_trajectory(path, frames=slice(None, None, 2), resolution="coarse-grained").n_frames
2
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .split import split_by_trajectory

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Trajectory",
    "TrajectoryFile",
    "TrajectoryInfo",
    "TrajectoryMetadata",
    "append_frames",
    "create_trajectory_file",
    "load_trajectories",
    "read_trajectory",
    "truncate_frames",
    "write_trajectory",
]

FORMAT = "openmm-cgml-trajectory"
FORMAT_VERSION = 1
RESOLUTIONS = ("all-atom", "coarse-grained")
#: Datasets with one entry per frame, in the order they are written.
FRAME_DATASETS = ("coordinates", "forces", "potential_energy", "trajectory", "step")
#: Datasets a file must hold to be read; the other frame datasets read as their defaults when absent
#: (potential energy NaN, step the frame index, every frame run 0), as a file written with plain
#: h5py may leave them out. Files that are appended to must hold all of FRAME_DATASETS.
REQUIRED_DATASETS = ("coordinates", "forces")
_DTYPES = {"coordinates": np.float32, "forces": np.float32, "potential_energy": np.float64, "trajectory": np.int32, "step": np.int64}
# In memory, run indices are int64 (numpy's index type); on disk int32 as documented.
_MEMORY_DTYPES = {**_DTYPES, "trajectory": np.int64}
# Metadata stored as JSON text in the root attributes.
_JSON_ATTRS = ("forcefield", "mapping", "bead_names", "bead_types", "type_names")


def _h5py():
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("trajectory files need h5py (pip install h5py)") from error
    return h5py


def _raised_by_h5py(error: BaseException) -> bool:
    """Whether ``error`` was raised inside h5py (its innermost frame is in h5py's code)."""
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    return "h5py" in frame.tb_frame.f_code.co_filename


def _hdf5_reason(error: BaseException) -> str:
    """HDF5's reason for an error, on one line (no errno dump, no "synchronously")."""
    import re

    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = str(text)
    quoted = re.search(r"error message = '([^']*)'", text)
    if quoted:
        return quoted.group(1)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return re.sub(r"^\[Errno \d+\] ", "", first).replace("synchronously ", "")


class hdf5_errors:
    """Context manager turning what h5py raises for a damaged or unreadable file (OSError,
    RuntimeError, KeyError, TypeError from inside h5py) into a one-line ValueError naming ``what``.

    Examples
    --------
    >>> import h5py, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "broken.h5")
    >>> _ = open(path, "w").write("not HDF5")
    >>> with hdf5_errors(f"dataset {path}"):
    ...     h5py.File(path, "r")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: dataset ... is not a readable HDF5 file (Unable to open file (file signature not found))
    """

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or not isinstance(error, (OSError, RuntimeError, KeyError, TypeError)):
            return False
        if not _raised_by_h5py(error):
            return False
        raise ValueError(f"{self.what} is not a readable HDF5 file ({_hdf5_reason(error)})") from error


def _plain(value):
    """Python scalars from numpy scalars and bytes (HDF5 attributes come back as numpy types)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass
class TrajectoryMetadata:
    """What a trajectory file says about its frames (the root attributes of the HDF5 file).

    Attributes
    ----------
    resolution : str
        ``"all-atom"`` or ``"coarse-grained"``.
    system : str
        Name of the system (``"alanine-dipeptide"``, ``"chignolin"``, a user's name).
    sequence : str
        One-letter sequence, or residue names joined by ``-``.
    forcefield : list of str
        Force-field files of the oracle.
    temperature : float
        Kelvin.
    timestep : float
        Integration time step in ps.
    save_interval : int
        MD steps between saved frames.
    topology_pdb : str
        PDB text of the particles (atoms, or one pseudo-atom per bead), with the first frame's
        positions.
    mapping : dict or None
        Coarse-grained files: the map's description (:meth:`openmmcgml.mapping.LinearMap.to_dict`).
    bead_names, bead_types, type_names : list or None
        Coarse-grained files: a name and an integer type per bead, and the name of each type
        (``len(type_names)`` is the number of types).
    extra : dict
        Any other root attribute (seed, friction, platform, OpenMM version, source file, ...).
    """

    resolution: str
    system: str = ""
    sequence: str = ""
    forcefield: list = field(default_factory=list)
    temperature: float = math.nan
    timestep: float = math.nan
    save_interval: int = 0
    topology_pdb: str = ""
    mapping: dict | None = None
    bead_names: list | None = None
    bead_types: list | None = None
    type_names: list | None = None
    length_unit: str = "nm"
    force_unit: str = "kJ/mol/nm"
    energy_unit: str = "kJ/mol"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {self.resolution!r}")

    def to_attrs(self):
        """The root attributes, as written to HDF5."""
        attrs = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if item.name in _JSON_ATTRS:
                if value is None:
                    continue
                value = json.dumps(value)
            attrs[item.name] = value
        for key, value in self.extra.items():
            if key in attrs:
                raise ValueError(f"extra metadata key {key!r} clashes with a standard attribute")
            if value is None:
                continue
            if not isinstance(value, (str, int, float, bool, np.generic)):
                value = json.dumps(value)
            attrs[key] = value
        return attrs

    @classmethod
    def from_attrs(cls, attrs):
        """Metadata from HDF5 root attributes (unknown attributes go to :attr:`extra`).

        Raises
        ------
        ValueError
            If ``resolution`` is missing or a JSON attribute is not valid JSON.
        """
        known = {item.name for item in fields(cls)} - {"extra"}
        values, extra = {}, {}
        for key, value in attrs.items():
            value = _plain(value)
            if key in ("format", "format_version"):
                continue
            if key in _JSON_ATTRS:
                try:
                    values[key] = json.loads(value) if isinstance(value, str) else value
                except json.JSONDecodeError as error:
                    raise ValueError(f"attribute {key!r} is not valid JSON ({error})") from error
            elif key in known:
                values[key] = value
            else:
                extra[key] = value
        if "resolution" not in values:
            raise ValueError("the attribute 'resolution' is missing")
        return cls(**values, extra=extra)

    def topology(self):
        """An :class:`openmm.app.Topology` from :attr:`topology_pdb`.

        Raises
        ------
        ValueError
            If the metadata hold no topology.
        """
        import openmm.app as app

        if not self.topology_pdb:
            raise ValueError(f"the trajectory of {self.system or 'this system'} stores no topology_pdb")
        return app.PDBFile(io.StringIO(self.topology_pdb)).topology


def _frame_array(name, value, n_frames=None):
    array = np.asarray(value)
    if name in ("coordinates", "forces"):
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (n_frames, n_particles, 3), not {array.shape}")
    elif array.ndim == 0 and n_frames is not None:
        array = np.full(n_frames, array)
    return array.astype(_MEMORY_DTYPES[name], copy=False)


@dataclass
class Trajectory:
    """Frames of one system in memory.

    Parameters
    ----------
    coordinates : array_like
        Shape ``(n_frames, n_particles, 3)``, nm.
    forces : array_like, optional
        Same shape as `coordinates`, kJ/mol/nm (NaN when unknown).
    potential_energy : array_like, optional
        Shape ``(n_frames,)``, kJ/mol (NaN when unknown).
    trajectory : array_like or int, optional
        Index of the independent run each frame comes from (default 0).
    step : array_like, optional
        MD step of each frame within its run (default: 0, 1, 2, ...).
    metadata : TrajectoryMetadata, optional
    masses : array_like, optional
        Shape ``(n_particles,)``, amu.
    source : dict, optional
        Where the frames were read from: ``{"path": absolute path, "stride": int or None}``
        (stride None: a selection other than every ``stride``-th frame), set by the readers;
        None for frames made in memory. Selecting frames or concatenating drops it.

    Raises
    ------
    ValueError
        If the arrays disagree in shape (the message names both).

    Examples
    --------
    >>> import numpy as np
    >>> Trajectory(coordinates=np.zeros((2, 3, 3)), forces=np.zeros((2, 4, 3)))
    Traceback (most recent call last):
    ...
    ValueError: forces have shape (2, 4, 3) but coordinates have shape (2, 3, 3); they must be equal
    """

    coordinates: np.ndarray
    forces: np.ndarray | None = None
    potential_energy: np.ndarray | None = None
    trajectory: np.ndarray | int | None = None
    step: np.ndarray | None = None
    metadata: TrajectoryMetadata | None = None
    masses: np.ndarray | None = None
    source: dict | None = None

    def __post_init__(self):
        self.coordinates = _frame_array("coordinates", self.coordinates)
        n_frames, n_particles = self.coordinates.shape[:2]
        if self.forces is None:
            self.forces = np.full(self.coordinates.shape, np.nan, dtype=np.float32)
        else:
            forces = np.asarray(self.forces)
            if forces.ndim == 2 and self.coordinates.shape[0] == 1:
                forces = forces[None]
            if forces.shape != self.coordinates.shape:
                raise ValueError(
                    f"forces have shape {forces.shape} but coordinates have shape {self.coordinates.shape}; they must be equal"
                )
            self.forces = _frame_array("forces", forces)
        if self.potential_energy is None:
            self.potential_energy = np.full(n_frames, np.nan)
        if self.trajectory is None:
            self.trajectory = 0
        if self.step is None:
            self.step = np.arange(n_frames)
        for name in ("potential_energy", "trajectory", "step"):
            array = _frame_array(name, getattr(self, name), n_frames)
            if array.shape != (n_frames,):
                raise ValueError(f"{name} has shape {array.shape} but there are {n_frames} frames (coordinates {self.coordinates.shape})")
            setattr(self, name, array)
        if self.masses is not None:
            self.masses = np.asarray(self.masses, dtype=np.float64)
            if self.masses.shape != (n_particles,):
                raise ValueError(f"masses have shape {self.masses.shape} but there are {n_particles} particles")
        if self.metadata is not None and self.metadata.bead_types is not None and len(self.metadata.bead_types) != n_particles:
            raise ValueError(f"the metadata list {len(self.metadata.bead_types)} bead types for {n_particles} particles")

    @property
    def n_frames(self):
        """Number of frames."""
        return self.coordinates.shape[0]

    @property
    def n_particles(self):
        """Number of particles (atoms or beads) per frame."""
        return self.coordinates.shape[1]

    def __len__(self):
        return self.n_frames

    def __getitem__(self, frames):
        """The frames selected by an index, slice, boolean mask or index array, as a new Trajectory."""
        if isinstance(frames, (int, np.integer)):
            frames = [frames]
        return replace(
            self,
            coordinates=self.coordinates[frames],
            forces=self.forces[frames],
            potential_energy=self.potential_energy[frames],
            trajectory=self.trajectory[frames],
            step=self.step[frames],
            source=None,
        )

    def topology(self):
        """The OpenMM topology stored in the metadata (see :meth:`TrajectoryMetadata.topology`)."""
        if self.metadata is None:
            raise ValueError("this trajectory has no metadata, hence no topology")
        return self.metadata.topology()

    @classmethod
    def concatenate(cls, trajectories, renumber=True):
        """Frames of several trajectories of the same system, one after another.

        Parameters
        ----------
        trajectories : sequence of Trajectory
        renumber : bool, optional
            Shift the ``trajectory`` indices of each input past those of the ones before, so that
            runs from different files stay distinct (default True).

        Raises
        ------
        ValueError
            If the inputs differ in particle count or resolution.
        """
        trajectories = list(trajectories)
        if not trajectories:
            raise ValueError("nothing to concatenate")
        first = trajectories[0]
        for other in trajectories[1:]:
            if other.n_particles != first.n_particles:
                raise ValueError(f"cannot concatenate trajectories of {first.n_particles} and {other.n_particles} particles")
            if first.metadata is not None and other.metadata is not None and other.metadata.resolution != first.metadata.resolution:
                raise ValueError(f"cannot concatenate {first.metadata.resolution} and {other.metadata.resolution} trajectories")
        ids, offset = [], 0
        for item in trajectories:
            ids.append(item.trajectory + offset if renumber else item.trajectory)
            if renumber and item.n_frames:
                offset = int(ids[-1].max()) + 1
        return cls(
            coordinates=np.concatenate([item.coordinates for item in trajectories]),
            forces=np.concatenate([item.forces for item in trajectories]),
            potential_energy=np.concatenate([item.potential_energy for item in trajectories]),
            trajectory=np.concatenate(ids),
            step=np.concatenate([item.step for item in trajectories]),
            metadata=first.metadata,
            masses=first.masses,
        )

    def split(self, validation_fraction=0.1, seed=0, validation_trajectories=None):
        """Split into training and validation frames without mixing correlated frames.

        The split of :func:`~openmmcgml.data.split.split_by_trajectory` (the one force matching
        uses): with several runs (distinct ``trajectory`` indices), a random `validation_fraction`
        of the runs (at least one, never all), or the runs named in `validation_trajectories`, go
        to validation; a single run is split in time, its last `validation_fraction` of frames
        forming one contiguous block (with a warning).

        Returns
        -------
        (Trajectory, Trajectory)
            Training and validation frames.

        Examples
        --------
        >>> import numpy as np
        >>> data = Trajectory(coordinates=np.zeros((10, 2, 3)), trajectory=np.repeat([0, 1], 5))
        >>> train, validation = data.split(0.3)
        >>> len(train), len(validation), np.unique(validation.trajectory).size
        (5, 5, 1)
        """
        train, validation, _ = split_by_trajectory(self.trajectory, validation_fraction, seed, validation_trajectories)
        return self[train], self[validation]


# ----------------------------------------------------------------------------------- writing


def create_trajectory_file(
    path,
    metadata,
    n_particles,
    *,
    masses=None,
    constraints=None,
    system_xml=None,
    chunk_frames=100,
    compression="gzip",
    coordinate_decimals=None,
    force_decimals=None,
    overwrite=False,
):
    """Create an empty trajectory file (metadata, resizable frame datasets).

    Parameters
    ----------
    path : str or os.PathLike
    metadata : TrajectoryMetadata
    n_particles : int
    masses : array_like, optional
        Particle masses in amu, stored as the dataset ``masses``.
    constraints : array_like, optional
        All-atom files: pairs of atom indices with a distance constraint in the oracle's System
        (dataset ``constraints``, shape ``(n_constraints, 2)``), needed to build a correct force map.
    system_xml : str, optional
        All-atom files: the serialised OpenMM System of the oracle (dataset ``system_xml``).
    chunk_frames : int, optional
        Frames per HDF5 chunk (default 100).
    compression : str or None, optional
        HDF5 filter for frame datasets: ``"gzip"`` (default), ``"lzf"`` or None.
    coordinate_decimals, force_decimals : int, optional
        Store coordinates (nm) or forces (kJ/mol/nm) rounded to this many decimals with HDF5's
        scale-offset filter (lossy, smaller files); default: exact float32.
    overwrite : bool, optional
        Replace an existing file (default: raise FileExistsError).
    """
    h5py = _h5py()
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; remove it or pass overwrite=True")
    if not isinstance(metadata, TrajectoryMetadata):
        raise TypeError(f"metadata must be a TrajectoryMetadata, not {type(metadata).__name__}")
    n_particles = int(n_particles)
    if n_particles <= 0:
        raise ValueError(f"n_particles must be positive, not {n_particles}")
    chunk_frames = max(1, int(chunk_frames))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with h5py.File(path, "w") as handle:
        for key, value in metadata.to_attrs().items():
            handle.attrs[key] = value
        options = {"compression": compression, "shuffle": compression is not None, "fletcher32": True}
        for name in FRAME_DATASETS:
            per_frame = (n_particles, 3) if name in ("coordinates", "forces") else ()
            settings = dict(options)
            decimals = {"coordinates": coordinate_decimals, "forces": force_decimals}.get(name)
            if decimals is not None:
                settings["scaleoffset"] = int(decimals)
                settings["fletcher32"] = False  # HDF5 refuses checksums on a lossy filter
            handle.create_dataset(
                name,
                shape=(0, *per_frame),
                maxshape=(None, *per_frame),
                chunks=(chunk_frames, *per_frame),
                dtype=_DTYPES[name],
                **settings,
            )
        if masses is not None:
            masses = np.asarray(masses, dtype=np.float64)
            if masses.shape != (n_particles,):
                raise ValueError(f"masses have shape {masses.shape} but the file holds {n_particles} particles")
            handle.create_dataset("masses", data=masses)
        if constraints is not None:
            pairs = np.asarray(constraints, dtype=np.int32).reshape(-1, 2)
            if pairs.size and (pairs.min() < 0 or pairs.max() >= n_particles):
                raise ValueError(f"constraint atom indices must lie in [0, {n_particles})")
            handle.create_dataset("constraints", data=pairs)
        if system_xml is not None:
            handle.create_dataset("system_xml", data=system_xml, dtype=h5py.string_dtype())


def append_frames(path, coordinates, forces=None, potential_energy=None, trajectory=0, step=None):
    """Append frames to a trajectory file and close it again.

    Parameters
    ----------
    path : str or os.PathLike
    coordinates, forces : array_like
        Shape ``(n_new, n_particles, 3)`` (forces may be None: NaN).
    potential_energy, trajectory, step : array_like or scalar, optional

    Returns
    -------
    int
        Number of frames in the file afterwards.

    Raises
    ------
    ValueError
        If the new frames do not fit the file's particle count or disagree among themselves.
    """
    frames = Trajectory(coordinates, forces, potential_energy, trajectory, step)
    h5py = _h5py()
    path = os.fspath(path)
    with h5py.File(path, "r+") as handle:
        _check_layout(handle, path, writing=True)
        n_old = handle["coordinates"].shape[0]
        if handle["coordinates"].shape[1] != frames.n_particles:
            raise ValueError(
                f"{path} holds {handle['coordinates'].shape[1]} particles per frame, the new frames {frames.n_particles}"
            )
        n_new = n_old + frames.n_frames
        for name in FRAME_DATASETS:
            dataset = handle[name]
            dataset.resize(n_new, axis=0)
            dataset[n_old:n_new] = getattr(frames, name)
    return n_new


def truncate_frames(path, n_frames):
    """Cut a trajectory file back to its first `n_frames` frames (used when resuming a run)."""
    h5py = _h5py()
    path = os.fspath(path)
    with h5py.File(path, "r+") as handle:
        _check_layout(handle, path, writing=True)
        current = handle["coordinates"].shape[0]
        if n_frames > current:
            raise ValueError(f"{path} holds {current} frames, cannot truncate it to {n_frames}")
        for name in FRAME_DATASETS:
            handle[name].resize(int(n_frames), axis=0)


def write_trajectory(path, trajectory, *, overwrite=False, **options):
    """Write a whole :class:`Trajectory` to a new file (options as :func:`create_trajectory_file`)."""
    if trajectory.metadata is None:
        raise ValueError("a trajectory needs metadata (at least its resolution) to be written")
    options.setdefault("chunk_frames", max(1, min(100, trajectory.n_frames)))
    create_trajectory_file(
        path, trajectory.metadata, trajectory.n_particles, masses=trajectory.masses, overwrite=overwrite, **options
    )
    if trajectory.n_frames:
        append_frames(
            path, trajectory.coordinates, trajectory.forces, trajectory.potential_energy, trajectory.trajectory, trajectory.step
        )


# ----------------------------------------------------------------------------------- reading


def _check_layout(handle, path, *, writing=False, resolution=None):
    """Check an open file against ``docs/data-format.md`` and return its :class:`TrajectoryMetadata`.

    Reading needs ``coordinates`` and ``forces`` of one shape ``(n_frames, n_particles, 3)``;
    writing (appending, truncating) needs every frame dataset. Any other frame dataset present
    must hold one entry per frame, and the bead attributes and ``masses`` one entry per particle.
    ``resolution``, when given, is the resolution the caller needs.
    """
    stated = _plain(handle.attrs.get("resolution"))
    if resolution is not None and stated is not None and stated != resolution:
        hint = " (map it with openmmcgml.mapping first)" if resolution == "coarse-grained" else ""
        article = "an" if resolution[:1] in "aeiou" else "a"
        raise ValueError(f"dataset {path} has resolution {stated!r}; this needs {article} {resolution} dataset{hint}")
    kind = _plain(handle.attrs.get("format"))
    if kind != FORMAT:
        raise ValueError(f"dataset {path} is not an openmm-cgml trajectory file (attribute 'format' is {kind!r})")
    version = int(handle.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise ValueError(f"dataset {path} has format_version {version}; this openmmcgml reads up to {FORMAT_VERSION}")
    missing = [name for name in (FRAME_DATASETS if writing else REQUIRED_DATASETS) if name not in handle]
    if missing:
        raise ValueError(f"dataset {path} lacks the dataset(s) {', '.join(missing)}")
    shape = handle["coordinates"].shape
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"{path}: coordinates have shape {shape}, expected (n_frames, n_particles, 3)")
    if handle["forces"].shape != shape:
        raise ValueError(f"{path}: forces have shape {handle['forces'].shape} but coordinates have shape {shape}; they must be equal")
    for name in ("potential_energy", "trajectory", "step"):
        if name in handle and handle[name].shape != (shape[0],):
            raise ValueError(f"{path}: {name} has shape {handle[name].shape} but there are {shape[0]} frames (coordinates {shape})")
    try:
        metadata = TrajectoryMetadata.from_attrs(handle.attrs)
    except ValueError as error:
        raise ValueError(f"dataset {path}: {error}") from error
    for key in ("bead_names", "bead_types"):
        values = getattr(metadata, key)
        if values is not None and len(values) != shape[1]:
            raise ValueError(f"dataset {path}: attribute {key} lists {len(values)} beads but the coordinates have {shape[1]}")
    if "masses" in handle and handle["masses"].shape != (shape[1],):
        raise ValueError(f"dataset {path}: masses have shape {handle['masses'].shape} but the coordinates have {shape[1]} particles")
    return metadata


def _default_frame_values(name, n_frames):
    """What an absent optional frame dataset reads as."""
    if name == "potential_energy":
        return np.full(n_frames, np.nan)
    if name == "step":
        return np.arange(n_frames, dtype=np.int64)
    return np.zeros(n_frames, dtype=_MEMORY_DTYPES[name])


class TrajectoryFile:
    """Read access to a trajectory file without loading it whole.

    Parameters
    ----------
    path : str or os.PathLike
    resolution : {"all-atom", "coarse-grained"}, optional
        The resolution the caller needs: a file that states another one is refused.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        One line naming the file: a directory, a damaged or unreadable HDF5 file, not a
        trajectory file, another resolution than ``resolution``, datasets that disagree in shape.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.h5")
    >>> write_trajectory(path, Trajectory(np.zeros((5, 2, 3)), metadata=TrajectoryMetadata("all-atom")))
    >>> with TrajectoryFile(path) as data:
    ...     [len(chunk) for chunk in data.iter_chunks(2)]
    [2, 2, 1]
    >>> TrajectoryFile(path, resolution="coarse-grained")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: dataset ... has resolution 'all-atom'; this needs a coarse-grained dataset (map it ...)
    """

    def __init__(self, path, resolution=None):
        h5py = _h5py()
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"dataset {self.path} does not exist")
        if os.path.isdir(self.path):
            raise ValueError(f"dataset {self.path} is a directory, not an HDF5 file")
        with hdf5_errors(f"dataset {self.path}"):
            self._handle = h5py.File(self.path, "r")
        try:
            with hdf5_errors(f"dataset {self.path}"):
                self.metadata = _check_layout(self._handle, self.path, resolution=resolution)
        except Exception:
            self._handle.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        self.close()
        # what h5py raises while the file is read (a damaged chunk, say) becomes a ValueError naming it
        hdf5_errors(f"dataset {self.path}").__exit__(kind, error, traceback)

    def close(self):
        """Close the file."""
        self._handle.close()

    def __len__(self):
        return self.n_frames

    @property
    def n_frames(self):
        """Number of frames."""
        return self._handle["coordinates"].shape[0]

    @property
    def n_particles(self):
        """Particles per frame."""
        return self._handle["coordinates"].shape[1]

    @property
    def masses(self):
        """Particle masses (amu), or None."""
        return self._handle["masses"][()] if "masses" in self._handle else None

    @property
    def constraints(self):
        """Constrained atom pairs of the oracle's System, shape ``(n, 2)`` (empty when none are stored)."""
        if "constraints" in self._handle:
            return self._handle["constraints"][()].astype(np.int64)
        return np.zeros((0, 2), dtype=np.int64)

    @property
    def system_xml(self):
        """The serialised OpenMM System of the oracle, or None."""
        if "system_xml" in self._handle:
            return self._handle["system_xml"].asstr()[()]
        return None

    def dataset(self, name):
        """The h5py dataset `name` (for slicing without loading everything).

        An optional frame dataset the file does not hold (``potential_energy``, ``trajectory``,
        ``step``) comes back as a numpy array of its defaults, which slices the same way.
        """
        if name in FRAME_DATASETS and name not in self._handle:
            return _default_frame_values(name, self.n_frames)
        return self._handle[name]

    def read(self, frames=None):
        """Frames as a :class:`Trajectory`: all of them, or those of a slice (positive step), an
        index, an index array (any order, repeats allowed) or a boolean mask."""
        if frames is None:
            frames = slice(None)
        if isinstance(frames, slice) and frames.step is not None and (
                isinstance(frames.step, bool) or int(frames.step) != frames.step or frames.step < 1):
            raise ValueError(f"a stride must be a positive integer (got {frames.step!r})")
        if "trajectory" not in self._handle:
            warnings.warn(f"dataset {self.path} has no trajectory dataset; all frames count as one trajectory")
        stride = None
        if isinstance(frames, slice):
            if frames.start in (None, 0) and frames.stop is None:
                stride = int(frames.step or 1)
            data = {name: self.dataset(name)[frames] for name in FRAME_DATASETS}
        else:
            selection = np.atleast_1d(np.asarray(frames))
            if selection.dtype == bool:
                if selection.shape != (self.n_frames,):
                    raise ValueError(f"a frame mask needs {self.n_frames} entries, not {selection.shape[0]}")
                selection = np.flatnonzero(selection)
            selection = selection.astype(np.int64)
            selection = np.where(selection < 0, selection + self.n_frames, selection)
            if selection.size and (selection.min() < 0 or selection.max() >= self.n_frames):
                raise IndexError(f"frame index out of range for {self.path} with {self.n_frames} frames")
            unique, inverse = np.unique(selection, return_inverse=True)
            data = {name: self.dataset(name)[unique][inverse] for name in FRAME_DATASETS}
        return Trajectory(**data, metadata=self.metadata, masses=self.masses,
                          source={"path": os.path.abspath(self.path), "stride": stride})

    def iter_chunks(self, chunk_frames=1000):
        """Yield consecutive blocks of at most `chunk_frames` frames as :class:`Trajectory` objects."""
        for start in range(0, self.n_frames, int(chunk_frames)):
            yield self.read(slice(start, min(start + int(chunk_frames), self.n_frames)))


@dataclass
class TrajectoryInfo:
    """The header of a trajectory file: where it is, its size and its metadata.

    Returned by the functions that write files (the oracle, the mapper); :meth:`read` loads frames.
    """

    path: str
    n_frames: int
    n_particles: int
    metadata: TrajectoryMetadata

    @classmethod
    def of(cls, path, resolution=None):
        """The header of the file at `path` (``resolution`` as :class:`TrajectoryFile`)."""
        with TrajectoryFile(path, resolution) as handle:
            return cls(handle.path, handle.n_frames, handle.n_particles, handle.metadata)

    def read(self, frames=None):
        """Frames of the file (see :func:`read_trajectory`)."""
        return read_trajectory(self.path, frames)


def read_trajectory(path, frames=None, *, resolution=None):
    """Read a trajectory file (all frames, or those selected by `frames`) into memory.

    Parameters
    ----------
    path : str or os.PathLike
    frames : slice, int, array of int or bool, optional
        As :meth:`TrajectoryFile.read`; ``slice(None, None, stride)`` keeps every
        ``stride``-th frame.
    resolution : {"all-atom", "coarse-grained"}, optional
        Refuse a file of the other resolution.

    Raises
    ------
    FileNotFoundError, ValueError
        As :class:`TrajectoryFile`.
    """
    with TrajectoryFile(path, resolution) as handle:
        return handle.read(frames)


def load_trajectories(paths, *, resolution=None):
    """Read one or several trajectory files of one system into a single :class:`Trajectory`.

    The ``trajectory`` indices of each file are shifted past those of the files before it, so
    independent runs stay distinct (see :meth:`Trajectory.split`).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return Trajectory.concatenate([read_trajectory(path, resolution=resolution) for path in paths])
