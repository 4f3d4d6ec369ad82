"""Retrain a trial's parameters on every training id with the plain-training length, then
evaluate once on the test split: how the reference's published numbers were made.

The search scores a trial on a validation split carved from the training ids, for the search's
epochs (121 on MARS). The reference then trains the searched parameters on all training ids
(no carve-out) for up to 400 epochs, with random erasing (p = 0.5), and tests that model.
:func:`retrain_trial` does the same for the best trial (or a chosen one), in its own folder
``<artifacts.root>/<study uuid>/retrain/trial_<n>/``, resumable like a trial, and stores the
result in the study user attr ``"retrain_result"`` next to the best trial's own test result.
Nothing reads it back for selection.

With ``artifacts.kind: s3`` the folder is mirrored to the object store as a trial's attempt
folder is (:mod:`hpo.study._mirror`): a host without a checkpoint of it first downloads its
records and newest checkpoint, and the result is stored only once the folder is uploaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import math
import os
import shutil
import socket
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo import __version__
from hpo.errors import NoCompletedTrialError
from hpo.errors import ReidHpoError
from hpo.spec import to_train_config
from hpo.storage import StorageIdentity
from hpo.study._artifacts import config_hash
from hpo.study._artifacts import stored_path
from hpo.study._artifacts import study_dir
from hpo.study._final_eval import TestEvaluator
from hpo.study._final_eval import reid_core_evaluator
from hpo.study._lifecycle import ensure_study_uuid
from hpo.study._marker import check_marker
from hpo.study._mirror import ArtifactMirror
from hpo.study._mirror import mirror_of
from hpo.study._notes import write_results_note
from hpo.study._object_store import ObjectStoreError
from hpo.study._retrain_lease import RetrainLease
from hpo.study.records import StudyAttr
from hpo.study.records import TrialAttr
from hpo.study.records import best_of_study
from hpo.study.records import result_summary
from hpo.study.records import stored_cmc
from hpo.study.records import stored_retrain_result
from reid_core.config import TrainConfig
from reid_core.errors import EvaluationError

if TYPE_CHECKING:
    from hpo.spec import StudySpec

logger = logging.getLogger(__name__)

PLAIN_TRAINING_EPOCHS = 400
"""The reference's plain training: ``args.max_epoch = 400`` on all training ids."""
PLAIN_TRAINING_ERASING = 0.5
"""Random erasing of the reference's plain training (its search has none)."""
RETRAIN_DIR = "retrain"
IDENTITY_FILE = "retrain.json"
TEST_FILE = "test.json"
LOCK_FILE = ".retrain.lock"
METRICS_LOG = "metrics.jsonl"  # reid_core's METRICS_LOG_NAME (the engine imports torch)

TrainerFactory = Callable[[TrainConfig], Any]
"""``cfg -> trainer`` with ``fit(*, callbacks, resume_from)`` and ``num_classes``."""


class RetrainError(ReidHpoError):
    """A retrain that cannot run: done already, a folder that is not its own, a bad trial."""


@dataclass(frozen=True)
class RetrainOptions:
    """What to retrain and how.

    Attributes:
        trial: The trial whose parameters are retrained (None: the best trial).
        epochs: Training length (the reference's plain training: 400).
        random_erasing: Random-erasing probability (plain training: 0.5).
        output: The run folder (None: ``<artifacts.root>/<uuid>/retrain/trial_<n>/``).
        force: Retrain although a result is stored (a finished folder is cleared first).
        rerank: Also evaluate with k-reciprocal re-ranking.
        device: ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        storage: The study's storage; the default folder is refused when the study's marker
            names another (this database is a copy).
    """

    trial: int | None = None
    epochs: int = PLAIN_TRAINING_EPOCHS
    random_erasing: float = PLAIN_TRAINING_ERASING
    output: Path | None = None
    force: bool = False
    rerank: bool = True
    device: str = "auto"
    storage: StorageIdentity | None = None


def pick_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """The best trial, or trial ``number`` (COMPLETE or PRUNED: it has all its parameters).

    Raises:
        NoCompletedTrialError: No trial has completed (and none was named).
        RetrainError: The named trial does not exist or never finished.
    """
    if number is None:
        best = best_of_study(study)
        if best is None:
            raise NoCompletedTrialError(
                f"study {study.study_name!r} has no complete trial: nothing to retrain"
            )
        return best
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise RetrainError(f"study {study.study_name!r} has no trial {number}")
    trial = trials[number]
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        raise RetrainError(
            f"trial {number} of {study.study_name!r} is {trial.state.name}; only COMPLETE or "
            "PRUNED trials can be retrained"
        )
    return trial


def refuse_if_retrained(study: optuna.Study, *, force: bool) -> None:
    """Refuse a second retrain of ``study`` unless ``force``.

    Raises:
        RetrainError: A retrain result is stored.
    """
    stored = stored_retrain_result(study.user_attrs)
    if stored is not None and not force:
        raise RetrainError(
            f"study {study.study_name!r} already has a retrain result (trial "
            f"{stored.get('trial')}, {stored.get('epochs')} epochs, in "
            f"{stored.get('output_dir')}); add --force to retrain again"
        )


def retrain_config(
    spec: StudySpec, trial: FrozenTrial, options: RetrainOptions, output_dir: Path
) -> TrainConfig:
    """The trial's configuration, on every training id, for ``options.epochs`` epochs.

    The seed is the trial's; the schedule (warm-up, milestones) is the study's recipe.
    """
    cfg = to_train_config(spec, trial.params, trial_number=trial.number, output_dir=".")
    seed = trial.user_attrs.get(TrialAttr.SEED, cfg.seed)
    data = dataclasses.replace(cfg.data, validation=None, random_erasing=options.random_erasing)
    return dataclasses.replace(
        cfg,
        data=data,
        epochs=options.epochs,
        seed=int(seed),
        output_dir=str(output_dir),
        device=options.device,
    )


def default_folder(study: optuna.Study, spec: StudySpec, trial: int) -> Path:
    """``<artifacts.root>/<study uuid>/retrain/trial_<n>``."""
    return study_dir(spec.artifacts.root, ensure_study_uuid(study)) / RETRAIN_DIR / f"trial_{trial}"


def retrain_trial(
    study: optuna.Study,
    spec: StudySpec,
    options: RetrainOptions,
    *,
    trainer_factory: TrainerFactory | None = None,
    evaluator: TestEvaluator | None = None,
    storage: optuna.storages.BaseStorage | None = None,
) -> dict[str, Any]:
    """Retrain a trial on all training ids, evaluate it once on the test split, store it.

    A folder holding an unfinished retrain of the same study, trial and configuration is
    resumed from its newest verified checkpoint (a killed retrain continues). With
    ``storage`` (``study retrain`` passes it) the study's retrain lease is held throughout
    (:mod:`hpo.study._retrain_lease`): one retrain of the study at a time on any host.

    Args:
        study: The study (its trials and user attrs).
        spec: Its spec.
        options: Trial, epochs, folder, device, ...
        trainer_factory: Builds the trainer (the ``reid_core`` one when None).
        evaluator: Test-split evaluation (:func:`reid_core_evaluator` when None).
        storage: The study's storage, for the lease (none taken when None).

    Returns:
        The stored result: ``{"trial", "epochs", "train_ids", "metrics", "cmc",
        "checkpoint", "config", "code_version", "evaluated_at", ...}``.

    Raises:
        RetrainError: A result is stored (without ``force``), or the folder is not this
            retrain's.
        RetrainLeaseError: Another process retrains the study, or took this retrain over.
        ArtifactsNotSharedError: No ``output`` and this machine does not see the study's
            artifacts marker (:mod:`hpo.study._marker`).
        NoCompletedTrialError: No trial to retrain.
        reid_core.errors.ReidError: Training or evaluation failed (checkpoints are kept).
    """
    refuse_if_retrained(study, force=options.force)
    trial = pick_trial(study, options.trial)
    mirror = mirror_of(spec.artifacts)
    stored = mirror.store is not None
    if (options.output is None or stored) and study.user_attrs.get(StudyAttr.ARTIFACTS_MARKER):
        check_marker(spec.artifacts, ensure_study_uuid(study), study.study_name, options.storage)
    folder = _folder(study, spec, trial.number, options.output, stored=stored)
    cfg = retrain_config(spec, trial, options, folder)
    identity = {
        "study_uuid": ensure_study_uuid(study),
        "trial": trial.number,
        "config_hash": config_hash(cfg),
    }  # plus "study" (its name, to name the owner in a refusal); not compared
    lease = None
    if storage is not None:
        lease = RetrainLease(
            storage,
            study.study_name,
            trial.number,
            interval_s=spec.heartbeat.interval,
            grace_s=spec.heartbeat.grace_s,
        )
    with _folder_lock(folder), _holding(lease):
        _stored(mirror.restore, folder, (IDENTITY_FILE, TEST_FILE, METRICS_LOG))
        resume_from = _prepare_folder(
            folder, identity, study.study_name, force=options.force, mirror=mirror
        )
        _write_json(folder / IDENTITY_FILE, {**identity, "study": study.study_name})
        _stored(mirror.sync, folder)
        logger.info(
            "study %r: retraining trial %d on every training id for %d epochs in %s%s",
            study.study_name,
            trial.number,
            cfg.epochs,
            folder,
            f", resuming from {resume_from}" if resume_from else "",
        )
        trainer = (trainer_factory or _build_trainer)(cfg)
        fit = trainer.fit(callbacks=_callbacks(mirror, folder, lease), resume_from=resume_from)
        if fit.checkpoint is None or fit.epochs_run < cfg.epochs:
            raise RetrainError(
                f"retrain of trial {trial.number} stopped after {fit.epochs_run} of {cfg.epochs} "
                "epochs; run the command again to continue"
            )
        # Named inside the folder: a resumed run reports the resolved path it loaded.
        checkpoint = folder / Path(fit.checkpoint).name
        raw = (evaluator or reid_core_evaluator)(
            Path(checkpoint),
            root=Path(spec.dataset.root),
            rerank=options.rerank,
            device=cfg.device,
        )
        result = _result(trial, cfg, trainer, fit.epochs_run, checkpoint, raw, spec.artifacts.root)
        if lease is not None:
            lease.check()  # a retrain taken over pushes nothing over its successor's files
        _write_json(folder / TEST_FILE, result)
        _stored(mirror.sync, folder)  # before the result names files other hosts must read

        def store() -> None:
            study.set_user_attr(StudyAttr.RETRAIN_RESULT, result)
            study.set_user_attr(StudyAttr.RETRAIN_SUMMARY, result_summary(result, retrained=True))

        if lease is None:
            store()
        else:
            lease.while_held(store)
        write_results_note(study)
        return result


def _folder(
    study: optuna.Study, spec: StudySpec, trial: int, output: Path | None, *, stored: bool
) -> Path:
    """The retrain folder: ``output``, or the default one. With an object store it must lie
    under ``<artifacts.root>/<uuid>/retrain/`` (its objects are keyed by that path) and is
    returned relative to the root as the default one is.

    Raises:
        RetrainError: ``output`` is elsewhere while the artifacts are in an object store.
    """
    default = default_folder(study, spec, trial)
    if output is None or not stored:
        return output or default
    base = default.parent
    rel = Path(os.path.relpath(output.resolve(), base.resolve()))
    if rel == Path(".") or rel.parts[0] == "..":
        raise RetrainError(
            f"--output {output}: with artifacts.kind: s3 a retrain folder must lie under {base}/ "
            f"(its objects are keyed by their path there); leave --output out for {default}"
        )
    return base / rel


def _stored(action: Callable[..., Any], folder: Path, *args: Any) -> None:
    """Run a mirror operation on the retrain folder; a store failure is one line.

    Raises:
        RetrainError: The object store cannot be reached or refused.
    """
    try:
        action(folder, *args)
    except (ObjectStoreError, OSError) as exc:
        raise RetrainError(
            f"the retrain in {folder} cannot use the object store ({exc}); nothing is stored in "
            "the study: run the command again when the store is reachable"
        ) from None


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.retrain.lock`` (flock, released when the process dies) for a retrain.

    Raises:
        RetrainError: Another retrain holds it, or the folder cannot be created.
    """
    if folder.exists() and not folder.is_dir():
        raise RetrainError(f"--output {folder} is a file; name a folder for the retrain")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise RetrainError(f"cannot use {folder}: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RetrainError(
                f"another retrain ({holder}) is running in {folder}; wait for it to end"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


@contextlib.contextmanager
def _holding(lease: RetrainLease | None) -> Iterator[None]:
    """Hold the study's retrain lease (when there is one) for the block, released however the
    block ends.

    Raises:
        RetrainLeaseError: Another process holds it.
    """
    if lease is None:
        yield
        return
    lease.acquire()
    try:
        yield
    finally:
        lease.release()


def _prepare_folder(
    folder: Path, identity: dict[str, Any], study_name: str, *, force: bool, mirror: ArtifactMirror
) -> Path | None:
    """The checkpoint to resume from (None: start afresh), after clearing a finished retrain
    of the same study when ``force`` (here and in the object store). Another study's retrain is
    never removed.

    Raises:
        RetrainError: The folder holds something else, another study's retrain, or another
            retrain of this study without ``force``.
    """
    from reid_core.engine import find_resumable_checkpoint

    entries = [p for p in folder.iterdir() if p.name != LOCK_FILE] if folder.is_dir() else []
    if not entries:
        return None
    recorded = _read_json(folder / IDENTITY_FILE)
    if recorded is None:
        raise RetrainError(
            f"{folder} is not empty and holds no retrain ({IDENTITY_FILE}); choose another --output"
        )
    owner = recorded.get("study", "?")
    if recorded.get("study_uuid") != identity["study_uuid"]:
        raise RetrainError(
            f"{folder} holds a retrain of another study ({owner!r}, uuid "
            f"{recorded.get('study_uuid')}, trial {recorded.get('trial')}), not of "
            f"{study_name!r}; it is never replaced, even with --force: choose another --output"
        )
    same = {k: recorded.get(k) for k in identity} == identity
    finished = (folder / TEST_FILE).is_file()
    if same and not (finished and force):
        return find_resumable_checkpoint(folder)
    if not same and not force:
        raise RetrainError(
            f"{folder} holds a retrain of another trial or configuration of study "
            f"{owner!r} (trial {recorded.get('trial')}); add --force to replace it, or choose "
            "another --output"
        )
    logger.info("removing the previous retrain in %s (--force)", folder)
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    _stored(mirror.clear, folder)
    return None


def _result(
    trial: FrozenTrial,
    cfg: TrainConfig,
    trainer: Any,
    epochs_run: int,
    checkpoint: Path,
    raw: dict[str, Any],
    root: str,
) -> dict[str, Any]:
    """The stored record; paths under the artifacts root are stored relative to it."""
    from reid_core.engine import code_version

    metrics = raw.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise EvaluationError(
            f"test evaluation of the retrained trial {trial.number} gave no metrics"
        )
    return {
        **{k: v for k, v in raw.items() if k not in ("metrics", "cmc")},
        "trial": trial.number,
        "params": dict(trial.params),
        "epochs": cfg.epochs,
        "epochs_run": epochs_run,
        "train_ids": int(trainer.num_classes),
        "metrics": {str(k): _finite_or_none(v) for k, v in metrics.items()},
        "cmc": stored_cmc(raw.get("cmc") or []),
        "checkpoint": stored_path(root, checkpoint),
        "output_dir": stored_path(root, cfg.output_dir),
        "config": cfg.to_dict(),
        "code_version": {"hpo": __version__, **code_version()},
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _build_trainer(cfg: TrainConfig) -> Any:
    from reid_core.engine import Trainer

    return Trainer(cfg)


def _callbacks(mirror: ArtifactMirror, folder: Path, lease: RetrainLease | None) -> list[Any]:
    """The lease check (a retrain taken over stops before it writes more), TensorBoard
    events, then the push to the object store (so the epoch's events go too)."""
    from hpo.study._lease_callback import CheckLease
    from hpo.study._push_callback import PushCheckpoints
    from reid_core.engine import TENSORBOARD_DIR
    from reid_core.engine import TensorBoardLog

    checks = [] if lease is None else [CheckLease(lease)]
    return [*checks, TensorBoardLog(folder / TENSORBOARD_DIR), PushCheckpoints(mirror, folder)]


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from reid_core.engine import write_json_atomic

    try:
        write_json_atomic(path, data)
    except OSError as exc:
        raise RetrainError(f"cannot write {path}: {exc.strerror or exc}") from None


__all__ = [
    "PLAIN_TRAINING_EPOCHS",
    "PLAIN_TRAINING_ERASING",
    "RetrainError",
    "RetrainOptions",
    "default_folder",
    "pick_trial",
    "refuse_if_retrained",
    "retrain_config",
    "retrain_trial",
]
