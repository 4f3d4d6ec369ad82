"""TensorBoardLog writes event files that TensorBoard reads back: losses, LR, val metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reid_core.engine import EpochReport
from reid_core.engine import FitResult
from reid_core.engine import TensorBoardLog


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in ``log_dir`` as (step, value) pairs, as TensorBoard loads them."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _fit(callback: TensorBoardLog, reports: list[EpochReport]) -> None:
    callback.on_train_start(None)  # type: ignore[arg-type]  # the log needs no trainer
    for report in reports:
        callback.on_epoch_end(report)
    callback.on_train_end(FitResult(None, None, None, len(reports), None))


def test_event_files_hold_losses_lr_and_validation_metrics(tmp_path: Path) -> None:
    losses = [{"total": 3.0, "triplet": 1.0}, {"total": 2.5, "triplet": 0.8}]
    reports = [
        EpochReport(epoch=0, losses=losses[0], lr=1e-3),
        EpochReport(epoch=1, losses=losses[1], lr=1e-4, metrics={"mAP": 0.45, "rank1": 0.6}),
    ]
    _fit(TensorBoardLog(tmp_path / "tb"), reports)

    scalars = read_scalars(tmp_path / "tb")
    # Steps are 1-based epochs; validation metrics in %, only at evaluated epochs.
    assert scalars["loss/total"] == [(1, 3.0), (2, 2.5)]
    assert scalars["loss/triplet"] == [(1, 1.0), (2, pytest.approx(0.8))]
    assert [(s, pytest.approx(v)) for s, v in scalars["lr"]] == [(1, 1e-3), (2, 1e-4)]
    assert scalars["val/mAP"] == [(2, pytest.approx(45.0))]
    assert scalars["val/rank1"] == [(2, pytest.approx(60.0))]


def test_hparams_land_in_the_runs_own_folder(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from reid_core.engine import write_hparams

    _fit(TensorBoardLog(tmp_path / "tb"), [EpochReport(epoch=0, losses={"total": 1.0}, lr=0.1)])
    write_hparams(tmp_path / "tb", {"sigma": 0.5, "state": "PRUNED"}, {"hparams/val_mAP": 41.2})
    assert [p for p in (tmp_path / "tb").iterdir() if p.is_dir()] == []  # one run, not two
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["state"].string_value == "PRUNED"
    assert start.hparams["sigma"].number_value == pytest.approx(0.5)
    assert read_scalars(tmp_path / "tb")["hparams/val_mAP"] == [(0, pytest.approx(41.2))]
