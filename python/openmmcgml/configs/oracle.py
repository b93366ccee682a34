"""Settings and run of ``cgml oracle``: all-atom OpenMM runs that save coordinates and forces.

The settings are :class:`openmmcgml.data.OracleConfig` (its fields, ``RULES`` and
``validate``); :func:`run_config` runs them and writes the effective settings next to the output.
"""

from __future__ import annotations

import os

from .._config import apply_overrides, config_path, save_config
from ..data.oracle import OracleConfig

__all__ = ["DEFAULTS", "RULES", "OracleConfig", "from_checkpoint", "run_config"]

#: Every setting with its default (examples/configs/oracle-alanine.yaml).
DEFAULTS = OracleConfig.defaults()

#: The type and range of each setting (see openmmcgml._config); OracleConfig.validate checks how
#: they fit together.
RULES = OracleConfig.rules()


def from_checkpoint(checkpoint, overrides=()) -> OracleConfig:
    """The settings stored in an oracle checkpoint, with ``KEY=VALUE`` overrides (what may change
    between sittings: ``platform``, ``threads``, ``flush_every``, moved ``output``/``cg_output``,
    more ``n_runs``; see :func:`~openmmcgml.data.resume_oracle`)."""
    from ..data import read_checkpoint

    stored = apply_overrides(read_checkpoint(checkpoint).info["config"], overrides)
    stored["checkpoint"] = os.fspath(checkpoint)
    return OracleConfig.from_dict(stored)


def run_config(config, *, quiet: bool = False, print_fn=print, resume: bool = True, overwrite: bool = False):
    """Run (or continue) the oracle as ``config`` (a dict or :class:`OracleConfig`) describes;
    returns the :class:`~openmmcgml.data.OracleResult`.

    ``quiet``: no progress bar. ``resume`` and ``overwrite``: see :func:`~openmmcgml.data.run_oracle`.
    The resolved settings go to ``<output>.config.yaml`` (the all-atom file's, else the CG file's).
    """
    from ..data.oracle import run_oracle

    config = OracleConfig.from_dict(config)
    result = run_oracle(config, resume=resume, overwrite=overwrite, progress=not quiet)
    save_config(config.resolved(), config_path(config.output or config.cg_output), "oracle")
    print_fn(result.summary())
    return result
