"""The training callback that stops a retrain whose lease another process took over.

Imports the trainer's callback base class (torch): only training commands import this module.
"""

from __future__ import annotations

from hpo.study._retrain_lease import RetrainLease
from reid_core.engine import Callback
from reid_core.engine import EpochReport


class CheckLease(Callback):
    """Raises :class:`~hpo.study._retrain_lease.RetrainLeaseError` at the end of an epoch
    whose retrain lease is no longer this process's. Put it before the push to the object
    store, so a retrain that was taken over never uploads over its successor's files."""

    def __init__(self, lease: RetrainLease) -> None:
        self._lease = lease

    def on_epoch_end(self, report: EpochReport) -> None:
        self._lease.check()


__all__ = ["CheckLease"]
