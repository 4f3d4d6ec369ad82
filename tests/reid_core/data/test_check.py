from __future__ import annotations

from pathlib import Path

import pytest

from reid_core.data import build_dataset
from reid_core.data import check_dataset
from reid_core.errors import DatasetFormatError

# The trees of conftest.py: ids=8 in every layout, half of them train and half test.
HALF = 8 // 2
# (ids, tracklets, cameras) per subset of the two-camera layouts: a train id has one tracklet
# per camera, the query holds the test ids in the first camera and the gallery in the second.
TWO_CAMERA_COUNTS = {
    "train": (HALF, 2 * HALF, 2),
    "query": (HALF, HALF, 1),
    "gallery": (HALF, HALF, 1),
}
# Frames a tracklet may have: frames=8 gives 8 // 3..8; PRID's eligible persons get 21..21
# (21..max(21, frames) with the default frames=12).
TRACKLET_FRAMES = {"mars": (8 // 3, 8), "ilidsvid": (8 // 3, 8), "prid": (21, 21)}
# MARS keeps write_synthetic's defaults: 4 tracklets per id, each id on 2..3 of the 3 cameras.
MARS_TRACKLETS = 4
MARS_CAMERAS = 3


@pytest.mark.parametrize("name", ["ilidsvid", "prid"])
def test_check_returns_the_counts(name: str, ilids_root: Path, prid_root: Path) -> None:
    root = {"ilidsvid": ilids_root, "prid": prid_root}[name]
    summary = check_dataset(root, name)
    assert summary.name == name
    low, high = TRACKLET_FRAMES[name]
    for subset, counts in summary.rows():
        assert (counts.ids, counts.tracklets, counts.cameras) == TWO_CAMERA_COUNTS[subset]
        assert low * counts.tracklets <= counts.frames <= high * counts.tracklets


def test_check_returns_the_mars_counts(mars_root: Path) -> None:
    """The test set adds 2 distractor (pid 0) and 2 junk tracklets, junk being dropped; the
    query holds one tracklet per test id and camera, the gallery all the others."""
    summary = check_dataset(mars_root, "mars")
    assert summary.name == "mars"
    assert (summary.train.ids, summary.train.tracklets) == (HALF, MARS_TRACKLETS * HALF)
    assert 2 <= summary.train.cameras <= MARS_CAMERAS
    assert summary.query.ids == HALF
    assert 2 * HALF <= summary.query.tracklets <= MARS_CAMERAS * HALF
    assert 2 <= summary.query.cameras <= MARS_CAMERAS
    assert summary.gallery.ids == HALF + 1
    assert summary.query.tracklets + summary.gallery.tracklets == MARS_TRACKLETS * HALF + 2
    low, high = TRACKLET_FRAMES["mars"]
    for _, counts in summary.rows():
        assert low * counts.tracklets <= counts.frames <= high * counts.tracklets


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
