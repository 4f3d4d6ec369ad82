"""Retention: which finished attempts keep checkpoints, applied here and in the object store.

Among COMPLETE trials only the study's best keeps its final checkpoint (what ``study test``
evaluates). An attempt whose retry has taken its checkpoint over (the retry names its own
folder) is an orphan: its checkpoints go too, wherever they are (a host that died and came
back, a retry on another host that could not see them, the object store). Nothing outside
the study's own folder (``<uuid>/``) is touched; logs, ``attempt.json`` and TensorBoard files
stay.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.study._artifacts import drop_checkpoints
from hpo.study._artifacts import owned_attempt
from hpo.study._artifacts import resolve_stored
from hpo.study._mirror import ArtifactMirror
from hpo.study._object_store import ObjectStoreError
from hpo.study.records import StudyAttr
from hpo.study.records import TrialAttr
from hpo.study.records import best_of_study

logger = logging.getLogger(__name__)


def apply_retention(study: optuna.Study, mirror: ArtifactMirror) -> int:
    """Drop the checkpoints of every COMPLETE trial but the best's final one, and of every
    attempt a retry has taken over, on this machine and in the object store.

    Returns:
        The bytes freed on this machine.
    """
    owner = study.user_attrs.get(StudyAttr.UUID)
    if not isinstance(owner, str):
        return 0
    try:
        stored = mirror.stored_checkpoints(owner)
    except ObjectStoreError as exc:
        logger.warning("retention: the object store is not reachable: %s", exc)
        stored = {}
    freed = 0
    for trial, keep in _dropped(study):
        rel = str(trial.user_attrs[TrialAttr.CHECKPOINT_DIR])
        path = resolve_stored(mirror.root, rel)
        keep_path = resolve_stored(mirror.root, keep) if keep else None
        if owned_attempt(mirror.root, owner, path):
            freed += drop_checkpoints(path, keep=keep_path)
        elif path.exists():
            logger.warning(
                "retention: not touching %s (trial %d): not an attempt folder of this study "
                "under the artifacts root %s",
                path,
                trial.number,
                mirror.root,
            )
        names = stored.get(rel, []) if rel.startswith(f"{owner}/") else []
        kept = {keep_path.name, f"{keep_path.name}.sha256"} if keep_path else set()
        doomed = [f"{rel}/{name}" for name in names if name not in kept]
        if doomed and mirror.store is not None:
            try:
                mirror.store.delete(doomed)
            except ObjectStoreError as exc:
                logger.warning("retention: %s", exc)
    return freed


def _dropped(study: optuna.Study) -> Iterator[tuple[FrozenTrial, str | None]]:
    """``(trial, checkpoint to keep)`` for each attempt whose checkpoints retention drops."""
    trials = study.get_trials(deepcopy=False)
    folder = {t.number: t.user_attrs.get(TrialAttr.CHECKPOINT_DIR) for t in trials}
    taken_over = {
        history[-1]
        for t in trials
        if (history := t.system_attrs.get("retry_history"))
        and folder.get(history[-1])
        and folder[t.number] != folder.get(history[-1])
    }
    best = best_of_study(study)
    for trial in trials:
        if not folder[trial.number]:
            continue
        if trial.state is TrialState.COMPLETE:
            final = trial.user_attrs.get(TrialAttr.CHECKPOINT)
            is_best = best is not None and trial.number == best.number
            yield trial, (str(final) if is_best and final else None)
        elif trial.number in taken_over and trial.state is not TrialState.RUNNING:
            yield trial, None


__all__ = ["apply_retention"]
