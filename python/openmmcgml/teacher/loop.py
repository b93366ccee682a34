"""The teacher loop: simulate the CG model with its current bias, train a discriminator between
reference and CG frames, add its logit to the bias, repeat until the two are indistinguishable.

Each round adds a new member to the bias's ensemble (rather than refitting one network): the
round's CG frames come from the model with the bias so far, so the new member, trained alone to
tell them from the reference, has a logit that estimates ``log(p_ref / p_cg_current)``, the part
of the correction still missing; adding it moves the current CG distribution to the reference
one.  The members therefore add (they are not averaged), earlier members are never retrained, and
every round's bias is kept in the checkpoint.

Examples
--------
>>> teacher = Teacher(discriminator, rounds=3, replicas=20, steps=5000)       # doctest: +SKIP
>>> teacher.fit(cg_model, reference_runs).fetch_model().save("taught.pt")      # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

from .._atomic import atomic_write
from ..estimator import Estimator, FitRun
from .training import DiscriminatorTraining, _runs

__all__ = ["Teacher"]

#: The per-round table's file in ``checkpoint_dir``.
ROUNDS_NAME = "rounds.json"


class Teacher(Estimator):
    """Corrects a CG model's equilibrium with discriminator-guided bias rounds.

    Parameters
    ----------
    discriminator : Discriminator
        The features and the first network's architecture; later rounds add members of the
        same hidden widths, activation and clamp.
    rounds : int
        At most this many rounds (a round that finds the CG frames indistinguishable from the
        reference ends the loop without adding a member).
    replicas, steps, report_interval : int
        CG sampling of each round: ``replicas`` replicas in one Context, ``steps`` steps each,
        a frame every ``report_interval`` steps.
    discard : float
        Fraction of each replica's frames dropped as equilibration.
    timestep, friction : float
        Langevin settings (ps, 1/ps).
    platform : str, optional
        OpenMM platform of the CG runs (default: the simulation's choice).
    training : dict, optional
        Settings of :class:`~openmmcgml.teacher.DiscriminatorTraining` (``max_epochs``, ``lr``...).
    checkpoint_dir : str, optional
        After every round the biased model (``round-K.pt``) and the table (``rounds.json``) are
        written here, and a new :meth:`fit` resumes after the last finished round.
    seed : int
    """

    description = "teacher"

    def __init__(self, discriminator, rounds: int = 5, replicas: int = 50, steps: int = 20000, report_interval: int = 50,
                 discard: float = 0.2, timestep: float = 0.002, friction: float = 1.0, platform: Optional[str] = None,
                 training: Optional[dict] = None, checkpoint_dir: Optional[str] = None, seed: int = 0):
        from ..models.discriminator import Discriminator

        if not isinstance(discriminator, Discriminator):
            raise TypeError(f"discriminator must be a Discriminator (got {type(discriminator).__name__})")
        for name, value in (("rounds", rounds), ("replicas", replicas), ("steps", steps),
                            ("report_interval", report_interval)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        if not 0.0 <= discard < 1.0:
            raise ValueError(f"discard must lie in [0, 1) (got {discard})")
        if steps // report_interval < 2:
            raise ValueError("steps / report_interval must give at least two frames per replica")
        self.discriminator = discriminator
        self.rounds, self.replicas, self.steps = int(rounds), int(replicas), int(steps)
        self.report_interval, self.discard = int(report_interval), float(discard)
        self.timestep, self.friction, self.platform = float(timestep), float(friction), platform
        self.training = dict(training or {})
        self.checkpoint_dir = checkpoint_dir
        self.seed = int(seed)

    # ------------------------------------------------------------------ pieces

    def sample(self, model, reference_runs, seed: int) -> list:
        """CG frames of ``model`` (with its bias): one array (n_frames, n_beads, 3) per replica,
        started from reference frames spread over the runs, equilibration dropped."""
        from ..simulation import CGSimulation
        from ..simulation.runner import ArrayReporter

        rng = np.random.default_rng(seed)
        pool = np.concatenate(reference_runs)
        starts = pool[rng.choice(len(pool), self.replicas, replace=len(pool) < self.replicas)]
        sim = CGSimulation(model, self.replicas, timestep=self.timestep, friction=self.friction,
                           platform=self.platform, seed=seed + 1)
        sim.set_positions(starts)
        reporter = ArrayReporter(self.report_interval, self.replicas, model.n_beads)
        sim.run(self.steps, reporters=[reporter])
        frames = reporter.coordinates  # (n_reports, replicas, beads, 3)
        keep = frames[int(len(frames) * self.discard):]
        return [keep[:, r] for r in range(self.replicas)]

    def _next_discriminator(self, bias):
        if bias is None:
            return copy.deepcopy(self.discriminator), True
        first = self.discriminator.networks[0]
        member = bias.copy()
        member.add_network(first.hidden, first.activation, first.clamp)
        return member, False

    # ------------------------------------------------------------------ the loop

    def fit(self, model, reference, *, callbacks: Sequence = ()) -> "Teacher":
        """Run the rounds on a CGModel (its own bias, if any, is the starting bias).

        Parameters
        ----------
        model : CGModel
        reference : array (n_frames, n_beads, 3) or list of such arrays
            CG-mapped all-atom reference frames, one array per run in time order.
        callbacks : sequence
            Callables or :class:`~openmmcgml.estimator.Callback` objects, called after every
            round with its record (``epoch`` is the round).
        """
        callbacks = self._prepare_callbacks(callbacks)
        reference = _runs(reference, "reference")
        if reference[0].shape[1] != model.n_beads:
            raise ValueError(f"the reference has {reference[0].shape[1]} beads, the model {model.n_beads}")
        bias, history = model.bias, []
        if self.checkpoint_dir:
            bias, history = self._resume(model, bias)
        run = FitRun(max_epochs=self.rounds, history=history)
        self._notify(callbacks, "on_fit_start", run)
        try:
            while len(run.history) < self.rounds and not (run.history and run.history[-1]["indistinguishable"]):
                k = len(run.history) + 1
                start = time.perf_counter()
                current = dataclasses.replace(model, bias=bias)
                samples = self.sample(current, reference, self.seed + 1000 * k)
                candidate, standardize = self._next_discriminator(bias)
                trainer = DiscriminatorTraining(candidate, standardize=standardize, seed=self.seed + k,
                                                **self.training).fit(reference, samples)
                record = {"epoch": k, "round": k, "accuracy": trainer.validation_accuracy_,
                          "accuracy_error": trainer.validation_accuracy_error_,
                          "indistinguishable": bool(trainer.indistinguishable_),
                          "feature_js": _feature_js(candidate, reference, samples),
                          "members": 0 if bias is None else len(bias.networks),
                          "train_loss": trainer.history_[trainer.best_epoch_ - 1]["train_loss"],
                          "val_loss": trainer.history_[trainer.best_epoch_ - 1]["val_loss"], "lr": 0.0,
                          "time": time.perf_counter() - start}
                if not trainer.indistinguishable_:
                    bias = trainer.fetch_model()  # the new member joins the bias
                    record["members"] = len(bias.networks)
                run.history.append(record)
                if self.checkpoint_dir:
                    self._save_round(model, bias, run.history)
                self._notify(callbacks, "on_epoch_end", run)
            run.completed = True
        finally:
            self._notify(callbacks, "on_fit_end", run)
        self.history_ = run.history
        self.model_ = dataclasses.replace(model, bias=bias)
        return self

    def fetch_model(self):
        """The CGModel with the taught bias."""
        if not hasattr(self, "model_"):
            raise RuntimeError("call fit() first")
        return self.model_

    # ------------------------------------------------------------------ checkpoints

    def _save_round(self, model, bias, history):
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        k = len(history)
        dataclasses.replace(model, bias=bias).save(os.path.join(self.checkpoint_dir, f"round-{k}.pt"))
        with atomic_write(os.path.join(self.checkpoint_dir, ROUNDS_NAME), "w") as handle:
            json.dump(history, handle, indent=1)

    def _resume(self, model, bias):
        from ..cgmodel import CGModel

        table = os.path.join(self.checkpoint_dir or "", ROUNDS_NAME)
        if not os.path.exists(table):
            return bias, []
        with open(table) as handle:
            history = json.load(handle)
        if not history:
            return bias, []
        saved = CGModel.load(os.path.join(self.checkpoint_dir, f"round-{len(history)}.pt"))
        saved.check_beads(bead_names=model.bead_names, bead_types=model.bead_types, n_beads=model.n_beads,
                          source=f"the checkpoint in {self.checkpoint_dir}")
        return saved.bias, history


def _feature_js(discriminator, reference, samples, bins: int = 50) -> list:
    """JS distance of every feature's histogram between reference and CG frames."""
    import torch

    from ..analysis.distributions import histogram_js

    with torch.no_grad():
        ref = discriminator.features(torch.as_tensor(np.concatenate(reference))).numpy()
        cg = discriminator.features(torch.as_tensor(np.concatenate(samples))).numpy()
    return [float(histogram_js(ref[:, f], cg[:, f], bins=bins)) for f in range(ref.shape[1])]
