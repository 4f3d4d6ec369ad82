"""The one place where reid-hpo touches Optuna internals.

Optuna's cached storage (what ``optuna.load_study`` wraps an ``RDBStorage`` in) calls a few
private ``RDBStorage`` methods directly, and ``optuna.storages.fail_stale_trials`` calls
``_get_stale_trial_ids``; a storage that retries every operation across a database restart
must therefore wrap those too. ``study status`` shows each running trial's heartbeat age,
which no public API exposes, so it reads Optuna's ``trial_heartbeats`` table.

:data:`PRIVATE_OPTUNA_NAMES` lists every private name used here; ``tests/hpo/test_storage.py``
checks that each still exists in the installed Optuna and that no other module of ``hpo``
uses a private Optuna name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy

from hpo.storage._reconnect import RECONNECT_MAX_DELAY_S
from hpo.storage._reconnect import retry_on_disconnect
from hpo.storage._reconnect import seconds_since_outage
from hpo.storage._turns import FairTurns

PRIVATE_OPTUNA_NAMES: tuple[str, ...] = (
    "optuna.storages.RDBStorage._create_new_trial",
    "optuna.storages.RDBStorage._set_trial_param",
    "optuna.storages.RDBStorage._get_trials",
    "optuna.storages.RDBStorage._get_best_trial_id",
    "optuna.storages.RDBStorage._get_stale_trial_ids",
    "table trial_heartbeats (trial_id, heartbeat)",
    "table trials (trial_id, study_id, number)",
)
"""Every Optuna internal this module relies on (methods by dotted path, tables by name)."""

_PUBLIC_METHODS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "get_best_trial",
    "record_heartbeat",
)
_PRIVATE_METHODS = tuple(
    name.rsplit(".", 1)[1] for name in PRIVATE_OPTUNA_NAMES if name.startswith("optuna.")
)


class ReconnectingRDBStorage(optuna.storages.RDBStorage):
    """An :class:`optuna.storages.RDBStorage` whose operations survive a database restart.

    Every operation is retried by :func:`~hpo.storage.retry_on_disconnect` while the server is
    unreachable; with ``pool_pre_ping`` the next attempt after the restart opens a fresh
    connection. The heartbeat thread's ``record_heartbeat`` is retried the same way instead of
    ending the thread on the first error. Each attempt waits for its turn on the storage's
    connection (:class:`~hpo.storage._turns.FairTurns`), so the heartbeat thread is never
    starved by the worker's loop.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.turns = FairTurns()
        super().__init__(*args, **kwargs)
        self.opened_at = time.monotonic()


def _with_reconnect(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    def retried(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        def attempt() -> Any:
            with self.turns:
                return method(self, *args, **kwargs)

        return retry_on_disconnect(attempt, what=name)

    retried.__name__ = name
    retried.__doc__ = method.__doc__
    return retried


for _method_name in (*_PUBLIC_METHODS, *_PRIVATE_METHODS):
    setattr(ReconnectingRDBStorage, _method_name, _with_reconnect(_method_name))


def _stale_trial_ids_after_outages(self: ReconnectingRDBStorage, study_id: int) -> list[int]:
    """Optuna's stale trials, none while heartbeats cannot be trusted: within the grace period
    plus the longest reconnect back-off after this process got the database back, or after it
    opened this storage.

    During an outage no worker records heartbeats; once it ends, a live worker's heartbeat
    thread records one within the back-off, so only a trial still stale a grace period later
    is a dead worker's. A process that opened the storage just after an outage it never saw
    cannot tell, so it treats the opening as the end of one. Every caller (the worker's
    watchdog, Optuna at the start of each trial) goes through here, so an outage of any
    length within the reconnect window fails no healthy trial, whichever worker is first back.
    """
    since_open = time.monotonic() - self.opened_at
    since_outage = seconds_since_outage()
    since = since_open if since_outage is None else min(since_open, since_outage)
    grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
    if since < grace + RECONNECT_MAX_DELAY_S:
        return []
    return _stale_trial_ids(self, study_id)


_stale_trial_ids = _with_reconnect("_get_stale_trial_ids")
ReconnectingRDBStorage._get_stale_trial_ids = _stale_trial_ids_after_outages  # type: ignore[method-assign]


def heartbeat_ages(storage: optuna.storages.BaseStorage, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each trial number that has one (database clock).

    Args:
        storage: The study's storage; storages without an SQL engine have no heartbeats.
        study_id: The study's storage id.

    Returns:
        Trial number -> age in seconds (empty when the storage records no heartbeats).
    """
    engine = getattr(storage, "engine", None)
    if engine is None:
        return {}
    query = sqlalchemy.text(
        "SELECT t.number AS number, h.heartbeat AS heartbeat FROM trial_heartbeats h "
        "JOIN trials t ON t.trial_id = h.trial_id WHERE t.study_id = :study_id"
    ).columns(number=sqlalchemy.Integer, heartbeat=sqlalchemy.DateTime)
    with engine.connect() as conn:
        now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = conn.execute(query, {"study_id": study_id}).all()
    if not isinstance(now, datetime):
        return {}
    now = now.replace(tzinfo=None)
    return {row.number: (now - row.heartbeat).total_seconds() for row in rows}


__all__ = ["PRIVATE_OPTUNA_NAMES", "ReconnectingRDBStorage", "heartbeat_ages"]
