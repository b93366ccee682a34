"""Applying a map to trajectories in memory and on disk.

Examples
--------
>>> import os, tempfile
>>> from openmmcgml.data import generate_oracle
>>> folder = tempfile.mkdtemp()
>>> result = generate_oracle("alanine-dipeptide", n_steps=20, save_every=10, out=os.path.join(folder, "aa.h5"))
>>> cg = map_trajectory_file(os.path.join(folder, "aa.h5"), os.path.join(folder, "cg.h5"))
>>> cg.n_frames, cg.n_particles, cg.metadata.bead_names
(2, 5, ['C', 'N', 'CA', 'C', 'N'])
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.trajectory import Trajectory, TrajectoryFile, TrajectoryInfo, append_frames, create_trajectory_file
from .builders import build_map

__all__ = ["cg_metadata", "default_map_spec", "map_trajectory", "map_trajectory_file"]


def default_map_spec(system):
    """The map a built-in system uses (``"alanine-dipeptide"`` or ``"ca"``); ``"ca"`` for others."""
    from ..data.systems import BUILTIN_SYSTEMS

    spec = BUILTIN_SYSTEMS.get(system)
    return spec.cg_map if spec is not None else "ca"


def cg_metadata(cg_map, source, first_coordinates=None):
    """Metadata of a coarse-grained file mapped from an all-atom one.

    Parameters
    ----------
    cg_map : LinearMap
    source : TrajectoryMetadata
        The all-atom metadata (system, sequence, force field, temperature, ... are copied).
    first_coordinates : array_like, optional
        CG coordinates of the first frame, for ``topology_pdb``.
    """
    if first_coordinates is None:
        first_coordinates = np.zeros((cg_map.n_beads, 3))
    extra = dict(source.extra)
    extra["mapped_from_atoms"] = cg_map.n_atoms
    return replace(
        source,
        resolution="coarse-grained",
        topology_pdb=cg_map.cg_pdb(first_coordinates),
        mapping=cg_map.to_dict(),
        bead_names=list(cg_map.bead_names),
        bead_types=list(cg_map.bead_types),
        type_names=list(cg_map.type_names),
        extra=extra,
    )


def map_trajectory(trajectory, cg_map):
    """Map an all-atom :class:`~openmmcgml.data.Trajectory` to a coarse-grained one.

    Coordinates and forces are mapped; potential energies become NaN (the CG file holds no
    energy); run indices and steps are kept.
    """
    if trajectory.n_particles != cg_map.n_atoms:
        raise ValueError(f"the trajectory has {trajectory.n_particles} particles but the map reads {cg_map.n_atoms} atoms")
    coordinates = cg_map.map_coordinates(trajectory.coordinates)
    metadata = None
    if trajectory.metadata is not None:
        metadata = cg_metadata(cg_map, trajectory.metadata, coordinates[0] if len(coordinates) else None)
    return Trajectory(
        coordinates=coordinates,
        forces=cg_map.map_forces(trajectory.forces),
        potential_energy=np.full(trajectory.n_frames, np.nan),
        trajectory=trajectory.trajectory,
        step=trajectory.step,
        metadata=metadata,
        masses=cg_map.masses,
    )


def map_trajectory_file(
    source,
    output,
    cg_map=None,
    *,
    force_map=None,
    chunk_frames=1000,
    overwrite=False,
    compression="gzip",
    coordinate_decimals=None,
    force_decimals=None,
    progress=None,
):
    """Map an all-atom trajectory file to a coarse-grained file, streaming in chunks.

    Parameters
    ----------
    source : str or os.PathLike
        All-atom trajectory file (as the oracle writes it, with its constraints).
    output : str or os.PathLike
        Coarse-grained file to create.
    cg_map : str, dict or LinearMap, optional
        Anything :func:`~openmmcgml.mapping.build_map` takes; default: the built-in system's map,
        or ``"ca"``.
    force_map : str, optional
        Override the force map (``"aggregate"``, ``"partition"`` or ``"slice"``).
    chunk_frames : int, optional
        Frames read and written at a time.
    overwrite : bool, optional
        Replace an existing output file.
    compression, coordinate_decimals, force_decimals
        As :func:`~openmmcgml.data.create_trajectory_file`.
    progress : bool or callable, optional
        True for a tqdm bar; a callable gets ``(frames_done, frames_total)``.

    Returns
    -------
    TrajectoryInfo
        Path, frame and bead counts and metadata of the new file (``.read()`` loads it).

    Raises
    ------
    ValueError
        If the source is coarse-grained already, or the map does not fit it, or the force map
        does not cancel the constraint forces of the source's constraints.
    """
    from ..data.progress import progress_reporter

    with TrajectoryFile(source) as reader:
        if reader.metadata.resolution != "all-atom":
            raise ValueError(f"{source} is {reader.metadata.resolution}; map an all-atom file")
        topology = reader.metadata.topology()
        constraints = reader.constraints
        spec = cg_map if cg_map is not None else default_map_spec(reader.metadata.system)
        linear = build_map(spec, topology, constraints, force_map=force_map)
        linear.check(constraints)
        first = linear.map_coordinates(reader.dataset("coordinates")[0]) if reader.n_frames else None
        metadata = cg_metadata(linear, reader.metadata, first)
        chunk = max(1, min(int(chunk_frames), max(reader.n_frames, 1)))
        create_trajectory_file(
            output, metadata, linear.n_beads, masses=linear.masses, chunk_frames=min(chunk, 1000), overwrite=overwrite,
            compression=compression, coordinate_decimals=coordinate_decimals, force_decimals=force_decimals,
        )
        report = progress_reporter(progress, reader.n_frames, "map")
        done = 0
        for block in reader.iter_chunks(chunk):
            mapped = map_trajectory(block, linear)
            append_frames(output, mapped.coordinates, mapped.forces, mapped.potential_energy, mapped.trajectory, mapped.step)
            done += block.n_frames
            report(done)
        report.close()
    return TrajectoryInfo.of(output)
