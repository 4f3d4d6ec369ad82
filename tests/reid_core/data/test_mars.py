from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from reid_core.data import Mars
from reid_core.data import build_dataset
from reid_core.data import frame_number
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError
from reid_core.errors import DatasetNotFoundError


def _table(root: Path, subset: str) -> np.ndarray:
    return scipy.io.loadmat(str(root / "info" / f"tracks_{subset}_info.mat"))[
        f"track_{subset}_info"
    ].astype(int)


def _query_rows(root: Path) -> list[int]:
    return scipy.io.loadmat(str(root / "info" / "query_IDX.mat"))["query_IDX"].ravel().tolist()


def test_train_pids_are_relabelled_contiguously(mars_root: Path) -> None:
    ds = build_dataset("mars", mars_root)
    assert sorted({t.pid for t in ds.train}) == list(range(ds.num_train_pids))
    assert ds.num_train_pids == 4


def test_junk_tracklets_are_dropped_and_distractors_kept(mars_root: Path) -> None:
    ds = build_dataset("mars", mars_root)
    gallery_pids = {t.pid for t in ds.gallery}
    assert -1 not in gallery_pids | {t.pid for t in ds.query}
    assert 0 in gallery_pids
    assert 0 not in {t.pid for t in ds.query}


def test_exclude_query_gallery_is_the_non_query_non_junk_rows(mars_root: Path) -> None:
    table = _table(mars_root, "test")
    queries = set(_query_rows(mars_root))
    expected = sum(1 for i, row in enumerate(table, 1) if row[2] != -1 and i not in queries)
    ds = build_dataset("mars", mars_root)
    assert len(ds.query) == len(queries)
    assert len(ds.gallery) == expected


def test_official_gallery_keeps_the_queries(mars_root: Path) -> None:
    excl = build_dataset("mars", mars_root)
    official = build_dataset("mars", mars_root, mars_gallery="official")
    assert len(official.gallery) == len(excl.gallery) + len(excl.query)
    assert set(excl.query) <= set(official.gallery)


def test_camids_are_zero_based(mars_root: Path) -> None:
    ds = build_dataset("mars", mars_root)
    assert {t.camid for t in ds.train + ds.query + ds.gallery} <= {0, 1, 2}
    assert 0 in {t.camid for t in ds.train}


def test_frames_follow_frame_numbers_not_the_name_list_order(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    names = (root / "info" / "train_name.txt").read_text().splitlines()
    for start, end, _, _ in _table(root, "train"):
        names[start - 1 : end] = reversed(names[start - 1 : end])
    (root / "info" / "train_name.txt").write_text("\n".join(names) + "\n")
    for t in Mars(root).train:
        numbers = [frame_number(f) for f in t.frames]
        assert numbers == sorted(numbers)
        assert all(f.exists() for f in t.frames)


def test_missing_mat_file_is_named(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    (root / "info" / "query_IDX.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"query_IDX\.mat"):
        _ = Mars(root).query


def test_missing_root_shows_the_expected_tree(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="bbox_train"):
        _ = Mars(tmp_path / "nope").train


def test_row_out_of_range_names_the_file_and_row(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    table = _table(root, "train").astype(float)
    table[2, 1] = 10**6
    scipy.io.savemat(str(root / "info" / "tracks_train_info.mat"), {"track_train_info": table})
    with pytest.raises(DatasetFormatError, match=r"tracks_train_info\.mat: row 3"):
        _ = Mars(root).train


def test_unparsable_mat_names_the_file(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    (root / "info" / "tracks_test_info.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetFormatError, match=r"tracks_test_info\.mat"):
        _ = Mars(root).gallery


def test_split_id_other_than_zero_is_refused(mars_root: Path) -> None:
    with pytest.raises(ConfigError, match="split_id=1"):
        build_dataset("mars", mars_root, split_id=1)


def test_parse_happens_once(mars_root: Path) -> None:
    ds = Mars(mars_root)
    assert ds.train is ds.train
    assert ds.split is ds.split
