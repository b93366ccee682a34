"""``cgml map``: map an all-atom trajectory file to coarse-grained coordinates and forces
(settings and run: :mod:`openmmcgml.configs.map`)."""

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
The effective settings are written to OUTPUT.config.yaml.

examples:
  cgml map examples/configs/map-alanine.yaml
  cgml map --set input=aa.h5 --set output=cg.h5 --set map=ca
"""


def register(subparsers):
    import argparse

    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "map",
        help="map an all-atom trajectory file to a coarse-grained one (coordinates and forces)",
        description="Apply a linear CG map to the coordinates and a constraint-aware force map to the forces of an "
        "all-atom trajectory file, writing a coarse-grained trajectory file with the map's description.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.set_defaults(func=config_command("map", "openmmcgml.configs.map", "MapConfig"))
