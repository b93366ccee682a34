"""``cgml map``: map an all-atom trajectory file to coarse-grained coordinates and forces."""

_EPILOG = """\
settings (YAML or --set):
  input        all-atom trajectory file (from cgml oracle)
  output       coarse-grained file to create
  map          alanine-dipeptide | ca | residue-com | {kind: atoms, atoms: [..]} | {kind: com, groups: [[..], ..]}
               (default: the built-in system's map, else ca)
  force_map    aggregate (default; sums each constraint group) | slice (naive; refused when constraints touch mapped atoms)
  overwrite, chunk_frames, compression, coordinate_decimals, force_decimals

examples:
  cgml map examples/configs/map-alanine.yaml
  cgml map --set input=aa.h5 --set output=cg.h5 --set map=ca
"""

_KEYS = ("input", "output", "map", "force_map", "overwrite", "chunk_frames", "compression", "coordinate_decimals", "force_decimals")


def register(subparsers):
    import argparse

    parser = subparsers.add_parser(
        "map",
        help="map an all-atom trajectory file to a coarse-grained one (coordinates and forces)",
        description="Apply a linear CG map to the coordinates and a constraint-aware force map to the forces of an "
        "all-atom trajectory file, writing a coarse-grained trajectory file with the map's description.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", help="YAML file of settings (optional when --set gives them)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (value read as YAML); repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args):
    """Run the command; bad settings or files end with a one-line error and exit status 2."""
    import sys

    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"cgml map: error: {error}", file=sys.stderr)
        return 2


def _run(args):
    from ..data.config import load_config
    from ..mapping.apply import map_trajectory_file

    settings = load_config(args.config, args.overrides)
    unknown = sorted(set(settings) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown map setting(s) {', '.join(unknown)}; known settings: {', '.join(_KEYS)}")
    for key in ("input", "output"):
        if not settings.get(key):
            raise ValueError(f"the map setting {key!r} is required")
    options = {key: settings[key] for key in ("chunk_frames", "compression", "coordinate_decimals", "force_decimals") if key in settings}
    info = map_trajectory_file(
        settings["input"], settings["output"], settings.get("map"), force_map=settings.get("force_map"),
        overwrite=bool(settings.get("overwrite", False)), progress=not args.quiet, **options,
    )
    print(f"{info.n_frames} frames of {info.n_particles} beads written to {info.path} (map {info.metadata.mapping['name']}, "
          f"force map {info.metadata.mapping['force_map']})")
    return 0
