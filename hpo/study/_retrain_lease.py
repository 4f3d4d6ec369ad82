"""One retrain of a study at a time, across hosts: a lease in the study's database.

The folder lock of :mod:`hpo.study._retrain` (``flock``) guards a retrain folder on one host;
with ``artifacts.kind: s3`` every host's folder is the same objects, and a study stores one
retrain result. The lease is the study system attribute ``retrain_lease`` (``trial``,
``holder`` = ``host:pid``, ``token``, ``renewed_at``), read and written under the study lock
(:func:`hpo.storage.open_study_lock`), renewed every heartbeat interval by a thread and
cleared when the retrain ends, however it ends. A lease is free when nobody holds it, when it
was not renewed for the study's heartbeat grace (its holder died, was paused or lost the
database: host clocks are assumed to agree within the grace, as NTP keeps them), or when its
holder is a process of this host that no longer runs (a killed retrain run again at once).
A holder that finds its lease taken over stops before it pushes or stores anything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

import optuna

from hpo.errors import ReidHpoError
from hpo.storage import open_study_lock

logger = logging.getLogger(__name__)

LEASE_ATTR = "retrain_lease"
T = TypeVar("T")


class RetrainLeaseError(ReidHpoError):
    """Another process holds the study's retrain lease, or took it over from this one."""


class RetrainLease:
    """The study's retrain lease for one retrain of ``trial``.

    Args:
        storage: The study's storage.
        study_name: The study.
        trial: The trial being retrained.
        interval_s: Seconds between renewals (the study's heartbeat interval).
        grace_s: Seconds without renewal after which another process may take it over.
        clock: Seconds since the epoch (tests pass their own).
    """

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        trial: int,
        *,
        interval_s: float,
        grace_s: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._storage = storage
        self._study_name = study_name
        self._study_id = storage.get_study_id_from_name(study_name)
        self._trial = trial
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._clock = clock or time.time
        self.token = uuid.uuid4().hex
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._lost: str | None = None
        # One study lock for the lease's life (opening one may probe the server), taken by
        # one thread at a time: a PostgreSQL session lock does not exclude a second thread
        # on the same connection.
        self._study_lock = open_study_lock(storage, study_name)
        self._in_process = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease and start renewing it.

        Raises:
            RetrainLeaseError: A live process holds it (the message names it and when it was
                last renewed).
        """
        try:
            taken_over = self._under_lock(self._take)
        except BaseException:
            self._study_lock.close()
            raise
        if taken_over is not None:
            logger.warning(
                "study %r: taking over the retrain lease of %s (trial %s), %s",
                self._study_name,
                taken_over.get("holder"),
                taken_over.get("trial"),
                self._why_free(taken_over),
            )
        self._thread = threading.Thread(target=self._renew_loop, name="retrain-lease", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise when another process took the lease over.

        Raises:
            RetrainLeaseError: The lease is no longer this process's.
        """
        if self._lost is None and not self._under_lock(self._still_ours):
            self._lost = self._lost_message()
        if self._lost is not None:
            raise RetrainLeaseError(self._lost)

    def while_held(self, action: Callable[[], T]) -> T:
        """Run ``action`` under the study lock if the lease is still this process's.

        Raises:
            RetrainLeaseError: The lease is no longer this process's (``action`` did not run).
        """

        def guarded() -> T:
            if not self._still_ours():
                self._lost = self._lost_message()
                raise RetrainLeaseError(self._lost)
            return action()

        return self._under_lock(guarded)

    def release(self) -> None:
        """Stop renewing and clear the lease if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._under_lock(self._clear)
        except Exception:  # a lease left behind expires after the grace
            logger.exception("study %r: the retrain lease could not be cleared", self._study_name)
        finally:
            self._study_lock.close()

    def _take(self) -> dict[str, Any] | None:
        current = self._read()
        if current is not None and self._why_free(current) is None:
            raise RetrainLeaseError(
                f"study {self._study_name!r} is being retrained (trial {current.get('trial')}) "
                f"by {current.get('holder')}, whose lease was renewed {self._age(current):.0f} s "
                f"ago; wait for it to end (a lease not renewed for {self._grace_s:.0f} s is "
                "taken over)"
            )
        self._write()
        return current

    def _why_free(self, lease: dict[str, Any]) -> str | None:
        """Why another process's ``lease`` may be taken over (None: it may not)."""
        age = self._age(lease)
        if age > self._grace_s:
            return f"not renewed for {age:.0f} s (grace {self._grace_s:.0f} s)"
        host, _, pid = str(lease.get("holder", "")).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _running(int(pid)):
            return "whose process no longer runs on this host"
        return None

    def _age(self, lease: dict[str, Any]) -> float:
        """Seconds since ``lease`` was renewed (a lease without a readable time is stale)."""
        age = lease_age(lease, self._clock())
        return float("inf") if age is None else age

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                if not self._under_lock(self._renew):
                    self._lost = self._lost_message()
                    logger.error("%s", self._lost)
                    return
            except Exception as exc:  # the storage retries; a lease not renewed may expire
                logger.warning("study %r: retrain lease not renewed: %s", self._study_name, exc)

    def _renew(self) -> bool:
        if not self._still_ours():
            return False
        self._write()
        return True

    def _still_ours(self) -> bool:
        current = self._read()
        return current is not None and current.get("token") == self.token

    def _clear(self) -> None:
        if self._still_ours():
            self._storage.set_study_system_attr(self._study_id, LEASE_ATTR, None)

    def _read(self) -> dict[str, Any] | None:
        value = self._storage.get_study_system_attrs(self._study_id).get(LEASE_ATTR)
        return value if isinstance(value, dict) else None

    def _write(self) -> None:
        lease = {
            "trial": self._trial,
            "holder": self.holder,
            "token": self.token,
            "renewed_at": self._clock(),
        }
        self._storage.set_study_system_attr(self._study_id, LEASE_ATTR, lease)

    def _under_lock(self, action: Callable[[], T]) -> T:
        with self._in_process:
            self._study_lock.acquire()
            try:
                return action()
            finally:
                self._study_lock.release()

    def _lost_message(self) -> str:
        return (
            f"study {self._study_name!r}: another process took over the retrain of trial "
            f"{self._trial} (this one's lease went {self._grace_s:.0f} s without renewal: was "
            "it paused?); stopping without pushing or storing anything"
        )


@dataclass(frozen=True)
class RetrainInProgress:
    """A study's retrain lease as ``study status`` shows it."""

    trial: int | None
    holder: str
    renewed_s_ago: float | None
    """None: the lease holds no readable renewal time (it is stale)."""
    stale: bool
    """Not renewed for the grace: the next retrain takes it over."""


def retrain_in_progress(
    storage: optuna.storages.BaseStorage, study_id: int, grace_s: float, now: float
) -> RetrainInProgress | None:
    """The retrain holding the study's lease (None when none does)."""
    lease = storage.get_study_system_attrs(study_id).get(LEASE_ATTR)
    if not isinstance(lease, dict):
        return None
    age = lease_age(lease, now)
    trial = lease.get("trial")
    return RetrainInProgress(
        trial=trial if isinstance(trial, int) else None,
        holder=str(lease.get("holder", "?")),
        renewed_s_ago=age,
        stale=age is None or age > grace_s,
    )


def lease_age(lease: dict[str, Any], now: float) -> float | None:
    """Seconds since ``lease`` was renewed (None: it holds no readable renewal time)."""
    try:
        return max(now - float(lease["renewed_at"]), 0.0)
    except (KeyError, TypeError, ValueError):
        return None


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = [
    "LEASE_ATTR",
    "RetrainInProgress",
    "RetrainLease",
    "RetrainLeaseError",
    "lease_age",
    "retrain_in_progress",
]
