"""YAML configuration of the ``cgml`` subcommands: loading, defaults, ``--set`` overrides, and the
options and error handling every config-driven command shares.

A config is a YAML mapping of settings. Overrides are ``KEY=VALUE`` strings whose value is read as
YAML (``n_steps=50`` is an int, ``forcefield=[a.xml, b.xml]`` a list, ``seed=null`` or ``seed=``
None); a dotted key sets a nested setting (``training.max_epochs=20``). A dotted key below a
setting that holds a string turns it into a mapping with that string as its ``kind``
(``mapping: ca`` plus ``mapping.bead_types=position`` gives ``{kind: ca, bead_types: position}``).

Examples
--------
>>> load_config(None, ["n_steps=50", "mapping.kind=ca", "name=test"])
{'n_steps': 50, 'mapping': {'kind': 'ca'}, 'name': 'test'}
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "c.yaml")
>>> _ = open(path, "w").write("steps: 10\\n")
>>> load_config(path, ["seed=3"], {"steps": 1, "seed": 0, "platform": None})
{'steps': 10, 'seed': 3, 'platform': None}
>>> load_config(path, ["sed=3"], {"steps": 1, "seed": 0}, what="simulate")
Traceback (most recent call last):
...
ValueError: unknown simulate setting(s) sed; known settings: seed, steps
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Callable, Optional, Sequence

__all__ = ["add_config_arguments", "apply_overrides", "format_config", "load_config", "merge_section", "run_command"]

#: Exceptions that a command reports as a one-line error with exit status 2 (bad settings or files).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError)


def _yaml():
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("YAML configs need PyYAML (pip install pyyaml)") from error
    return yaml


def apply_overrides(config: dict, overrides: Optional[Sequence[str]]) -> dict:
    """Apply ``KEY=VALUE`` overrides to a config dict (in place; returns it).

    Raises
    ------
    ValueError
        For an override without ``=`` or with an empty key.
    """
    yaml = _yaml()
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, not {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"--set needs a key: {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({error})") from error
        target = config
        parts = key.split(".")
        for part in parts[:-1]:
            current = target.get(part)
            if isinstance(current, str):
                target[part] = {"kind": current}
            elif not isinstance(current, dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    return config


def load_config(path=None, overrides: Optional[Sequence[str]] = None, defaults: Optional[dict] = None,
                what: str = "") -> dict:
    """Read a YAML config (or start from an empty one), fill in ``defaults`` and apply overrides.

    Parameters
    ----------
    path : str or path-like, optional
        The YAML file; None starts from ``defaults`` alone.
    overrides : sequence of str
        ``KEY=VALUE`` strings (see the module docstring), applied after the file.
    defaults : dict, optional
        Every known top-level setting with its default. With it, a top-level key that is not in
        ``defaults`` is an error, so a typo never goes unnoticed (nested sections are checked by
        the command that reads them).
    what : str
        The command's name, used in error messages.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid YAML or not a mapping, an override is malformed, or a setting is
        unknown.
    """
    loaded = {}
    if path is not None:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"config file not found: {path}")
        if os.path.isdir(path):
            raise ValueError(f"config {path} is a directory, not a YAML file")
        yaml = _yaml()
        with open(path) as handle:
            try:
                loaded = yaml.safe_load(handle)
            except yaml.YAMLError as error:
                raise ValueError(f"{path} is not valid YAML: {error}") from error
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of settings, not {type(loaded).__name__}")
    config = copy.deepcopy(defaults) if defaults is not None else {}
    config.update(copy.deepcopy(loaded))
    apply_overrides(config, overrides)
    if defaults is not None:
        unknown = sorted(set(config) - set(defaults))
        if unknown:
            source = f"{path}: " if path is not None and set(unknown) & set(loaded) else ""
            label = f"{what} " if what else ""
            raise ValueError(f"{source}unknown {label}setting(s) {', '.join(unknown)}; known settings: "
                             f"{', '.join(sorted(defaults))}")
    return config


def merge_section(config: dict, name: str, defaults: dict) -> dict:
    """The nested mapping ``config[name]`` over its ``defaults``; unknown keys are errors.

    Examples
    --------
    >>> merge_section({"model": {"width": 8}}, "model", {"width": 64, "depth": 2})
    {'width': 8, 'depth': 2}
    """
    given = config.get(name) or {}
    if not isinstance(given, dict):
        raise ValueError(f"'{name}' must be a mapping of settings (got {given!r})")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {name} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    return {**copy.deepcopy(defaults), **given}


def format_config(config: dict) -> str:
    """A config as YAML text, in the order of its keys (what ``--print-config`` prints)."""
    return _yaml().safe_dump(config, sort_keys=False, default_flow_style=None).rstrip("\n")


def add_config_arguments(parser, print_config: bool = True, quiet: bool = True):
    """The options every config-driven command takes.

    ``CONFIG`` (optional: ``--set`` may give every setting), the repeatable ``--set KEY=VALUE``,
    ``--print-config`` (print the complete settings as YAML and exit) and ``--quiet`` (no
    progress bars or listings; the summary and errors still print).
    """
    parser.add_argument("config", nargs="?", help="YAML config file (see examples/configs/); optional when --set "
                        "gives every required setting")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (value read as YAML, dots for nested keys); repeatable")
    if print_config:
        parser.add_argument("--print-config", action="store_true",
                            help="print the complete settings (defaults filled in) as YAML and exit")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bars or listings")


def run_command(name: str, function: Callable, args) -> int:
    """Call ``function(args)``; a bad setting or file ends with a one-line error and exit status 2.

    Errors that are not the user's (bugs, crashes of OpenMM) keep their traceback.
    """
    try:
        status = function(args)
    except USER_ERRORS as error:
        print(f"cgml {name}: error: {error}", file=sys.stderr)
        return 2
    return 0 if status is None else int(status)
