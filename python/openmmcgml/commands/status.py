"""``cgml status``: which platforms have the plugin's kernels, and why any other does not."""

import json


def register(subparsers):
    status = subparsers.add_parser(
        "status",
        help="print which platforms have the plugin's kernels, and for each other platform why not",
        description="For each of the plugin's platforms: 'has kernels', 'load failed' (the library was built "
        "but OpenMM could not load it; OpenMM's message follows), 'not built' (with the reason the build "
        "recorded, e.g. no OpenCL headers) or 'unavailable' (with what is missing).",
    )
    status.add_argument("--json", action="store_true", help="print openmmcgml.plugin_status() as JSON")
    status.set_defaults(func=run)


def format_status(status):
    """Lines describing :func:`openmmcgml.plugin_status` for a person."""
    from .. import __version__

    lines = [f"openmm-cgml {__version__}: built for OpenMM {status['built_for']}, running OpenMM {status['openmm_version']}"]
    width = max([len(name) for name in status["plugin_platforms"]] + [8])
    for name, report in status["plugin_platforms"].items():
        line = f"  {name:<{width}}  {report['state']}"
        if report["detail"]:
            line += f": {report['detail']}"
        lines.append(line)
    # OpenMM platforms of a third party, which the plugin has no library for.
    others = [name for name in status["platforms"] if name not in status["plugin_platforms"]]
    if others:
        lines.append(f"  other OpenMM platforms (no plugin library for them): {', '.join(others)}")
    if status["build_record"] is None:
        lines.append("  (no build record found: the package was not installed by its CMake build)")
    return lines


def run(args):
    from .. import plugin_status

    status = plugin_status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print("\n".join(format_status(status)))
    # Without kernels on the Reference platform the plugin is not usable at all.
    return 0 if status["platforms"].get("Reference") else 1
