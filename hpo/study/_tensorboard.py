"""TensorBoard runs named by trial: a ``--logdir_spec`` over a study's attempt folders.

A trial writes its event files in its attempt folder, keyed by the study's uuid, in a folder
named by its trial number: ``<root>/<uuid>/trial_<n>/run_<k>/tensorboard/trial_<k>`` (no
study name becomes a path, so a re-created or renamed study never mixes its runs with
another's). TensorBoard names a run by its path under ``--logdir``, so ``--logdir <root>``
shows the uuid in front of each. ``--logdir_spec`` names a group of runs instead: the entry
``<study name>:<attempt folder>/tensorboard`` makes the run ``<study name>/trial_<n>``, and
``<study name>/pruned`` (or ``/failed``) marks a trial that did not complete. (A folder named
directly by an entry would be shown as ``<name>/.``: hence the ``trial_<n>`` folder.)
"""

from __future__ import annotations

import re
from pathlib import Path

from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.study._artifacts import resolve_stored
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import reading
from hpo.study.records import TrialAttr
from hpo.study.records import read_spec_or_none

TENSORBOARD_FOLDER = "tensorboard"
"""The event-file folder of an attempt (``reid_core.engine.TENSORBOARD_DIR``)."""


def trial_events_dir(attempt_folder: Path, number: int) -> Path:
    """Where the attempt of trial ``number`` writes its TensorBoard event files."""
    return attempt_folder / TENSORBOARD_FOLDER / f"trial_{number}"


def tensorboard_runs(name: str, storage_url: StorageLike) -> dict[str, Path]:
    """The run TensorBoard will show -> the event-file folder, for each trial attempt that has
    one: ``<study name>/trial_<n>``, ``<study name>/pruned/trial_<n>`` or
    ``<study name>/failed/trial_<n>`` (a retried trial's later attempt has its own number, as
    Optuna numbers it).

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
        folder = trial_events_dir(resolve_stored(root, str(stored)), trial.number)
        if folder.is_dir():
            runs[f"{prefix}{_state_mark(trial)}/{folder.name}"] = folder.absolute()
    return runs


def _state_mark(trial: FrozenTrial) -> str:
    """The group that marks a trial that did not complete."""
    if trial.state is TrialState.PRUNED:
        return "/pruned"
    if trial.state is TrialState.FAIL:
        return "/failed"
    return ""


def logdir_spec(runs: dict[str, Path]) -> str:
    """The ``--logdir_spec`` value that shows each run (``group/folder name``) under its name:
    the folder's parent under the group.

    Example:
        >>> logdir_spec({"demo/trial_0": Path("/runs/u/trial_0/attempt_1/tensorboard/trial_0")})
        'demo:/runs/u/trial_0/attempt_1/tensorboard'
    """
    return ",".join(f"{run.rsplit('/', 1)[0]}:{folder.parent}" for run, folder in runs.items())


__all__ = ["logdir_spec", "tensorboard_runs", "trial_events_dir"]
