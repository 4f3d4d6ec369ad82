"""Epoch callbacks: the only hook the HPO layer needs (report metrics, prune, stop)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from reid_core.config import TrainConfig
    from reid_core.engine._evaluation import EvaluationResult


class StopTraining(Exception):
    """Raised by a callback to end training cleanly after the current epoch.

    The trainer writes the checkpoint of that epoch, calls the remaining callbacks of the
    epoch, then returns a :class:`FitResult` with ``stopped_early=True``.
    """


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch produced.

    Attributes:
        epoch: 0-based epoch index.
        losses: Mean of each loss term over the epoch (always has ``"total"``).
        lr: Learning rate of the main optimiser during the epoch.
        metrics: Validation metrics (``mAP``, ``rank1``, ...) when the epoch was evaluated.
        checkpoint: The checkpoint written for this epoch, if any.
    """

    epoch: int
    losses: dict[str, float]
    lr: float
    metrics: dict[str, float] | None = None
    checkpoint: Path | None = None


@dataclass(frozen=True)
class FitResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        final_metrics: Metrics of the last evaluation (``None`` if nothing was evaluated).
        best_metrics: Metrics of the evaluation with the highest ``mAP``.
        best_epoch: 1-based epoch of ``best_metrics``.
        epochs_run: Number of epochs completed, including those of a resumed checkpoint.
        checkpoint: Path of the last checkpoint written (or resumed from).
        stopped_early: Whether a callback raised :class:`StopTraining`.
        history: One entry per epoch run in this call: epoch (1-based), losses, lr, metrics.
        final_evaluation: The last evaluation of this call with its CMC curves (``None`` when
            this call evaluated nothing, e.g. a resumed run that was already finished).
    """

    final_metrics: dict[str, float] | None
    best_metrics: dict[str, float] | None
    best_epoch: int | None
    epochs_run: int
    checkpoint: Path | None
    stopped_early: bool = False
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    final_evaluation: EvaluationResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, written as ``results.json``."""
        return {
            "final_metrics": self.final_metrics,
            "best_metrics": self.best_metrics,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "stopped_early": self.stopped_early,
        }


class TrainerView(Protocol):
    """What a callback may use of the trainer it is given (:class:`Trainer` has all of it)."""

    cfg: TrainConfig
    output_dir: Path
    device: torch.device
    model: nn.Module
    num_classes: int

    def evaluate(self, *, rerank: bool | None = None) -> EvaluationResult:
        """Evaluate the current model on the validation split."""


class Callback:
    """Base class of training callbacks; override the hooks you need.

    Hooks run in the order the callbacks were given. An exception other than
    :class:`StopTraining` raised by :meth:`on_epoch_end` propagates out of ``fit`` after the
    epoch's checkpoint has been written (how an HPO pruner stops a trial).
    """

    def on_train_start(self, trainer: TrainerView) -> None:
        """Called once before the first epoch (after a resume has been applied)."""

    def on_epoch_end(self, report: EpochReport) -> None:
        """Called after every epoch, once its checkpoint (if any) is on disk."""

    def on_train_end(self, result: FitResult) -> None:
        """Called once in a ``finally`` block, also when training failed."""
