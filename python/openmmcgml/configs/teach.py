"""Settings and run of ``cgml teach``: discriminator-guided bias rounds on a trained CG model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

from .._config import (Rule, Settings, boolean, config_path, file_or_files, integer, mapping, number, number_list,
                       one_of, openmm_platform, save_config, text)

__all__ = ["DEFAULTS", "FEATURE_KINDS", "RULES", "TeachConfig", "chain_features", "run_config"]

#: The feature families ``features`` may list.
FEATURE_KINDS = ("distances", "angles", "dihedrals")


def chain_features(model, kinds) -> "object":
    """:class:`~openmmcgml.models.BiasFeatures` of a chain model: every pair distance, every
    angle and every dihedral along the chain of the priors' bonds, as ``kinds`` lists."""
    import itertools

    from ..models import BiasFeatures
    from ..priors import chain_internal_coordinates

    unknown = sorted(set(kinds) - set(FEATURE_KINDS))
    if unknown or not kinds:
        raise ValueError(f"features must list some of {FEATURE_KINDS} (got {list(kinds)})")
    n = model.n_beads
    _, angles, dihedrals = chain_internal_coordinates(n, model.priors.bonds)
    return BiasFeatures(list(itertools.combinations(range(n), 2)) if "distances" in kinds else None,
                        angles if "angles" in kinds else None, dihedrals if "dihedrals" in kinds else None)


def _feature_kinds(value):
    if not isinstance(value, (list, tuple)) or not value or any(v not in FEATURE_KINDS for v in value):
        raise TypeError("not a list of feature kinds")
    return list(value)


@dataclass
class TeachConfig(Settings):
    """Settings of ``cgml teach`` (examples/configs/teach-alanine.yaml).

    Attributes
    ----------
    model : str
        The CGModel to correct (its bias, if it has one, is the starting bias).
    reference : str or list of str
        CG-mapped all-atom reference file(s) (runs in time order).
    output : str
        The CGModel with the taught bias.
    checkpoint_dir : str, optional
        A biased model per round and the table ``rounds.json``; a rerun resumes after the last
        finished round.  Default ``<output without .pt>-rounds``.
    features : list of str
        Of ``distances`` (every pair), ``angles``, ``dihedrals`` (along the chain).
    hidden : list of int
        Hidden widths of each round's network.
    activation : {"ssp", "tanh", "silu"}
    clamp : float
        Smooth clamp of each round's logit (kT); 0: none.
    rounds, replicas, steps, report_interval : int
        At most ``rounds`` rounds; each samples ``replicas`` replicas for ``steps`` steps.
    discard : float
        Fraction of each replica's frames dropped as equilibration.
    timestep, friction : float
    platform : str
    training : mapping
        Settings of the discriminator's fit (openmmcgml.teacher.DiscriminatorTraining).
    seed : int
    progress : bool
    """

    WHAT = "teach"
    RULES = {
        "model": text(), "reference": file_or_files(), "output": text(optional=False), "checkpoint_dir": text(),
        "features": Rule(f"a non-empty list of {', '.join(FEATURE_KINDS)}", lambda v: _feature_kinds(v)),
        "hidden": number_list(1, integers=True),
        "activation": one_of("ssp", "tanh", "silu"), "clamp": number(0), "rounds": integer(1), "replicas": integer(1),
        "steps": integer(1), "report_interval": integer(1), "discard": number(0, below=1), "timestep": number(above=0),
        "friction": number(0), "platform": openmm_platform(), "training": mapping(), "seed": integer(),
        "progress": boolean(),
    }

    model: Optional[str] = None
    reference: Optional[Union[str, list]] = None
    output: str = "taught.pt"
    checkpoint_dir: Optional[str] = None
    features: list = field(default_factory=lambda: ["distances", "angles", "dihedrals"])
    hidden: list = field(default_factory=lambda: [64, 64])
    activation: str = "silu"
    clamp: float = 3.0
    rounds: int = 5
    replicas: int = 50
    steps: int = 20000
    report_interval: int = 50
    discard: float = 0.2
    timestep: float = 0.002
    friction: float = 1.0
    platform: str = "auto"
    training: dict = field(default_factory=dict)
    seed: int = 0
    progress: bool = True


#: Every setting with its default.
DEFAULTS = TeachConfig.defaults()

#: The type and range of each setting (see openmmcgml._config).
RULES = TeachConfig.rules()


def run_config(config, *, quiet: bool = False, print_fn=print):
    """Teach as ``config`` (a dict or :class:`TeachConfig`) describes; returns the Teacher.

    The settings go to ``<output>.config.yaml``; the per-round table to ``checkpoint_dir``.
    """
    from ..analysis.report import read_reference_files
    from ..analysis.tica import as_runs
    from ..cgmodel import CGModel
    from ..models import Discriminator
    from ..teacher import Teacher

    config = TeachConfig.from_dict(config)
    if not config.model:
        raise ValueError("the config needs 'model': the path of a saved CGModel")
    if not config.reference:
        raise ValueError("the config needs 'reference': the CG-mapped all-atom reference file(s)")
    model = CGModel.load(config.model)
    paths = [config.reference] if isinstance(config.reference, str) else list(config.reference)
    reference = as_runs(read_reference_files(paths))
    discriminator = Discriminator(chain_features(model, config.features), hidden=config.hidden,
                                  activation=config.activation, clamp=config.clamp, temperature=model.temperature)
    output = config.output
    checkpoint_dir = config.checkpoint_dir or (output[:-3] if output.endswith(".pt") else output) + "-rounds"
    teacher = Teacher(discriminator, rounds=config.rounds, replicas=config.replicas, steps=config.steps,
                      report_interval=config.report_interval, discard=config.discard, timestep=config.timestep,
                      friction=config.friction, platform=None if config.platform == "auto" else config.platform,
                      training=config.training, checkpoint_dir=checkpoint_dir, seed=config.seed)
    print_fn(f"teaching {config.model} against {len(reference)} reference run(s): {discriminator.n_features} features, "
             f"at most {config.rounds} rounds of {config.replicas} replicas x {config.steps} steps; "
             f"rounds in {checkpoint_dir}")

    def report(record):
        verdict = "indistinguishable" if record["indistinguishable"] else f"bias now {record['members']} network(s)"
        worst = max(record["feature_js"])
        print_fn(f"  round {record['round']}: held-out accuracy {record['accuracy']:.3f} +- "
                 f"{record['accuracy_error']:.3f}, largest feature JS {worst:.3f}; {verdict}")

    teacher.fit(model, reference, callbacks=[report])
    taught = teacher.fetch_model()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    taught.save(output)
    save_config(config, config_path(output), "teach")
    print_fn(f"taught model -> {output}")
    return teacher

