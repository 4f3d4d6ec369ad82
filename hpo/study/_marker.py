"""The shared-file-system guard: a marker file in the study's artifact folder.

``study create`` writes ``<artifacts.root>/<study uuid>/reid-hpo-study.json`` (the study's uuid
and name) and records on the study that it did. A worker, or ``retrain``, on a machine that does
not see that file (a shared mount that failed and left an empty local folder, another host's
path) refuses to start in one line instead of training into a folder no other worker sees. A
study whose marker could not be written at creation (the creating machine does not see the
root) gets it from its first worker, under the study lock.

The marker also names the storage the study was created in (:func:`hpo.storage.storage_identity`).
A copied database keeps the study's uuid, so its workers would write the original's folder:
worker start, ``retrain`` and ``study delete`` refuse a storage that is not the one the marker
names, and ``study rekey`` is the way out (a fresh uuid for the copy, or ``--adopt-artifacts``
for a database that moved).

With ``artifacts.kind: s3`` the marker is the object ``<prefix>/<study uuid>/reid-hpo-study.json``
in the bucket (each host's ``root`` is only its local working copy): a worker that cannot read it
(another bucket or endpoint, no credentials) is refused the same way.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import optuna

from hpo.errors import ReidHpoError
from hpo.spec import ArtifactsSpec
from hpo.storage import StorageIdentity
from hpo.storage import storage_identity
from hpo.study._artifacts import study_dir
from hpo.study._artifacts import write_json_file
from hpo.study._object_store import open_store
from hpo.study.records import StudyAttr

logger = logging.getLogger(__name__)

MARKER_NAME = "reid-hpo-study.json"

__all__ = [
    "MARKER_NAME",
    "ArtifactsNotSharedError",
    "StudyCopiedError",
    "check_marker",
    "check_owner",
    "ensure_marker",
    "identity_of",
    "marker_where",
    "read_marker",
    "write_marker",
]


class ArtifactsNotSharedError(ReidHpoError):
    """This machine does not see the study's artifact folder that ``study create`` marked."""


class StudyCopiedError(ReidHpoError):
    """The study's artifact folder belongs to the same study in another storage (a copy)."""


def identity_of(storage: object) -> StorageIdentity | None:
    """The identity of an open Optuna storage (None for one without a URL, e.g. in memory)."""
    url = getattr(storage, "url", None)
    return storage_identity(url) if isinstance(url, str) else None


def marker_path(root: str | Path, study_uuid: str) -> Path:
    """``<root>/<study uuid>/reid-hpo-study.json``."""
    return study_dir(root, study_uuid) / MARKER_NAME


def marker_where(artifacts: ArtifactsSpec, study_uuid: str) -> str:
    """Where the study's marker lives, for messages (a path, or an ``s3://`` URL)."""
    if artifacts.kind == "s3":
        return f"{artifacts.location}/{study_uuid}/{MARKER_NAME}"
    return str(marker_path(artifacts.root, study_uuid))


def write_marker(
    artifacts: ArtifactsSpec,
    study_uuid: str,
    study_name: str,
    storage: StorageIdentity | None = None,
) -> str:
    """Write the study's marker (naming ``storage``, the study's database, when given): in the
    object store, or in the study's folder (created, with ``root``); returns where.

    Raises:
        OSError: The folder or the file cannot be written on this machine.
        ObjectStoreError: The object store refused it or cannot be reached.
    """
    record: dict[str, object] = {
        "study_uuid": study_uuid,
        "study_name": study_name,
        "host": socket.gethostname(),
    }
    if storage is not None:
        record["storage"] = {"key": storage.key, "display": storage.display}
    path = marker_path(artifacts.root, study_uuid)
    store = open_store(artifacts)
    if store is None:
        write_json_file(path, record)
    else:
        store.put_bytes(f"{study_uuid}/{MARKER_NAME}", json.dumps(record).encode())
    return marker_where(artifacts, study_uuid)


def read_marker(artifacts: ArtifactsSpec, study_uuid: str) -> dict[str, object] | None:
    """The study's marker record, or None when it is missing, unreadable or not this study's.

    Raises:
        ObjectStoreError: The object store cannot be reached.
    """
    store = open_store(artifacts)
    try:
        if store is None:
            text = marker_path(artifacts.root, study_uuid).read_text(encoding="utf-8")
        else:
            text = (store.get_bytes(f"{study_uuid}/{MARKER_NAME}") or b"").decode("utf-8")
        record = json.loads(text)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("study_uuid") != study_uuid:
        return None
    return record


def check_marker(
    artifacts: ArtifactsSpec,
    study_uuid: str,
    study_name: str,
    storage: StorageIdentity | None = None,
) -> None:
    """Refuse a machine that does not see the study's marker, and (given ``storage``) a
    storage other than the one the marker names.

    Raises:
        ArtifactsNotSharedError: The marker is missing, unreadable or names another study.
        StudyCopiedError: The marker names another storage.
        ObjectStoreError: The object store cannot be reached (``kind: s3``).
    """
    record = read_marker(artifacts, study_uuid)
    where = marker_where(artifacts, study_uuid)
    if record is None and artifacts.kind == "s3":
        raise ArtifactsNotSharedError(
            f"artifacts {artifacts.location} does not hold study {study_name!r}'s marker {where} "
            "(written by `study create`): are bucket, prefix and endpoint_url the study's?"
        )
    if record is None:
        raise ArtifactsNotSharedError(
            f"artifacts.root {artifacts.root} on this machine does not hold study "
            f"{study_name!r}'s marker {where} (written by `study create`): is the shared file "
            "system mounted here?"
        )
    if storage is not None:
        check_owner(record, study_name, storage, where.removesuffix(f"/{MARKER_NAME}"))


def check_owner(
    record: dict[str, object], study_name: str, storage: StorageIdentity, folder: str | Path
) -> None:
    """Refuse when the marker ``record`` names a storage other than ``storage`` (a marker
    written before storages were recorded names none and is accepted).

    Raises:
        StudyCopiedError: It names another storage.
    """
    owner = record.get("storage")
    if not isinstance(owner, dict) or owner.get("key") == storage.key:
        return
    raise StudyCopiedError(
        f"study {study_name!r} in {storage.display} has the uuid of the study in "
        f"{owner.get('display')}, which owns {folder}: this database is a copy; run "
        f"`reid-hpo study rekey {study_name}` here to give the copy its own folder, or "
        f"`reid-hpo study rekey {study_name} --adopt-artifacts` if the database moved"
    )


def ensure_marker(
    study: optuna.Study,
    artifacts: ArtifactsSpec,
    study_uuid: str,
    storage: StorageIdentity | None = None,
) -> None:
    """Check the marker of a study that has one; write it for one that has none yet (call it
    under the study lock, so that concurrent first workers agree).

    Raises:
        ArtifactsNotSharedError: The study has a marker and this machine does not see it.
        StudyCopiedError: The marker names another storage than ``storage``.
        ReidHpoError: The study has none and this machine cannot write it.
    """
    if study.user_attrs.get(StudyAttr.ARTIFACTS_MARKER):
        check_marker(artifacts, study_uuid, study.study_name, storage)
        return
    try:
        where = write_marker(artifacts, study_uuid, study.study_name, storage)
    except OSError as exc:
        raise ReidHpoError(
            f"artifacts.root {artifacts.root} is not writable on this machine: "
            f"{exc.strerror or exc}"
        ) from None
    study.set_user_attr(StudyAttr.ARTIFACTS_MARKER, True)
    logger.info("study %r: artifacts marker written at %s", study.study_name, where)
