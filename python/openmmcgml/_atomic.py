"""Writing files so that a crash or a kill never leaves a half-written one in their place.

Every file the package writes and may read back later (models, checkpoints, state records, CSV
tables) goes through :func:`atomic_write`: the content goes to a temporary file in the same folder,
is flushed to disk, and only then replaces the target in one ``os.replace``. A reader therefore sees
either the previous complete file or the new complete file.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
>>> with atomic_write(path, "w") as handle:
...     _ = handle.write("first")
>>> try:
...     with atomic_write(path, "w") as handle:
...         _ = handle.write("half of the second")
...         raise KeyboardInterrupt
... except KeyboardInterrupt:
...     pass
>>> open(path).read()
'first'
>>> sorted(os.listdir(os.path.dirname(path)))
['notes.txt']
"""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_write"]

# Temporary files are created private (0600); the finished file gets the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", **open_arguments):
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without an error.

    Parameters
    ----------
    path : str or path-like
        The file to write. Its folder is created if missing.
    mode : str
        ``"wb"`` (default) or ``"w"``; any write mode of :func:`open` that truncates.
    **open_arguments
        Passed to :func:`open` (``newline=""`` for CSV, ``encoding=...``).

    Yields
    ------
    file object
        The open temporary file. Pass it to ``torch.save``, ``json.dump``, ``np.save`` etc.

    Raises
    ------
    ValueError
        If ``mode`` is not a truncating write mode.
    IsADirectoryError
        If ``path`` is a folder.
    """
    if mode not in ("w", "wb", "wt", "w+", "wb+", "w+b"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a file that can be written")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, mode, **open_arguments) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder):
    """Make the rename itself durable (a power cut could otherwise undo it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a folder
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - file systems that cannot sync a folder
        pass
    finally:
        os.close(descriptor)
