"""metrics.jsonl reaches the disk before the checkpoint of its epoch (a power loss, not only a
kill, leaves every checkpoint's epoch in the log it resumes with)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reid_core.engine import METRICS_LOG_NAME
from reid_core.engine._callbacks import EpochReport
from reid_core.engine._metrics_log import MetricsLog


def test_an_epoch_s_line_is_fsynced_when_it_is_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    MetricsLog(tmp_path).on_epoch_end(EpochReport(epoch=0, losses={"total": 1.0}, lr=0.1))
    assert str(tmp_path / METRICS_LOG_NAME) in synced
