"""The training callback that mirrors a run folder to the object store after each checkpoint.

Imports the trainer's callback base class (torch): only training commands import this module.
"""

from __future__ import annotations

from pathlib import Path

from hpo.study._mirror import ArtifactMirror
from reid_core.engine import Callback
from reid_core.engine import EpochReport


class PushCheckpoints(Callback):
    """Mirrors a run folder (a trial's attempt, a retrain) to the object store after each
    checkpoint (a no-op on a shared file system). Put it after the TensorBoard callback, so
    the epoch's events go too, and after a pruning one, so a pruned trial's last checkpoint is
    never uploaded."""

    def __init__(self, mirror: ArtifactMirror, folder: Path) -> None:
        self._mirror = mirror
        self._folder = folder

    def on_epoch_end(self, report: EpochReport) -> None:
        if report.checkpoint is not None:
            self._mirror.push(self._folder)


__all__ = ["PushCheckpoints"]
