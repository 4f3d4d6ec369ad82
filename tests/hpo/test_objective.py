"""The trial objective on SQLite: value, user attrs, failure sorting, resume of a retry."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpo.errors import SpecError
from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.worker import TrialResult
from hpo.worker import fail_reason
from hpo.worker import make_objective
from hpo.worker import run_trial
from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.engine import Trainer
from reid_core.errors import DatasetFormatError
from reid_core.errors import DatasetNotFoundError
from reid_core.errors import NonFiniteLossError
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _study(spec: StudySpec, url: str) -> optuna.Study:
    return create_study(spec, url)


def _spec(tmp_path: Path, data_root: Path, **kwargs: object) -> StudySpec:
    raw = spec_dict(name="obj", data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    return StudySpec.model_validate(raw)


def test_real_training_records_value_and_every_user_attr(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    study.optimize(make_objective(spec, study_name="obj"), n_trials=1)
    trial = study.trials[0]
    attrs = trial.user_attrs
    assert trial.state is TrialState.COMPLETE
    assert trial.value == attrs["val_metrics"]["mAP"]
    assert 0.0 <= trial.value <= 1.0
    assert set(trial.intermediate_values) == {0, 1}
    assert attrs["seed"] == spec.seed + trial.number
    assert attrs["checkpoint_dir"] == str(tmp_path / "runs" / "obj" / "trial_0")
    assert attrs["last_checkpoint_epoch"] == 1
    assert Path(attrs["checkpoint"]).is_file()
    assert len(attrs["cmc"]) > 0 and all(0.0 <= v <= 1.0 for v in attrs["cmc"])
    assert attrs["code_version"]["hpo"]
    assert attrs["device"] == "cpu"
    assert attrs["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert "fail_reason" not in attrs and "resumed_from_epoch" not in attrs


class _CrashAfterEpoch(Callback):
    """Simulates a worker dying right after the checkpoint of ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, report: EpochReport) -> None:
        if report.epoch == self.epoch:
            raise RuntimeError("worker died")


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_retry_resumes_from_the_checkpoint_of_its_predecessor(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root, epochs=3)
    study = _study(spec, sqlite_url)

    class CrashingTrainer(Trainer):
        def fit(self, *, callbacks, resume_from=None):  # type: ignore[no-untyped-def]
            return super().fit(callbacks=[*callbacks, _CrashAfterEpoch(0)], resume_from=None)

    crashing = make_objective(
        spec, study_name="obj", trainer_factory=lambda cfg, rerank: CrashingTrainer(cfg)
    )
    study.optimize(crashing, n_trials=1, catch=(RuntimeError,))
    # What fail_stale_trials does for a dead worker: a WAITING copy with params + user attrs.
    optuna.storages.RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(
        study, study.trials[0]
    )
    study.optimize(make_objective(spec, study_name="obj"), n_trials=1)

    first, retry = study.trials
    assert retry.state is TrialState.COMPLETE
    assert retry.params == first.params
    assert retry.user_attrs["checkpoint_dir"] == first.user_attrs["checkpoint_dir"]
    assert retry.user_attrs["resumed_from_epoch"] == 1
    assert retry.user_attrs["seed"] == first.user_attrs["seed"]
    assert set(retry.intermediate_values) == {0, 1, 2}
    assert not (tmp_path / "runs" / "obj" / "trial_1").exists()


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (NonFiniteLossError("loss is nan at epoch 0 step 3"), "nonfinite_loss"),
        (torch.OutOfMemoryError("CUDA out of memory"), "oom"),
        (DatasetFormatError("bad.jpg cannot be decoded"), "data_error"),
        (DatasetNotFoundError("no data/mars"), "data_error"),
        (SpecError("search_space.x", "bad"), "spec_error"),
        (KeyError("x"), "exception:KeyError"),
    ],
)
def test_fail_reason_is_machine_readable(exc: Exception, reason: str) -> None:
    assert fail_reason(exc) == reason


def test_nan_loss_fails_the_trial_with_its_reason(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    factory = fake_trainer_factory({0: NonFiniteLossError("loss is nan at epoch 0 step 1")})
    objective = make_objective(spec, study_name="obj", trainer_factory=factory)
    with pytest.raises(NonFiniteLossError):
        study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "nonfinite_loss"


def test_run_trial_returns_how_the_trial_ended(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    failing = fake_trainer_factory({0: NonFiniteLossError("loss is nan at epoch 0 step 1")})
    objective = make_objective(spec, study_name="obj", trainer_factory=failing)
    assert run_trial(study, objective, deadline=None) == TrialResult(
        0, TrialState.FAIL, reason="nonfinite_loss"
    )
    objective = make_objective(spec, study_name="obj", trainer_factory=fake_trainer_factory())
    started: list[int] = []
    result = run_trial(
        study, objective, deadline=None, on_start=lambda: started.append(len(study.trials))
    )
    assert started == [2]  # called once the trial exists in the storage
    assert (result.number, result.state, result.reason) == (1, TrialState.COMPLETE, None)
    assert result.value == study.trials[1].value


def test_objective_metric_selects_the_value(tmp_path: Path, data_root: Path) -> None:
    raw = spec_dict(name="obj", data_root=data_root, artifacts=tmp_path / "runs")
    raw["objective"]["metric"] = "rerank_map"
    spec = StudySpec.model_validate(raw)
    study = optuna.create_study(direction="maximize")
    study.optimize(
        make_objective(spec, study_name="obj", trainer_factory=fake_trainer_factory()),
        n_trials=1,
    )
    trial = study.trials[0]
    assert trial.value == pytest.approx(trial.params["sigma"])
    assert math.isclose(trial.user_attrs["val_metrics"]["rerank_mAP"], trial.value)
    assert trial.user_attrs["rerank_cmc"] == trial.user_attrs["cmc"]
