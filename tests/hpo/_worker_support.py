"""Shared pieces of the objective / worker tests: a tiny study spec, a fake trainer, processes.

The fake trainer stands in for ``reid_core.engine.Trainer`` where a test is about the Optuna
side (budgets, failure sorting): it "trains" in milliseconds, writes real checkpoint files in
the trial directory, reports a metric derived from the sampled ``sigma`` at every epoch, and
can be told to fail on given trial directories. Tests that are about training use the real
trainer on a synthetic MARS dataset (8 ids, 32x16 frames, resnet10, 2 epochs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import ClassVar

import numpy as np
import optuna
import yaml

from hpo.spec import parse_spec
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.study import create_study
from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.engine import EvaluationResult
from reid_core.engine import FitResult
from reid_core.engine import StopTraining
from reid_core.engine import TrainConfig
from reid_core.engine import Trainer

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_dataset(root: Path) -> Path:
    """A tiny synthetic MARS tree (8 ids: 4 train, 4 test) with 32x16 frames."""
    from reid_core.data import write_synthetic

    return write_synthetic(
        root, "mars", ids=8, cameras=2, tracklets=4, frames=6, seed=0, height=32, width=16
    )


def spec_dict(
    *,
    name: str,
    data_root: Path,
    artifacts: Path,
    n_trials: int = 2,
    epochs: int = 2,
    sampler: str = "random",
    pruner: str = "none",
    timeout_hours: float | None = None,
    heartbeat_s: int = 1,
) -> dict[str, Any]:
    """A study spec (as a dict) that trains in a few seconds on one CPU thread, with 1 s
    heartbeats (a dead worker's trial is failed after 3 s)."""
    return {
        "name": name,
        "dataset": {"name": "mars", "root": str(data_root), "split_id": 0},
        "validation": {"sampling": "random", "fraction": 0.5, "distractor_fraction": 0.25},
        "model": {
            "arch": "ta_bt",
            "backbone": "resnet10",
            "attention": "pooled",
            "last_stride": 1,
            "pretrained": False,
        },
        "training": {
            "epochs": epochs,
            "eval_every": 1,
            "height": 32,
            "width": 16,
            "seq_len": 2,
            "batch_size": 4,
            "num_instances": 2,
            "lr": 1.0e-3,
            "warmup_epochs": 0,
            "milestones": [100],
            "num_workers": 0,
            "test_max_clips": 2,
            "test_batch_size": 8,
            "random_erasing": 0.0,
        },
        # The worker tests exercise failed trials with NaN losses (the default scores them 0).
        "objective": {"metric": "map", "direction": "maximize", "on_nan": "fail"},
        "search_space": {
            "sigma": {"type": "float", "low": 0.1, "high": 1.0},
            "margin": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
        },
        "sampler": {"name": sampler, "seed": 0},
        "pruner": {"name": pruner},
        "budget": {"n_trials": n_trials, "timeout_hours": timeout_hours},
        "artifacts": {"root": str(artifacts)},
        "heartbeat": {"interval": heartbeat_s},
        "seed": 0,
    }


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- dead workers


class WorkerDeath(BaseException):
    """A worker process dying mid-trial (SIGKILL), in-process: nothing handles it, so the
    trial stays RUNNING with its checkpoints on disk."""


class DieAfterEpoch(Callback):
    """A training callback that dies (:class:`WorkerDeath`) right after the checkpoint of
    ``epoch``, as a worker killed there."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, report: EpochReport) -> None:
        if report.epoch == self.epoch:
            raise WorkerDeath("worker died")


def dying_trainer(epoch: int) -> type[Trainer]:
    """The real trainer, whose process dies (:class:`DieAfterEpoch`) right after the
    checkpoint of ``epoch`` (0-based)."""

    class DyingTrainer(Trainer):
        def fit(self, *, callbacks, resume_from=None):  # type: ignore[no-untyped-def]
            dying = [*callbacks, DieAfterEpoch(epoch)]
            return super().fit(callbacks=dying, resume_from=resume_from)

    return DyingTrainer


def dying_trainer_factory(epoch: int) -> Callable[[TrainConfig, bool], Trainer]:
    """A ``trainer_factory`` for ``make_objective``: :func:`dying_trainer`."""
    trainer = dying_trainer(epoch)
    return lambda cfg, rerank: trainer(cfg)


def told_study(url: str, name: str, tmp: Path) -> None:
    """A study ``name`` with one COMPLETE trial (told, not trained) on a real synthetic
    dataset under ``tmp``; its artifacts go to ``tmp / "artifacts"``."""
    root = make_dataset(tmp / "mars")
    spec = parse_spec(spec_dict(name=name, data_root=root, artifacts=tmp / "artifacts"))
    storage = open_storage(url)
    try:
        create_study(spec, storage)
        study = optuna.load_study(study_name=name, storage=storage)
        trial = study.ask()
        trial.suggest_float("sigma", 0.1, 1.0)
        trial.suggest_float("margin", 1.0e-3, 1.0, log=True)
        study.tell(trial, 0.5)
    finally:
        close_storage(storage)


def fail_and_queue_retry(study: optuna.Study, url: str, number: int) -> None:
    """What a live worker's watchdog does to a dead worker's trial: FAIL, then a WAITING copy
    with its params, user attrs and intermediate values."""
    from hpo.storage import close_storage
    from hpo.storage import open_storage

    storage = open_storage(url)
    try:
        study_id = storage.get_study_id_from_name(study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    finally:
        close_storage(storage)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)
        retry(study, frozen)


# --------------------------------------------------------------------------- fake trainer


def _trial_number(cfg: TrainConfig) -> int:
    """The Optuna trial number of the attempt that trains in ``cfg.output_dir``."""
    return int(Path(cfg.output_dir).name.removeprefix("run_"))


class FakeTrainer:
    """Quacks like ``reid_core.engine.Trainer`` for the objective (fit + evaluate).

    Metric at epoch e: ``sigma * (e + 1) / epochs``; each epoch writes ``last.pt`` (JSON, with
    the 1-based epoch as a real checkpoint).
    """

    failures: ClassVar[dict[int, BaseException]] = {}
    epoch_seconds: float = 0.0

    def __init__(self, cfg: TrainConfig, *, rerank: bool) -> None:
        self.cfg = cfg
        self.rerank = rerank
        self.dir = Path(cfg.output_dir)
        self.metrics: dict[str, float] = {}

    def _metrics(self, epoch: int) -> dict[str, float]:
        value = self.cfg.loss.osm_sigma * (epoch + 1) / self.cfg.epochs
        metrics = {"mAP": value, "rank1": value}
        if self.rerank:
            metrics["rerank_mAP"] = value
        return metrics

    def fit(self, *, callbacks: Sequence[Callback], resume_from: Path | None) -> FitResult:
        failure = self.failures.get(_trial_number(self.cfg))
        if failure is not None:
            raise failure
        start = 0
        if resume_from is not None:
            start = json.loads(Path(resume_from).read_text())["epoch"]
        self.dir.mkdir(parents=True, exist_ok=True)
        checkpoint = None
        epoch = start - 1
        stopped = False
        for epoch in range(start, self.cfg.epochs):
            time.sleep(self.epoch_seconds)
            self.metrics = self._metrics(epoch)
            checkpoint = self.dir / "last.pt"
            checkpoint.write_text(json.dumps({"epoch": epoch + 1}))
            report = EpochReport(epoch, {"total": 1.0}, 0.1, self.metrics, checkpoint)
            for callback in callbacks:
                try:
                    callback.on_epoch_end(report)
                except StopTraining:
                    stopped = True
            if stopped:
                break
        return FitResult(self.metrics, self.metrics, epoch + 1, epoch + 1, checkpoint, stopped)

    def evaluate(self) -> EvaluationResult:
        last = json.loads((self.dir / "last.pt").read_text())["epoch"] - 1
        metrics = self._metrics(last)
        cmc = np.linspace(metrics["rank1"], 1.0, 5)
        return EvaluationResult(metrics, cmc, cmc if self.rerank else None, 2, 6)


def fake_trainer_factory(
    failures: dict[int, BaseException] | None = None, epoch_seconds: float = 0.0
) -> Callable[..., FakeTrainer]:
    """A ``trainer_factory`` whose trainers fail on the given trial numbers."""

    class _Configured(FakeTrainer):
        pass

    _Configured.failures = dict(failures or {})
    _Configured.epoch_seconds = epoch_seconds
    return _Configured


# ------------------------------------------------------------------------------ processes


def child_env(storage_url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker process: one torch thread, the storage URL (the heartbeat is
    the study's, see :func:`spec_dict`)."""
    env = dict(os.environ)
    env.pop("REID_HPO_HEARTBEAT", None)
    env.update(
        OMP_NUM_THREADS="1",
        REID_HPO_STORAGE=storage_url,
        PYTHONPATH=str(REPO_ROOT),
        CUDA_VISIBLE_DEVICES="",
    )
    env.update(extra)
    return env


def start_python(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Run ``python -c code`` in the repository root (stdout/stderr captured)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def trials_of(name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of a study as a fresh reader sees them."""
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=True)
    finally:
        storage.engine.dispose()
