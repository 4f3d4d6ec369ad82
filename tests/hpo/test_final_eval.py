"""hpo.study.evaluate_best_on_test: the best validation trial, once on the test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.errors import NoCompletedTrialError
from hpo.spec import StudySpec
from hpo.spec import parse_spec
from hpo.storage import open_storage
from hpo.study import StudyAttr
from hpo.study import create_study
from hpo.study import evaluate_best_on_test
from hpo.study import load_study
from reid_core.data import write_synthetic
from reid_core.engine import TrainConfig
from reid_core.engine import Trainer
from reid_core.engine import load_checkpoint
from reid_core.errors import CheckpointError
from reid_core.errors import EvaluationError
from tests._helpers.fake_study import add_fake_trials
from tests._helpers.fake_study import make_study


class FakeEvaluator:
    """Records its calls and returns fixed test metrics."""

    def __init__(self, metrics: dict[str, float] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.metrics = {"mAP": 0.42, "rank1": 0.55} if metrics is None else metrics

    def __call__(self, checkpoint: Path, *, root: Path, rerank: bool, device: str) -> dict:
        self.calls.append({"checkpoint": checkpoint, "root": root, "rerank": rerank})
        return {"metrics": self.metrics, "cmc": [0.55, 0.7, 0.8], "epoch": 3}


@pytest.fixture()
def spec(tmp_path: Path) -> StudySpec:
    return parse_spec(
        {
            "name": "fake-study",
            "dataset": {"name": "mars", "root": str(tmp_path / "mars")},
            "search_space": {"sigma": {"type": "float", "low": 0.1, "high": 1.0}},
            "budget": {"n_trials": 6},
        }
    )


@pytest.fixture()
def study(tmp_path: Path) -> optuna.Study:
    return make_study(optuna.storages.InMemoryStorage(), checkpoint_root=tmp_path / "runs")


def test_evaluates_the_best_trials_checkpoint_and_stores_the_result(
    study: optuna.Study, spec: StudySpec, tmp_path: Path
) -> None:
    evaluator = FakeEvaluator()
    result = evaluate_best_on_test(study, spec, evaluator=evaluator)
    assert evaluator.calls == [
        {
            "checkpoint": tmp_path / "runs" / "trial_2" / "last.pt",
            "root": tmp_path / "mars",
            "rerank": True,
        }
    ]
    stored = study.user_attrs[StudyAttr.TEST_RESULT]
    assert stored == result
    assert (stored["trial"], stored["metrics"], stored["cmc"]) == (
        2,
        {"mAP": 0.42, "rank1": 0.55},
        [0.55, 0.7, 0.8],
    )
    # optuna-dashboard shows it as the study's note, in %, not as a JSON user attribute.
    from optuna_dashboard import get_note

    note = get_note(study)
    assert "- test split, evaluated once (trial 2): mAP 42.0%, rank1 55.0%" in note
    assert "- best trial on validation: trial 2" in note
    # The study's attributes carry it in words and % too (the raw one is for programs).
    assert study.user_attrs["test_result_pct"] == "trial 2, epoch 3: mAP 42.0%, rank1 55.0%"


def test_a_second_call_returns_the_stored_result_without_evaluating(
    study: optuna.Study, spec: StudySpec
) -> None:
    evaluator = FakeEvaluator()
    first = evaluate_best_on_test(study, spec, evaluator=evaluator)
    second = evaluate_best_on_test(study, spec, evaluator=evaluator)
    assert len(evaluator.calls) == 1
    assert second == first


def test_force_evaluates_again(study: optuna.Study, spec: StudySpec) -> None:
    evaluator = FakeEvaluator()
    evaluate_best_on_test(study, spec, evaluator=evaluator)
    evaluate_best_on_test(study, spec, evaluator=evaluator, force=True)
    assert len(evaluator.calls) == 2


def test_a_result_for_a_former_best_trial_is_replaced(study: optuna.Study, spec: StudySpec) -> None:
    study.set_user_attr(StudyAttr.TEST_RESULT, {"trial": 0, "metrics": {"mAP": 0.1}, "cmc": []})
    evaluator = FakeEvaluator()
    result = evaluate_best_on_test(study, spec, evaluator=evaluator)
    assert len(evaluator.calls) == 1
    assert result["trial"] == 2


def test_the_test_result_never_changes_the_best_trial(study: optuna.Study, spec: StudySpec) -> None:
    # A (hypothetically) better test score must not influence selection.
    evaluate_best_on_test(study, spec, evaluator=FakeEvaluator({"mAP": 0.99}))
    assert study.best_trial.number == 2
    assert study.best_value == pytest.approx(0.6)


def test_a_study_without_complete_trials_is_refused(spec: StudySpec) -> None:
    study = optuna.create_study(study_name="empty", direction="maximize")
    with pytest.raises(NoCompletedTrialError, match="'empty' has no complete trial"):
        evaluate_best_on_test(study, spec, evaluator=FakeEvaluator())


def test_a_best_trial_without_checkpoint_is_refused(spec: StudySpec) -> None:
    study = make_study(optuna.storages.InMemoryStorage())
    with pytest.raises(CheckpointError, match="trial 2 recorded no checkpoint"):
        evaluate_best_on_test(study, spec, evaluator=FakeEvaluator())


def test_a_checkpoint_missing_on_this_machine_is_named(
    study: optuna.Study, spec: StudySpec, tmp_path: Path
) -> None:
    (tmp_path / "runs" / "trial_2" / "last.pt").unlink()
    with pytest.raises(CheckpointError, match=r"trial_2/last\.pt does not exist"):
        evaluate_best_on_test(study, spec, evaluator=FakeEvaluator())
    assert StudyAttr.TEST_RESULT not in study.user_attrs


def test_an_evaluation_without_metrics_stores_nothing(study: optuna.Study, spec: StudySpec) -> None:
    with pytest.raises(EvaluationError, match="trial 2 returned no metrics"):
        evaluate_best_on_test(study, spec, evaluator=FakeEvaluator(metrics={}))
    assert StudyAttr.TEST_RESULT not in study.user_attrs


def test_study_test_cli_reports_an_unusable_checkpoint_in_one_line(
    sqlite_url: str, spec: StudySpec, tmp_path: Path
) -> None:
    study = create_study(spec, open_storage(sqlite_url))
    add_fake_trials(study, checkpoint_root=tmp_path / "runs")  # dummy bytes, no checksum
    result = CliRunner().invoke(app, ["study", "test", spec.name, "--storage", sqlite_url])
    assert result.exit_code == 2
    assert result.output.startswith("Error: checkpoint ")
    assert "trial_2" in result.output


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, checkpoint) of a one-epoch resnet18 run on a tiny synthetic MARS."""
    tmp = tmp_path_factory.mktemp("trained")
    root = write_synthetic(
        tmp / "mars", "mars", ids=12, cameras=2, tracklets=3, frames=6, height=32, width=16
    )
    cfg = TrainConfig.from_dict(
        {
            "data": {
                "dataset": "mars",
                "root": str(root),
                "height": 32,
                "width": 16,
                "seq_len": 2,
                "batch_size": 4,
                "num_instances": 2,
                "num_workers": 0,
                "test_max_clips": 2,
                "validation": {"fraction": 0.5},
            },
            "model": {"arch": "tp", "backbone": "resnet18", "pretrained": False},
            "optim": {"warmup_epochs": 0, "milestones": []},
            "epochs": 1,
            "eval_every": 1,
            "device": "cpu",
            "output_dir": str(tmp / "run"),
        }
    )
    checkpoint = Trainer(cfg, progress=False).fit().checkpoint
    assert checkpoint is not None
    return root, checkpoint


def test_study_test_cli_evaluates_a_real_checkpoint_once(
    sqlite_url: str, trained_checkpoint: tuple[Path, Path]
) -> None:
    root, checkpoint = trained_checkpoint
    spec = parse_spec(
        {
            "name": "real-study",
            "dataset": {"name": "mars", "root": str(root)},
            "search_space": {"sigma": {"type": "float", "low": 0.1, "high": 1.0}},
            "budget": {"n_trials": 1},
        }
    )
    study = create_study(spec, open_storage(sqlite_url))
    trial = study.ask()
    trial.suggest_float("sigma", 0.1, 1.0)
    trial.set_user_attr("checkpoint", str(checkpoint))
    study.tell(trial, 0.5)
    command = ["study", "test", "real-study", "--storage", sqlite_url, "--device", "cpu"]

    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "Test split, trial 0: mAP=" in first.output
    stored = load_study(spec.name, sqlite_url)[0].user_attrs[StudyAttr.TEST_RESULT]
    assert stored["trial"] == 0
    assert stored["split"] == "test"
    # The epoch a person reads is 1-based: the number of epochs the checkpoint trained, as
    # its file name and its own ``epoch`` entry count them.
    assert stored["epoch"] == load_checkpoint(checkpoint)["epoch"]
    assert Path(stored["checkpoint"]).name == f"epoch_{stored['epoch']:04d}.pt"
    assert 0.0 <= stored["metrics"]["mAP"] <= 1.0
    assert "rerank_mAP" in stored["metrics"]
    assert len(stored["cmc"]) > 0

    second = CliRunner().invoke(app, command)
    assert second.exit_code == 0, second.output
    again = load_study(spec.name, sqlite_url)[0].user_attrs[StudyAttr.TEST_RESULT]
    assert again["evaluated_at"] == stored["evaluated_at"]
