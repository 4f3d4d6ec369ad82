"""The per-epoch metrics log of a run, ``metrics.jsonl``, as a callback."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reid_core.engine._callbacks import Callback
from reid_core.engine._callbacks import EpochReport
from reid_core.engine._callbacks import TrainerView
from reid_core.files import atomic_write_text

METRICS_LOG_NAME = "metrics.jsonl"


class MetricsLog(Callback):
    """Appends one JSON line per epoch (``epoch``, 1-based, ``losses``, ``lr``, ``metrics``) to
    the log.

    The trainer installs one ahead of the callbacks it is given. At train start the lines of
    epochs after ``start_epoch`` are dropped, and so are torn lines (a crash mid-append), so
    that a resumed run logs each epoch once.

    Args:
        output_dir: Directory of the run; the log is ``output_dir / "metrics.jsonl"``.
        start_epoch: Epochs already done when the run starts (the 1-based epoch of the
            checkpoint it resumes from; 0 for a new run).
    """

    def __init__(self, output_dir: str | Path, *, start_epoch: int = 0) -> None:
        self.path = Path(output_dir) / METRICS_LOG_NAME
        self.start_epoch = start_epoch

    def on_train_start(self, trainer: TrainerView) -> None:
        """Drop the lines of the epochs this run is about to (re)do."""
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if (epoch := _log_epoch(line)) is not None and epoch <= self.start_epoch
        ]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def on_epoch_end(self, report: EpochReport) -> None:
        """Append the epoch's line, on disk (fsynced) before the trainer writes the epoch's
        checkpoint, which is fsynced too: after a power loss a checkpoint's epoch is in the
        log, as after a kill."""
        entry = {
            "epoch": report.epoch + 1,
            "losses": report.losses,
            "lr": report.lr,
            "metrics": report.metrics,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _log_epoch(line: str) -> int | None:
    """Epoch of a metrics-log line; None for a blank or torn line (a crash mid-append)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    epoch = entry.get("epoch") if isinstance(entry, dict) else None
    return epoch if isinstance(epoch, int) else None
