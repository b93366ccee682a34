"""The contract of the package's trainers, in the manner of deeptime, and the callbacks they take.

An estimator (force matching today, the discriminator trainer next) is used in three steps:

1. the constructor takes hyperparameters only (network, priors, learning rate, ...);
2. ``fit(data, callbacks=[...])`` trains and returns the estimator itself;
3. ``fetch_model()`` returns the trained model (for force matching a
   :class:`~openmmcgml.cgmodel.CGModel`).

What a long ``fit`` does besides training (saving checkpoints, drawing a progress bar, logging,
stopping from outside) is done by callbacks: objects with the hooks of :class:`Callback`, or plain
callables, called with each epoch's record. They see one :class:`FitRun`, the state of the ``fit``
in progress. :class:`TrainingCheckpoint` saves it after every epoch and hands it back to the next
``fit`` (the estimator says what goes into a checkpoint and what must match to continue from one:
:meth:`Estimator.checkpoint_state`, :meth:`Estimator.check_checkpoint`). :class:`ProgressBar`
draws a tqdm bar.

Examples
--------
A toy estimator that averages numbers, one per "epoch", and follows the contract:

>>> class Mean(Estimator):
...     def __init__(self, epochs):
...         self.epochs = epochs
...     def fit(self, data, *, callbacks=()):
...         callbacks = self._prepare_callbacks(callbacks)
...         run = FitRun(max_epochs=self.epochs)
...         self._notify(callbacks, "on_fit_start", run)
...         for epoch in range(self.epochs):
...             run.history.append({"epoch": epoch + 1, "train_loss": float(sum(data[:epoch + 1])),
...                                 "val_loss": 0.0, "lr": 0.0, "time": 0.0})
...             self._notify(callbacks, "on_epoch_end", run)
...         run.completed = True
...         self._notify(callbacks, "on_fit_end", run)
...         self.mean_ = sum(data) / len(data)
...         return self
...     def fetch_model(self):
...         return self.mean_
>>> seen = []
>>> Mean(3).fit([1.0, 2.0, 6.0], callbacks=[lambda record: seen.append(record["train_loss"])]).fetch_model()
3.0
>>> seen
[1.0, 3.0, 9.0]
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ._atomic import atomic_write

__all__ = ["CHECKPOINT_NAME", "Callback", "Estimator", "FitRun", "LOSS_CSV_NAME", "LOSS_PNG_NAME", "ProgressBar",
           "TrainingCheckpoint", "plot_loss_curve", "write_loss_csv", "write_loss_plot"]

CHECKPOINT_NAME = "checkpoint.pt"
LOSS_CSV_NAME = "loss.csv"
LOSS_PNG_NAME = "loss.png"


@dataclass
class FitRun:
    """The state of one call of ``fit``: what callbacks see, and what a checkpoint continues.

    Estimators keep their own working state (optimiser, data split) in a subclass.

    Attributes
    ----------
    max_epochs : int
        The last epoch ``fit`` runs to.
    fingerprint : str
        A hash of the training data; a checkpoint of other data is not continued.
    history : list of dict
        One record per finished epoch, at least ``epoch`` (1-based), ``train_loss``,
        ``val_loss``, ``lr`` and ``time`` (s); a continued fit starts with the saved epochs.
    best_epoch : int
        Epoch of the lowest validation loss so far (0 before the first).
    best_loss : float
        That loss (inf before the first epoch).
    bad_epochs : int
        Epochs since the best one (early stopping counts them).
    stopped_early : bool
        Whether early stopping ended the fit.
    completed : bool
        Set when ``fit`` ends without an error, before ``on_fit_end``.
    """

    max_epochs: int
    fingerprint: str = ""
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False
    completed: bool = False

    @property
    def epochs_done(self) -> int:
        """Epochs finished, those of a continued checkpoint included."""
        return len(self.history)


class Callback:
    """Hooks an estimator calls during ``fit``; subclasses override the ones they need.

    Every hook receives the estimator and the :class:`FitRun`. Hooks run in the order the
    callbacks were given.
    """

    def restore(self, estimator, run: FitRun) -> Optional[dict]:
        """A saved state for ``fit`` to continue from (a checkpoint), or None.

        Called before training starts; the first callback that returns a state wins.
        """
        return None

    def on_fit_start(self, estimator, run: FitRun) -> None:
        """Training is about to start; ``run.history`` holds the epochs a checkpoint restored."""

    def on_epoch_end(self, estimator, run: FitRun) -> None:
        """An epoch finished; ``run.history[-1]`` is its record."""

    def on_fit_end(self, estimator, run: FitRun) -> None:
        """``fit`` ends, after success (``run.completed``) or an error alike."""


class _EpochFunction(Callback):
    """A plain callable as a callback: called with a copy of each epoch's record."""

    def __init__(self, function: Callable[[dict], None]):
        self.function = function

    def on_epoch_end(self, estimator, run):
        self.function(dict(run.history[-1]))


class Estimator:
    """Base class of the package's trainers (see the module docstring).

    Subclasses implement :meth:`fit` and :meth:`fetch_model`; to be checkpointed, also
    :meth:`checkpoint_state` and :meth:`check_checkpoint`.
    """

    #: The label of progress bars.
    description = "training"

    def fit(self, data, *, callbacks: Sequence = ()) -> "Estimator":
        """Train on ``data``; returns the estimator."""
        raise NotImplementedError

    def fetch_model(self):
        """The trained model."""
        raise NotImplementedError

    def checkpoint_state(self, run: FitRun) -> dict:
        """What :class:`TrainingCheckpoint` saves after an epoch: tensors and plain data only."""
        raise NotImplementedError(f"{type(self).__name__} cannot be checkpointed")

    def check_checkpoint(self, state: dict, run: FitRun, path: str) -> None:
        """Raise ValueError, naming ``path``, if ``fit`` cannot continue from ``state``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be checkpointed")

    @staticmethod
    def _prepare_callbacks(callbacks) -> list:
        """Callbacks as a list of :class:`Callback` objects (callables are wrapped)."""
        if callbacks is None:
            return []
        if isinstance(callbacks, Callback) or callable(callbacks):
            callbacks = [callbacks]
        prepared = []
        for callback in callbacks:
            if isinstance(callback, Callback):
                prepared.append(callback)
            elif callable(callback):
                prepared.append(_EpochFunction(callback))
            else:
                raise TypeError(f"a callback must be a Callback or a callable (got {type(callback).__name__})")
        return prepared

    def _restore(self, callbacks: list, run: FitRun) -> Optional[dict]:
        for callback in callbacks:
            state = callback.restore(self, run)
            if state is not None:
                return state
        return None

    def _notify(self, callbacks: list, hook: str, run: FitRun) -> None:
        for callback in callbacks:
            getattr(callback, hook)(self, run)


class ProgressBar(Callback):
    """A tqdm bar over the epochs, showing the last training and validation loss and the rate.

    Parameters
    ----------
    description : str, optional
        The bar's label; default the estimator's ``description`` (``"force matching"``).
    """

    def __init__(self, description: Optional[str] = None):
        self.description = description
        self._bar = None

    def on_fit_start(self, estimator, run):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=run.max_epochs, initial=run.epochs_done, unit="epoch",
                         desc=self.description or getattr(estimator, "description", type(estimator).__name__))

    def on_epoch_end(self, estimator, run):
        if self._bar is None:
            return
        record = run.history[-1]
        self._bar.update(1)
        self._bar.set_postfix(train=f"{record['train_loss']:.4g}", val=f"{record['val_loss']:.4g}",
                              lr=f"{record['lr']:.2g}")

    def on_fit_end(self, estimator, run):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TrainingCheckpoint(Callback):
    """Save the training state after every epoch, and continue the next ``fit`` from it.

    The folder holds ``checkpoint.pt`` (a ``torch.save`` archive of
    :meth:`Estimator.checkpoint_state`, replaced atomically after every epoch, so a kill leaves
    the previous one), ``loss.csv`` (rewritten every epoch) and ``loss.png`` (at the end). A new
    ``fit`` with a ``TrainingCheckpoint`` on the same folder continues after the last saved epoch;
    the estimator refuses a checkpoint of other data or settings.

    Parameters
    ----------
    directory : str or path-like
        The folder (created).
    resume : bool
        Continue from a checkpoint in the folder if there is one; False starts over and
        overwrites it.
    """

    def __init__(self, directory, resume: bool = True):
        self.directory = os.fspath(directory)
        self.resume = bool(resume)

    @property
    def path(self) -> str:
        """The checkpoint file."""
        return os.path.join(self.directory, CHECKPOINT_NAME)

    def restore(self, estimator, run):
        import torch

        os.makedirs(self.directory, exist_ok=True)
        if not self.resume or not os.path.exists(self.path):
            return None
        try:
            state = torch.load(self.path, map_location=getattr(estimator, "device", "cpu"), weights_only=True)
        except Exception as error:
            raise ValueError(f"checkpoint {self.path} cannot be read ({type(error).__name__}: {error}); delete it or "
                             "pass resume=False to start over") from error
        estimator.check_checkpoint(state, run, self.path)
        return state

    def on_epoch_end(self, estimator, run):
        import torch

        # A kill while saving leaves the previous checkpoint intact.
        with atomic_write(self.path) as handle:
            torch.save(estimator.checkpoint_state(run), handle)
        write_loss_csv(run.history, os.path.join(self.directory, LOSS_CSV_NAME))

    def on_fit_end(self, estimator, run):
        if not run.completed:
            return
        write_loss_csv(run.history, os.path.join(self.directory, LOSS_CSV_NAME))
        write_loss_plot(run.history, os.path.join(self.directory, LOSS_PNG_NAME))


# --------------------------------------------------------------------------------------
# Loss curves
# --------------------------------------------------------------------------------------

def write_loss_csv(history: Sequence[dict], path) -> None:
    """Write the per-epoch records (epoch, train_loss, val_loss, lr, time, and val_force_mse where
    the records have it) as CSV."""
    columns = ["epoch", "train_loss", "val_loss", "lr", "time"]
    if history and all("val_force_mse" in record for record in history):
        columns.append("val_force_mse")
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for record in history:
            writer.writerow(record)


def plot_loss_curve(history, ax=None, noise_level: Optional[float] = None):
    """Plot training and validation loss against epoch (log scale).

    Parameters
    ----------
    history : list of dict or str
        ``history_`` of a fitted estimator, or the path of a loss CSV written during training.
    ax : matplotlib Axes, optional
        Drawn into; default a new figure's axes.
    noise_level : float, optional
        Draw a horizontal line here, e.g. a known force-noise variance.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if isinstance(history, (str, os.PathLike)):
        with open(history) as handle:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], label="training")
    ax.plot(epochs, [r["val_loss"] for r in history], label="validation")
    if history:
        best = min(history, key=lambda r: r["val_loss"])
        ax.plot([best["epoch"]], [best["val_loss"]], "o", color="C1", label=f"best (epoch {int(best['epoch'])})")
    if noise_level is not None:
        ax.axhline(noise_level, color="gray", ls="--", label="noise level")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("force MSE ((kJ/mol/nm)$^2$)")
    ax.legend(fontsize="small")
    return ax


def write_loss_plot(history: Sequence[dict], path, noise_level: Optional[float] = None) -> None:
    """Draw :func:`plot_loss_curve` (with ``noise_level``) into a PNG file (nothing, with a
    warning, without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency of training
        warnings.warn("matplotlib is not installed: no loss plot written")
        return
    figure, ax = plt.subplots(figsize=(5, 3.5))
    plot_loss_curve(history, ax=ax, noise_level=noise_level)
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, dpi=120, format="png")
    plt.close(figure)
