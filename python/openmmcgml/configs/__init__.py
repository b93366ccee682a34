"""The settings of the ``cgml`` commands, one module per command, shared by the command line
(:mod:`openmmcgml.commands`) and the library (:mod:`openmmcgml.workflow`).

Each module defines

* a :class:`~openmmcgml._config.Settings` dataclass (``MapConfig``, ``SimulateConfig``, ...):
  the command's settings with their defaults as fields, nested sections as nested dataclasses,
  and ``RULES``, the type and range of each setting; ``from_dict`` reads one from a dict (parsed
  YAML) with the package's one loader, :func:`openmmcgml._config.load_settings`, which refuses
  unknown settings and applies the rules;
* ``DEFAULTS`` and ``RULES``: the same as a plain dict and as rules by (dotted) name;
* ``run_config(config, *, quiet=False, print_fn=print)``: what the command does, from a dict or
  the dataclass (``quiet``: no progress bars or listings), writing the effective settings next
  to the output (``<output>.config.yaml``, or ``config.yaml`` in an output folder).

:class:`openmmcgml.data.OracleConfig` (the oracle's settings, which :func:`~openmmcgml.data.run_oracle`
takes) lives with the oracle; :mod:`.oracle` runs it.  The demo's settings are in
:mod:`openmmcgml.workflow`.  Nothing here imports the command line.
"""

#: The config-driven commands with a module here (module name: the command with ``_`` for ``-``).
COMMANDS = ("oracle", "map", "fit_priors", "train", "simulate", "evaluate")
