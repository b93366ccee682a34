"""YAML configuration of the ``cgml`` subcommands: loading, defaults, ``--set`` overrides, and the
options and error handling every config-driven command shares.

A config is a YAML mapping of settings. Overrides are ``KEY=VALUE`` strings whose value is read as
YAML (``n_steps=50`` is an int, ``forcefield=[a.xml, b.xml]`` a list, ``seed=null`` or ``seed=``
None); a dotted key sets a nested setting (``training.max_epochs=20``). A dotted key below a
setting that holds a string turns it into a mapping with that string as its ``kind``
(``mapping: ca`` plus ``mapping.bead_types=position`` gives ``{kind: ca, bead_types: position}``).

Each command declares, next to its ``DEFAULTS``, a ``RULES`` dict giving every setting's type and
range (:func:`integer`, :func:`number`, :func:`one_of`, :func:`openmm_platform`, ...; dotted names
for nested settings).  :func:`load_config`, :func:`merge_section` and the commands' ``run_config``
check them with :func:`check_settings`, so a bad value is refused, naming the setting, before any
work starts.  :func:`run_command` turns errors into one line on stderr (``cgml --debug`` or
``CGML_DEBUG=1``: the traceback).

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
import math
import os
import sys
import warnings
from typing import Callable, Optional, Sequence

__all__ = ["Rule", "add_config_arguments", "apply_overrides", "boolean", "check_settings", "debug_requested",
           "format_config", "integer", "load_config", "mapping", "merge_section", "number", "number_list",
           "one_of", "openmm_platform", "run_command", "text", "torch_device"]

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

    Each command declares its rules once, next to its defaults, as a dict from the (dotted) setting
    name to a Rule; :func:`check_settings` applies them (``load_config``, ``merge_section`` and each
    command's ``run_config`` call it).

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
                what: str = "", rules: Optional[dict] = None) -> dict:
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
    rules : dict of str -> Rule, optional
        The type and range of each setting (dotted names for nested ones), checked with
        :func:`check_settings` after the overrides.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid YAML or not a mapping, an override is malformed, or a setting is
        unknown or breaks its rule.
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
    return check_settings(config, rules, what)


def merge_section(config: dict, name: str, defaults: dict, rules: Optional[dict] = None, what: str = "") -> dict:
    """The nested mapping ``config[name]`` over its ``defaults``; unknown keys are errors, and the
    ``rules`` named ``name.KEY`` are checked (see :func:`check_settings`).

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
    return check_settings({**copy.deepcopy(defaults), **given}, rules, what, prefix=name)


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
