from __future__ import annotations

import json
from pathlib import Path

import pytest

from reid_core.data import PRID2011
from reid_core.data import build_dataset
from reid_core.data import frame_number
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError


def _cam(root: Path, cam: str) -> Path:
    return root / "prid_2011" / "multi_shot" / cam


def _eligible(root: Path, min_frames: int) -> set[int]:
    def long_enough(cam: str) -> set[str]:
        return {p.name for p in _cam(root, cam).iterdir() if len(list(p.iterdir())) >= min_frames}

    return {int(n[-4:]) for n in long_enough("cam_a") & long_enough("cam_b")}


def test_only_persons_long_enough_in_both_cameras(prid_root: Path) -> None:
    ds = build_dataset("prid", prid_root)
    test_ids = {t.pid for t in ds.query}
    assert len(test_ids) + ds.num_train_pids == len(_eligible(prid_root, 21)) == 8
    assert test_ids <= _eligible(prid_root, 21)


def test_min_frames_override_admits_more_persons(prid_root: Path) -> None:
    ds = build_dataset("prid", prid_root, min_frames=1)
    assert len({t.pid for t in ds.query}) + ds.num_train_pids > 8


def test_ten_distinct_seeded_splits(prid_root: Path) -> None:
    splits = [frozenset(t.pid for t in PRID2011(prid_root, split_id=i).query) for i in range(10)]
    again = [frozenset(t.pid for t in PRID2011(prid_root, split_id=i).query) for i in range(10)]
    assert splits == again
    assert len(set(splits)) > 1
    with pytest.raises(ConfigError, match="split_id=10"):
        _ = PRID2011(prid_root, split_id=10).train


def test_query_is_cam_a_and_gallery_cam_b(prid_root: Path) -> None:
    ds = PRID2011(prid_root)
    assert {t.camid for t in ds.query} == {0}
    assert {t.camid for t in ds.gallery} == {1}
    assert {t.pid for t in ds.query} == {t.pid for t in ds.gallery}
    assert not list(prid_root.glob("*.json"))  # nothing written


def test_split_file_is_used_when_present(copy_tree, prid_root: Path) -> None:
    root = copy_tree(prid_root)
    (root / "splits_prid2011.json").write_text(
        json.dumps([{"train": ["person_0001", "person_0002"], "test": ["person_0003"]}])
    )
    ds = PRID2011(root)
    assert [t.pid for t in ds.query] == [3]
    assert ds.num_train_pids == 2
    assert ds.notes() == []


def test_generated_splits_warn_in_one_line(
    prid_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = PRID2011(prid_root)
    with caplog.at_level("WARNING"):
        _ = ds.train
    (note,) = ds.notes()
    assert "no splits_prid2011.json" in note and "\n" not in note
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [note]


def test_split_file_naming_a_missing_person_is_refused(copy_tree, prid_root: Path) -> None:
    root = copy_tree(prid_root)
    (root / "splits_prid2011.json").write_text(json.dumps([{"train": ["person_9999"], "test": []}]))
    with pytest.raises(DatasetFormatError, match="person_9999"):
        _ = PRID2011(root).train


def test_frames_sorted_numerically(copy_tree, prid_root: Path) -> None:
    root = copy_tree(prid_root)
    ds = PRID2011(root)
    person = ds.query[0].frames[0].parent
    frames = sorted(person.iterdir())
    # Unpadded 9, 18, ..., 99, 108, ...: string order would put "108" before "18" and "9".
    numbers = [9 * (i + 1) for i in range(len(frames))]
    for f, number in zip(frames, numbers, strict=True):
        f.rename(person / f"{number}.png")
    tracklet = PRID2011(root).query[0]
    assert [frame_number(f) for f in tracklet.frames] == numbers
    assert [f.name for f in tracklet.frames] != sorted(f.name for f in tracklet.frames)
