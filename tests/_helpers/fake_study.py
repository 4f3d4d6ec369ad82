"""Small Optuna studies written directly with ask/tell, shaped like the ones our workers write.

No training is involved: intermediate values, CMC curves and worker names are made up, so tests
of the report, the dashboard and Optuna's own tools run in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tests._helpers.specs import tiny_spec_dict

SPEC_JSON = json.dumps(tiny_spec_dict(name="fake"))
WORKERS = ("gpu-node-a:101", "gpu-node-b:202")


def _cmc(top: float) -> list[float]:
    return [min(1.0, top + 0.02 * r) for r in range(20)]


def make_study(
    storage: str | optuna.storages.BaseStorage,
    name: str = "fake-study",
    *,
    checkpoint_root: Path | None = None,
) -> optuna.Study:
    """A new maximising study holding the trials of :func:`add_fake_trials`.

    Its ``spec`` user attr is a small valid spec (as reid-hpo stores it) with the ``map``
    objective.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("spec", SPEC_JSON)
    add_fake_trials(study, checkpoint_root=checkpoint_root)
    return study


def add_fake_trials(study: optuna.Study, *, checkpoint_root: Path | None = None) -> None:
    """Add 3 complete, 2 pruned and 1 failed trial, alternating between two workers.

    Complete trials report 4 steps; pruned ones stop after 2; the failed one after 1. The
    best trial is trial 2 (value 0.6) and carries ``cmc`` and ``val_metrics`` user attrs.
    With ``checkpoint_root`` every trial gets a (dummy) ``trial_<n>/last.pt`` recorded in
    the ``checkpoint_dir`` and ``checkpoint`` user attrs, as the objective writes them.
    """
    plan = [
        (TrialState.COMPLETE, 0.40, 4),
        (TrialState.PRUNED, 0.10, 2),
        (TrialState.COMPLETE, 0.60, 4),
        (TrialState.FAIL, 0.20, 1),
        (TrialState.PRUNED, 0.15, 2),
        (TrialState.COMPLETE, 0.50, 4),
    ]
    for i, (state, final, steps) in enumerate(plan):
        trial = study.ask()
        trial.suggest_float("sigma", 0.1, 1.0)
        trial.suggest_float("margin", 1e-6, 1.0, log=True)
        trial.set_user_attr("worker", WORKERS[i % 2])
        trial.set_user_attr("seed", i)
        if checkpoint_root is not None:
            run_dir = checkpoint_root / f"trial_{trial.number}"
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "last.pt").write_bytes(b"not a real checkpoint")
            trial.set_user_attr("checkpoint_dir", str(run_dir))
            trial.set_user_attr("checkpoint", str(run_dir / "last.pt"))
        for step in range(steps):
            trial.report(final * (step + 1) / 4, step)
        if state == TrialState.COMPLETE:
            trial.set_user_attr("cmc", _cmc(final))
            metrics = {"mAP": final, "rank1": final + 0.1, "rank5": final + 0.2, "rank10": 0.95}
            trial.set_user_attr("val_metrics", metrics)
            trial.set_user_attr("epochs_done", steps)
            study.tell(trial, final)
        elif state == TrialState.FAIL:
            trial.set_user_attr("fail_reason", "nonfinite_loss")
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, state=state)
