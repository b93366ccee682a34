"""YAML configuration of the ``cgml`` subcommands: loading, defaults, ``--set`` overrides, and the
options and error handling every config-driven command shares.

A config is a YAML mapping of settings. Overrides are ``KEY=VALUE`` strings whose value is read as
YAML (``n_steps=50`` is an int, ``forcefield=[a.xml, b.xml]`` a list, ``seed=null`` or ``seed=``
None); a dotted key sets a nested setting (``training.max_epochs=20``). A dotted key below a
setting that holds a string turns it into a mapping with that string as its ``kind``
(``mapping: ca`` plus ``mapping.bead_types=position`` gives ``{kind: ca, bead_types: position}``).

Each command's settings are a :class:`Settings` dataclass (:mod:`openmmcgml.configs`; the demo's
in :mod:`openmmcgml.workflow`): its fields the settings with their defaults, nested sections as
nested dataclasses (:func:`section`), and ``RULES``, each setting's type and range
(:func:`integer`, :func:`number`, :func:`one_of`, :func:`openmm_platform`, ...).  One loader,
:func:`load_settings` (behind :meth:`Settings.from_dict` and :func:`load_config`), reads every
config: unknown settings are refused at every level, the rules are checked by
:func:`check_settings`, so a bad value is refused, naming the setting, before any work starts.
:func:`config_command` is what each config-driven ``cgml`` subcommand runs (``--print-config``,
``--quiet``: no progress bars or listings, the run); :func:`save_config` writes a run's effective
settings next to its output; :func:`run_command` turns errors into one line on stderr (``cgml
--debug`` or ``CGML_DEBUG=1``: the traceback).

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
import dataclasses
import math
import os
import sys
import warnings
from typing import Callable, Optional, Sequence

__all__ = ["Rule", "Settings", "add_config_arguments", "apply_overrides", "boolean", "check_settings", "config_command",
           "config_path", "debug_requested", "format_config", "integer", "load_config", "load_settings", "mapping",
           "number", "number_list", "one_of", "openmm_platform", "run_command", "save_config",
           "section", "settings_variant", "text", "torch_device"]

#: Exceptions that a command reports as a one-line error with exit status 2 (bad settings or files;
#: FloatingPointError: a run that diverged, with the setting to change in its message).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, FloatingPointError)

#: Environment variable that, set to a non-empty value other than 0, makes every command show the
#: full traceback of an error (as ``cgml --debug`` does).
DEBUG_VARIABLE = "CGML_DEBUG"


# ---------------------------------------------------------------------------------------- rules

class InvalidSetting(ValueError):
    """What a :class:`Rule` raises; :func:`check_settings` adds the setting's name and value."""


class Rule:
    """How one setting is checked: its expected kind in words and a function that converts a valid
    value (e.g. the string ``"1e-3"``, which YAML does not read as a number) or raises
    :class:`InvalidSetting` with what is wrong.

    Each command declares its rules once, in its :class:`Settings` dataclass, as a dict from the
    setting name to a Rule; :func:`check_settings` applies them (:func:`load_settings` calls it).

    Parameters
    ----------
    expected : str
        The valid values in words (``"an integer >= 1"``), for the error message.
    convert : callable
        Value -> checked (and converted) value; raises InvalidSetting (or ValueError/TypeError,
        reported with ``expected``).
    optional : bool
        None (``null`` in YAML) is valid too.
    """

    def __init__(self, expected: str, convert: Callable, optional: bool = False):
        self.expected = expected + (" or null" if optional else "")
        self.convert = convert
        self.optional = optional
        #: (minimum, maximum, above, below) of a number or integer rule, else None
        self.bounds = None

    def __call__(self, value):
        if value is None:
            if self.optional:
                return None
            raise InvalidSetting(f"must be {self.expected}")
        try:
            return self.convert(value)
        except InvalidSetting:
            raise
        except (ValueError, TypeError, OverflowError) as error:
            raise InvalidSetting(f"must be {self.expected}") from error

    def __repr__(self):
        return f"Rule({self.expected!r})"


def _as_real(value) -> float:
    """A real number from a number or a numeric string (YAML reads ``1e-3`` as a string)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, str):
        value = float(value.strip())
    elif not isinstance(value, (int, float)):
        import numbers

        if not isinstance(value, numbers.Real):
            raise TypeError(f"{type(value).__name__} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _bounds_text(minimum, maximum, above, below) -> str:
    parts = []
    if above is not None:
        parts.append(f"> {above:g}")
    if minimum is not None:
        parts.append(f">= {minimum:g}")
    if below is not None:
        parts.append(f"< {below:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " and ".join(parts)


def _in_bounds(number, minimum, maximum, above, below) -> bool:
    return not ((minimum is not None and number < minimum) or (maximum is not None and number > maximum)
                or (above is not None and number <= above) or (below is not None and number >= below))


def integer(minimum: Optional[int] = None, maximum: Optional[int] = None, optional: bool = False) -> Rule:
    """An integer (``10000``, ``1e4`` or ``10000.0`` are all 10000) within the bounds.

    Examples
    --------
    >>> integer(1)("1e4"), integer(1)(3.0)
    (10000, 3)
    >>> integer(1)(-100)
    Traceback (most recent call last):
    ...
    openmmcgml._config.InvalidSetting: must be an integer >= 1
    """
    expected = "an integer" + (" " + _bounds_text(minimum, maximum, None, None) if (minimum, maximum) != (None, None)
                               else "")

    def convert(value):
        number = _as_real(value)
        if not number.is_integer():
            raise ValueError("not an integer")
        if not _in_bounds(number, minimum, maximum, None, None):
            raise InvalidSetting(f"must be {expected}")
        return int(value) if isinstance(value, int) else int(number)

    rule = Rule(expected, convert, optional)
    rule.bounds = (minimum, maximum, None, None)
    return rule


def number(minimum: Optional[float] = None, maximum: Optional[float] = None, *, above: Optional[float] = None,
           below: Optional[float] = None, optional: bool = False) -> Rule:
    """A finite real number within the bounds (``minimum``/``maximum`` inclusive, ``above``/``below``
    strict).  An int stays an int; a numeric string becomes a float.

    Examples
    --------
    >>> number(above=0)("1e-3")
    0.001
    >>> number(above=0)("fast")
    Traceback (most recent call last):
    ...
    openmmcgml._config.InvalidSetting: must be a number > 0
    """
    bounds = _bounds_text(minimum, maximum, above, below)
    expected = "a number" + (" " + bounds if bounds else "")

    def convert(value):
        real = _as_real(value)
        if not _in_bounds(real, minimum, maximum, above, below):
            raise InvalidSetting(f"must be {expected}")
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else real

    rule = Rule(expected, convert, optional)
    rule.bounds = (minimum, maximum, above, below)
    return rule


def number_list(minimum: Optional[float] = None, *, above: Optional[float] = None, integers: bool = False,
                scalar: bool = False, optional: bool = False) -> Rule:
    """A list of numbers (integers with ``integers``) within the bounds; ``scalar``: one number is
    valid too."""
    element = (integer(minimum) if integers else number(minimum, above=above))
    expected = f"a list of {element.expected.replace('an integer', 'integers').replace('a number', 'numbers')}"
    if scalar:
        expected = f"{element.expected} or {expected}"

    def convert(value):
        if scalar and not isinstance(value, (list, tuple)):
            try:
                return element(value)
            except InvalidSetting as error:
                raise InvalidSetting(f"must be {expected}") from error
        if not isinstance(value, (list, tuple)):
            raise TypeError("not a list")
        checked = []
        for index, item in enumerate(value):
            try:
                checked.append(element(item))
            except InvalidSetting as error:
                raise InvalidSetting(f"must be {expected}; entry {index} is {item!r}") from error
        return checked

    return Rule(expected, convert, optional)


def boolean(optional: bool = False) -> Rule:
    """true or false (YAML booleans only: ``"no"`` as a string is not accepted)."""

    def convert(value):
        if isinstance(value, bool):
            return value
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
        raise TypeError("not a boolean")

    return Rule("true or false", convert, optional)


def one_of(*choices, optional: bool = False) -> Rule:
    """One of ``choices`` (compared as given)."""

    def convert(value):
        if value not in choices:
            raise ValueError("not a choice")
        return value

    return Rule("one of " + ", ".join(str(c) for c in choices), convert, optional)


def text(optional: bool = True) -> Rule:
    """A string (a file name, say); null by default is valid too."""

    def convert(value):
        if not isinstance(value, str) or not value:
            raise TypeError("not a string")
        return value

    return Rule("a non-empty string", convert, optional)


def file_or_files() -> Rule:
    """A file name or a non-empty list of file names; null is valid too."""

    def convert(value):
        if isinstance(value, str) and value:
            return value
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
            return list(value)
        raise TypeError("not a file name or a list of file names")

    return Rule("a file name or a non-empty list of file names", convert, optional=True)


def mapping(optional: bool = True) -> Rule:
    """A mapping of settings (YAML ``{...}``)."""

    def convert(value):
        if not isinstance(value, dict):
            raise TypeError("not a mapping")
        return value

    return Rule("a mapping", convert, optional)


def openmm_platform(auto: bool = True) -> Rule:
    """The name of a registered OpenMM platform (``"auto"``/null: the command chooses)."""

    def convert(value):
        if auto and (value is None or str(value).lower() == "auto"):
            return value
        import openmm

        names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
        if value not in names:
            choices = (["auto"] if auto else []) + names
            raise InvalidSetting(f"names no OpenMM platform here; available: {', '.join(choices)}")
        return value

    return Rule("the name of an OpenMM platform", convert, optional=auto)


def torch_device() -> Rule:
    """A PyTorch device that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""

    def convert(value):
        if not isinstance(value, str):
            raise TypeError("not a string")
        import torch

        try:
            device = torch.device(value)
        except RuntimeError as error:
            raise ValueError("not a device") from error
        if device.type == "cpu":
            return value
        backend = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None),
                   "xpu": getattr(torch, "xpu", None)}.get(device.type)
        if backend is None:
            raise InvalidSetting("must be cpu, cuda, cuda:N or mps")
        if not backend.is_available():
            raise InvalidSetting(f"asks for a {device.type} device, but this PyTorch has none available "
                                 f"(torch.{'backends.' if device.type == 'mps' else ''}{device.type}.is_available() "
                                 "is False); use cpu")
        if device.index is not None and hasattr(backend, "device_count") and device.index >= backend.device_count():
            raise InvalidSetting(f"asks for {device.type} device {device.index}, but there are only "
                                 f"{backend.device_count()}")
        return value

    return Rule("a PyTorch device (cpu, cuda, cuda:N, mps)", convert)


def _lookup(config: dict, dotted: str):
    """(parent dict, key) of a dotted setting present in ``config``, or (None, None)."""
    parts = dotted.split(".")
    target = config
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return None, None
    return (target, parts[-1]) if isinstance(target, dict) and parts[-1] in target else (None, None)


def check_settings(config: dict, rules: Optional[dict], what: str = "", prefix: str = "", source: str = "") -> dict:
    """Check the settings of ``config`` that ``rules`` name (dotted for nested ones); returns a
    copy with converted values.  Settings that are absent are left alone (their defaults apply).

    Parameters
    ----------
    config : dict
    rules : dict of str -> Rule
    what : str
        The command's name, for the message.
    prefix : str
        Only the rules under this section (``"training"``); ``config`` is then the section itself.
    source : str
        Prefixed to the message (the config file).

    Raises
    ------
    ValueError
        ``"simulate setting 'friction' must be a number >= 0 (got -1)"``.

    Examples
    --------
    >>> check_settings({"steps": "1e4"}, {"steps": integer(1)})
    {'steps': 10000}
    >>> check_settings({"training": {"lr": "fast"}}, {"training.lr": number(above=0)}, "train")
    Traceback (most recent call last):
    ...
    ValueError: train setting 'training.lr' must be a number > 0 (got 'fast')
    """
    checked = copy.deepcopy(config)
    for name, rule in (rules or {}).items():
        if prefix:
            if not name.startswith(prefix + "."):
                continue
            local = name[len(prefix) + 1:]
        else:
            local = name
        parent, key = _lookup(checked, local)
        if parent is None:
            continue
        value = parent[key]
        try:
            parent[key] = rule(value)
        except InvalidSetting as error:
            label = f"{what} setting" if what else "setting"
            raise ValueError(f"{source}{label} '{name}' {error} (got {value!r})") from None
    return checked



# ------------------------------------------------------------------------------------- settings

class Settings:
    """Base of the config dataclasses of the ``cgml`` commands (``SimulateConfig``, ...).

    A subclass is a :func:`dataclasses.dataclass` whose fields are the command's settings with
    their defaults; a field made with :func:`section` holds a nested dataclass (``train``'s
    ``model`` and ``training``).  Two class attributes (not fields) go with it: ``WHAT``, the name
    in messages (``"simulate"``; a section's own name, ``"training"``), and ``RULES``, the
    :class:`Rule` of each of its own settings.  :meth:`from_dict` reads one with
    :func:`load_settings`, the one loader of every command's config.
    """

    #: The name in messages: the command's (``"simulate"``), or a section's own (``"training"``).
    WHAT = ""
    #: Setting name -> :class:`Rule`, for this class's own settings (a section has its own).
    RULES: dict = {}
    #: True: the settings of nested sections are named by their dotted path under ``WHAT``
    #: (``unknown demo setting(s) train.model.width``) instead of under the section's own name.
    DOTTED_NAMES = False

    @classmethod
    def from_dict(cls, values=None, *, source: str = ""):
        """The settings of a dict (parsed YAML), defaults filled in and checked (:func:`load_settings`);
        an instance of the class is returned as it is."""
        return load_settings(cls, values, source=source)

    def to_dict(self) -> dict:
        """The settings as a plain nested dict (what ``--print-config`` prints)."""
        return dataclasses.asdict(self)

    @classmethod
    def rules(cls) -> dict:
        """Every rule, those of nested sections under dotted names (``"training.lr"``)."""
        rules = dict(cls.RULES)
        for item in dataclasses.fields(cls):
            nested = item.metadata.get("section")
            if nested is not None:
                rules.setdefault(item.name, mapping())
                rules.update({f"{item.name}.{name}": rule for name, rule in nested.rules().items()})
        return rules

    @classmethod
    def defaults(cls) -> dict:
        """Every setting with its default, as a nested dict."""
        return cls().to_dict()

    def validate(self) -> None:
        """Check how the settings fit together (each one alone is checked by its rule first); the
        loader calls it last.  Raises ValueError."""


def section(cls) -> dataclasses.Field:
    """A dataclass field holding the nested :class:`Settings` dataclass ``cls`` (all its defaults)."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls})


def settings_variant(cls, name: str, *, drop: Sequence[str] = (), extra: Sequence[tuple] = (), what=None):
    """A :class:`Settings` dataclass with the fields and rules of ``cls`` except ``drop``, plus
    ``extra`` settings given as ``(name, default, rule)``; nothing else of ``cls`` (its
    :meth:`~Settings.validate`) carries over.  The demo's sections are the commands' settings less
    the file names it sets itself.

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Run(Settings):
    ...     WHAT = "run"
    ...     RULES = {"steps": integer(1), "output": text()}
    ...     steps: int = 10
    ...     output: str = "run.h5"
    >>> Stage = settings_variant(Run, "Stage", drop=["output"], extra=[("workers", 1, integer(1))])
    >>> Stage.from_dict({"steps": 5}).to_dict(), sorted(Stage.rules())
    ({'steps': 5, 'workers': 1}, ['steps', 'workers'])
    """
    specification = []
    for item in dataclasses.fields(cls):
        if item.name not in drop:
            specification.append((item.name, item.type, dataclasses.field(
                default=item.default, default_factory=item.default_factory, metadata=item.metadata)))
    for setting, default, _ in extra:
        factory = (lambda value=default: copy.deepcopy(value)) if isinstance(default, (dict, list)) else None
        specification.append((setting, "object", dataclasses.field(default_factory=factory) if factory
                              else dataclasses.field(default=default)))
    rules = {key: rule for key, rule in cls.RULES.items() if key.split(".")[0] not in drop}
    rules.update({setting: rule for setting, _, rule in extra})
    return dataclasses.make_dataclass(name, specification, bases=(Settings,),
                                      namespace={"RULES": rules, "WHAT": cls.WHAT if what is None else what})


def _is_settings_class(schema) -> bool:
    return isinstance(schema, type) and dataclasses.is_dataclass(schema)


def _fields(schema) -> list:
    """(name, default, nested schema or None) of each setting of a Settings class or a defaults dict."""
    if _is_settings_class(schema):
        out = []
        for item in dataclasses.fields(schema):
            nested = item.metadata.get("section")
            if item.default is not dataclasses.MISSING:
                default = item.default
            elif item.default_factory is not dataclasses.MISSING and nested is None:
                default = item.default_factory()
            else:
                default = None
            out.append((item.name, default, nested))
        return out
    return [(name, value, None) for name, value in schema.items()]


def _merge_settings(schema, values: dict, overlay: dict, names: dict) -> dict:
    """``values`` over ``overlay`` over the schema's defaults, every level checked for unknown keys;
    ``names`` says how messages name things (see :func:`load_settings`)."""
    known = _fields(schema)
    label, path = names["label"], names["path"]
    unknown = [key for key in list(values) + [key for key in overlay if key not in values]
               if key not in {name for name, _, _ in known}]
    if unknown:
        # name the config file when the unknown setting (or the section holding it) came from it
        top = names["section"]
        in_file = (set(unknown) if top is None else {top}) & names["from_file"]
        source = names["source"] if in_file else ""
        known_names = sorted(path + name for name, _, _ in known)
        raise ValueError(f"{source}unknown {label + ' ' if label else ''}setting(s) "
                         f"{', '.join(path + key for key in unknown)}; known settings: {', '.join(known_names)}")
    merged = {}
    for name, default, nested in known:
        if nested is None:
            value = values[name] if name in values else overlay[name] if name in overlay else default
            merged[name] = copy.deepcopy(value)
            continue
        given, base = values.get(name), overlay.get(name)
        for part in (given, base):
            if part is not None and not isinstance(part, dict):
                what = f"{names['top']} setting" if names["top"] else "setting"
                raise ValueError(f"{what} '{names['full'] + name}' must be a mapping (got {part!r})")
        inner = {**names, "full": names["full"] + name + ".", "section": names["section"] or name}
        if names["dotted"]:
            inner["path"] = path + name + "."
        else:
            inner.update(label=nested.WHAT or name, path="")
        merged[name] = _merge_settings(nested, given or {}, base or {}, inner)
    return merged


def _build(schema, checked: dict):
    if not _is_settings_class(schema):
        return checked
    arguments = {}
    for name, _, nested in _fields(schema):
        arguments[name] = _build(nested, checked[name]) if nested is not None else checked[name]
    settings = schema(**arguments)
    settings.validate()
    return settings


def load_settings(schema, values: Optional[dict] = None, what: Optional[str] = None, *, defaults: Optional[dict] = None,
                  rules: Optional[dict] = None, source: str = "", from_file: Sequence[str] = ()):
    """The one loader of every command's config: ``values`` (a dict, e.g. parsed YAML with
    ``--set`` applied) over ``defaults`` over the schema's own defaults, unknown keys refused at
    every level, every :class:`Rule` applied, then :meth:`Settings.validate`.

    Parameters
    ----------
    schema : Settings subclass or dict
        The dataclass of the settings (nested sections included), or a dict of defaults (a flat
        schema: a dict-valued default is one setting, not a section).
    values : dict, optional
        The given settings; an instance of ``schema`` is returned as it is.
    what : str, optional
        The name in messages (default: the schema's ``WHAT``).
    defaults : dict, optional
        Nested defaults over the schema's own (the demo's sizes over the commands').
    rules : dict, optional
        Setting name (dotted for nested ones) -> :class:`Rule`; default: those of the schema.
    source : str, optional
        The config file, named in a message about a setting it holds.
    from_file : sequence of str
        The top-level settings that came from ``source``.

    Returns
    -------
    Settings or dict
        An instance of ``schema`` (a dict for a dict schema).

    Raises
    ------
    ValueError
        ``"unknown simulate setting(s) stepz; known settings: ..."``, ``"simulate setting
        'friction' must be a number >= 0 (got -1)"``, or what :meth:`Settings.validate` finds.

    Examples
    --------
    >>> load_settings({"steps": 1, "seed": 0}, {"steps": "1e3"}, "simulate", rules={"steps": integer(1)})
    {'steps': 1000, 'seed': 0}
    >>> load_settings({"steps": 1}, {"training": {"lr": 1}}, "train")
    Traceback (most recent call last):
    ...
    ValueError: unknown train setting(s) training; known settings: steps
    """
    if _is_settings_class(schema) and isinstance(values, schema):
        return values
    if what is None:
        what = getattr(schema, "WHAT", "")
    prefix = f"{source}: " if source else ""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{prefix}{'the ' + what + ' ' if what else 'a '}config must be a mapping of settings, "
                         f"not {type(values).__name__}")
    names = {"label": what, "top": what, "path": "", "full": "", "section": None, "source": prefix,
             "from_file": set(from_file),
             "dotted": bool(getattr(schema, "DOTTED_NAMES", False))}
    merged = _merge_settings(schema, values, defaults or {}, names)
    if rules is None:
        rules = schema.rules() if _is_settings_class(schema) else {}
    return _build(schema, check_settings(merged, rules, what))


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


def _read_yaml(path) -> dict:
    """The mapping of settings in a YAML file (empty for an empty file)."""
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
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a mapping of settings, not {type(loaded).__name__}")
    return loaded


def load_config(path=None, overrides: Optional[Sequence[str]] = None, schema=None, what: str = "",
                rules: Optional[dict] = None):
    """Read a YAML config (or start from an empty one), apply overrides, and read the result with
    :func:`load_settings`.

    Parameters
    ----------
    path : str or path-like, optional
        The YAML file; None starts from nothing but the overrides.
    overrides : sequence of str
        ``KEY=VALUE`` strings (see the module docstring), applied after the file.
    schema : Settings subclass or dict, optional
        The command's settings (e.g. ``SimulateConfig``), or a dict of every top-level setting
        with its default.  With it, defaults are filled in and an unknown setting is an error, so
        a typo never goes unnoticed; without it the settings are returned as given.
    what : str
        The command's name, used in error messages (default: the schema's ``WHAT``).
    rules : dict of str -> Rule, optional
        The type and range of each setting (dotted names for nested ones); default: the schema's.

    Returns
    -------
    Settings or dict
        An instance of ``schema``; a dict for a dict schema or none.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid YAML or not a mapping, an override is malformed, or a setting is
        unknown or breaks its rule.
    """
    loaded = _read_yaml(path) if path is not None else {}
    config = copy.deepcopy(loaded)
    apply_overrides(config, overrides)
    if schema is None:
        return check_settings(config, rules, what)
    return load_settings(schema, config, what or None, rules=rules, source=os.fspath(path) if path is not None else "",
                         from_file=list(loaded))


def format_config(config: dict) -> str:
    """A config as YAML text, in the order of its keys, one top-level setting a line (lists and
    mappings of plain values inline): what ``--print-config`` prints.

    Examples
    --------
    >>> print(format_config({"steps": 10, "terms": ["bonds", "angles"], "model": {"width": 8}}))
    steps: 10
    terms: [bonds, angles]
    model: {width: 8}
    """
    yaml = _yaml()
    lines = []
    for key, value in config.items():
        style = None if isinstance(value, (dict, list, tuple)) else False
        lines.append(yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=style).rstrip("\n"))
    return "\n".join(lines)


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


def config_path(output, folder: bool = False) -> str:
    """Where the effective settings of a run go: ``<output>.config.yaml`` beside an output file,
    ``config.yaml`` inside an output folder (``folder=True``)."""
    output = os.fspath(output)
    return os.path.join(output, "config.yaml") if folder else output + ".config.yaml"


def save_config(config, path, command: str) -> str:
    """Write the effective settings of a run (a :class:`Settings` or a dict) as YAML, atomically,
    under a comment naming the command; ``cgml COMMAND PATH`` reads it as its config.  Returns
    ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = save_config({"steps": 10, "seed": 3}, os.path.join(tempfile.mkdtemp(), "run.h5.config.yaml"), "simulate")
    >>> print(open(path).read().splitlines()[-1])
    seed: 3
    """
    from . import __version__
    from ._atomic import atomic_write

    settings = config.to_dict() if isinstance(config, Settings) else config
    text = (f"# The effective settings of a `cgml {command}` run (openmm-cgml {__version__}); `cgml {command}`\n"
            "# reads this file as its config (relative paths are from the folder the run started in).\n"
            + format_config(settings) + "\n")
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return os.fspath(path)


def config_command(name: str, module: str, config_class: Optional[str] = None, *, load: Optional[Callable] = None,
                   run: Optional[Callable] = None) -> Callable:
    """What a config-driven ``cgml`` subcommand runs: read the config, print it with
    ``--print-config``, else run it (``cgml`` runs it through :func:`run_command`).

    Parameters
    ----------
    name : str
        The subcommand (``"simulate"``).
    module : str
        The library module of its settings (``"openmmcgml.configs.simulate"``), imported when the
        command runs; it defines ``config_class`` and ``run_config(config, *, quiet, print_fn)``.
    config_class : str, optional
        The :class:`Settings` dataclass in ``module`` (unless ``load`` is given).
    load : callable, optional
        ``load(args, module)`` -> the settings, instead of :func:`load_config` of ``args.config``
        with ``args.overrides``.
    run : callable, optional
        ``run(config, args, module)`` instead of ``module.run_config(config, quiet=args.quiet)``.

    Returns
    -------
    callable
        ``func(args)`` -> exit status, for ``parser.set_defaults(func=...)``.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_config_arguments(parser)
    >>> command = config_command("oracle", "openmmcgml.configs.oracle", "OracleConfig")
    >>> command(parser.parse_args(["--set", "system=chignolin", "--set", "output=cln.h5", "--print-config"]))
    ... # doctest: +ELLIPSIS
    system: chignolin
    ...
    0
    """

    def body(args):
        import importlib

        settings = importlib.import_module(module)
        if load is not None:
            config = load(args, settings)
        else:
            config = load_config(args.config, args.overrides, getattr(settings, config_class), name)
        if getattr(args, "print_config", False):
            print(format_config(config.to_dict() if isinstance(config, Settings) else config))
            return 0
        if run is not None:
            return run(config, args, settings)
        settings.run_config(config, quiet=bool(getattr(args, "quiet", False)))
        return 0

    return body


def debug_requested(args=None) -> bool:
    """Whether errors should show their traceback: ``cgml --debug`` or the environment variable
    ``CGML_DEBUG`` set to anything but empty or 0."""
    if getattr(args, "debug", False):
        return True
    return os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


def _one_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, without terminal colour codes."""
    import re

    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        message = error.args[0]  # str(KeyError) adds quotes
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def run_command(name: str, function: Callable, args) -> int:
    """Call ``function(args)`` and turn what goes wrong into one line on stderr.

    A bad setting or file (:data:`USER_ERRORS`) ends with ``cgml NAME: error: MESSAGE`` and exit
    status 2; any other exception (a bug, a crash inside OpenMM or PyTorch) with its type and
    message on one line and exit status 1; Ctrl-C with exit status 130.  Warnings print as one
    line each (``cgml NAME: warning: ...``).  With ``cgml --debug`` or ``CGML_DEBUG=1`` nothing is
    caught: errors show their full traceback and warnings print as Python prints them.
    """
    if debug_requested(args):
        status = function(args)
        return 0 if status is None else int(status)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"cgml {name}: warning: {_one_line(message if isinstance(message, Warning) else Warning(message))}",
              file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            status = function(args)
        except USER_ERRORS as error:
            print(f"cgml {name}: error: {_one_line(error)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"cgml {name}: interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            print(f"cgml {name}: error: {type(error).__name__}: {_one_line(error)} (cgml --debug {name} ... or "
                  f"{DEBUG_VARIABLE}=1 shows the traceback)", file=sys.stderr)
            return 1
    return 0 if status is None else int(status)
