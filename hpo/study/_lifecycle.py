"""Study lifecycle on a storage: create, load, delete.

A study created here carries its whole spec as a study user attribute
(:attr:`~hpo.study.records.StudyAttr.SPEC`; JSON text, never the storage URL) plus the
reid-hpo version, so any worker can rebuild the identical sampler, pruner and training recipe
from the name alone.

Every function takes a storage URL (opened and closed inside the call) or an open storage
(left open for the caller, e.g. a worker holding a heartbeat-enabled storage).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc

from hpo import __version__
from hpo.errors import SpecError
from hpo.errors import StorageError
from hpo.errors import StudyDeletedError
from hpo.errors import StudyExistsError
from hpo.errors import StudyNotFoundError
from hpo.search import build_pruner
from hpo.search import build_sampler
from hpo.spec import StudySpec
from hpo.storage import StorageIdentity
from hpo.storage import close_storage
from hpo.storage import mask_url
from hpo.storage import open_storage
from hpo.study._artifacts import remove_study_artifacts
from hpo.study._artifacts import study_dir
from hpo.study._marker import MARKER_NAME
from hpo.study._marker import check_owner
from hpo.study._marker import identity_of
from hpo.study._marker import marker_where
from hpo.study._marker import read_marker
from hpo.study._marker import write_marker
from hpo.study._mirror import mirror_of
from hpo.study._object_store import ObjectStoreError
from hpo.study._warm_start import enqueue_warm_start
from hpo.study.records import METRIC_NAMES
from hpo.study.records import StudyAttr
from hpo.study.records import read_spec
from hpo.study.records import read_spec_or_none

logger = logging.getLogger(__name__)

# How long a `create --resume` racing a concurrent creator waits for the spec attr to appear.
_SPEC_WAIT_S = 10.0
# How often `create --resume` creates the study anew after its creator failed and deleted it.
_CREATE_ATTEMPTS = 3
_MAX_LISTED = 20

StorageLike = str | optuna.storages.BaseStorage


@contextlib.contextmanager
def storage_errors(where: str) -> Iterator[None]:
    """Turn database failures in the middle of an operation into one-line StorageErrors."""
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        original = getattr(exc, "orig", None) or exc
        first = str(original).strip().splitlines()
        reason = first[0] if first else type(original).__name__
        raise StorageError(f"storage {where} failed: {reason}") from None


@contextlib.contextmanager
def opened(storage: StorageLike) -> Iterator[tuple[optuna.storages.BaseStorage, str]]:
    """Yield ``(storage, masked description)``; close it afterwards if it was opened here.

    A URL is opened for reading an existing study: a SQLite file that does not exist is
    refused, not created.
    """
    if isinstance(storage, str):
        opened = open_storage(storage, must_exist=True)
        try:
            with storage_errors(mask_url(opened.url)):
                yield opened, mask_url(opened.url)
        finally:
            close_storage(opened)
    else:
        where = mask_url(getattr(storage, "url", type(storage).__name__))
        with storage_errors(where):
            yield storage, where


def _not_found(name: str, storage: optuna.storages.BaseStorage, where: str) -> StudyNotFoundError:
    names = sorted(s.study_name for s in storage.get_all_studies())
    available = ", ".join(names[:_MAX_LISTED]) if names else "none"
    if len(names) > _MAX_LISTED:
        available += f", ... ({len(names) - _MAX_LISTED} more; see 'reid-hpo study list')"
    return StudyNotFoundError(f"no study {name!r} in {where}; available: {available}")


def study_id_of(name: str, storage: optuna.storages.BaseStorage, where: str) -> int:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        raise _not_found(name, storage, where) from None


def _still_there(name: str, storage: optuna.storages.BaseStorage, study_id: int) -> bool:
    """Whether ``storage`` still holds study ``study_id`` under that name (not deleted, nor
    deleted and created anew)."""
    try:
        return storage.get_study_id_from_name(name) == study_id
    except KeyError:
        return False


@contextlib.contextmanager
def deleted_meanwhile(
    name: str, storage: optuna.storages.BaseStorage, study_id: int, doing: str
) -> Iterator[None]:
    """Turn the ``KeyError`` Optuna's storages raise for a study deleted by another client in
    the middle of the block into :class:`StudyDeletedError` ("study X was deleted while
    ``doing``"); a ``KeyError`` while study ``study_id`` still exists is left alone."""
    try:
        yield
    except KeyError:
        if _still_there(name, storage, study_id):
            raise
        raise StudyDeletedError(f"study {name!r} was deleted while {doing}") from None


@contextlib.contextmanager
def reading(
    name: str, storage_url: StorageLike, doing: str
) -> Iterator[tuple[optuna.storages.BaseStorage, str, int]]:
    """:func:`opened` and :func:`study_id_of` for a block that reads study ``name``; yields
    ``(storage, masked description, study id)``.

    Raises:
        StudyNotFoundError: No such study.
        StudyDeletedError: It was deleted while the block read it (see
            :func:`deleted_meanwhile`).
    """
    with opened(storage_url) as (storage, where):
        study_id = study_id_of(name, storage, where)
        with deleted_meanwhile(name, storage, study_id, doing):
            yield storage, where, study_id


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    return path or "<root>"


def create_study(
    spec: StudySpec, storage_url: StorageLike, *, resume: bool = False
) -> optuna.Study:
    """Create the study described by ``spec`` (or, with ``resume``, reuse the same one).

    Safe to call concurrently from several processes with ``resume=True``: exactly one
    study is created and every caller gets it. The creator enqueues the spec's
    ``warm_start`` configurations (:func:`~hpo.study._warm_start.enqueue_warm_start`); a
    resumed study is not enqueued again.

    Args:
        spec: The validated study spec.
        storage_url: Storage URL or an open storage (kept open: the study uses it).
        resume: Accept an existing study of the same name when its stored spec is identical.

    Returns:
        The study, with the spec's sampler and pruner.

    Raises:
        StudyExistsError: The name is taken (without ``resume``), or taken by a study with a
            different spec or one not created by reid-hpo.
        StorageError: The storage cannot be used.
        StudyNotFoundError, SpecError: ``warm_start.from_study`` cannot be used (nothing is
            left behind).
    """
    storage = open_storage(storage_url) if isinstance(storage_url, str) else storage_url
    where = mask_url(getattr(storage, "url", type(storage).__name__))
    for _ in range(_CREATE_ATTEMPTS):
        with storage_errors(where):
            try:
                study = optuna.create_study(
                    storage=storage,
                    study_name=spec.name,
                    direction=spec.objective.direction,
                    sampler=build_sampler(spec),
                    pruner=build_pruner(spec),
                )
            except optuna.exceptions.DuplicatedStudyError:
                if not resume:
                    raise StudyExistsError(
                        f"study {spec.name!r} already exists in {where}; use --resume to "
                        "continue it, or give the spec another name"
                    ) from None
                try:
                    return _resume(spec, storage, where)
                except StudyNotFoundError:
                    # Its creator failed (a warm start that could not be read, ...) and
                    # deleted it: create it here, which meets the same failure or succeeds.
                    continue
            _fill_new_study(study, spec, storage)
        logger.info("created study %r in %s", spec.name, where)
        return study
    raise StudyDeletedError(
        f"study {spec.name!r} was deleted {_CREATE_ATTEMPTS} times while `create --resume` "
        "waited for its creator; check the other `study create` commands and run it again"
    )


def _fill_new_study(
    study: optuna.Study, spec: StudySpec, storage: optuna.storages.BaseStorage
) -> None:
    """Queue the warm start, then store the spec, uuid and marker of a study just created;
    on any failure delete it (never leave a half-written study behind)."""
    try:
        # Before the spec: a concurrent `create --resume` waits for the spec, so it never
        # returns the study before its warm-start trials are queued.
        enqueue_warm_start(study, spec, storage)
        study.set_user_attr(StudyAttr.SPEC, spec.model_dump_json())
        study_uuid = uuid.uuid4().hex
        study.set_user_attr(StudyAttr.UUID, study_uuid)
        study.set_user_attr(StudyAttr.VERSION, __version__)
        _mark_artifacts(study, spec, study_uuid, identity_of(storage))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC_NAMES[spec.objective.metric]])
    except BaseException:
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=spec.name, storage=storage)
        raise


def _mark_artifacts(
    study: optuna.Study, spec: StudySpec, study_uuid: str, storage: StorageIdentity | None
) -> None:
    """Write the study's shared-file-system marker (:mod:`hpo.study._marker`, naming the
    study's ``storage``) when this machine can; else the first worker writes it."""
    try:
        where = write_marker(spec.artifacts, study_uuid, spec.name, storage)
    except (OSError, ObjectStoreError) as exc:
        logger.warning(
            "artifacts %s are not writable here (%s): the study's first worker will write "
            "its marker; run `study create` where they are reachable to pin it",
            spec.artifacts.location,
            getattr(exc, "strerror", None) or exc,
        )
        return
    study.set_user_attr(StudyAttr.ARTIFACTS_MARKER, True)
    logger.info("artifacts of study %r in %s", spec.name, where.removesuffix(f"/{MARKER_NAME}"))


def _resume(spec: StudySpec, storage: optuna.storages.BaseStorage, where: str) -> optuna.Study:
    """The existing study of ``spec``, once its creator has written the spec.

    Raises:
        StudyNotFoundError: It was deleted meanwhile (its creator failed).
        StudyExistsError: It has another spec, or none after :data:`_SPEC_WAIT_S`.
    """
    study_id = study_id_of(spec.name, storage, where)
    with deleted_meanwhile(
        spec.name, storage, study_id, "`create --resume` waited for its creator"
    ):
        return _resume_known(spec, storage, where, study_id)


def _resume_known(
    spec: StudySpec, storage: optuna.storages.BaseStorage, where: str, study_id: int
) -> optuna.Study:
    deadline = time.monotonic() + _SPEC_WAIT_S
    stored = read_spec(storage.get_study_user_attrs(study_id), spec.name)
    while stored is None and time.monotonic() < deadline:
        # A concurrent creator has made the study but not yet written its spec.
        time.sleep(0.2)
        stored = read_spec(storage.get_study_user_attrs(study_id), spec.name)
    if stored is None:
        raise StudyExistsError(
            f"study {spec.name!r} in {where} was not created by reid-hpo (no spec); "
            "give the spec another name"
        )
    if stored.fingerprint() != spec.fingerprint():
        diff = _first_difference(stored.model_dump(mode="json"), spec.model_dump(mode="json"))
        raise StudyExistsError(
            f"study {spec.name!r} in {where} has a different spec (first difference: {diff}); "
            "give the spec another name or delete the old study"
        )
    logger.info("resuming study %r in %s", spec.name, where)
    return optuna.load_study(
        study_name=spec.name,
        storage=storage,
        sampler=build_sampler(spec),
        pruner=build_pruner(spec),
    )


def load_study(
    name: str, storage_url: StorageLike, *, seed_offset: int = 0
) -> tuple[optuna.Study, StudySpec]:
    """Load a study and its spec, with the sampler and pruner rebuilt from the stored spec.

    Args:
        name: The study name.
        storage_url: Storage URL (opened without heartbeats: a worker opens its own storage
            with the study's heartbeat settings) or an open storage (kept open: the study
            uses it).
        seed_offset: Passed to :func:`hpo.search.build_sampler` (distinct per worker).

    Returns:
        ``(study, spec)``.

    Raises:
        StudyNotFoundError: No such study (the message lists the available ones).
        SpecError: The study has no (valid) reid-hpo spec.
        StorageError: The storage cannot be used.
    """
    storage = (
        open_storage(storage_url, must_exist=True) if isinstance(storage_url, str) else storage_url
    )
    where = mask_url(getattr(storage, "url", type(storage).__name__))
    with storage_errors(where):
        study_id = study_id_of(name, storage, where)
        spec = read_spec(storage.get_study_user_attrs(study_id), name)
        if spec is None:
            raise SpecError(
                f"study {name!r}",
                "has no reid-hpo spec (it was not created by 'reid-hpo study create')",
            )
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=build_sampler(spec, seed_offset=seed_offset),
            pruner=build_pruner(spec),
        )
    return study, spec


@dataclass(frozen=True)
class DeletedStudy:
    """What :func:`delete_study` did."""

    n_trials: int
    artifacts: Path | str | None
    """The study's artifact folder, or its ``s3://`` prefix (None for a study without
    reid-hpo spec or uuid)."""
    artifacts_removed: bool
    artifacts_error: str | None = None
    """Why the folder was not removed completely, when it was not."""


def delete_study(
    name: str, storage_url: StorageLike, *, keep_artifacts: bool = False
) -> DeletedStudy:
    """Delete a study, all its trials and, unless ``keep_artifacts``, its artifact folder (and,
    with ``artifacts.kind: s3``, every object under its prefix ``<prefix>/<uuid>/``).

    The folder is named by the study's uuid, so nothing of another study (a re-created one of
    the same name included) is touched. A folder this machine does not see is reported, not
    removed. A folder whose marker names another storage (this database is a copy) is refused
    before anything is deleted.

    Raises:
        StudyNotFoundError: No such study.
        StudyCopiedError: The folder belongs to the study in another storage.
    """
    with reading(name, storage_url, "`study delete` ran") as (storage, where, study_id):
        attrs = storage.get_study_user_attrs(study_id)
        spec, study_uuid = read_spec_or_none(attrs, name), attrs.get(StudyAttr.UUID)
        if not keep_artifacts and spec is not None and isinstance(study_uuid, str):
            _refuse_a_copy(storage, spec, study_uuid, name)
        n_trials = storage.get_n_trials(study_id)
        storage.delete_study(study_id)
    logger.info("deleted study %r (%d trials) from %s", name, n_trials, where)
    if spec is None or not isinstance(study_uuid, str):
        return DeletedStudy(n_trials, None, artifacts_removed=False)
    if spec.artifacts.kind == "s3":
        return _delete_objects(n_trials, spec, study_uuid, keep=keep_artifacts)
    if keep_artifacts:
        return DeletedStudy(n_trials, study_dir(spec.artifacts.root, study_uuid), False)
    removed = remove_study_artifacts(spec.artifacts.root, study_uuid)
    return DeletedStudy(n_trials, removed.folder, removed.removed, removed.error)


def _delete_objects(n_trials: int, spec: StudySpec, study_uuid: str, *, keep: bool) -> DeletedStudy:
    """The object-store half of :func:`delete_study`: the study's prefix, and this host's
    cache of it."""
    prefix = f"{spec.artifacts.location}/{study_uuid}/"
    if keep:
        return DeletedStudy(n_trials, prefix, False)
    try:
        mirror_of(spec.artifacts).remove_study(study_uuid)
    except ObjectStoreError as exc:
        return DeletedStudy(n_trials, prefix, False, str(exc))
    return DeletedStudy(n_trials, prefix, True)


def _refuse_a_copy(
    storage: optuna.storages.BaseStorage, spec: StudySpec, study_uuid: str, name: str
) -> None:
    record, identity = read_marker(spec.artifacts, study_uuid), identity_of(storage)
    if record is not None and identity is not None:
        folder = marker_where(spec.artifacts, study_uuid).removesuffix(f"/{MARKER_NAME}")
        check_owner(record, name, identity, folder)


def ensure_study_uuid(study: optuna.Study) -> str:
    """The study's uuid; a study created before uuids existed is given one (call it under the
    study lock, so that concurrent first workers agree)."""
    value = study.user_attrs.get(StudyAttr.UUID)
    if isinstance(value, str):
        return value
    value = uuid.uuid4().hex
    study.set_user_attr(StudyAttr.UUID, value)
    return value


__all__ = [
    "DeletedStudy",
    "StorageLike",
    "create_study",
    "delete_study",
    "deleted_meanwhile",
    "ensure_study_uuid",
    "load_study",
    "opened",
    "reading",
    "storage_errors",
    "study_id_of",
]
