"""Workers: long-lived processes that take trials from a shared study until its budget is met.

One worker = one process = one device. Before each trial a worker takes the study lock
(:func:`hpo.storage.open_study_lock`), fails heartbeat-stale trials of dead workers (which
re-queues them as WAITING retries), counts the trials and, if the budget allows, asks for a
trial; the lock is released as soon as that trial is RUNNING in the storage. So N workers
finish exactly ``budget.n_trials`` COMPLETE + PRUNED trials, retries first. While the
remaining budget is only "pending" (other workers' RUNNING trials) a worker waits and keeps
failing stale trials (a watchdog), so a dead worker's trial is retried even when no new
trial starts.

In a ``fidelity:`` study (:mod:`hpo.worker._rungs`) the same check first enqueues the
promotions that are due, counts the budget in epochs (each trial with its rung's epochs) and
places a new trial on its bracket's bottom rung before the lock is released.

Trials run inside ``study.optimize(n_trials=1)`` (:func:`~hpo.worker.run_trial`) so that
Optuna records heartbeats; the storage is Optuna's own, opened by
:func:`hpo.storage.open_storage` (heartbeats, stale-trial retries and reconnects as there).
SIGTERM/SIGINT stop a worker after the current epoch: the trial is checkpointed and handed back
(FAIL with ``fail_reason="interrupted"`` + a WAITING copy another worker resumes). A second
signal stops training at once and hands the trial back with its last checkpoint
(:mod:`hpo.worker._signals`). Either way the worker returns normally and its result's
``exit_code`` is ``128 + signal number`` (143 for SIGTERM), so that a scheduler starts another.

:func:`~hpo.worker.run_supervisor` runs one worker process per GPU.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.errors import StudyNotFoundError
from hpo.search import RungPlan
from hpo.spec import ArtifactsSpec
from hpo.spec import StudySpec
from hpo.storage import Heartbeat
from hpo.storage import StorageIdentity
from hpo.storage import StudyLock
from hpo.storage import check_heartbeat_override
from hpo.storage import close_storage
from hpo.storage import normalise_url
from hpo.storage import open_storage
from hpo.storage import open_study_lock
from hpo.storage import retry_on_disconnect
from hpo.storage import storage_identity
from hpo.study import apply_retention
from hpo.study import ensure_marker
from hpo.study import ensure_study_uuid
from hpo.study import load_study
from hpo.study import refresh_results_note
from hpo.study.records import StudyAttr
from hpo.worker._budget import Decision
from hpo.worker._budget import TrialCounts
from hpo.worker._budget import decide
from hpo.worker._budget import study_started_at
from hpo.worker._faults import CUDA_ERROR
from hpo.worker._faults import DeviceRestartRequired
from hpo.worker._faults import FlappingGuard
from hpo.worker._faults import WorkerError
from hpo.worker._objective import TrialObjective
from hpo.worker._objective import TrialResult
from hpo.worker._objective import make_objective
from hpo.worker._objective import run_trial
from hpo.worker._rungs import EpochCounts
from hpo.worker._rungs import decide_epochs
from hpo.worker._rungs import enqueue_promotions
from hpo.worker._rungs import next_epochs
from hpo.worker._signals import SignalStop
from hpo.worker._signals import StopNow
from hpo.worker._signals import exit_code_for
from hpo.worker._signals import shielded
from hpo.worker._signals import stop_after_s

logger = logging.getLogger(__name__)

WORKER_ROLE = "reid-hpo-worker"
"""A worker's ``application_name`` prefix in ``pg_stat_activity`` (then ``<host>:<pid>``)."""

__all__ = [
    "FlappingGuard",
    "WorkerError",
    "WorkerResult",
    "run_worker",
]


@dataclass(frozen=True)
class WorkerResult:
    """What one :func:`run_worker` call did.

    Attributes:
        trials_run: Trials this worker started (including retries it resumed).
        complete: Of those, COMPLETE.
        pruned: Of those, PRUNED.
        failed: Of those, FAIL (including an interrupted, handed-back trial).
        stop_reason: ``"budget"`` (enough trials finished), ``"timeout"`` (study time budget
            spent), ``"max_trials"`` (this worker's own limit) or ``"interrupted"``.
        signum: The stop signal that ended the worker (SIGTERM, SIGINT), None if none came.
    """

    trials_run: int
    complete: int
    pruned: int
    failed: int
    stop_reason: str
    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """0, or ``128 + signum`` for a worker stopped by a signal (143 for SIGTERM, 130 for
        SIGINT): its work is not done, a scheduler should start it again."""
        return exit_code_for(self.signum) if self.signum is not None else 0


def run_worker(
    study_name: str,
    storage_url: str,
    *,
    device: str = "cpu",
    max_trials: int | None = None,
    stop_event: threading.Event | None = None,
    poll_interval_s: float | None = None,
    trainer_factory: Any = None,
) -> WorkerResult:
    """Run trials of a study in this process until its budget is met.

    Args:
        study_name: The study (created beforehand with ``reid-hpo study create``).
        storage_url: The shared storage URL.
        device: The torch device for training (``"cpu"``, ``"cuda"``, ``"auto"``).
        max_trials: Stop after this many trials of this worker (None: no own limit).
        stop_event: Set it to stop after the current epoch (SIGTERM/SIGINT set it too when
            this runs in the main thread; a second signal stops at once).
        poll_interval_s: Seconds between budget checks while waiting for other workers;
            the study's heartbeat interval if None.
        trainer_factory: Passed to :func:`~hpo.worker.make_objective` (tests).

    Returns:
        What the worker did and why it stopped.

    Raises:
        hpo.errors.StudyNotFoundError: No such study, or it was deleted while this worker ran.
        hpo.errors.StorageError: ``$REID_HPO_HEARTBEAT`` disagrees with the study's interval.
        hpo.errors.ReidHpoError: ``$REID_HPO_STOP_AFTER_S`` is not a number >= 0.
        hpo.errors.SpecError, reid_core.errors.DatasetNotFoundError: A trial failed in a way
            every later trial would (the trial is recorded FAIL first).
        WorkerError: Trials keep failing the same way (flapping guard).
        DeviceRestartRequired: A sticky CUDA error, or out-of-memory trials in a row: exit
            with ``EXIT_RESTART`` so that the supervisor starts a fresh process.
    """
    url = normalise_url(storage_url)
    signals = SignalStop(
        stop_event if stop_event is not None else threading.Event(), stop_after_s()
    )
    try:
        with signals.installed():
            result = _run(
                study_name, url, signals.event, max_trials, poll_interval_s, device, trainer_factory
            )
    except StopNow:  # a second signal before the worker loop ran
        result = WorkerResult(0, 0, 0, 0, "interrupted")
    result = dataclasses.replace(result, signum=signals.signum)
    logger.info(
        "worker done (%s): %d trial(s), %d complete, %d pruned, %d failed",
        result.stop_reason,
        result.trials_run,
        result.complete,
        result.pruned,
        result.failed,
    )
    return result


def _run(
    study_name: str,
    url: str,
    stop: threading.Event,
    max_trials: int | None,
    poll_interval_s: float | None,
    device: str,
    trainer_factory: Any,
) -> WorkerResult:
    spec = _stored_spec(study_name, url)
    check_heartbeat_override(study_name, spec.heartbeat.interval)
    heartbeat = Heartbeat(spec.heartbeat.interval, spec.heartbeat.grace_s)
    # A worker (re)started while the database restarts waits for it instead of dying.
    storage = retry_on_disconnect(
        lambda: open_storage(url, heartbeat=heartbeat, must_exist=True, role=WORKER_ROLE),
        what="opening the storage",
    )
    lock = open_study_lock(storage, study_name)
    try:
        study, spec = load_study(study_name, storage)
        index, study_uuid = _join(study, lock, spec.artifacts, storage_identity(url))
        if index:
            # Distinct sampler seeds, else N workers propose the same first points; the first
            # worker (index 0) reproduces a single-worker study exactly.
            study, spec = load_study(study_name, storage, seed_offset=index)
        objective = make_objective(
            spec,
            study_name=study_name,
            study_uuid=study_uuid,
            device=device,
            stop_event=stop,
            trainer_factory=trainer_factory,
        )
        hours = spec.budget.timeout_hours
        loop = _WorkerLoop(
            study,
            lock,
            objective,
            n_trials=spec.budget.n_trials,
            timeout_s=hours * 3600.0 if hours is not None else None,
            poll_s=poll_interval_s if poll_interval_s is not None else spec.heartbeat.interval,
        )
        try:
            return loop.run(stop, max_trials)
        except StopNow:
            return loop.result("interrupted")  # a second signal outside a trial's training
    finally:
        with shielded():
            lock.close()
            close_storage(storage)


def _stored_spec(study_name: str, url: str) -> StudySpec:
    """The study's spec, read before the worker's own storage is opened with its heartbeat."""
    storage = retry_on_disconnect(
        lambda: open_storage(url, must_exist=True, role=WORKER_ROLE), what="opening the storage"
    )
    try:
        return load_study(study_name, storage)[1]
    finally:
        close_storage(storage)


def _join(
    study: optuna.Study, lock: StudyLock, artifacts: ArtifactsSpec, storage: StorageIdentity
) -> tuple[int, str]:
    """This worker's index (0 for the first worker of a study, 1 for the next, ...; a study
    user attr) and the study's uuid (given now to a study created before uuids existed).

    Raises:
        ArtifactsNotSharedError: This machine does not see the study's artifacts marker.
        StudyCopiedError: The marker names another storage (this database is a copy).
    """
    lock.acquire()
    try:
        study_uuid = ensure_study_uuid(study)
        ensure_marker(study, artifacts, study_uuid, storage)  # before this worker counts as joined
        index = int(study.user_attrs.get(StudyAttr.WORKERS_STARTED, 0))
        study.set_user_attr(StudyAttr.WORKERS_STARTED, index + 1)
    finally:
        lock.release()
    return index, study_uuid


class _WorkerLoop:
    """The budget-check / take / train loop of one worker (see the module docs)."""

    def __init__(
        self,
        study: optuna.Study,
        lock: StudyLock,
        objective: TrialObjective,
        *,
        n_trials: int | None,
        timeout_s: float | None,
        poll_s: float,
    ) -> None:
        self.study = study
        self.lock = lock
        self.objective = objective
        self.n_trials = n_trials
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.guard = FlappingGuard()
        self.states: collections.Counter[TrialState] = collections.Counter()

    def run(self, stop: threading.Event, max_trials: int | None) -> WorkerResult:
        stop_reason = "interrupted"
        while not stop.is_set():
            if max_trials is not None and sum(self.states.values()) >= max_trials:
                stop_reason = "max_trials"
                break
            decision, deadline = _check_budget(
                self.study, self.lock, self.n_trials, self.timeout_s, self.objective.plan
            )
            if decision is Decision.DONE:
                stop_reason = "budget"
                break
            if decision is Decision.TIMEOUT:
                stop_reason = "timeout"
                break
            if decision is Decision.WAIT:
                logger.debug("budget pending on other workers' trials; waiting %.0f s", self.poll_s)
                stop.wait(self.poll_s)
                continue
            result = self._run_one_trial(deadline)
            self.states[result.state] += 1
            if result.reason == CUDA_ERROR:
                raise DeviceRestartRequired(
                    f"trial {result.number} hit a CUDA error that leaves this process's GPU "
                    "context unusable; exiting for a fresh process"
                )
            failed = result.state is TrialState.FAIL
            if self.guard.record(result.reason, failed=failed) and not stop.is_set():
                raise self.guard.error(self.study.study_name)
        return self.result(stop_reason)

    def result(self, stop_reason: str) -> WorkerResult:
        """What this loop did so far, ending for ``stop_reason``."""
        return WorkerResult(
            trials_run=sum(self.states.values()),
            complete=self.states[TrialState.COMPLETE],
            pruned=self.states[TrialState.PRUNED],
            failed=self.states[TrialState.FAIL],
            stop_reason=stop_reason,
        )

    def _run_one_trial(self, deadline: float | None) -> TrialResult:
        """Ask for one trial under the held lock, release it once the trial exists, train it."""
        try:
            result = run_trial(
                self.study, self.objective, deadline=deadline, on_start=self.lock.release
            )
        finally:
            self.lock.release()
        apply_retention(self.study, self.objective.mirror)
        if result.state is TrialState.COMPLETE:
            self.lock.acquire()  # one note writer at a time: a note is written in parts
            try:
                refresh_results_note(self.study)  # the best on validation may have changed
            finally:
                self.lock.release()
        return result


def _check_budget(
    study: optuna.Study,
    lock: StudyLock,
    n_trials: int | None,
    timeout_s: float | None,
    plan: RungPlan | None,
) -> tuple[Decision, float | None]:
    """Take the lock, fail stale trials (watchdog), enqueue due promotions (a ``fidelity:``
    study) and decide; the lock stays held only when the decision is TAKE."""
    lock.acquire()
    try:
        _fail_stale_trials(study)
        started = study_started_at(study)
        elapsed_s = time.time() - started
        if plan is None:
            decision = decide(
                TrialCounts.of(study), n_trials=n_trials, elapsed_s=elapsed_s, timeout_s=timeout_s
            )
        else:
            decision = _decide_rungs(study, plan, n_trials, elapsed_s, timeout_s)
    except KeyError:
        lock.release()
        # Optuna's storages answer KeyError for a study id that no longer exists.
        raise StudyNotFoundError(
            f"study {study.study_name!r} was deleted while this worker ran; stopping"
        ) from None
    except BaseException:
        lock.release()
        raise
    if decision is not Decision.TAKE:
        lock.release()
    return decision, (started + timeout_s if timeout_s is not None else None)


def _decide_rungs(
    study: optuna.Study,
    plan: RungPlan,
    n_trials: int | None,
    elapsed_s: float,
    timeout_s: float | None,
) -> Decision:
    """Promotions first, then the epoch budget (:mod:`hpo.worker._rungs`)."""
    budget = plan.budget_epochs(n_trials)
    if timeout_s is None or elapsed_s < timeout_s:
        direction = "minimize" if study.direction.name == "MINIMIZE" else "maximize"
        enqueue_promotions(study, plan, budget=budget, direction=direction)
    trials = study.get_trials(deepcopy=False)
    return decide_epochs(
        EpochCounts.of(trials, plan),
        budget=budget,
        next_epochs=next_epochs(trials, plan),
        elapsed_s=elapsed_s,
        timeout_s=timeout_s,
    )


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
