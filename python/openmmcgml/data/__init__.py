"""All-atom oracle data: peptides, OpenMM runs that save coordinates and forces, datasets on disk.

Modules, one job each:

- :mod:`~openmmcgml.data.peptides`: build a peptide from its sequence, read a user's PDB, add hydrogens;
- :mod:`~openmmcgml.data.systems`: the built-in systems (alanine dipeptide, chignolin CLN025);
- :mod:`~openmmcgml.data.oracle`: the all-atom OpenMM runs (:func:`run_oracle`, :func:`generate_oracle`);
- :mod:`~openmmcgml.data.checkpoint`: portable checkpoints of those runs;
- :mod:`~openmmcgml.data.trajectory`: the HDF5 trajectory format (``docs/data-format.md``): the
  package's one reader and writer of frames, and :class:`Trajectory`, frames in memory;
- :mod:`~openmmcgml.data.split`: the training/validation split by trajectory.

``load_config`` (YAML configs with ``KEY=VALUE`` overrides) is the one every ``cgml`` command uses.

Examples
--------
>>> import os, tempfile
>>> from openmmcgml.data import generate_oracle, read_trajectory
>>> folder = tempfile.mkdtemp()
>>> result = generate_oracle("alanine-dipeptide", n_steps=30, save_every=10, out=os.path.join(folder, "aa.h5"))
>>> frames = read_trajectory(result.output)
>>> frames.forces.shape, frames.metadata.sequence
((3, 22, 3), 'ACE-ALA-NME')
"""

from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .._config import load_config
from .oracle import (
    DEFAULT_FORCEFIELD,
    OracleConfig,
    OracleResult,
    create_oracle_system,
    evaluate_frames,
    generate_oracle,
    prepare_molecule,
    resolve_platform,
    resume_oracle,
    run_oracle,
)
from .split import index_ranges, ranges_to_indices, split_by_trajectory
from .peptides import AMINO_ACIDS, Molecule, add_hydrogens, build_peptide, format_sequence, load_pdb, parse_sequence
from .systems import BUILTIN_SYSTEMS, SystemSpec, builtin_system
from .trajectory import (
    Trajectory,
    TrajectoryFile,
    TrajectoryInfo,
    TrajectoryMetadata,
    append_frames,
    create_trajectory_file,
    load_trajectories,
    read_trajectory,
    truncate_frames,
    write_trajectory,
)

__all__ = [
    "AMINO_ACIDS",
    "BUILTIN_SYSTEMS",
    "Checkpoint",
    "DEFAULT_FORCEFIELD",
    "Molecule",
    "OracleConfig",
    "OracleResult",
    "SystemSpec",
    "Trajectory",
    "TrajectoryFile",
    "TrajectoryInfo",
    "TrajectoryMetadata",
    "add_hydrogens",
    "append_frames",
    "build_peptide",
    "builtin_system",
    "create_oracle_system",
    "create_trajectory_file",
    "evaluate_frames",
    "format_sequence",
    "generate_oracle",
    "index_ranges",
    "load_config",
    "load_pdb",
    "load_trajectories",
    "parse_sequence",
    "prepare_molecule",
    "ranges_to_indices",
    "read_checkpoint",
    "read_trajectory",
    "resolve_platform",
    "resume_oracle",
    "run_oracle",
    "split_by_trajectory",
    "truncate_frames",
    "write_checkpoint",
    "write_trajectory",
]
