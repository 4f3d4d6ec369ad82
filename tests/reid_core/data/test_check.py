from __future__ import annotations

from pathlib import Path

import pytest

from reid_core.data import build_dataset
from reid_core.data import check_dataset
from reid_core.errors import DatasetFormatError


@pytest.mark.parametrize("name", ["mars", "ilidsvid", "prid"])
def test_check_returns_the_counts(name: str, mars_root, ilids_root, prid_root) -> None:
    root = {"mars": mars_root, "ilidsvid": ilids_root, "prid": prid_root}[name]
    summary = check_dataset(root, name)
    assert summary == build_dataset(name, root).summary()
    assert summary.train.tracklets > 0 and summary.query.tracklets > 0


def test_check_names_the_first_corrupt_jpeg(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    bad = build_dataset("mars", root).gallery[-1].frames[1]
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DatasetFormatError, match=bad.name):
        check_dataset(root, "mars")


def test_check_names_a_missing_frame(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    frame = build_dataset("mars", root).train[2].frames[0]
    frame.unlink()  # still listed in train_name.txt
    with pytest.raises(DatasetFormatError, match=f"missing frame .*{frame.name}"):
        check_dataset(root, "mars")
