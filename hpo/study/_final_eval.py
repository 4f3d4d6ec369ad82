"""Evaluate the best (validation) trial once on the TEST split and store the result.

Trials are selected on the validation split only. Once a study is done, the best trial's last
checkpoint is evaluated a single time on the test query/gallery of the study's dataset, and
the result is stored in the study user attr ``"test_result"`` for reports. Nothing reads it
back for selection: samplers, pruners and :func:`hpo.study.records.best_trial` never see it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial

from hpo.errors import NoCompletedTrialError
from hpo.study._artifacts import resolve_stored
from hpo.study._mirror import ArtifactMirror
from hpo.study._mirror import mirror_of
from hpo.study._notes import write_results_note
from hpo.study.records import StudyAttr
from hpo.study.records import TrialAttr
from hpo.study.records import best_of_study
from hpo.study.records import result_summary
from hpo.study.records import stored_cmc
from hpo.study.records import stored_test_result
from reid_core.errors import CheckpointError
from reid_core.errors import EvaluationError

if TYPE_CHECKING:
    from hpo.spec import StudySpec

logger = logging.getLogger(__name__)

# The objective writes the checkpoint file at each evaluation and the folder at the start.
CHECKPOINT_ATTRS = (TrialAttr.CHECKPOINT, TrialAttr.CHECKPOINT_DIR)


class TestEvaluator(Protocol):
    """Evaluates a checkpoint on the test split of the dataset under ``root``.

    Returns ``{"metrics": {name: float}, "cmc": [...], ...}``; other keys (``"epoch"``,
    ``"rerank_cmc"``, ``"dataset"``, ...) are stored alongside.
    """

    def __call__(
        self, checkpoint: Path, *, root: Path, rerank: bool, device: str
    ) -> dict[str, Any]: ...


def reid_core_evaluator(
    checkpoint: Path, *, root: Path, rerank: bool, device: str
) -> dict[str, Any]:
    """The default :class:`TestEvaluator`: ``reid_core.engine.evaluate_checkpoint``."""
    from reid_core.engine import evaluate_checkpoint

    result, info = evaluate_checkpoint(checkpoint, root=root, rerank=rerank, device=device)
    info.pop("validation_metrics", None)  # already in the trial's user attrs
    return {**info, **result.to_dict()}


def trial_checkpoint(
    trial: FrozenTrial, root: str | Path = ".", mirror: ArtifactMirror | None = None
) -> Path:
    """The checkpoint (file or run directory) a trial recorded in its user attrs.

    Args:
        trial: The trial.
        root: The artifacts root the recorded paths are relative to (``artifacts.root``).
        mirror: The study's object store: a checkpoint file not on this machine is fetched.

    Raises:
        CheckpointError: The trial recorded none, or the recorded path does not exist here.
    """
    for key in CHECKPOINT_ATTRS:
        value = trial.user_attrs.get(key)
        if value:
            path = resolve_stored(root, str(value))
            if mirror is not None and key == TrialAttr.CHECKPOINT:
                mirror.fetch_checkpoint(path)
            if not path.exists():
                raise CheckpointError(
                    f"trial {trial.number}: {key} {path} does not exist on this machine "
                    "(is the artifacts root shared?)"
                )
            return path
    raise CheckpointError(
        f"trial {trial.number} recorded no checkpoint (user attr 'checkpoint' or 'checkpoint_dir')"
    )


def evaluate_best_on_test(
    study: optuna.Study,
    spec: StudySpec,
    *,
    force: bool = False,
    rerank: bool = True,
    device: str = "auto",
    evaluator: TestEvaluator | None = None,
) -> dict[str, Any]:
    """Evaluate the best validation trial once on the test split; store and return the result.

    Idempotent: when ``"test_result"`` already holds the result of the current best trial it
    is returned without evaluating, unless ``force``. If the best trial changed since (the
    study went on), the new best trial is evaluated and its result replaces the stale one.

    Args:
        study: A single-objective study whose trials recorded their checkpoint.
        spec: The study spec; its ``dataset.root`` locates the dataset on this machine.
        force: Evaluate again even if a result for the best trial is stored.
        rerank: Also report k-reciprocal re-ranked metrics (``rerank_mAP``, ...).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        evaluator: Test-split evaluation; :func:`reid_core_evaluator` when ``None``.

    Returns:
        ``{"trial": n, "metrics": {...}, "cmc": [...], "checkpoint": str,
        "evaluated_at": str, ...}``, as stored in the study user attr ``"test_result"``.

    Raises:
        NoCompletedTrialError: The study has no complete trial (or is multi-objective).
        CheckpointError: The best trial's checkpoint is missing or unusable.
        DatasetNotFoundError: The dataset root does not exist on this machine.
        EvaluationError: The evaluation gave no metrics (e.g. no query has a match).
    """
    best = _best(study)
    existing = stored_test_result(study.user_attrs)
    if existing is not None and existing.get("trial") == best.number and not force:
        logger.info("study %r: test result of trial %d is stored", study.study_name, best.number)
        return existing
    if existing is not None and existing.get("trial") != best.number:
        logger.info(
            "study %r: stored test result is for trial %s but the best is trial %d; evaluating",
            study.study_name,
            existing.get("trial"),
            best.number,
        )
    checkpoint = trial_checkpoint(best, spec.artifacts.root, mirror_of(spec.artifacts))
    logger.info(
        "study %r: evaluating trial %d (%s) once on the test split",
        study.study_name,
        best.number,
        checkpoint,
    )
    evaluate = evaluator or reid_core_evaluator
    raw = evaluate(checkpoint, root=Path(spec.dataset.root), rerank=rerank, device=device)
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise EvaluationError(f"test evaluation of trial {best.number} returned no metrics")
    result: dict[str, Any] = {
        **{k: v for k, v in raw.items() if k not in ("metrics", "cmc")},
        "trial": best.number,
        "metrics": {str(k): _finite_or_none(v) for k, v in metrics.items()},
        "cmc": stored_cmc(raw.get("cmc") or []),
        "checkpoint": str(raw.get("checkpoint") or checkpoint),
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    study.set_user_attr(StudyAttr.TEST_RESULT, result)
    study.set_user_attr(StudyAttr.TEST_SUMMARY, result_summary(result))
    write_results_note(study)
    return result


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _best(study: optuna.Study) -> FrozenTrial:
    if len(study.directions) != 1:
        raise NoCompletedTrialError(
            f"study {study.study_name!r} is multi-objective: no single best trial to test"
        )
    best = best_of_study(study)
    if best is None:
        raise NoCompletedTrialError(
            f"study {study.study_name!r} has no complete trial: nothing to evaluate on the test set"
        )
    return best


__all__ = [
    "CHECKPOINT_ATTRS",
    "TestEvaluator",
    "evaluate_best_on_test",
    "reid_core_evaluator",
    "trial_checkpoint",
]
