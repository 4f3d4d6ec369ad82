"""``study rekey``: the way out for a study whose artifact folder another storage owns.

A copied database keeps the study's uuid (:mod:`hpo.study._marker`). ``rekey`` gives the study in
this storage a fresh uuid, so its files go to a new folder (the old folder's checkpoints stay the
original's and are not reused); ``adopt`` instead rewrites the marker to name this storage, for a
database that moved (a restore after a server migration) while the original is gone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from optuna.storages import BaseStorage

from hpo.errors import ReidHpoError
from hpo.storage import open_study_lock
from hpo.study._artifacts import study_dir
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import reading
from hpo.study._marker import identity_of
from hpo.study._marker import read_marker
from hpo.study._marker import write_marker
from hpo.study.records import StudyAttr
from hpo.study.records import read_spec_or_none


@dataclass(frozen=True)
class Rekeyed:
    """What :func:`rekey_study` did."""

    old_folder: Path
    folder: Path
    """The folder the study now writes (the old one when adopted)."""


def rekey_study(name: str, storage_url: StorageLike, *, adopt: bool = False) -> Rekeyed:
    """Give study ``name`` in this storage a fresh uuid and marker (or, with ``adopt``, rewrite
    its marker to name this storage), under the study lock. Run it while none of the study's
    workers run.

    Raises:
        StudyNotFoundError: No such study.
        ReidHpoError: The study has no spec or uuid, or its marker already names this storage.
    """
    with reading(name, storage_url, "`study rekey` ran") as (storage, where, study_id):
        # Workers join a study (marker check, uuid) under its lock: one starting meanwhile
        # joins before or after the new key, never in between.
        lock = open_study_lock(storage, name)
        lock.acquire()
        try:
            return _rekey(name, storage, where, study_id, adopt=adopt)
        finally:
            lock.close()


def _rekey(name: str, storage: BaseStorage, where: str, study_id: int, *, adopt: bool) -> Rekeyed:
    """The new uuid and marker of study ``study_id`` (the caller holds its lock)."""
    attrs = storage.get_study_user_attrs(study_id)
    spec, old_uuid = read_spec_or_none(attrs, name), attrs.get(StudyAttr.UUID)
    identity = identity_of(storage)
    if spec is None or not isinstance(old_uuid, str) or identity is None:
        raise ReidHpoError(f"study {name!r} in {where} has no reid-hpo spec or uuid to rekey")
    root = spec.artifacts.root
    record = read_marker(spec.artifacts, old_uuid) or {}
    owner = record.get("storage")
    if isinstance(owner, dict) and owner.get("key") == identity.key:
        raise ReidHpoError(
            f"study {name!r}: its folder {study_dir(root, old_uuid)} already belongs to "
            f"{identity.display}; nothing to rekey"
        )
    new_uuid = old_uuid if adopt else uuid.uuid4().hex
    try:
        write_marker(spec.artifacts, new_uuid, name, identity)
    except OSError as exc:
        raise ReidHpoError(
            f"artifacts.root {root} is not writable on this machine: {exc.strerror or exc}"
        ) from None
    storage.set_study_user_attr(study_id, StudyAttr.UUID, new_uuid)
    storage.set_study_user_attr(study_id, StudyAttr.ARTIFACTS_MARKER, True)
    return Rekeyed(study_dir(root, old_uuid), study_dir(root, new_uuid))


__all__ = ["Rekeyed", "rekey_study"]
