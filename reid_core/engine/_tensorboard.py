"""TensorBoard event files of a run, as a callback: loss terms, learning rate, val metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reid_core.engine._callbacks import Callback
from reid_core.engine._callbacks import EpochReport
from reid_core.engine._callbacks import FitResult
from reid_core.engine._callbacks import TrainerView

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

TENSORBOARD_DIR = "tensorboard"


class TensorBoardLog(Callback):
    """Writes one TensorBoard point per epoch under ``log_dir``.

    Tags: ``loss/<term>`` (each loss term's epoch mean, ``loss/total`` included), ``lr``, and
    ``val/<metric>`` in % (``val/mAP``, ``val/rank1``, ...) at evaluated epochs. The global step
    is the 1-based epoch, as people count epochs. A resumed run appends to the same folder, and
    TensorBoard shows the latest point of a step written twice.

    Args:
        log_dir: Folder of the event files (created).
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer: SummaryWriter | None = None

    def on_train_start(self, trainer: TrainerView) -> None:
        """Open the event file."""
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, report: EpochReport) -> None:
        """Add the epoch's loss terms, learning rate and validation metrics."""
        if self._writer is None:
            return
        step = report.epoch + 1
        for name, value in report.losses.items():
            self._writer.add_scalar(f"loss/{name}", value, step)
        self._writer.add_scalar("lr", report.lr, step)
        for name, value in (report.metrics or {}).items():
            self._writer.add_scalar(f"val/{name}", 100.0 * value, step)
        self._writer.flush()

    def on_train_end(self, result: FitResult) -> None:
        """Close the event file (also when training failed)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_hparams(
    log_dir: str | Path, hparams: dict[str, float | int | str | bool], metrics: dict[str, float]
) -> None:
    """Record a run's hyperparameters and final metrics in ``log_dir`` for TensorBoard's
    HParams tab (the same run as the run's scalars: one row per run there).

    Args:
        log_dir: The run's event-file folder (:data:`TENSORBOARD_DIR` of its output).
        hparams: Hyperparameters (numbers, text or booleans), e.g. a trial's and its state.
        metrics: Final metrics by tag (shown as the HParams tab's metric columns).
    """
    from torch.utils.tensorboard import SummaryWriter

    Path(log_dir).mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        # run_name "." keeps the row in the run's own folder (not a timestamped subfolder).
        writer.add_hparams(hparams, metrics, run_name=".")
    finally:
        writer.close()
