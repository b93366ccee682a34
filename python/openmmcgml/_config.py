"""YAML configuration files of the ``cgml`` subcommands: loading, defaults and ``--set`` overrides."""

from __future__ import annotations

import copy
import os
from typing import Optional, Sequence

__all__ = ["add_config_arguments", "load_config"]


def _set(config: dict, dotted: str, value):
    keys = dotted.split(".")
    target = config
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = value


def load_config(path, overrides: Optional[Sequence[str]] = None, defaults: Optional[dict] = None) -> dict:
    """Read a YAML config, fill in ``defaults`` and apply ``KEY=VALUE`` overrides.

    Keys of nested mappings are written with dots (``initial.reference=data.h5``); values are
    parsed as YAML (``steps=1000`` is an int, ``platform=null`` is None).  Keys that are neither
    in ``defaults`` nor nested under a default mapping are errors, so a typo never goes unnoticed.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(path, "w").write("steps: 10\\n")
    >>> load_config(path, ["seed=3"], {"steps": 1, "seed": 0, "platform": None})
    {'steps': 10, 'seed': 3, 'platform': None}
    """
    import yaml

    with open(os.fspath(path)) as handle:
        loaded = yaml.safe_load(handle) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a config file must be a YAML mapping")
    config = copy.deepcopy(defaults) if defaults is not None else {}
    for key, value in loaded.items():
        config[key] = value
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE (got {item!r})")
        key, text = item.split("=", 1)
        _set(config, key.strip(), yaml.safe_load(text))
    if defaults is not None:
        unknown = sorted(set(config) - set(defaults))
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    return config


def add_config_arguments(parser):
    """The ``CONFIG`` positional argument and the repeatable ``--set KEY=VALUE`` option."""
    parser.add_argument("config", help="YAML config file (see examples/configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the config (dots for nested keys); may be repeated")
