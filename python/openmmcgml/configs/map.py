"""Settings and run of ``cgml map``: an all-atom trajectory file mapped to coarse-grained
coordinates and forces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .._config import Rule, Settings, boolean, config_path, integer, one_of, save_config, text

__all__ = ["DEFAULTS", "MapConfig", "RULES", "run_config"]


def _map_description(value):
    if not isinstance(value, (str, dict)) or not value:
        raise TypeError("not a map")
    return value


@dataclass
class MapConfig(Settings):
    """Settings of ``cgml map`` (examples/configs/map-alanine.yaml).

    Attributes
    ----------
    input : str
        All-atom trajectory file (``cgml oracle``'s output).
    output : str
        Coarse-grained file to create.
    map : str or dict, optional
        ``alanine-dipeptide``, ``ca``, ``residue-com``, ``{kind: atoms, atoms: [..]}`` or
        ``{kind: com, groups: [[..], ..]}`` (:func:`openmmcgml.mapping.build_map`); None: the
        built-in system's map, else ``ca``.
    force_map : str, optional
        None: the map's own (``aggregate``); or ``aggregate``, ``partition``, ``slice``.
    overwrite : bool
        Replace an existing output file.
    chunk_frames : int
        Frames read and written at a time.
    compression : str, optional
        ``gzip``, ``lzf`` or None.
    coordinate_decimals, force_decimals : int, optional
        Lossy rounding of the stored coordinates / forces (None: exact float32).
    """

    WHAT = "map"
    RULES = {
        "input": text(), "output": text(), "map": Rule("a map name or a mapping {kind: ...}", _map_description, True),
        "force_map": one_of("aggregate", "partition", "slice", optional=True),
        "overwrite": boolean(), "chunk_frames": integer(1), "compression": one_of("gzip", "lzf", optional=True),
        "coordinate_decimals": integer(0, optional=True), "force_decimals": integer(optional=True),
    }

    input: Optional[str] = None
    output: Optional[str] = None
    map: Union[str, dict, None] = None
    force_map: Optional[str] = None
    overwrite: bool = False
    chunk_frames: int = 1000
    compression: Optional[str] = "gzip"
    coordinate_decimals: Optional[int] = None
    force_decimals: Optional[int] = None


#: Every setting with its default.
DEFAULTS = MapConfig.defaults()

#: The type and range of each setting (see openmmcgml._config).
RULES = MapConfig.rules()


def run_config(config, *, quiet: bool = False, print_fn=print):
    """Map as ``config`` (a dict or :class:`MapConfig`) describes; returns the new file's
    ``TrajectoryInfo``.  ``quiet``: no progress bar.  The settings go to ``<output>.config.yaml``."""
    from ..mapping.apply import map_trajectory_file

    config = MapConfig.from_dict(config)
    for key in ("input", "output"):
        if not getattr(config, key):
            raise ValueError(f"the map setting {key!r} is required")
    info = map_trajectory_file(
        config.input, config.output, config.map, force_map=config.force_map, overwrite=config.overwrite,
        chunk_frames=config.chunk_frames, compression=config.compression,
        coordinate_decimals=config.coordinate_decimals, force_decimals=config.force_decimals, progress=not quiet,
    )
    save_config(config, config_path(config.output), "map")
    print_fn(f"{info.n_frames} frames of {info.n_particles} beads written to {info.path} (map "
             f"{info.metadata.mapping['name']}, force map {info.metadata.mapping['force_map']})")
    return info
