"""Checkpoint files: atomic write, SHA-256 verification, rotation and the last.pt pointer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from reid_core.engine import CheckpointManager
from reid_core.engine import _checkpoint as checkpoint_module
from reid_core.engine import load_checkpoint
from reid_core.engine import save_checkpoint
from reid_core.errors import CheckpointError
from reid_core.files import atomic_write


def _state(value: float = 1.0) -> dict:
    return {"epoch": 3, "model": {"w": torch.full((64, 64), value)}, "metrics": {"mAP": 0.5}}


def test_round_trip_keeps_tensors_and_adds_metadata(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _state(2.0))
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.full((64, 64), 2.0))
    assert loaded["metrics"] == {"mAP": 0.5}
    assert loaded["code_version"]["reid_core"]
    assert (tmp_path / "a.pt.sha256").read_text().split()[1] == "a.pt"


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_flipped_byte_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _state())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_missing_checksum_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _state())
    (tmp_path / "a.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="no checksum"):
        load_checkpoint(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _state(1.0))

    def crash(handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((64, 64), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "a.pt.sha256"]


def test_manager_keeps_two_and_points_last_at_the_newest(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=2)
    for epoch in range(1, 5):
        manager.save(_state(float(epoch)), epoch=epoch)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "epoch_0003.pt",
        "epoch_0003.pt.sha256",
        "epoch_0004.pt",
        "epoch_0004.pt.sha256",
        "last.pt",
    ]
    assert torch.equal(
        load_checkpoint(tmp_path / "last.pt")["model"]["w"], torch.full((64, 64), 4.0)
    )
    assert torch.equal(load_checkpoint(tmp_path)["model"]["w"], torch.full((64, 64), 4.0))


def test_manager_drops_checkpoints_of_an_abandoned_later_run(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=3)
    for epoch in (1, 2, 3):
        manager.save(_state(), epoch=epoch)
    manager.save(_state(), epoch=2)  # resumed from epoch 1, redoing epoch 2
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_0001.pt", "epoch_0002.pt"]
    assert os.path.realpath(tmp_path / "last.pt") == str((tmp_path / "epoch_0002.pt").resolve())


def test_remove_all_keeps_only_the_named_checkpoint_and_other_files(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=2)
    for epoch in range(1, 4):
        manager.save(_state(float(epoch)), epoch=epoch)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    dropped = tmp_path / "epoch_0002.pt"
    size = dropped.stat().st_size + (tmp_path / "epoch_0002.pt.sha256").stat().st_size
    assert manager.remove_all(keep=tmp_path / "epoch_0003.pt") == size
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_0003.pt", "epoch_0003.pt.sha256", "last.pt", "metrics.jsonl"]
    assert torch.equal(load_checkpoint(tmp_path)["model"]["w"], torch.full((64, 64), 3.0))
    assert manager.remove_all() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
    assert CheckpointManager(tmp_path / "missing").remove_all() == 0


@pytest.mark.parametrize(
    "state",
    [{"epoch": "3"}, {"epoch": True}, {"model": [1, 2]}, {"model": {"w": 1.0}}, {"config": "x"}],
    ids=["epoch-str", "epoch-bool", "model-list", "model-float", "config-str"],
)
def test_a_checkpoint_with_wrong_types_is_refused_by_name(tmp_path: Path, state: dict) -> None:
    path = save_checkpoint(tmp_path / "a.pt", {**_state(), **state})
    with pytest.raises(CheckpointError, match="is malformed"):
        load_checkpoint(path)


def test_a_sidecar_that_is_not_text_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _state())
    (tmp_path / "a.pt.sha256").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError, match="unreadable checksum file"):
        load_checkpoint(path)


def test_a_format_1_checkpoint_loads_with_its_epochs_counted_from_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:  # written before epochs were 1-based
        patched.setattr(checkpoint_module, "CHECKPOINT_FORMAT", 1)
        path = save_checkpoint(
            tmp_path / "epoch_0002.pt", {**_state(), "epoch": 2, "best_epoch": 1}
        )
    state = load_checkpoint(path)
    assert (state["format"], state["epoch"], state["best_epoch"]) == (2, 3, 2)
    assert (
        load_checkpoint(save_checkpoint(tmp_path / "b.pt", {**_state(), "epoch": 3}))["epoch"] == 3
    )


def test_a_checkpoint_of_an_unknown_format_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(checkpoint_module, "CHECKPOINT_FORMAT", 3)
        path = save_checkpoint(tmp_path / "a.pt", _state())
    with pytest.raises(CheckpointError, match=r"not a reid-hpo checkpoint of format 1 or 2$"):
        load_checkpoint(path)
