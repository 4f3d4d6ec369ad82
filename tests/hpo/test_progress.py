"""A worker's epoch line: Optuna's trial number first, one line per epoch, 1-based epochs."""

from __future__ import annotations

import logging

import pytest

from hpo.worker._progress import TrialProgress
from hpo.worker._progress import trial_label
from reid_core.engine import EpochReport


def test_the_epoch_line_names_the_trial_by_its_optuna_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = iter([0.0, 0.0, 10.0])
    progress = TrialProgress(trial_label(2, 8, 1), epochs=6, clock=lambda: next(ticks))
    progress.on_train_start(None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="hpo.worker._progress"):
        progress.on_epoch_end(
            EpochReport(epoch=0, losses={"total": 3.5}, lr=0.1, metrics={"mAP": 0.612})
        )
    (line,) = caplog.messages
    assert line.startswith("trial 1 (2/8) epoch 1/6, elapsed 0:00:10, ETA 0:00:50")
    assert line.endswith("val mAP 61.2%")
