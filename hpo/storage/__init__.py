"""The study database: URL resolution and masking, opening with heartbeats, reconnects, locks.

Resolution order for the storage URL: ``--storage``, then ``$REID_HPO_STORAGE``, then an
embedded SQLite file ``reid_hpo.db`` in the working directory. Workers use Optuna's own
``RDBStorage`` (with heartbeats and stale-trial retries), wrapped only to retry operations
while the database restarts; the Optuna internals that wrapping needs live in
:mod:`hpo.storage._optuna_adapter` and nowhere else.
"""

from __future__ import annotations

from hpo.storage._identity import StorageIdentity
from hpo.storage._identity import storage_identity
from hpo.storage._locks import StudyLock
from hpo.storage._locks import lock_key
from hpo.storage._locks import open_study_lock
from hpo.storage._open import ENV_HEARTBEAT
from hpo.storage._open import MAX_RETRY
from hpo.storage._open import Heartbeat
from hpo.storage._open import check_heartbeat_override
from hpo.storage._open import close_storage
from hpo.storage._open import env_heartbeat_interval
from hpo.storage._open import missing_sqlite_file
from hpo.storage._open import open_storage
from hpo.storage._optuna_adapter import ReconnectingRDBStorage
from hpo.storage._optuna_adapter import heartbeat_ages
from hpo.storage._reconnect import ENV_RECONNECT
from hpo.storage._reconnect import RECONNECT_MAX_DELAY_S
from hpo.storage._reconnect import RECONNECT_S
from hpo.storage._reconnect import is_connection_error
from hpo.storage._reconnect import reconnect_budget_s
from hpo.storage._reconnect import retry_on_disconnect
from hpo.storage._reconnect import seconds_since_outage
from hpo.storage._urls import DEFAULT_STORAGE_URL
from hpo.storage._urls import ENV_STORAGE
from hpo.storage._urls import is_postgres
from hpo.storage._urls import mask_url
from hpo.storage._urls import normalise_url
from hpo.storage._urls import resolve_storage_url

__all__ = [
    "DEFAULT_STORAGE_URL",
    "ENV_HEARTBEAT",
    "ENV_RECONNECT",
    "ENV_STORAGE",
    "MAX_RETRY",
    "RECONNECT_MAX_DELAY_S",
    "RECONNECT_S",
    "Heartbeat",
    "ReconnectingRDBStorage",
    "StorageIdentity",
    "StudyLock",
    "check_heartbeat_override",
    "close_storage",
    "env_heartbeat_interval",
    "heartbeat_ages",
    "is_connection_error",
    "is_postgres",
    "lock_key",
    "mask_url",
    "missing_sqlite_file",
    "normalise_url",
    "open_storage",
    "open_study_lock",
    "reconnect_budget_s",
    "resolve_storage_url",
    "retry_on_disconnect",
    "seconds_since_outage",
    "storage_identity",
]
