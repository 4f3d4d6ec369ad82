"""The trial objective: one Optuna trial = one training run of ``reid_core`` on validation data.

Flow: sampled params -> :func:`hpo.spec.to_train_config` -> ``Trainer.fit`` with the pruning
adapter -> the validation metric named by ``spec.objective`` at the last evaluation. Each
attempt of a trial trains in its own ``<artifacts.root>/<study uuid>/trial_<n>/run_<k>/``
(:mod:`hpo.study._artifacts`); a retried trial (a WAITING copy of a trial whose worker died or
was stopped) inherits the predecessor's folder and, when its ``attempt.json`` records the same
study, trial and configuration, takes over its last verified checkpoint and resumes from it
instead of epoch 1 (with ``artifacts.kind: s3`` the folder is pushed to the object store after
each checkpoint and fetched by a retry on any host; a retry that cannot resume records why in
``resume_skipped``). Each epoch first checks that the trial is still RUNNING: a worker whose trial
was failed by another one (or whose study was deleted) stops writing for it at once.

Failures are sorted (STYLE.md §5.12): :class:`optuna.TrialPruned` -> PRUNED; a NaN loss ->
COMPLETE with the objective's worst value under ``objective.on_nan: worst`` (the reference's
0), else FAIL like the rest; CUDA
out-of-memory, a data error or any other exception -> FAIL with a machine-readable user attr
``fail_reason``, memory released, the worker goes on; :class:`~hpo.errors.SpecError`,
:class:`~reid_core.errors.DatasetNotFoundError` and :class:`~hpo.errors.StudyNotFoundError`
(the study was deleted) are :data:`FATAL_ERRORS` (every later trial would fail the same way),
which the worker re-raises to stop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import NoReturn

import optuna
import torch
from optuna.trial import TrialState

from hpo import __version__
from hpo.errors import SpecError
from hpo.errors import StudyNotFoundError
from hpo.search import rung_plan
from hpo.search import suggest
from hpo.spec import to_train_config
from hpo.study import ArtifactMirror
from hpo.study import AttemptIdentity
from hpo.study import attempt_dir
from hpo.study import config_hash
from hpo.study import ensure_study_uuid
from hpo.study import mirror_of
from hpo.study import resolve_stored
from hpo.study import stored_path
from hpo.study import trial_events_dir
from hpo.study import write_identity
from hpo.study._push_callback import PushCheckpoints
from hpo.study.records import TrialAttr
from hpo.study.records import cmc_summary
from hpo.study.records import flat_metric_attrs
from hpo.study.records import rung_of
from hpo.study.records import stored_cmc
from hpo.worker._attempt import Resume
from hpo.worker._attempt import TrialFenced
from hpo.worker._attempt import check_still_running
from hpo.worker._attempt import raise_if_study_gone
from hpo.worker._attempt import take_over_predecessor
from hpo.worker._faults import CUDA_ERROR
from hpo.worker._faults import is_sticky_cuda_error
from hpo.worker._progress import TrialProgress
from hpo.worker._progress import format_metrics
from hpo.worker._progress import format_params
from hpo.worker._progress import trial_label
from hpo.worker._pruning import OptunaPruningCallback
from hpo.worker._rungs import place_new_trial
from hpo.worker._rungs import rung_config
from hpo.worker._signals import StopNow
from hpo.worker._signals import shielded
from hpo.worker._signals import stopped_at_once
from reid_core.config import resolve_device
from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.engine import StopTraining
from reid_core.engine import TensorBoardLog
from reid_core.engine import Trainer
from reid_core.engine import code_version
from reid_core.engine import release_memory
from reid_core.engine import select_device
from reid_core.engine import write_hparams
from reid_core.errors import DatasetFormatError
from reid_core.errors import DatasetNotFoundError
from reid_core.errors import EvaluationError
from reid_core.errors import NonFiniteLossError
from reid_core.errors import PretrainedWeightsError

if TYPE_CHECKING:
    from hpo.spec import StudySpec

logger = logging.getLogger(__name__)

__all__ = [
    "FATAL_ERRORS",
    "OBJECTIVE_METRICS",
    "StudyTimeoutError",
    "TrialInterrupted",
    "TrialObjective",
    TrialAttr.FAIL_REASON,
    "make_objective",
]

OBJECTIVE_METRICS: dict[str, str] = {"map": "mAP", "rerank_map": "rerank_mAP", "rank1": "rank1"}
"""``spec.objective.metric`` -> key of the trainer's validation metrics."""

FATAL_ERRORS: tuple[type[Exception], ...] = (
    SpecError,
    DatasetNotFoundError,
    PretrainedWeightsError,
    StudyNotFoundError,
)
"""Errors after which a worker stops: every later trial would fail the same way."""

INTERRUPTED = "interrupted"
STUDY_TIMEOUT = "study_timeout"


class TrialInterrupted(Exception):
    """The worker was asked to stop; the trial was checkpointed and handed back (FAIL + a
    WAITING copy that another worker resumes)."""


class StudyTimeoutError(Exception):
    """The study's time budget ran out while a trial was training (trial FAILs, no retry)."""


def fail_reason(exc: BaseException) -> str:
    """The machine-readable ``fail_reason`` user attr for an exception that failed a trial.

    Args:
        exc: The exception.

    Returns:
        ``"nonfinite_loss"``, ``"oom"``, ``"cuda_error"`` (a sticky CUDA error: the worker
        process exits for a fresh one), ``"data_error"``, ``"spec_error"``,
        ``"study_timeout"`` or ``"exception:<Type>"``.

    Example:
        >>> fail_reason(ValueError("x"))
        'exception:ValueError'
    """
    if isinstance(exc, StudyTimeoutError):
        return STUDY_TIMEOUT
    if isinstance(exc, NonFiniteLossError):
        return "nonfinite_loss"
    if isinstance(exc, torch.OutOfMemoryError):
        return "oom"
    if is_sticky_cuda_error(exc):
        return CUDA_ERROR
    if isinstance(exc, DatasetNotFoundError | DatasetFormatError):
        return "data_error"
    if isinstance(exc, SpecError):
        return "spec_error"
    return f"exception:{type(exc).__name__}"


class _Recorder(Callback):
    """Keeps the last validation metrics and checkpoint, mirrored into trial user attrs.

    On a resumed run, ``resumed_from_epoch`` records the 1-based epoch of the checkpoint it
    resumed from (the epochs done before the first one it sees).
    """

    def __init__(
        self, trial: optuna.Trial, *, resumed: bool, root: Path, clock: ComputeClock
    ) -> None:
        self._trial = trial
        self._resumed = resumed
        self._root = root
        self._clock = clock
        self.first_epoch: int | None = None
        self.metrics: dict[str, float] | None = None

    def on_epoch_end(self, report: EpochReport) -> None:
        check_still_running(self._trial)
        if self.first_epoch is None:
            self.first_epoch = report.epoch
            if self._resumed:
                # the first 0-based index it trains = the 1-based epoch of its checkpoint
                self._trial.set_user_attr(TrialAttr.RESUMED_FROM_EPOCH, report.epoch)
        self._trial.set_user_attr(TrialAttr.EPOCHS_DONE, report.epoch + 1)
        self._clock.epochs += 1
        self._clock.record(self._trial)
        if report.checkpoint is not None:
            stored = stored_path(self._root, report.checkpoint)
            self._trial.set_user_attr(TrialAttr.CHECKPOINT, stored)
            self._trial.set_user_attr(TrialAttr.LAST_CHECKPOINT_EPOCH, report.epoch + 1)
        if report.metrics is not None:
            self.metrics = {k: float(v) for k, v in report.metrics.items()}
            _record_metrics(self._trial, self.metrics)


class ComputeClock:
    """The compute of one attempt: the epochs it trained and its wall-clock seconds x devices,
    recorded as trial user attrs after every epoch and when the attempt ends."""

    DEVICES = 1
    """A worker trains a trial on one device."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self.epochs = 0

    def device_seconds(self) -> float:
        """Seconds since the attempt started, times the devices it trains on."""
        return round((self._clock() - self._started) * self.DEVICES, 1)

    def record(self, trial: optuna.Trial) -> None:
        """Write the epochs trained and device-seconds so far (the trial must be RUNNING)."""
        trial.set_user_attr(TrialAttr.EPOCHS_TRAINED, self.epochs)
        trial.set_user_attr(TrialAttr.DEVICE_SECONDS, self.device_seconds())


class _StopWhenAsked(Callback):
    """Ends training after the current epoch (checkpoint written) on a stop request or when
    the study's time budget runs out."""

    def __init__(self, stop_event: threading.Event, deadline: float | None) -> None:
        self._stop_event = stop_event
        self._deadline = deadline
        self.reason: str | None = None

    def on_epoch_end(self, report: EpochReport) -> None:
        if self._stop_event.is_set():
            self.reason = INTERRUPTED
        elif self._deadline is not None and time.time() >= self._deadline:
            self.reason = STUDY_TIMEOUT
        if self.reason is not None:
            logger.info("stopping after epoch %d (%s)", report.epoch + 1, self.reason)
            raise StopTraining(self.reason)


@dataclass(frozen=True)
class TrialResult:
    """How one trial run by a worker ended.

    Attributes:
        number: The trial's number.
        state: Its final state (COMPLETE, PRUNED or FAIL).
        value: The objective value of a COMPLETE trial, else None.
        reason: The ``fail_reason`` of a FAIL trial (``"interrupted"`` when it was handed
            back), else None.
    """

    number: int
    state: TrialState
    value: float | None = None
    reason: str | None = None


class TrialObjective:
    """The callable handed to ``study.optimize``; see :func:`make_objective`."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        study_name: str,
        study_uuid: str | None,
        mirror: ArtifactMirror,
        device: str,
        stop_event: threading.Event,
        deadline: float | None,
        trainer_factory: Any,
    ) -> None:
        self.spec = spec
        self.study_name = study_name
        self._study_uuid = study_uuid
        self.mirror = mirror
        self.artifacts_root = mirror.root
        self.device = device
        self.stop_event = stop_event
        self.deadline = deadline
        self.metric = OBJECTIVE_METRICS[spec.objective.metric]
        self.plan = rung_plan(spec)
        self._trainer_factory = trainer_factory

    def begin(self, trial: optuna.Trial) -> None:
        """Place a new trial of a ``fidelity:`` study on its rung (under the study lock, so
        that concurrent workers see it placed); nothing for other studies."""
        if self.plan is not None:
            place_new_trial(trial, self.plan)

    def __call__(self, trial: optuna.Trial) -> float:
        """Train one trial and return its validation metric at the last evaluation."""
        return self.train(trial, deadline=self.deadline)

    def train(self, trial: optuna.Trial, *, deadline: float | None) -> float:
        """Train one trial; a trial still training at ``deadline`` (Unix time) stops and FAILs.

        Returns:
            The validation metric at the last evaluation.

        Raises:
            optuna.TrialPruned: The pruner stopped the trial.
            TrialInterrupted: The stop event was set, or a second stop signal came
                (:class:`~hpo.worker._signals.StopNow`); the trial was handed back.
            Exception: Anything that failed the trial (``fail_reason`` is recorded first).
        """
        clock = ComputeClock()
        try:
            return self._run(trial, deadline, clock)
        except StopNow:
            _stop_at_once(trial)
        except optuna.TrialPruned as exc:
            clock.record(trial)
            logger.info("trial %d %s", trial.number, exc)
            self._drop_checkpoints(trial)
            raise
        except TrialInterrupted:
            raise
        except StudyNotFoundError:
            raise
        except Exception as exc:
            if stopped_at_once(exc):  # a StopNow under another error (mid-checkpoint write)
                _stop_at_once(trial)
            raise_if_study_gone(trial)  # e.g. its folder vanished under a checkpoint write
            if isinstance(exc, NonFiniteLossError) and self.spec.objective.on_nan == "worst":
                return self._score_worst(trial, exc)
            reason = fail_reason(exc)
            _set_attr_if_running(trial, TrialAttr.FAIL_REASON, reason)
            if not isinstance(exc, TrialFenced):  # a fenced trial's retry takes them over
                _set_attr_if_running(trial, TrialAttr.DEVICE_SECONDS, clock.device_seconds())
                self._drop_checkpoints(trial)
            logger.warning("trial %d failed (%s): %s", trial.number, reason, exc, exc_info=True)
            raise
        finally:
            release_memory()

    def _score_worst(self, trial: optuna.Trial, exc: NonFiniteLossError) -> float:
        """``objective.on_nan: worst``: the diverged trial completes with the worst value."""
        worst = self.spec.objective.worst_value
        _set_attr_if_running(trial, TrialAttr.NONFINITE_LOSS, str(exc))
        self._drop_checkpoints(trial)
        logger.warning(
            "trial %d diverged (%s): scored %s (on_nan: worst)", trial.number, exc, worst
        )
        return worst

    def _drop_checkpoints(self, trial: optuna.Trial) -> None:
        """A pruned or failed (not handed back) attempt never resumes: free its checkpoints."""
        value = trial.user_attrs.get(TrialAttr.CHECKPOINT_DIR)
        if value:
            self.mirror.drop(resolve_stored(self.artifacts_root, str(value)))

    def _uuid_of(self, study: optuna.Study) -> str:
        if self._study_uuid is None:
            self._study_uuid = ensure_study_uuid(study)
        return self._study_uuid

    def _run(self, trial: optuna.Trial, deadline: float | None, clock: ComputeClock) -> float:
        study_uuid = self._uuid_of(trial.study)
        params = suggest(trial, self.spec)
        inherited = trial.user_attrs
        origin = int(inherited.get(TrialAttr.ORIGIN_TRIAL, trial.number))
        folder = attempt_dir(self.artifacts_root, study_uuid, trial=origin, attempt=trial.number)
        cfg = to_train_config(self.spec, params, trial_number=trial.number, output_dir=str(folder))
        seed = int(inherited.get(TrialAttr.SEED, cfg.seed))
        device = resolve_device(self.device)
        select_device(device)  # before anything touches CUDA (and nothing does for a CPU)
        cfg = dataclasses.replace(cfg, seed=seed, device=device)
        rung = rung_of(trial) if self.plan is not None else None
        if rung is not None:
            cfg = rung_config(cfg, rung)
        identity = AttemptIdentity(study_uuid, origin, trial.number, config_hash(cfg))
        resume_from = self._take_over(trial, folder, identity)

        trial.set_user_attr(TrialAttr.SEED, seed)
        trial.set_user_attr(TrialAttr.ORIGIN_TRIAL, origin)
        trial.set_user_attr(TrialAttr.CHECKPOINT_DIR, stored_path(self.artifacts_root, folder))
        trial.set_user_attr(TrialAttr.CODE_VERSION, _code_version())
        trial.set_user_attr(TrialAttr.DEVICE, describe_device(device))
        trial.set_user_attr(TrialAttr.DEVICE_COUNT, ComputeClock.DEVICES)
        clock.record(trial)  # a retry starts its own count: the inherited one was its predecessor's
        trial.set_user_attr(TrialAttr.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        label = self._label(trial)
        if rung is not None:
            label += f" rung {rung.rung} ({rung.epochs} epochs, configuration {rung.config})"
        logger.info(
            "%s: %s; in %s%s",
            label,
            format_params(params),
            folder,
            f", resuming from {resume_from}" if resume_from else "",
        )

        recorder = _Recorder(
            trial, resumed=resume_from is not None, root=self.artifacts_root, clock=clock
        )
        stopper = _StopWhenAsked(self.stop_event, deadline)
        progress = TrialProgress(label, epochs=cfg.epochs)
        events = trial_events_dir(folder, trial.number)
        tensorboard = TensorBoardLog(events)
        callbacks = [
            recorder,
            tensorboard,
            OptunaPruningCallback(trial, self.metric),  # a pruned trial's checkpoint stays here
            PushCheckpoints(self.mirror, folder),
            stopper,
            progress,
        ]
        trainer = self._trainer_factory(cfg, rerank=self.metric.startswith("rerank_"))
        hparams = {"trial": trial.number, "seed": seed, **params}
        try:
            result = trainer.fit(callbacks=callbacks, resume_from=resume_from)
        except optuna.TrialPruned:
            _tensorboard_hparams(events, {**hparams, "state": "PRUNED"}, recorder.metrics)
            raise
        except (TrialFenced, StudyNotFoundError):
            raise
        except Exception as exc:
            state = f"FAIL ({fail_reason(exc)})"
            _tensorboard_hparams(events, {**hparams, "state": state}, recorder.metrics)
            raise
        if resume_from is not None and recorder.first_epoch is None:
            trial.set_user_attr(TrialAttr.RESUMED_FROM_EPOCH, result.epochs_run)
        if result.checkpoint is not None:
            stored = stored_path(self.artifacts_root, result.checkpoint)
            trial.set_user_attr(TrialAttr.CHECKPOINT, stored)
            trial.set_user_attr(TrialAttr.LAST_CHECKPOINT_EPOCH, result.epochs_run)

        clock.record(trial)
        self.mirror.push(folder)  # a checkpoint written after the callbacks (a stop), the logs
        if stopper.reason == INTERRUPTED:
            hand_back(trial)
            raise TrialInterrupted(f"trial {trial.number} interrupted and handed back")
        if stopper.reason == STUDY_TIMEOUT:
            raise StudyTimeoutError(f"the study time budget ran out during trial {trial.number}")

        # The trainer evaluates at the last epoch; its result carries the CMC curves. Only a
        # run that never evaluated (e.g. resumed past its last epoch) needs one more pass.
        evaluation = getattr(result, "final_evaluation", None) or trainer.evaluate()
        metrics = {k: float(v) for k, v in evaluation.metrics.items()}
        _record_metrics(trial, metrics)
        trial.set_user_attr(TrialAttr.CMC, stored_cmc(evaluation.cmc))
        trial.set_user_attr(TrialAttr.VAL_CMC_PCT, cmc_summary(stored_cmc(evaluation.cmc)))
        if evaluation.rerank_cmc is not None:
            trial.set_user_attr(TrialAttr.RERANK_CMC, stored_cmc(evaluation.rerank_cmc))
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            raise EvaluationError(
                f"trial {trial.number}: validation metric {self.metric!r} is {value} "
                f"(available: {sorted(metrics)})"
            )
        clock.record(trial)
        _tensorboard_hparams(events, {**hparams, "state": "COMPLETE"}, metrics)
        self.mirror.push(folder)
        logger.info(
            "%s complete: val %s", label, format_metrics(metrics, ("mAP", "rank1", "rank5"))
        )
        return float(value)

    def _take_over(
        self, trial: optuna.Trial, folder: Path, identity: AttemptIdentity
    ) -> Path | None:
        """Write the attempt's record; return the predecessor's checkpoint this retry resumes
        from (None: a first attempt, or a retry that starts from epoch 1, with the reason in
        ``resume_skipped``). A retry's folder (record and checkpoint) reaches the object store,
        and the trial's ``checkpoint_dir`` names it, before the predecessor's copies are freed,
        so a retry of this retry finds it."""
        stored = trial.user_attrs.get(TrialAttr.CHECKPOINT_DIR)
        previous = resolve_stored(self.artifacts_root, str(stored)) if stored else None
        resume = (
            take_over_predecessor(previous, folder, identity, self.mirror)
            if previous is not None
            else Resume(None)
        )
        write_identity(folder, identity)
        if previous is not None and resume.checkpoint is not None:
            self.mirror.push(folder)
            # Recorded before the predecessor's copies go: a retry of this retry killed here
            # reads this folder, which holds the checkpoint, not the emptied predecessor's.
            trial.set_user_attr(TrialAttr.CHECKPOINT_DIR, stored_path(self.artifacts_root, folder))
            trial.set_user_attr(
                TrialAttr.CHECKPOINT, stored_path(self.artifacts_root, resume.checkpoint)
            )
            self.mirror.drop(previous)  # taken over: the predecessor's copies are not needed
        if resume.skipped is not None or trial.user_attrs.get(TrialAttr.RESUME_SKIPPED):
            # A retry inherits its predecessor's attrs: a skip is this attempt's or nothing.
            trial.set_user_attr(TrialAttr.RESUME_SKIPPED, resume.skipped)
        return resume.checkpoint

    def _label(self, trial: optuna.Trial) -> str:
        """``trial n (x/N)``: n is Optuna's number, x counts the study's finished trials, this
        one included."""
        finished = trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
        return trial_label(len(finished) + 1, self.spec.budget.n_trials, trial.number)


def make_objective(
    spec: StudySpec,
    *,
    study_name: str,
    study_uuid: str | None = None,
    artifacts_root: str | Path | None = None,
    device: str = "cpu",
    stop_event: threading.Event | None = None,
    deadline: float | None = None,
    trainer_factory: Any = None,
) -> TrialObjective:
    """Build the objective for ``study.optimize``.

    Args:
        spec: The study spec.
        study_name: The study name (for messages; it never becomes a path).
        study_uuid: The study's uuid, which names its artifact folder
            (``<artifacts_root>/<uuid>/trial_<n>/run_<k>/``); read from (or, for a study
            that has none, given to) the trial's study when None.
        artifacts_root: Root of the checkpoint location (shared, or this host's cache of the
            object store); ``spec.artifacts.root`` if None.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:0"`` or ``"auto"``.
        stop_event: When set, training stops after the current epoch and the trial is handed
            back (FAIL with ``fail_reason="interrupted"`` + a WAITING copy that resumes).
        deadline: Unix time at which the study's time budget ends; a trial still training
            then stops after its epoch and FAILs with ``fail_reason="study_timeout"``.
        trainer_factory: ``(cfg, *, rerank) -> trainer`` with ``fit(*, callbacks,
            resume_from)``; the ``reid_core`` trainer if None (tests inject fakes).

    Returns:
        The objective; its value is the validation metric named by ``spec.objective``
        (``map`` -> mAP, ``rerank_map`` -> re-ranked mAP, ``rank1`` -> rank-1).
    """
    return TrialObjective(
        spec,
        study_name=study_name,
        study_uuid=study_uuid,
        mirror=mirror_of(spec.artifacts, artifacts_root),
        device=device,
        stop_event=stop_event if stop_event is not None else threading.Event(),
        deadline=deadline,
        trainer_factory=trainer_factory or _build_trainer,
    )


def run_trial(
    study: optuna.Study,
    objective: TrialObjective,
    *,
    deadline: float | None,
    on_start: Callable[[], None] = lambda: None,
) -> TrialResult:
    """Run one trial of ``study`` inside ``study.optimize`` (so Optuna records heartbeats).

    Args:
        study: The study; its sampler proposes the trial (a WAITING retry first).
        objective: The objective that trains it.
        deadline: Unix time at which the study's time budget ends (None: no time budget).
        on_start: Called once the trial exists in the storage (RUNNING), before training;
            a worker releases its study lock there.

    Returns:
        How the trial ended (FAIL with reason ``"interrupted"`` when it was handed back).

    Raises:
        FATAL_ERRORS: The trial failed in a way every later trial would (it is FAIL first).
        Exception: Anything raised outside the trial's training (e.g. the storage went away).
    """
    outcome: dict[str, Any] = {}

    def func(trial: optuna.Trial) -> float:
        outcome["number"] = trial.number
        objective.begin(trial)
        on_start()
        try:
            return objective.train(trial, deadline=deadline)
        except (optuna.TrialPruned, TrialInterrupted):
            raise
        except Exception as exc:
            outcome["error"] = exc
            raise

    def record(_: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        outcome["result"] = TrialResult(frozen.number, frozen.state, frozen.value)

    try:
        study.optimize(func, n_trials=1, catch=(), callbacks=[record])
    except TrialInterrupted:
        logger.info("trial %s handed back", outcome["number"])
        return TrialResult(outcome["number"], TrialState.FAIL, reason=INTERRUPTED)
    except FATAL_ERRORS:
        raise
    except Exception:
        error = outcome.get("error")
        if error is None:
            raise  # not the trial's fault (e.g. the storage went away): let the caller see it
        if isinstance(error, FATAL_ERRORS):
            # Optuna could not record the failure either (e.g. the study is gone): say why.
            raise error from None
        return TrialResult(outcome["number"], TrialState.FAIL, reason=fail_reason(error))
    if "result" not in outcome:
        raise RuntimeError("study.optimize returned without running a trial")
    return outcome["result"]


def _stop_at_once(trial: optuna.Trial) -> NoReturn:
    """A second stop signal: hand the trial back with the last checkpoint written before it."""
    hand_back(trial)
    raise TrialInterrupted(f"trial {trial.number} stopped at once and handed back") from None


def hand_back(trial: optuna.Trial) -> None:
    """Give a stopped trial back to the study: a WAITING copy (params, user attrs, system
    attrs and intermediate values), then ``fail_reason="interrupted"`` on this one.

    The copy is made before the reason is written, so the retry does not inherit it. The
    caller then lets the trial FAIL. A stop signal arriving meanwhile does not interrupt it.

    Args:
        trial: The running trial, whose checkpoint is already on disk.
    """
    study = trial.study
    with shielded(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=None, inherit_intermediate_values=True
        )
        retry(study, frozen)
        trial.set_user_attr(TrialAttr.FAIL_REASON, INTERRUPTED)
    logger.info("trial %d handed back to the study (will resume from its checkpoint)", trial.number)


def describe_device(device: str) -> str:
    """A readable device string for the ``device`` user attr (``"cuda:0 (NVIDIA H100)"``)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device


def _tensorboard_hparams(
    events: Path, hparams: dict[str, Any], metrics: dict[str, float] | None
) -> None:
    """The trial's parameters, state and last validation metrics (in %) in TensorBoard's
    HParams tab; a write that fails only warns (the trial's outcome stands)."""
    values = {f"hparams/val_{k}": 100.0 * v for k, v in (metrics or {}).items() if math.isfinite(v)}
    try:
        write_hparams(events, hparams, values)
    except OSError as exc:
        logger.warning("trial %s: TensorBoard hparams not written: %s", hparams["trial"], exc)


def _build_trainer(cfg: Any, *, rerank: bool) -> Trainer:
    # The worker logs its own epoch line (TrialProgress, with the trial): one line per epoch.
    return Trainer(cfg, evaluate_rerank=rerank, log_epochs=False)


def _code_version() -> dict[str, Any]:
    return {"hpo": __version__, **code_version()}


def _record_metrics(trial: optuna.Trial, metrics: dict[str, float]) -> None:
    """The validation metrics as one dict attr and as flat ``val_*_pct`` attrs."""
    trial.set_user_attr(TrialAttr.VAL_METRICS, _json_safe(metrics))
    for key, value in flat_metric_attrs(metrics).items():
        trial.set_user_attr(key, value)


def _json_safe(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _set_attr_if_running(trial: optuna.Trial, key: str, value: Any) -> None:
    try:
        trial.set_user_attr(key, value)
    except optuna.exceptions.UpdateFinishedTrialError:
        logger.warning("trial %d was already finished by another process", trial.number)
    except KeyError:  # what Optuna's storages answer for a trial whose study was deleted
        logger.warning("trial %d is gone with its study", trial.number)
