"""Read-only views of a study: the list of studies, status, the best trial."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.errors import NoCompletedTrialError
from hpo.search import RungPlan
from hpo.search import rung_plan
from hpo.spec import HeartbeatSpec
from hpo.spec import StudySpec
from hpo.storage import heartbeat_ages
from hpo.storage import missing_sqlite_file
from hpo.study._accounting import ComputeAccount
from hpo.study._accounting import TrialCompute
from hpo.study._accounting import compute_account
from hpo.study._accounting import trial_compute
from hpo.study._artifacts import resolve_stored
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import opened
from hpo.study._lifecycle import reading
from hpo.study._retrain_lease import RetrainInProgress
from hpo.study._retrain_lease import retrain_in_progress
from hpo.study.records import TrialAttr
from hpo.study.records import best_trial
from hpo.study.records import direction_name
from hpo.study.records import read_spec_or_none
from hpo.study.records import rung_of
from hpo.study.records import stored_retrain_result
from hpo.study.records import stored_test_result

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Number of trials in each Optuna state (every state listed, zeros included)."""
    counts = Counter(t.state.name for t in trials)
    return {state.name: counts.get(state.name, 0) for state in TrialState}


def list_studies(storage_url: StorageLike) -> list[StudyInfo]:
    """Every study in the storage, sorted by name, with trial counts by state and best value.

    A SQLite file that does not exist holds no study (and is not created).
    """
    if isinstance(storage_url, str) and missing_sqlite_file(storage_url):
        return []
    infos = []
    with opened(storage_url) as (storage, _):
        for frozen in storage.get_all_studies():
            try:
                study_id = storage.get_study_id_from_name(frozen.study_name)
                trials = storage.get_all_trials(study_id, deepcopy=False)
            except KeyError:  # deleted by another client since the list was read
                continue
            direction = direction_name(frozen.directions)
            best = best_trial(trials, direction)
            spec = read_spec_or_none(frozen.user_attrs, frozen.study_name)
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


@dataclass(frozen=True)
class RungCount:
    """The trials of one rung of a ``fidelity:`` study, by state."""

    rung: int
    epochs: int
    states: dict[str, int]


def rung_counts(trials: list[FrozenTrial], plan: RungPlan) -> list[RungCount]:
    """Trials per rung and state, cheapest rung first (trials not placed yet are left out)."""
    by_rung: dict[int, list[FrozenTrial]] = {level: [] for level in range(len(plan.ladder))}
    for trial in trials:
        rung = rung_of(trial)
        if rung is not None:
            by_rung[rung.rung].append(trial)
    return [
        RungCount(level, plan.ladder[level], state_counts(placed))
        for level, placed in by_rung.items()
    ]


def finished_epochs(trials: list[FrozenTrial]) -> int:
    """Epochs of a ``fidelity:`` study's finished trials, each at its rung's epochs."""
    return sum(
        rung.epochs for t in trials if t.state in _FINISHED and (rung := rung_of(t)) is not None
    )


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial: who runs it and how recently it signalled life."""

    number: int
    worker: str | None
    heartbeat_age_s: float | None
    last_step: int | None
    last_value: float | None
    params: dict[str, Any]
    epoch: int | None = None
    """Epochs trained so far (1-based: the last finished epoch)."""
    epochs: int | None = None
    """Epochs of the training schedule."""
    val_map_pct: float | None = None
    """Validation mAP of the last evaluation, in %."""
    elapsed_s: float | None = None
    eta_s: float | None = None
    """Seconds until the trial's last epoch at its pace so far (None before its first epoch)."""
    rung: int | None = None
    """The trial's rung in a ``fidelity:`` study (0: the cheapest), else None."""


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
    compute: ComputeAccount | None = None
    """What the search spent and what pruning saved (:mod:`hpo.study._accounting`)."""
    rungs: list[RungCount] = field(default_factory=list)
    """Trials per rung of a ``fidelity:`` study (empty for other studies)."""
    epochs_finished: int | None = None
    """A ``fidelity:`` study's finished epochs (its budget counts epochs), else None."""
    epochs_budget: int | None = None
    """A ``fidelity:`` study's budget in epochs (``n_trials`` full schedules), else None."""
    resume_skipped: dict[int, str] = field(default_factory=dict)
    """Retries that started from epoch 1 instead of their predecessor's checkpoint: trial
    number -> why (no checkpoint reachable on that host or in the object store, or a record
    of another study or configuration)."""
    retrain: RetrainInProgress | None = None
    """The ``study retrain`` holding the study's retrain lease, if one does."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def study_status(name: str, storage_url: StorageLike) -> StudyStatus:
    """Counts by state, best trial, running trials (worker, heartbeat age), budget used.

    Raises:
        StudyNotFoundError: No such study.
    """
    with reading(name, storage_url, "`study status` read it") as (storage, where, study_id):
        trials = storage.get_all_trials(study_id, deepcopy=False)
        direction = direction_name(storage.get_study_directions(study_id))
        spec = read_spec_or_none(storage.get_study_user_attrs(study_id), name)
        ages = heartbeat_ages(storage, study_id)
        grace = spec.heartbeat.grace_s if spec else HeartbeatSpec().grace_s
        retrain = retrain_in_progress(storage, study_id, grace, time.time())
    best = best_trial(trials, direction)
    epochs = spec.training.epochs if spec else None
    plan = rung_plan(spec) if spec else None
    now = datetime.now()
    running = [
        _running_trial(t, ages.get(t.number), epochs, now)
        for t in trials
        if t.state == TrialState.RUNNING
    ]
    elapsed = _elapsed_hours(trials, now)
    budget = spec.budget if spec else None
    epochs_budget = plan.budget_epochs(budget.n_trials) if plan and budget else None
    epochs_done = finished_epochs(trials) if plan else None
    n_finished = sum(1 for t in trials if t.state in _FINISHED)
    used = []
    if epochs_budget and epochs_done is not None:
        used.append(epochs_done / epochs_budget)
    elif budget and budget.n_trials:
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
        compute=compute_account(trials, epochs),
        rungs=rung_counts(trials, plan) if plan else [],
        epochs_finished=epochs_done,
        epochs_budget=epochs_budget,
        resume_skipped={
            t.number: str(t.user_attrs[TrialAttr.RESUME_SKIPPED])
            for t in trials
            if t.user_attrs.get(TrialAttr.RESUME_SKIPPED)
        },
        retrain=retrain,
    )


def _elapsed_hours(trials: list[FrozenTrial], now: datetime) -> float | None:
    """Hours from the first trial's start to now, or to the last trial's end when no trial is
    RUNNING or WAITING (a finished study's clock stops)."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not starts:
        return None
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    active = any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    end = now if active or not ends else max(ends)
    return (end - min(starts)).total_seconds() / 3600


def _running_trial(
    t: FrozenTrial, heartbeat_age_s: float | None, epochs: int | None, now: datetime
) -> RunningTrial:
    rung = rung_of(t)
    if rung is not None:
        epochs = rung.epochs
    last_step = max(t.intermediate_values) if t.intermediate_values else None
    done = t.user_attrs.get(TrialAttr.EPOCHS_DONE)
    epoch = int(done) if isinstance(done, int) else (None if last_step is None else last_step + 1)
    elapsed = (now - t.datetime_start).total_seconds() if t.datetime_start else None
    resumed = t.user_attrs.get(TrialAttr.RESUMED_FROM_EPOCH)
    # A resumed trial trained only the epochs after its checkpoint in this attempt.
    trained_here = None if epoch is None else epoch - (int(resumed) if resumed else 0)
    eta = None
    if elapsed is not None and epochs and trained_here and trained_here > 0:
        eta = elapsed / trained_here * max(epochs - epoch, 0)
    val_map = t.user_attrs.get(TrialAttr.VAL_MAP_PCT)
    return RunningTrial(
        number=t.number,
        worker=t.user_attrs.get(TrialAttr.WORKER),
        heartbeat_age_s=heartbeat_age_s,
        last_step=last_step,
        last_value=t.intermediate_values[last_step] if last_step is not None else None,
        params=dict(t.params),
        epoch=epoch,
        epochs=epochs,
        val_map_pct=float(val_map) if isinstance(val_map, int | float) else None,
        elapsed_s=elapsed,
        eta_s=eta,
        rung=rung.rung if rung is not None else None,
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
    retrain_result: dict[str, Any] | None = None
    """The test result of a trial retrained on all training ids (``study retrain``)."""
    trial_compute: TrialCompute | None = None
    """What the best trial's attempt spent."""
    compute: ComputeAccount | None = None
    """What the whole search spent and what pruning saved."""
    folder: str | None = None
    """The trial's artifact folder as an absolute path on this machine (``checkpoint_dir`` is
    stored relative to the spec's ``artifacts.root``); its ``config.json`` reruns the trial
    with ``reid-hpo train --config``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def best_trial_of(name: str, storage_url: StorageLike) -> BestTrial:
    """The best COMPLETE trial on the validation objective, plus the stored test result.

    Raises:
        StudyNotFoundError: No such study.
        NoCompletedTrialError: No trial has completed yet (in a ``fidelity:`` study: no
            full-schedule trial).
    """
    with reading(name, storage_url, "`study best` read it") as (storage, _, study_id):
        trials = storage.get_all_trials(study_id, deepcopy=False)
        direction = direction_name(storage.get_study_directions(study_id))
        attrs = storage.get_study_user_attrs(study_id)
    best = best_trial(trials, direction)
    spec = read_spec_or_none(attrs, name)
    if best is None or best.value is None:
        what = "full-schedule (top-rung) trial" if spec and spec.fidelity.enabled else "trial"
        raise NoCompletedTrialError(f"study {name!r} has no completed {what} yet")
    user = best.user_attrs
    return BestTrial(
        study=name,
        metric=spec.objective.metric if spec else None,
        direction=direction,
        number=best.number,
        value=best.value,
        params=dict(best.params),
        val_metrics=dict(user.get(TrialAttr.VAL_METRICS) or {}),
        cmc=user.get(TrialAttr.CMC),
        checkpoint_dir=user.get(TrialAttr.CHECKPOINT_DIR),
        seed=user.get(TrialAttr.SEED),
        test_result=stored_test_result(attrs),
        retrain_result=stored_retrain_result(attrs),
        trial_compute=trial_compute(best),
        folder=_absolute_folder(user.get(TrialAttr.CHECKPOINT_DIR), spec),
        compute=compute_account(trials, spec.training.epochs if spec else None),
    )


def _absolute_folder(stored: str | None, spec: StudySpec | None) -> str | None:
    if not stored:
        return None
    root = Path(spec.artifacts.root) if spec else Path()
    return str(resolve_stored(root, stored).absolute())


__all__ = [
    "BestTrial",
    "RungCount",
    "RunningTrial",
    "StudyInfo",
    "StudyStatus",
    "TrialSummary",
    "best_trial_of",
    "finished_epochs",
    "list_studies",
    "rung_counts",
    "state_counts",
    "study_status",
]
