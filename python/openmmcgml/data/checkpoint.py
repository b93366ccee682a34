"""Portable checkpoints of oracle runs.

A checkpoint is a zip archive (written to a temporary file, then renamed over the old one, so it
is always either the old or the new checkpoint, never a mixture) holding:

``checkpoint.json``
    run settings, the run and MD step reached, the number of frames the output files must hold,
    the seed;
``state.xml``
    the OpenMM State (positions, velocities, time, step count) as ``XmlSerializer`` writes it:
    plain text in double precision, readable on any platform and machine (OpenMM's binary
    ``createCheckpoint`` is tied to one platform and OpenMM build);
``start.xml``
    the minimised starting State every independent run begins from;
``system.xml``
    the OpenMM System, so a resumed run integrates exactly the same Hamiltonian;
``topology.pdb``
    the all-atom topology;
``pending/<name>.npy``
    the frames of the last chunk (a write-ahead log): they are written to the checkpoint first
    and then appended to the HDF5 files, so a run killed in between re-appends them on resume
    instead of losing them.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run.chk")
>>> write_checkpoint(path, Checkpoint(info={"step": 10}, texts={"state.xml": "<State/>"}))
>>> read_checkpoint(path).info["step"]
10
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .._atomic import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = "openmm-cgml-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """The content of a checkpoint archive.

    Attributes
    ----------
    info : dict
        JSON-serialisable run information.
    texts : dict of str
        Named text members (``state.xml``, ``system.xml``, ...).
    arrays : dict of numpy.ndarray
        Named arrays (the pending frames).
    """

    info: dict
    texts: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


def write_checkpoint(path, checkpoint):
    """Write `checkpoint` to `path` atomically (temporary file, fsync, rename)."""
    info = dict(checkpoint.info)
    info["format"] = CHECKPOINT_FORMAT
    info["format_version"] = CHECKPOINT_VERSION
    with atomic_write(path) as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.writestr("checkpoint.json", json.dumps(info, indent=1, sort_keys=True))
            for name, text in checkpoint.texts.items():
                archive.writestr(name, text)
            for name, array in checkpoint.arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, np.asarray(array), allow_pickle=False)
                archive.writestr(f"pending/{name}.npy", buffer.getvalue())


def read_checkpoint(path):
    """Read a checkpoint archive.

    Raises
    ------
    FileNotFoundError
        If there is no checkpoint at `path`.
    ValueError
        If the file is not an openmm-cgml checkpoint or is damaged.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            info = json.loads(archive.read("checkpoint.json"))
            texts, arrays = {}, {}
            for name in archive.namelist():
                if name == "checkpoint.json":
                    continue
                if name.startswith("pending/") and name.endswith(".npy"):
                    arrays[name[len("pending/"):-4]] = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
                else:
                    texts[name] = archive.read(name).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable openmm-cgml checkpoint: {error}") from error
    if info.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an openmm-cgml checkpoint (format {info.get('format')!r})")
    if int(info.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {info['format_version']}; this openmmcgml reads up to {CHECKPOINT_VERSION}")
    return Checkpoint(info=info, texts=texts, arrays=arrays)
