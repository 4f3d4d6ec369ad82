from __future__ import annotations

from pathlib import Path

import pytest
import scipy.io

from reid_core.data import ILIDSVID
from reid_core.data import build_dataset
from reid_core.data import frame_number
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError
from reid_core.errors import DatasetNotFoundError

_SPLITS = Path("train-test people splits") / "train_test_splits_ilidsvid.mat"


def _persons(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "i-LIDS-VID" / "sequences" / "cam1").iterdir())


def test_ten_splits_follow_ls_set(ilids_root: Path) -> None:
    ls_set = scipy.io.loadmat(str(ilids_root / _SPLITS))["ls_set"].astype(int)
    persons = _persons(ilids_root)
    for split_id in range(10):
        ds = build_dataset("ilidsvid", ilids_root, split_id=split_id)
        test_numbers = {int(persons[i - 1][-3:]) for i in ls_set[split_id, :4]}
        assert {t.pid for t in ds.query} == test_numbers
        assert {t.pid for t in ds.gallery} == test_numbers
        assert ds.num_train_pids == 4


def test_query_is_cam1_and_gallery_cam2(ilids_root: Path) -> None:
    ds = build_dataset("ilidsvid", ilids_root)
    assert {t.camid for t in ds.query} == {0}
    assert {t.camid for t in ds.gallery} == {1}
    assert len(ds.train) == 2 * ds.num_train_pids


def test_frames_sorted_numerically_not_lexicographically(copy_tree, ilids_root: Path) -> None:
    root = copy_tree(ilids_root)
    person = root / "i-LIDS-VID" / "sequences" / "cam1" / _persons(root)[0]
    frames = sorted(person.iterdir())
    # Unpadded 9, 18, ..., 99, 108, ...: string order would put "108" before "18" and "9".
    numbers = [9 * (i + 1) for i in range(len(frames))]
    for f, number in zip(frames, numbers, strict=True):
        f.rename(person / f"cam1_{person.name}_{number}.png")
    ds = ILIDSVID(root)
    tracklet = next(t for t in ds.query + ds.train if t.frames[0].parent == person)
    assert [frame_number(f) for f in tracklet.frames] == numbers
    assert [f.name for f in tracklet.frames] != sorted(f.name for f in tracklet.frames)


def test_missing_split_file_is_named(copy_tree, ilids_root: Path) -> None:
    root = copy_tree(ilids_root)
    (root / _SPLITS).unlink()
    with pytest.raises(DatasetNotFoundError, match=r"train_test_splits_ilidsvid\.mat"):
        _ = ILIDSVID(root).train


def test_empty_tracklet_is_named(copy_tree, ilids_root: Path) -> None:
    root = copy_tree(ilids_root)
    person = root / "i-LIDS-VID" / "sequences" / "cam2" / _persons(root)[1]
    for f in person.iterdir():
        f.unlink()
    with pytest.raises(DatasetFormatError, match=person.name):
        _ = ILIDSVID(root).train


def test_index_out_of_range_names_the_row(copy_tree, ilids_root: Path) -> None:
    root = copy_tree(ilids_root)
    ls_set = scipy.io.loadmat(str(root / _SPLITS))["ls_set"]
    ls_set[4, 0] = 999
    scipy.io.savemat(str(root / _SPLITS), {"ls_set": ls_set})
    with pytest.raises(DatasetFormatError, match="ls_set row 5"):
        _ = ILIDSVID(root).train


def test_split_id_out_of_range(ilids_root: Path) -> None:
    with pytest.raises(ConfigError, match="split_id=10"):
        _ = build_dataset("ilidsvid", ilids_root, split_id=10).train
