"""``cgml map``: map an all-atom trajectory file to coarse-grained coordinates and forces."""

_EPILOG = """\
settings (YAML or --set):
  input        all-atom trajectory file (from cgml oracle)
  output       coarse-grained file to create
  map          alanine-dipeptide | ca | residue-com | {kind: atoms, atoms: [..]} | {kind: com, groups: [[..], ..]}
               (default: the built-in system's map, else ca)
  force_map    aggregate (default; sums each constraint group) | partition (every atom's force to the bead
               carrying its mass: same mean force, far less noise) | slice (naive; refused when constraints
               touch mapped atoms)
  overwrite, chunk_frames, compression, coordinate_decimals, force_decimals

examples:
  cgml map examples/configs/map-alanine.yaml
  cgml map --set input=aa.h5 --set output=cg.h5 --set map=ca
"""

#: Every setting of a map config, with its default (examples/configs/map-alanine.yaml).
DEFAULTS = {
    "input": None,                 # all-atom trajectory file (cgml oracle's output)
    "output": None,                # coarse-grained file to create
    "map": None,                   # None: the built-in system's map, else ca
    "force_map": None,             # None: the map's own (aggregate); or aggregate | partition | slice
    "overwrite": False,            # replace an existing output file
    "chunk_frames": 1000,          # frames read and written at a time
    "compression": "gzip",
    "coordinate_decimals": None,   # lossy rounding of the stored coordinates (None: exact float32)
    "force_decimals": None,
}


def _map_description(value):
    if not isinstance(value, (str, dict)) or not value:
        raise TypeError("not a map")
    return value


def _rules():
    from .._config import Rule, boolean, integer, one_of, text

    return {
        "input": text(), "output": text(), "map": Rule("a map name or a mapping {kind: ...}", _map_description, True),
        "force_map": one_of("aggregate", "partition", "slice", optional=True),
        "overwrite": boolean(), "chunk_frames": integer(1), "compression": one_of("gzip", "lzf", optional=True),
        "coordinate_decimals": integer(0, optional=True), "force_decimals": integer(optional=True),
    }


#: The type and range of every setting (checked by load_config and run_config; see openmmcgml._config).
RULES = _rules()


def register(subparsers):
    import argparse

    from .._config import add_config_arguments

    parser = subparsers.add_parser(
        "map",
        help="map an all-atom trajectory file to a coarse-grained one (coordinates and forces)",
        description="Apply a linear CG map to the coordinates and a constraint-aware force map to the forces of an "
        "all-atom trajectory file, writing a coarse-grained trajectory file with the map's description.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run_config(config: dict, print_fn=print, progress=True):
    """Map as a config dict (the keys of :data:`DEFAULTS`) describes; returns the new file's ``TrajectoryInfo``."""
    from .._config import check_settings
    from ..mapping.apply import map_trajectory_file

    config = check_settings(config, RULES, "map")
    for key in ("input", "output"):
        if not config.get(key):
            raise ValueError(f"the map setting {key!r} is required")
    info = map_trajectory_file(
        config["input"], config["output"], config["map"], force_map=config["force_map"],
        overwrite=bool(config["overwrite"]), chunk_frames=config["chunk_frames"], compression=config["compression"],
        coordinate_decimals=config["coordinate_decimals"], force_decimals=config["force_decimals"], progress=progress,
    )
    print_fn(f"{info.n_frames} frames of {info.n_particles} beads written to {info.path} (map "
             f"{info.metadata.mapping['name']}, force map {info.metadata.mapping['force_map']})")
    return info


def run(args):
    from .._config import run_command

    return run_command("map", _run, args)


def _run(args):
    from .._config import format_config, load_config

    config = load_config(args.config, args.overrides, DEFAULTS, what="map", rules=RULES)
    if args.print_config:
        print(format_config(config))
        return 0
    run_config(config, progress=not args.quiet)
    return 0
