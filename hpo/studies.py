"""Study lifecycle on a storage: create, load, list, status, best trial, export, delete.

A study created here carries its whole spec as the study user attr ``"spec"`` (JSON text;
never the storage URL) plus ``"reid_hpo_version"``, so any worker can rebuild the identical
sampler, pruner and training recipe from the name alone. The best trial's one-off test-set
evaluation lives in the study user attr ``"test_result"``, apart from the validation scores.

Every function takes a storage URL (opened and closed inside the call) or an open storage
(left open for the caller, e.g. a worker holding a heartbeat-enabled storage).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo import __version__
from hpo.errors import NoCompletedTrialError
from hpo.errors import ReidHpoError
from hpo.errors import SpecError
from hpo.errors import StorageError
from hpo.errors import StudyExistsError
from hpo.errors import StudyNotFoundError
from hpo.pruners import build_pruner
from hpo.samplers import build_sampler
from hpo.spec import StudySpec
from hpo.spec import parse_spec
from hpo.spec import spec_from_json
from hpo.storage import close_storage
from hpo.storage import mask_url
from hpo.storage import open_storage

logger = logging.getLogger(__name__)

SPEC_ATTR = "spec"
VERSION_ATTR = "reid_hpo_version"
TEST_RESULT_ATTR = "test_result"
# How long a `create --resume` racing a concurrent creator waits for the spec attr to appear.
_SPEC_WAIT_S = 10.0
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_MAX_LISTED = 20

StorageLike = str | optuna.storages.BaseStorage


@contextlib.contextmanager
def _storage_errors(where: str) -> Iterator[None]:
    """Turn database failures in the middle of an operation into one-line StorageErrors."""
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        original = getattr(exc, "orig", None) or exc
        first = str(original).strip().splitlines()
        reason = first[0] if first else type(original).__name__
        raise StorageError(f"storage {where} failed: {reason}") from None


@contextlib.contextmanager
def _opened(
    storage: StorageLike, *, heartbeat: bool = False
) -> Iterator[tuple[optuna.storages.BaseStorage, str]]:
    """Yield ``(storage, masked description)``; close it afterwards if it was opened here."""
    if isinstance(storage, str):
        opened = open_storage(storage, heartbeat=heartbeat)
        try:
            with _storage_errors(mask_url(opened.url)):
                yield opened, mask_url(opened.url)
        finally:
            close_storage(opened)
    else:
        where = mask_url(getattr(storage, "url", type(storage).__name__))
        with _storage_errors(where):
            yield storage, where


def _not_found(name: str, storage: optuna.storages.BaseStorage, where: str) -> StudyNotFoundError:
    names = sorted(s.study_name for s in storage.get_all_studies())
    available = ", ".join(names[:_MAX_LISTED]) if names else "none"
    if len(names) > _MAX_LISTED:
        available += f", ... ({len(names) - _MAX_LISTED} more; see 'reid-hpo study list')"
    return StudyNotFoundError(f"no study {name!r} in {where}; available: {available}")


def _study_id(name: str, storage: optuna.storages.BaseStorage, where: str) -> int:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        raise _not_found(name, storage, where) from None


def _stored_spec(attrs: dict[str, Any], name: str) -> StudySpec | None:
    raw = attrs.get(SPEC_ATTR)
    if raw is None:
        return None
    source = f"study {name!r}"
    if isinstance(raw, dict):
        return parse_spec(raw, source=source)
    return spec_from_json(str(raw), source=source)


def spec_from_study(study: optuna.Study) -> StudySpec:
    """The spec stored with ``study`` (study user attr ``"spec"``).

    Raises:
        SpecError: The study was not created by reid-hpo, or its stored spec is invalid.
    """
    spec = _stored_spec(study.user_attrs, study.study_name)
    if spec is None:
        raise SpecError(
            f"study {study.study_name!r}",
            "has no reid-hpo spec (it was not created by 'reid-hpo study create')",
        )
    return spec


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
    study is created and every caller gets it.

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
    """
    storage = open_storage(storage_url) if isinstance(storage_url, str) else storage_url
    where = mask_url(getattr(storage, "url", type(storage).__name__))
    with _storage_errors(where):
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
                    f"study {spec.name!r} already exists in {where}; use --resume to continue "
                    "it, or give the spec another name"
                ) from None
            return _resume(spec, storage, where)
        try:
            study.set_user_attr(SPEC_ATTR, spec.model_dump_json())
            study.set_user_attr(VERSION_ATTR, __version__)
        except BaseException:
            # Never leave a half-written study behind.
            with contextlib.suppress(Exception):
                optuna.delete_study(study_name=spec.name, storage=storage)
            raise
    logger.info("created study %r in %s", spec.name, where)
    return study


def _resume(spec: StudySpec, storage: optuna.storages.BaseStorage, where: str) -> optuna.Study:
    study_id = _study_id(spec.name, storage, where)
    deadline = time.monotonic() + _SPEC_WAIT_S
    stored = _stored_spec(storage.get_study_user_attrs(study_id), spec.name)
    while stored is None and time.monotonic() < deadline:
        # A concurrent creator has made the study but not yet written its spec.
        time.sleep(0.2)
        stored = _stored_spec(storage.get_study_user_attrs(study_id), spec.name)
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
    name: str, storage_url: StorageLike, *, heartbeat: bool = True, seed_offset: int = 0
) -> tuple[optuna.Study, StudySpec]:
    """Load a study and its spec, with the sampler and pruner rebuilt from the stored spec.

    Args:
        name: The study name.
        storage_url: Storage URL or an open storage (kept open: the study uses it).
        heartbeat: When opening a URL, enable heartbeats and stale-trial retries.
        seed_offset: Passed to :func:`hpo.samplers.build_sampler` (distinct per worker).

    Returns:
        ``(study, spec)``.

    Raises:
        StudyNotFoundError: No such study (the message lists the available ones).
        SpecError: The study has no (valid) reid-hpo spec.
        StorageError: The storage cannot be used.
    """
    storage = (
        open_storage(storage_url, heartbeat=heartbeat)
        if isinstance(storage_url, str)
        else storage_url
    )
    where = mask_url(getattr(storage, "url", type(storage).__name__))
    with _storage_errors(where):
        study_id = _study_id(name, storage, where)
        spec = _stored_spec(storage.get_study_user_attrs(study_id), name)
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


def delete_study(name: str, storage_url: StorageLike) -> int:
    """Delete a study and all its trials (checkpoints on disk are left alone).

    Returns:
        The number of trials deleted.

    Raises:
        StudyNotFoundError: No such study.
    """
    with _opened(storage_url) as (storage, where):
        study_id = _study_id(name, storage, where)
        n_trials = storage.get_n_trials(study_id)
        storage.delete_study(study_id)
    logger.info("deleted study %r (%d trials) from %s", name, n_trials, where)
    return n_trials


@dataclass(frozen=True)
class StudyInfo:
    """One line of ``study list``."""

    name: str
    direction: str
    metric: str | None
    n_trials: int
    states: dict[str, int]
    best_value: float | None
    best_trial: int | None


def _best(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None and not math.isnan(t.value)
    ]
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda t: (t.value, -t.number))


def _direction_name(directions: list[optuna.study.StudyDirection]) -> str:
    return directions[0].name.lower() if len(directions) == 1 else "multi-objective"


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Number of trials in each Optuna state (every state listed, zeros included)."""
    counts = Counter(t.state.name for t in trials)
    return {state.name: counts.get(state.name, 0) for state in TrialState}


def list_studies(storage_url: StorageLike) -> list[StudyInfo]:
    """Every study in the storage, sorted by name, with trial counts by state and best value."""
    infos = []
    with _opened(storage_url) as (storage, _):
        for frozen in storage.get_all_studies():
            study_id = storage.get_study_id_from_name(frozen.study_name)
            trials = storage.get_all_trials(study_id, deepcopy=False)
            direction = _direction_name(frozen.directions)
            best = _best(trials, direction)
            spec = _safe_spec(frozen.user_attrs, frozen.study_name)
            infos.append(
                StudyInfo(
                    name=frozen.study_name,
                    direction=direction,
                    metric=spec.objective.metric if spec else None,
                    n_trials=len(trials),
                    states=state_counts(trials),
                    best_value=best.value if best else None,
                    best_trial=best.number if best else None,
                )
            )
    return sorted(infos, key=lambda info: info.name)


def _safe_spec(attrs: dict[str, Any], name: str) -> StudySpec | None:
    try:
        return _stored_spec(attrs, name)
    except SpecError as exc:
        logger.warning("study %r: stored spec is unreadable: %s", name, exc)
        return None


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial: who runs it and how recently it signalled life."""

    number: int
    worker: str | None
    heartbeat_age_s: float | None
    last_step: int | None
    last_value: float | None
    params: dict[str, Any]


@dataclass(frozen=True)
class TrialSummary:
    """A finished trial in short."""

    number: int
    value: float | None
    params: dict[str, Any]


@dataclass(frozen=True)
class StudyStatus:
    """What ``study status`` shows."""

    name: str
    storage: str
    direction: str
    metric: str | None
    states: dict[str, int]
    n_finished: int
    n_trials_budget: int | None
    timeout_hours: float | None
    elapsed_hours: float | None
    budget_used: float | None
    best: TrialSummary | None
    running: list[RunningTrial] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def _heartbeat_ages(storage: optuna.storages.BaseStorage, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each trial number that has one (DB clock)."""
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


def study_status(name: str, storage_url: StorageLike) -> StudyStatus:
    """Counts by state, best trial, running trials (worker, heartbeat age), budget used.

    Raises:
        StudyNotFoundError: No such study.
    """
    with _opened(storage_url) as (storage, where):
        study_id = _study_id(name, storage, where)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        direction = _direction_name(storage.get_study_directions(study_id))
        spec = _safe_spec(storage.get_study_user_attrs(study_id), name)
        ages = _heartbeat_ages(storage, study_id)
    best = _best(trials, direction)
    running = []
    for t in trials:
        if t.state != TrialState.RUNNING:
            continue
        last_step = max(t.intermediate_values) if t.intermediate_values else None
        running.append(
            RunningTrial(
                number=t.number,
                worker=t.user_attrs.get("worker"),
                heartbeat_age_s=ages.get(t.number),
                last_step=last_step,
                last_value=t.intermediate_values[last_step] if last_step is not None else None,
                params=dict(t.params),
            )
        )
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    elapsed = (datetime.now() - min(starts)).total_seconds() / 3600 if starts else None
    n_finished = sum(1 for t in trials if t.state in _FINISHED)
    budget = spec.budget if spec else None
    used = []
    if budget and budget.n_trials:
        used.append(n_finished / budget.n_trials)
    if budget and budget.timeout_hours and elapsed is not None:
        used.append(elapsed / budget.timeout_hours)
    return StudyStatus(
        name=name,
        storage=where,
        direction=direction,
        metric=spec.objective.metric if spec else None,
        states=state_counts(trials),
        n_finished=n_finished,
        n_trials_budget=budget.n_trials if budget else None,
        timeout_hours=budget.timeout_hours if budget else None,
        elapsed_hours=elapsed,
        budget_used=max(used) if used else None,
        best=TrialSummary(best.number, best.value, dict(best.params)) if best else None,
        running=running,
    )


@dataclass(frozen=True)
class BestTrial:
    """The best validation trial and, separately, its one-off test-set result."""

    study: str
    metric: str | None
    direction: str
    number: int
    value: float
    params: dict[str, Any]
    val_metrics: dict[str, Any]
    cmc: list[float] | None
    checkpoint_dir: str | None
    seed: int | None
    test_result: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def best_trial(name: str, storage_url: StorageLike) -> BestTrial:
    """The best COMPLETE trial on the validation objective, plus the stored test result.

    Raises:
        StudyNotFoundError: No such study.
        NoCompletedTrialError: No trial has completed yet.
    """
    with _opened(storage_url) as (storage, where):
        study_id = _study_id(name, storage, where)
        trials = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        direction = _direction_name(storage.get_study_directions(study_id))
        attrs = storage.get_study_user_attrs(study_id)
    best = _best(trials, direction)
    if best is None or best.value is None:
        raise NoCompletedTrialError(f"study {name!r} has no completed trial yet")
    spec = _safe_spec(attrs, name)
    user = best.user_attrs
    return BestTrial(
        study=name,
        metric=spec.objective.metric if spec else None,
        direction=direction,
        number=best.number,
        value=best.value,
        params=dict(best.params),
        val_metrics=dict(user.get("val_metrics") or {}),
        cmc=user.get("cmc"),
        checkpoint_dir=user.get("checkpoint_dir"),
        seed=user.get("seed"),
        test_result=attrs.get(TEST_RESULT_ATTR),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _trial_record(t: FrozenTrial) -> dict[str, Any]:
    duration = t.duration.total_seconds() if t.duration else None
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value,
        "datetime_start": _iso(t.datetime_start),
        "datetime_complete": _iso(t.datetime_complete),
        "duration_s": duration,
        "params": dict(t.params),
        "intermediate_values": {str(k): v for k, v in sorted(t.intermediate_values.items())},
        "user_attrs": dict(t.user_attrs),
        "retry_of": t.system_attrs.get("failed_trial"),
    }


def _flat_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in record.items() if k not in ("params", "user_attrs")}
    row["intermediate_values"] = json.dumps(record["intermediate_values"])
    for key, value in record["params"].items():
        row[f"params_{key}"] = value
    for key, value in record["user_attrs"].items():
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            for sub, sub_value in value.items():
                row[f"user_attrs_{key}_{sub}"] = sub_value
        elif isinstance(value, dict | list):
            row[f"user_attrs_{key}"] = json.dumps(value)
        else:
            row[f"user_attrs_{key}"] = value
    return row


def export_trials(
    name: str, storage_url: StorageLike, fmt: str, out: str | Path | None = None
) -> str:
    """Every trial of a study as CSV (one row per trial) or JSON (study + trials).

    CSV columns: number, state, value, datetimes, duration_s, intermediate_values (JSON),
    retry_of, then ``params_<name>`` and ``user_attrs_<key>`` (dict attrs such as
    ``val_metrics`` are spread into ``user_attrs_val_metrics_<metric>``).

    Args:
        name: The study name.
        storage_url: Storage URL or an open storage.
        fmt: ``"csv"`` or ``"json"``.
        out: Also write the text to this file.

    Returns:
        The exported text.

    Raises:
        StudyNotFoundError: No such study.
        ReidHpoError: Unknown format or unwritable ``out``.
    """
    if fmt not in ("csv", "json"):
        raise ReidHpoError(f"unknown export format {fmt!r}; expected csv or json")
    with _opened(storage_url) as (storage, where):
        study_id = _study_id(name, storage, where)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        direction = _direction_name(storage.get_study_directions(study_id))
        attrs = storage.get_study_user_attrs(study_id)
    records = [_trial_record(t) for t in sorted(trials, key=lambda t: t.number)]
    if fmt == "json":
        spec = _safe_spec(attrs, name)
        document = {
            "study": name,
            "direction": direction,
            "spec": spec.model_dump(mode="json") if spec else None,
            "test_result": attrs.get(TEST_RESULT_ATTR),
            "trials": records,
        }
        text = json.dumps(document, indent=2, default=str) + "\n"
    else:
        rows = [_flat_row(r) for r in records]
        fixed = ["number", "state", "value", "datetime_start", "datetime_complete", "duration_s"]
        fixed += ["intermediate_values", "retry_of"]
        extra = sorted({key for row in rows for key in row} - set(fixed))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fixed + extra, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if out is not None:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ReidHpoError(f"cannot write {out}: {exc.strerror or exc}") from None
    return text


__all__ = [
    "SPEC_ATTR",
    "TEST_RESULT_ATTR",
    "VERSION_ATTR",
    "BestTrial",
    "RunningTrial",
    "StudyInfo",
    "StudyStatus",
    "TrialSummary",
    "best_trial",
    "create_study",
    "delete_study",
    "export_trials",
    "list_studies",
    "load_study",
    "spec_from_study",
    "study_status",
]
