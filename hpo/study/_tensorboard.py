"""TensorBoard runs named by trial: a ``--logdir_spec`` over a study's attempt folders.

A trial's event files live in its attempt folder, keyed by the study's uuid
(``<root>/<uuid>/trial_<n>/attempt_<k>/tensorboard``: the folder layout keeps a study's data
apart). TensorBoard names a run by its path under ``--logdir``, so ``--logdir <root>`` shows
rows of uuids. ``--logdir_spec`` names each run instead: ``<study name>/trial_<n>``.
"""

from __future__ import annotations

import re
from pathlib import Path

from hpo.study._artifacts import resolve_stored
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import reading
from hpo.study.records import TrialAttr
from hpo.study.records import read_spec_or_none

TENSORBOARD_FOLDER = "tensorboard"
"""The event-file folder of an attempt (``reid_core.engine.TENSORBOARD_DIR``)."""


def tensorboard_runs(name: str, storage_url: StorageLike) -> dict[str, Path]:
    """``<study name>/trial_<n>`` -> the event-file folder of each trial attempt that has one
    (a retried trial's later attempt gets its own number, as Optuna numbers it).

    Raises:
        StudyNotFoundError: No such study.
    """
    with reading(name, storage_url, "`study tensorboard` read it") as (storage, _, study_id):
        trials = storage.get_all_trials(study_id, deepcopy=False)
        spec = read_spec_or_none(storage.get_study_user_attrs(study_id), name)
    root = Path(spec.artifacts.root) if spec else Path()
    # ':' and ',' separate a --logdir_spec's entries: a study name keeps them out of the run.
    prefix = re.sub(r"[:,]", "_", name).lstrip("/") or "study"
    runs = {}
    for trial in sorted(trials, key=lambda t: t.number):
        stored = trial.user_attrs.get(TrialAttr.CHECKPOINT_DIR)
        if not stored:
            continue
        folder = resolve_stored(root, str(stored)) / TENSORBOARD_FOLDER
        if folder.is_dir():
            runs[f"{prefix}/trial_{trial.number}"] = folder.absolute()
    return runs


def logdir_spec(runs: dict[str, Path]) -> str:
    """The ``--logdir_spec`` value naming each run.

    Example:
        >>> logdir_spec({"demo/trial_0": Path("/runs/u/trial_0/attempt_0/tensorboard")})
        'demo/trial_0:/runs/u/trial_0/attempt_0/tensorboard'
    """
    return ",".join(f"{run}:{folder}" for run, folder in runs.items())


__all__ = ["logdir_spec", "tensorboard_runs"]
