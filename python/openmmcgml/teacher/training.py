"""Training the teacher's discriminator: reference frames (label 1) against CG frames (label 0).

With balanced classes, the logit of the best classifier is ``log(p_ref / p_cg)`` of its features,
the bias that moves the CG distribution to the reference one (:mod:`openmmcgml.models.discriminator`).
Balanced here means weighted: each class carries half the loss whatever its number of frames,
so no frame is thrown away.

Frames of one run are correlated, so held-out data are whole contiguous blocks of runs, never
random frames (a random split would score a memorising classifier as a good one); the error of
the held-out accuracy comes from the scatter of the blocks' accuracies, so it counts independent
blocks, not correlated frames.

Examples
--------
>>> import numpy as np
>>> from openmmcgml.models import BiasFeatures, Discriminator
>>> rng = np.random.default_rng(0)
>>> def pairs(mean, n):  # two beads at a distance drawn around `mean`
...     r = rng.normal(mean, 0.03, n)[:, None]
...     direction = rng.normal(size=(n, 3))
...     return np.stack([np.zeros((n, 3)), r * direction / np.linalg.norm(direction, axis=1, keepdims=True)], 1)
>>> trainer = DiscriminatorTraining(Discriminator(BiasFeatures(distances=[[0, 1]]), hidden=[16]), max_epochs=5)
>>> trainer = trainer.fit([pairs(0.50, 2000) for _ in range(2)], [pairs(0.56, 2000) for _ in range(2)])
>>> trainer.validation_accuracy_ > 0.75
True
"""

from __future__ import annotations

import copy
import math
import time
from typing import Optional, Sequence

import numpy as np

from ..estimator import Estimator, FitRun

__all__ = ["DiscriminatorTraining", "held_out_blocks"]


def _runs(data, name: str) -> list:
    """A list of float64 arrays (n_frames, n_beads, 3), one per run."""
    if isinstance(data, np.ndarray) or hasattr(data, "shape"):
        data = [data]
    runs = [np.asarray(run, dtype=np.float64) for run in data]
    if not runs:
        raise ValueError(f"{name} holds no runs")
    for k, run in enumerate(runs):
        if run.ndim != 3 or run.shape[-1] != 3:
            raise ValueError(f"{name} run {k} must have shape (n_frames, n_beads, 3) (got {run.shape})")
        if not np.all(np.isfinite(run)):
            raise ValueError(f"{name} run {k} contains NaN or infinite coordinates")
    if len({run.shape[1] for run in runs}) != 1:
        raise ValueError(f"the runs of {name} have different numbers of beads")
    return runs


def held_out_blocks(lengths: Sequence[int], blocks_per_run: int, validation_fraction: float) -> list:
    """Split runs into contiguous blocks and choose held-out ones spread over the runs.

    Parameters
    ----------
    lengths : sequence of int
        Frames of each run.
    blocks_per_run : int
        Blocks of (nearly) equal length per run.
    validation_fraction : float
        Share of the blocks held out (at least one block, at most all but one).

    Returns
    -------
    list of (run, start, stop, held_out)
        Every block in order.

    Examples
    --------
    >>> [b for b in held_out_blocks([10, 10], 2, 0.5) if b[3]]
    [(0, 5, 10, True), (1, 5, 10, True)]
    """
    if not (0.0 < validation_fraction < 1.0):
        raise ValueError(f"validation_fraction must lie in (0, 1) (got {validation_fraction})")
    blocks = []
    for run, length in enumerate(lengths):
        edges = np.linspace(0, length, blocks_per_run + 1).round().astype(int)
        blocks += [(run, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    if len(blocks) < 2:
        raise ValueError("a held-out split needs at least two blocks: give more runs or more blocks per run")
    n_held = min(len(blocks) - 1, max(1, int(round(validation_fraction * len(blocks)))))
    # evenly spread over the blocks, counted from the end so that the last block of the last run
    # (the end of the longest-sampled state) is held out
    chosen = {len(blocks) - 1 - int(i * len(blocks) / n_held) for i in range(n_held)}
    return [(run, a, b, k in chosen) for k, (run, a, b) in enumerate(blocks)]


class DiscriminatorTraining(Estimator):
    """Fits a :class:`~openmmcgml.models.Discriminator` to tell reference from CG frames.

    Parameters
    ----------
    discriminator : Discriminator
        Its features and architecture; :meth:`fit` trains a copy.  Only the last network of an
        ensemble is trained, and it alone is the classifier: earlier members are carried along
        unchanged.  In the teacher loop the CG frames of a round already come from the model
        biased by the earlier members, so the new member's logit estimates the log ratio that
        remains, and adds to theirs.
    lr, weight_decay : float
        Adam's learning rate and weight decay.
    batch_size, max_epochs : int
    patience : int or None
        Stop after this many epochs without a lower held-out loss; the best epoch's weights are kept.
    blocks_per_run : int
        Contiguous blocks per run of each class (see :func:`held_out_blocks`).
    validation_fraction : float
        Share of each class's blocks held out.
    standardize : bool
        Set the discriminator's standardisation from the training frames of both classes first
        (leave False when adding a member to an ensemble whose standardisation is fixed).
    seed : int
    num_threads : int, optional
        torch CPU threads during the fit.

    Attributes (after :meth:`fit`)
    ------------------------------
    validation_accuracy_ : float
        Balanced held-out accuracy: the mean of the two classes' accuracies.
    validation_accuracy_error_ : float
        Its standard error, from the scatter of the held-out blocks' accuracies.
    indistinguishable_ : bool
        Whether the accuracy is within 2 standard errors of 0.5.
    history_ : list of dict
        Per epoch: ``train_loss``, ``val_loss`` (balanced cross-entropies), ``val_accuracy``.
    """

    description = "discriminator"

    def __init__(self, discriminator, lr: float = 1e-3, batch_size: int = 256, max_epochs: int = 30,
                 patience: Optional[int] = 5, blocks_per_run: int = 4, validation_fraction: float = 0.25,
                 weight_decay: float = 0.0, standardize: bool = True, seed: int = 0,
                 num_threads: Optional[int] = None):
        from ..models.discriminator import Discriminator

        if not isinstance(discriminator, Discriminator):
            raise TypeError(f"discriminator must be a Discriminator (got {type(discriminator).__name__})")
        for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs), ("blocks_per_run", blocks_per_run)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        if patience is not None and (int(patience) != patience or patience < 1):
            raise ValueError(f"patience must be a positive integer or None (got {patience!r})")
        if not (lr > 0):
            raise ValueError(f"lr must be positive (got {lr})")
        self.discriminator = discriminator
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size, self.max_epochs = int(batch_size), int(max_epochs)
        self.patience = None if patience is None else int(patience)
        self.blocks_per_run, self.validation_fraction = int(blocks_per_run), float(validation_fraction)
        self.standardize, self.seed, self.num_threads = bool(standardize), int(seed), num_threads

    def _split(self, runs):
        """(training frames, held-out blocks as a list of frame arrays) of one class."""
        blocks = held_out_blocks([len(r) for r in runs], self.blocks_per_run, self.validation_fraction)
        train = [runs[run][a:b] for run, a, b, held in blocks if not held]
        held_out = [runs[run][a:b] for run, a, b, held in blocks if held]
        return np.concatenate(train), held_out

    def fit(self, reference, samples, *, callbacks: Sequence = ()) -> "DiscriminatorTraining":
        """Train on ``reference`` frames (label 1) and CG ``samples`` (label 0).

        Parameters
        ----------
        reference, samples : array (n_frames, n_beads, 3) or list of such arrays
            One array per run, frames in time order (nm).
        callbacks : sequence
            :class:`~openmmcgml.estimator.Callback` objects or callables of each epoch's record.
        """
        import torch

        callbacks = self._prepare_callbacks(callbacks)
        reference, samples = _runs(reference, "reference"), _runs(samples, "samples")
        if reference[0].shape[1] != samples[0].shape[1]:
            raise ValueError(f"the reference has {reference[0].shape[1]} beads, the samples {samples[0].shape[1]}")
        model = copy.deepcopy(self.discriminator)
        ref_train, ref_held = self._split(reference)
        cg_train, cg_held = self._split(samples)
        if self.standardize:
            model.standardize(np.concatenate([ref_train, cg_train]))
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            self._train(model, ref_train, cg_train, ref_held, cg_held, callbacks)
        finally:
            torch.set_num_threads(threads)
        return self

    def _train(self, model, ref_train, cg_train, ref_held, cg_held, callbacks):
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        network = model.networks[-1]
        with torch.no_grad():  # a fresh start for the member being trained
            for layer in network.layers:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in network.parameters():
            parameter.requires_grad_(True)
        dtype = next(network.parameters()).dtype

        def standardized(frames):
            with torch.no_grad():
                s = model.features(torch.as_tensor(frames, dtype=torch.float64))
                return ((s - model.mean) / model.std).to(dtype)

        z = torch.cat([standardized(ref_train), standardized(cg_train)])
        labels = torch.cat([torch.ones(len(ref_train), dtype=dtype), torch.zeros(len(cg_train), dtype=dtype)])
        # each class carries half the loss: the optimum logit is then log(p_ref / p_cg)
        weights = torch.cat([torch.full((len(ref_train),), 0.5 / len(ref_train), dtype=dtype),
                             torch.full((len(cg_train),), 0.5 / len(cg_train), dtype=dtype)])
        held = [(standardized(block), 1.0) for block in ref_held] + [(standardized(block), 0.0) for block in cg_held]
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        run = FitRun(max_epochs=self.max_epochs)
        self._notify(callbacks, "on_fit_start", run)
        best_state = copy.deepcopy(network.state_dict())
        try:
            for epoch in range(1, self.max_epochs + 1):
                start = time.perf_counter()
                order = torch.randperm(len(z), generator=generator)
                total = 0.0
                for first in range(0, len(z), self.batch_size):
                    batch = order[first:first + self.batch_size]
                    logits = network(z[batch])
                    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[batch], reduction="none")
                    # the batch's share of the balanced loss, scaled to the whole set's
                    loss = (losses * weights[batch]).sum() * len(z) / len(batch)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(batch) / len(z)
                val_loss, accuracy, error = self._held_out_scores(network, held)
                run.history.append({"epoch": epoch, "train_loss": total, "val_loss": val_loss, "val_accuracy": accuracy,
                                    "val_accuracy_error": error, "lr": self.lr, "time": time.perf_counter() - start})
                if val_loss < run.best_loss:
                    run.best_loss, run.best_epoch, run.bad_epochs = val_loss, epoch, 0
                    best_state = copy.deepcopy(network.state_dict())
                else:
                    run.bad_epochs += 1
                self._notify(callbacks, "on_epoch_end", run)
                if self.patience is not None and run.bad_epochs >= self.patience:
                    run.stopped_early = True
                    break
            run.completed = True
        finally:
            self._notify(callbacks, "on_fit_end", run)
        network.load_state_dict(best_state)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        best = run.history[run.best_epoch - 1]
        self.validation_accuracy_ = best["val_accuracy"]
        self.validation_accuracy_error_ = best["val_accuracy_error"]
        self.indistinguishable_ = abs(self.validation_accuracy_ - 0.5) <= 2.0 * self.validation_accuracy_error_
        self.history_ = run.history
        self.best_epoch_ = run.best_epoch
        self.model_ = model

    @staticmethod
    def _held_out_scores(network, held):
        """Balanced cross-entropy, balanced accuracy and its block standard error on held-out blocks."""
        import torch

        losses = {1.0: [], 0.0: []}
        correct = {1.0: [], 0.0: []}
        with torch.no_grad():
            for z, label in held:
                logits = network(z)
                target = torch.full_like(logits, label)
                losses[label].append(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")))
                hits = ((logits > 0) == (label == 1.0)).double()
                correct[label].append((float(hits.sum()), len(hits)))
        loss = 0.5 * sum(losses[1.0]) / sum(n for _, n in correct[1.0]) + \
            0.5 * sum(losses[0.0]) / sum(n for _, n in correct[0.0])
        accuracy, variance = 0.0, 0.0
        for label in (1.0, 0.0):
            hits = np.array([h for h, _ in correct[label]])
            sizes = np.array([n for _, n in correct[label]], dtype=float)
            fraction = hits.sum() / sizes.sum()
            accuracy += 0.5 * fraction
            b = len(sizes)
            # ratio-estimator variance of the pooled fraction from the blocks' deviations; one
            # block gives no scatter, so its binomial variance stands in (an underestimate)
            if b >= 2:
                part = ((hits - sizes * fraction) ** 2).sum() / sizes.sum() ** 2 * b / (b - 1)
            else:
                part = fraction * (1.0 - fraction) / sizes.sum()
            variance += 0.25 * part
        return loss, float(accuracy), float(math.sqrt(variance))

    def fetch_model(self):
        """The trained :class:`~openmmcgml.models.Discriminator` (a copy of the one given, with
        its last network trained)."""
        if not hasattr(self, "model_"):
            raise RuntimeError("call fit() first")
        return self.model_
