"""The training loop: callbacks, stopping, failures, checkpoints and exact resumption."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reid_core.data import ReidSplit
from reid_core.data import build_dataset
from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.engine import FitResult
from reid_core.engine import StopTraining
from reid_core.engine import Trainer
from reid_core.engine import _checkpoint as checkpoint_module
from reid_core.engine import load_checkpoint
from reid_core.engine import save_checkpoint
from reid_core.errors import CheckpointError
from reid_core.errors import NonFiniteLossError
from tests.reid_core.engine.conftest import TinyConfig


class Recorder(Callback):
    """Records the hooks it sees, and whether the epoch's checkpoint was on disk by then."""

    def __init__(self, raise_at: int | None = None, exc: Exception | None = None) -> None:
        self.events: list[tuple] = []
        self.reports: list[EpochReport] = []
        self.result: FitResult | None = None
        self.raise_at = raise_at
        self.exc = exc

    def on_train_start(self, trainer: Trainer) -> None:
        self.events.append(("start",))

    def on_epoch_end(self, report: EpochReport) -> None:
        on_disk = report.checkpoint is not None and report.checkpoint.is_file()
        self.events.append(("epoch", report.epoch, report.metrics is not None, on_disk))
        self.reports.append(report)
        if report.epoch == self.raise_at and self.exc is not None:
            raise self.exc

    def on_train_end(self, result: FitResult) -> None:
        self.events.append(("end",))
        self.result = result


def test_callbacks_run_in_order_with_checkpoint_written_first(
    tiny_cfg: TinyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = Recorder(), Recorder()
    with caplog.at_level(logging.INFO, logger="reid_core.engine._trainer"):
        result = Trainer(tiny_cfg(epochs=3, eval_every=2)).fit(callbacks=[first, second])
    # One line per epoch, 1-based, with the elapsed time and the ETA of plain training.
    lines = [m for m in caplog.messages if m.startswith("epoch ")]
    assert [line.split(",")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(re.search(r", elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d,", x) for x in lines)
    assert lines[-1].split(", ")[2] == "ETA 0:00:00" and "mAP" in lines[-1]
    # epoch 1 is an evaluation epoch, epoch 2 the last one; epoch 0 neither
    expected = [
        ("start",),
        ("epoch", 0, False, False),
        ("epoch", 1, True, True),
        ("epoch", 2, True, True),
        ("end",),
    ]
    assert first.events == expected
    assert second.events == expected
    assert first.result is result
    assert result.epochs_run == 3
    assert result.final_metrics == first.reports[-1].metrics
    assert set(result.final_metrics) == {"mAP", "rank1", "rank5", "rank10", "rank20"}
    assert all(0.0 <= v <= 1.0 for v in result.final_metrics.values())
    assert result.final_evaluation.metrics == result.final_metrics
    assert len(result.final_evaluation.cmc) == 50
    assert first.reports[0].losses.keys() >= {"total", "ce", "triplet", "center"}
    assert first.reports[0].lr == pytest.approx(1e-4)  # warm-up: 0.1 x lr at epoch 0


def test_stop_training_ends_cleanly_with_a_checkpoint(
    tiny_cfg: TinyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_cfg(epochs=4, eval_every=3)
    recorder = Recorder(raise_at=0, exc=StopTraining("enough"))
    with caplog.at_level(logging.INFO, logger="reid_core.engine._trainer"):
        result = Trainer(cfg, log_epochs=False).fit(callbacks=[recorder])
    # A caller that logs its own epoch line (an HPO worker) gets no second one.
    assert not [m for m in caplog.messages if m.startswith("epoch ")]
    assert result.stopped_early
    assert result.epochs_run == 1
    assert recorder.events[-1] == ("end",)
    assert result.checkpoint.name == "epoch_0001.pt"  # the first epoch's, 1-based
    assert load_checkpoint(result.checkpoint)["epoch"] == 1
    saved = json.loads((Path(cfg.output_dir) / "results.json").read_text())
    assert saved["stopped_early"] is True
    assert saved["epochs_run"] == 1


def test_callback_exception_propagates_after_the_checkpoint(tiny_cfg: TinyConfig) -> None:
    class Pruned(Exception):
        pass

    cfg = tiny_cfg(epochs=3, eval_every=2)  # epoch 0 is not a checkpoint epoch by itself
    recorder = Recorder(raise_at=0, exc=Pruned("pruned at epoch 0"))
    with pytest.raises(Pruned, match="pruned at epoch 0"):
        Trainer(cfg).fit(callbacks=[recorder])
    assert load_checkpoint(Path(cfg.output_dir) / "last.pt")["epoch"] == 1
    assert recorder.events[-1] == ("end",)  # on_train_end runs in finally
    assert recorder.result is not None and recorder.result.epochs_run == 1


def test_nan_loss_names_epoch_and_step(tiny_cfg: TinyConfig) -> None:
    class Poison(Callback):
        def on_train_start(self, trainer: Trainer) -> None:
            with torch.no_grad():
                trainer.model.classifier.weight.fill_(float("nan"))

    # Loss terms are read back every LOSS_READ_EVERY steps and at the end of the epoch; the
    # message names the terms that are not finite (the logits feed the cross-entropy only).
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 0(-\d+)? ") as caught:
        Trainer(tiny_cfg()).fit(callbacks=[Poison()])
    assert str(caught.value).endswith("; not finite: ce, total)")


def test_evaluation_uses_validation_ids_never_test_ids(tiny_cfg: TinyConfig) -> None:
    cfg = tiny_cfg()
    trainer = Trainer(cfg)
    dataset = build_dataset("mars", cfg.data.root)
    test_frames = {f for t in (*dataset.query, *dataset.gallery) for f in t.frames}
    eval_frames = {
        f for t in (*trainer.eval_split.query, *trainer.eval_split.gallery) for f in t.frames
    }
    train_frames = {f for t in dataset.train for f in t.frames}
    assert eval_frames <= train_frames
    assert not eval_frames & test_frames
    assert trainer.num_classes < dataset.num_train_pids  # validation ids were held out


def test_resume_gives_the_same_weights_and_losses(tiny_cfg: TinyConfig, tmp_path: Path) -> None:
    straight_cfg = tiny_cfg(output_dir=str(tmp_path / "straight"))
    straight = Trainer(straight_cfg)
    straight_result = straight.fit()

    split_cfg = tiny_cfg(output_dir=str(tmp_path / "split"))
    first = Trainer(replace(split_cfg, epochs=1)).fit()
    assert first.epochs_run == 1
    resumed = Trainer(split_cfg)
    resumed_result = resumed.fit(resume_from=first.checkpoint)

    assert resumed_result.epochs_run == 2
    assert resumed_result.history[0]["epoch"] == 2
    assert resumed_result.history[0]["losses"] == straight_result.history[1]["losses"]
    assert resumed_result.final_metrics == straight_result.final_metrics
    straight_state = straight.model.state_dict()
    for name, tensor in resumed.model.state_dict().items():
        assert torch.equal(tensor, straight_state[name]), name
    assert torch.equal(
        resumed.criterion.state_dict()["center.centers"],
        straight.criterion.state_dict()["center.centers"],
    )


def test_a_format_1_checkpoint_resumes_after_the_epoch_it_ended(
    tiny_cfg: TinyConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg(epochs=1)
    first = Trainer(cfg).fit()
    state = load_checkpoint(first.checkpoint)
    old = Path(cfg.output_dir) / "epoch_0000.pt"  # named and counted from 0, as format 1 did
    with monkeypatch.context() as patched:
        patched.setattr(checkpoint_module, "CHECKPOINT_FORMAT", 1)
        save_checkpoint(old, {**state, "epoch": 0, "best_epoch": 0})
    result = Trainer(replace(cfg, epochs=2)).fit(resume_from=old)
    assert (result.epochs_run, result.history[0]["epoch"]) == (2, 2)
    assert result.checkpoint.name == "epoch_0002.pt"


def test_rerank_metrics_are_reported_when_asked(tiny_cfg: TinyConfig) -> None:
    result = Trainer(tiny_cfg(epochs=1), evaluate_rerank=True).fit()
    assert {"rerank_mAP", "rerank_rank1", "rerank_rank20"} <= set(result.final_metrics)


def test_given_splits_are_used_as_they_are(tiny_cfg: TinyConfig) -> None:
    cfg = tiny_cfg()
    dataset = build_dataset("mars", cfg.data.root)
    holdout = ReidSplit(train=(), query=dataset.train[:2], gallery=dataset.train[2:6])
    trainer = Trainer(cfg, split=ReidSplit(dataset.train, (), ()), eval_split=holdout)
    assert trainer.num_classes == dataset.num_train_pids  # nothing carved out
    assert trainer.eval_split is holdout


def test_torn_metrics_log_line_is_dropped_on_resume(tiny_cfg: TinyConfig) -> None:
    cfg = tiny_cfg(epochs=1)
    first = Trainer(cfg).fit()
    log = Path(cfg.output_dir) / "metrics.jsonl"
    log.write_text(log.read_text() + '{"epoch": 2, "loss')  # a crash mid-append
    Trainer(replace(cfg, epochs=2)).fit(resume_from=first.checkpoint)
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == [1, 2]


class _CheckpointsAtStart(Callback):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.names = sorted(p.name for p in self.folder.glob("epoch_*.pt"))


def test_a_run_resumed_from_an_earlier_epoch_drops_the_later_checkpoints_before_training(
    tiny_cfg: TinyConfig,
) -> None:
    cfg = tiny_cfg(epochs=3)
    Trainer(cfg).fit()
    folder = Path(cfg.output_dir)
    assert sorted(p.name for p in folder.glob("epoch_*.pt")) == ["epoch_0002.pt", "epoch_0003.pt"]
    seen = _CheckpointsAtStart(folder)
    Trainer(cfg).fit(callbacks=[seen], resume_from=folder / "epoch_0002.pt")
    assert seen.names == ["epoch_0002.pt"]  # the abandoned epoch 3 is never resumed from


class _DiedAfterCheckpoint(Exception):
    """The process dying right after an epoch's checkpoint reached the disk."""


def test_a_run_that_dies_right_after_a_checkpoint_resumes_with_that_epoch_logged(
    tiny_cfg: TinyConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg(epochs=1)
    trainer = Trainer(cfg)
    written = trainer.checkpoints.save

    def save_then_die(*args: object, **kwargs: object) -> Path:
        written(*args, **kwargs)
        raise _DiedAfterCheckpoint

    monkeypatch.setattr(trainer.checkpoints, "save", save_then_die)
    with pytest.raises(_DiedAfterCheckpoint):
        trainer.fit()
    checkpoint = Path(cfg.output_dir) / "epoch_0001.pt"
    Trainer(replace(cfg, epochs=2)).fit(resume_from=checkpoint)
    log = Path(cfg.output_dir) / "metrics.jsonl"
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]


def test_resuming_a_checkpoint_of_another_dataset_is_refused(
    tiny_cfg: TinyConfig, tmp_path: Path
) -> None:
    other = tiny_cfg(output_dir=str(tmp_path / "other"))
    wrong = save_checkpoint(
        tmp_path / "wrong.pt", Trainer(other).state_dict(0) | {"num_classes": 99}
    )
    with pytest.raises(CheckpointError, match="99 ids"):
        Trainer(tiny_cfg()).fit(resume_from=wrong)
