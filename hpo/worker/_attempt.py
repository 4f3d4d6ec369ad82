"""One attempt of a trial against the others: taking a predecessor's checkpoint over, and the
fence that stops a worker whose trial is no longer its own.

A retry takes its predecessor's last verified checkpoint over into its own attempt folder
(when ``attempt.json`` records the same study, trial and configuration; with an object store,
after fetching them into this host's cache) and frees the predecessor's copies; from then on
only its own folder is written. A retry that cannot resume says why (``resume_skipped``). At
every epoch end a worker checks that its trial is still RUNNING: one whose trial another
worker failed (a stale heartbeat while this process was paused) stops writing at once, and one
whose study was deleted stops with :class:`~hpo.errors.StudyNotFoundError`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpo.errors import StudyNotFoundError
from hpo.study import IDENTITY_FILE
from hpo.study import ArtifactMirror
from hpo.study import AttemptIdentity
from hpo.study import read_identity
from hpo.study import take_over
from reid_core.engine import METRICS_LOG_NAME
from reid_core.engine import find_resumable_checkpoint

logger = logging.getLogger(__name__)


class TrialFenced(Exception):
    """This worker's trial was finished by someone else; nothing more is written for it."""


@dataclass(frozen=True)
class Resume:
    """How a retry starts: from ``checkpoint``, or from epoch 1 because of ``skipped``."""

    checkpoint: Path | None
    skipped: str | None = None


def take_over_predecessor(
    previous: Path, folder: Path, identity: AttemptIdentity, mirror: ArtifactMirror
) -> Resume:
    """The checkpoint a retry resumes from: the predecessor attempt's newest verified one
    (fetched from the object store into this host's cache when it is not here), taken over
    into this attempt's folder (and, in the store, copied server-side), if that attempt
    belongs to the same study, trial and configuration; else why not (start from epoch 1, said
    once). The caller frees the predecessor's copies once its own folder is recorded."""
    unreachable = mirror.fetch(previous)
    recorded = read_identity(previous)
    if recorded is None:
        return _skipped(
            identity,
            unreachable or f"no attempt record {previous / IDENTITY_FILE} on this host",
        )
    if not identity.same_run(recorded):
        return _skipped(
            identity,
            f"{previous} does not record this study, trial and configuration",
        )
    checkpoint = find_resumable_checkpoint(previous)
    if checkpoint is None:
        return _skipped(identity, unreachable or f"no verified checkpoint in {previous}")
    metrics_log = previous / METRICS_LOG_NAME
    if metrics_log.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(metrics_log, folder / METRICS_LOG_NAME)
    taken = take_over(checkpoint, folder)
    mirror.adopt(previous, checkpoint.name, folder)
    return Resume(taken)


def _skipped(identity: AttemptIdentity, reason: str) -> Resume:
    logger.warning("trial %d: not resuming: %s; starting from epoch 1", identity.attempt, reason)
    return Resume(None, reason)


def running_numbers(trial: optuna.Trial) -> set[int]:
    """Numbers of the study's RUNNING trials.

    Raises:
        StudyNotFoundError: The trial's study was deleted.
    """
    try:
        running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except KeyError:  # what Optuna's storages answer for a deleted study
        raise StudyNotFoundError(
            f"study {trial.study.study_name!r} was deleted while trial {trial.number} trained"
        ) from None
    return {t.number for t in running}


def raise_if_study_gone(trial: optuna.Trial) -> None:
    """Raise :class:`StudyNotFoundError` when the trial's study was deleted."""
    running_numbers(trial)


def check_still_running(trial: optuna.Trial) -> None:
    """Stop a trial that is no longer this worker's to write: failed by another worker (its
    heartbeat went stale while this process was paused) or deleted with its study."""
    if trial.number not in running_numbers(trial):
        raise TrialFenced(
            f"trial {trial.number} is no longer RUNNING (another worker failed it after a "
            "stale heartbeat); this worker stops writing for it"
        )


__all__ = [
    "Resume",
    "TrialFenced",
    "check_still_running",
    "raise_if_study_gone",
    "running_numbers",
    "take_over_predecessor",
]
