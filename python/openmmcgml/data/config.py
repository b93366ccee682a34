"""YAML configuration files with command-line overrides.

A config is a YAML mapping of settings. Overrides are ``KEY=VALUE`` strings whose value is read
as YAML (``n_steps=50`` is an int, ``forcefield=[a.xml, b.xml]`` a list, ``seed=null`` None);
a dotted key sets a nested setting (``mapping.kind=ca``).

Examples
--------
>>> load_config(None, ["n_steps=50", "mapping.kind=ca", "name=test"])
{'n_steps': 50, 'mapping': {'kind': 'ca'}, 'name': 'test'}
"""

import os

__all__ = ["apply_overrides", "load_config"]


def _yaml():
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("YAML configs need PyYAML (pip install pyyaml)") from error
    return yaml


def apply_overrides(config, overrides):
    """Apply ``KEY=VALUE`` overrides to a config dict (in place; returns it).

    Raises
    ------
    ValueError
        For an override without ``=`` or with an empty key.
    """
    yaml = _yaml()
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"an override must look like KEY=VALUE, not {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"an override needs a key: {item!r}")
        value = yaml.safe_load(text) if text.strip() else None
        target = config
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {} if target.get(part) is None or not isinstance(target.get(part), str) else {"kind": target[part]}
            target = target[part]
        target[parts[-1]] = value
    return config


def load_config(path=None, overrides=()):
    """Read a YAML config (or start from an empty one) and apply overrides.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is not a YAML mapping.
    """
    config = {}
    if path is not None:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"config file not found: {path}")
        with open(path) as handle:
            try:
                config = _yaml().safe_load(handle)
            except Exception as error:
                raise ValueError(f"{path} is not valid YAML: {error}") from error
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ValueError(f"{path} must hold a mapping of settings, not {type(config).__name__}")
    return apply_overrides(config, overrides)
