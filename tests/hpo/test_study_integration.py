"""Whole studies with the real trainer: pruning prunes bad trials, both objectives, both
validation samplings (issue 4). Tiny synthetic MARS data, resnet10, one CPU thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.worker import run_worker
from reid_core.data import write_synthetic
from tests.hpo._worker_support import spec_dict

GOOD_LR = 1.0e-3
BAD_LR = 1.0e-9  # the network does not move: validation mAP stays at its untrained level


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(
        tmp_path_factory.mktemp("data") / "mars",
        "mars",
        ids=32,
        cameras=3,
        tracklets=4,
        frames=8,
        seed=1,
        height=64,
        width=32,
    )


def _spec(tmp_path: Path, data_root: Path, name: str, **changes: Any) -> StudySpec:
    raw = spec_dict(name=name, data_root=data_root, artifacts=tmp_path / "runs", n_trials=1)
    raw["training"].update(
        height=64, width=32, batch_size=16, num_instances=4, seq_len=4, pad=4, lr=GOOD_LR
    )
    raw["validation"].update(fraction=0.3)
    for key, value in changes.items():
        raw[key] = value
    return StudySpec.model_validate(raw)


def test_median_pruner_prunes_the_trials_that_do_not_learn(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(
        tmp_path,
        data_root,
        "prune",
        search_space={"lr": {"type": "categorical", "choices": [GOOD_LR, BAD_LR]}},
        pruner={"name": "median", "options": {"n_startup_trials": 2, "n_warmup_steps": 2}},
        budget={"n_trials": 4},
    )
    raw_training = spec.training.model_copy(update={"epochs": 5})
    spec = spec.model_copy(update={"training": raw_training})
    study = create_study(spec, sqlite_url)
    for lr in (GOOD_LR, GOOD_LR, BAD_LR, BAD_LR):
        study.enqueue_trial({"lr": lr})

    result = run_worker("prune", sqlite_url)

    assert result.stop_reason == "budget"
    states = {t.number: (t.params["lr"], t.state) for t in study.trials}
    assert [s for lr, s in states.values() if lr == GOOD_LR] == [TrialState.COMPLETE] * 2
    bad = [t for t in study.trials if t.params["lr"] == BAD_LR]
    assert [t.state for t in bad] == [TrialState.PRUNED] * 2
    # Pruned trials stopped early: they spent fewer epochs than the complete ones.
    assert all(max(t.intermediate_values) < 4 for t in bad)


@pytest.mark.parametrize(
    ("metric", "key"), [("map", "mAP"), ("rerank_map", "rerank_mAP"), ("rank1", "rank1")]
)
def test_each_objective_is_the_value_of_its_validation_metric(
    tmp_path: Path, data_root: Path, sqlite_url: str, metric: str, key: str
) -> None:
    spec = _spec(tmp_path, data_root, f"obj-{metric}", objective={"metric": metric})
    study = create_study(spec, sqlite_url)
    run_worker(spec.name, sqlite_url)
    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE
    assert trial.value == trial.user_attrs["val_metrics"][key]
    assert 0.0 <= trial.value <= 1.0
    if metric == "rerank_map":
        assert "rerank_cmc" in trial.user_attrs
        assert set(trial.intermediate_values) == {0, 1}


@pytest.mark.parametrize("sampling", ["random", "colour_hardness"])
def test_random_and_colour_hardness_validation_sampling_both_run_a_study(
    tmp_path: Path, data_root: Path, sqlite_url: str, sampling: str
) -> None:
    validation = {"sampling": sampling, "fraction": 0.3, "distractor_fraction": 0.25, "seed": 0}
    spec = _spec(tmp_path, data_root, f"val-{sampling}", validation=validation)
    study = create_study(spec, sqlite_url)
    run_worker(spec.name, sqlite_url)
    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE
    assert 0.0 < trial.value <= 1.0
    stored = optuna.load_study(study_name=spec.name, storage=sqlite_url).user_attrs["spec"]
    assert f'"sampling":"{sampling}"' in stored
