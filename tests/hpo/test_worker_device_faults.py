"""The failure policy of workers: streaks of one failure kind, sticky CUDA errors, restarts.

The end-to-end tests inject the faults into real worker processes started by the real
supervisor: a ``sitecustomize`` module on the children's ``PYTHONPATH`` makes the trainer
raise what a broken GPU raises (``torch.OutOfMemoryError``, ``torch.AcceleratorError`` with
an illegal memory access), as soon as a trial builds it.
"""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.worker import EXIT_RESTART
from hpo.worker import DeviceRestartRequired
from hpo.worker import FlappingGuard
from hpo.worker import WorkerError
from hpo.worker import fail_reason
from hpo.worker import make_objective
from hpo.worker import run_supervisor
from hpo.worker import run_worker
from reid_core.errors import NonFiniteLossError
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import trials_of

ILLEGAL_ADDRESS = "CUDA error: an illegal memory access was encountered"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _create(tmp_path: Path, data_root: Path, url: str, n_trials: int) -> None:
    raw = spec_dict(name="w", data_root=data_root, artifacts=tmp_path / "runs", n_trials=n_trials)
    create_study(StudySpec.model_validate(raw), url)


# ------------------------------------------------------------------------------ unit pieces


def test_sticky_cuda_errors_and_oom_get_their_own_fail_reasons() -> None:
    assert fail_reason(torch.AcceleratorError(ILLEGAL_ADDRESS)) == "cuda_error"
    assert fail_reason(RuntimeError("CUDA error: device-side assert triggered")) == "cuda_error"
    assert fail_reason(torch.OutOfMemoryError(OOM)) == "oom"
    assert fail_reason(RuntimeError("CUDA error: invalid argument")) == "exception:RuntimeError"


def test_guard_trips_on_a_streak_of_one_kind_however_slow() -> None:
    guard = FlappingGuard(3)
    assert not guard.record("oom", failed=True)
    assert not guard.record("oom", failed=True)
    assert guard.record("oom", failed=True)  # no time window: hour-long trials count too
    assert isinstance(guard.error("s"), DeviceRestartRequired)


def test_guard_streak_is_broken_by_another_kind_or_a_trial_that_trained() -> None:
    guard = FlappingGuard(3)
    for reason, failed in [
        ("data_error", True),
        ("data_error", True),
        ("oom", True),  # another kind: a new streak
        ("data_error", True),
        (None, False),  # a COMPLETE or PRUNED trial
        ("data_error", True),
        ("nonfinite_loss", True),  # the hyperparameters' outcome: the setup trains
        ("data_error", True),
        ("interrupted", True),  # handed back: neutral
        ("data_error", True),
    ]:
        assert not guard.record(reason, failed=failed)
    assert guard.record("data_error", failed=True)
    error = guard.error("s")
    assert isinstance(error, WorkerError)
    assert str(error).startswith("3 trials in a row failed with data_error")


def test_nonfinite_losses_never_stop_a_worker(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=4)
    factory = fake_trainer_factory({n: NonFiniteLossError("loss is nan") for n in range(4)})
    result = run_worker("w", sqlite_url, trainer_factory=factory)
    assert (result.failed, result.complete, result.stop_reason) == (4, 4, "budget")


def test_a_sticky_cuda_error_ends_the_process_after_one_trial(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=3)
    factory = fake_trainer_factory({0: torch.AcceleratorError(ILLEGAL_ADDRESS)})
    with pytest.raises(DeviceRestartRequired, match="trial 0 hit a CUDA error"):
        run_worker("w", sqlite_url, trainer_factory=factory)
    (trial,) = trials_of("w", sqlite_url)
    assert (trial.state, trial.user_attrs["fail_reason"]) == (TrialState.FAIL, "cuda_error")


# ---------------------------------------------------- real worker processes, real supervisor

_INJECT = """
import torch
from reid_core.engine import _trainer

def _broken_gpu(self, *args, **kwargs):
    raise {exception}

_trainer.Trainer.__init__ = _broken_gpu
"""


def _inject(tmp_path: Path, exception: str, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Children of the supervisor start with ``exception`` raised by every trial's trainer."""
    site = tmp_path / "inject"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(_INJECT.format(exception=exception)))
    for key, value in child_env(url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(REPO_ROOT)]))


@pytest.mark.parametrize(
    ("exception", "reason", "trials_per_process"),
    [
        (f"torch.AcceleratorError({ILLEGAL_ADDRESS!r})", "cuda_error", 1),
        (f"torch.OutOfMemoryError({OOM!r})", "oom", 3),
    ],
)
def test_a_broken_gpu_is_restarted_then_left_idle(
    exception: str,
    reason: str,
    trials_per_process: int,
    tmp_path: Path,
    data_root: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=20)
    _inject(tmp_path, exception, monkeypatch, sqlite_url)
    with caplog.at_level(logging.INFO, logger="hpo.worker._supervisor"):
        code = run_supervisor("w", sqlite_url, "none", max_restarts=1)
    assert code == 1  # the slot ran out of restarts: reported, not retried for ever
    trials = trials_of("w", sqlite_url)
    # Two processes (the first and its one restart), each stopped by the policy.
    assert len(trials) == 2 * trials_per_process
    assert {(t.state, t.user_attrs["fail_reason"]) for t in trials} == {(TrialState.FAIL, reason)}
    assert f"needs a fresh process (exit code {EXIT_RESTART}); restart 1/1" in caplog.text
    assert f"exit codes [{EXIT_RESTART}, {EXIT_RESTART}]); cpu left idle" in caplog.text


def test_a_failing_cache_release_never_hides_the_trials_own_cuda_error(
    tmp_path: Path, data_root: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sticky() -> None:  # what CUDA answers every call after such an error
        raise torch.AcceleratorError("CUDA error: unspecified launch failure")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", sticky)
    raw = spec_dict(name="w", data_root=data_root, artifacts=tmp_path / "runs", n_trials=1)
    spec = StudySpec.model_validate(raw)
    study = create_study(spec, sqlite_url)
    factory = fake_trainer_factory({0: torch.AcceleratorError(ILLEGAL_ADDRESS)})
    objective = make_objective(spec, study_name="w", trainer_factory=factory)
    with pytest.raises(torch.AcceleratorError, match="illegal memory access"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].user_attrs["fail_reason"] == "cuda_error"
