"""iLIDS-VID (Wang et al., ECCV 2014): 300 ids, 2 cameras, one sequence per id and camera."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import scipy.io

from reid_core.data._frames import sort_frame_names
from reid_core.data.datasets._base import DATASETS
from reid_core.data.datasets._base import VideoDataset
from reid_core.data.datasets._base import drop_short
from reid_core.data.datasets._base import relabel
from reid_core.data.records import FrameList
from reid_core.data.records import ReidSplit
from reid_core.data.records import Tracklet
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError

SPLIT_FILE = Path("train-test people splits") / "train_test_splits_ilidsvid.mat"
_CAMERAS = ("cam1", "cam2")


def person_id(folder: str) -> int:
    """``person012`` / ``person_0012`` -> 12."""
    match = re.search(r"(\d+)$", folder)
    if match is None:
        raise DatasetFormatError(f"{folder!r}: expected a person folder like person012")
    return int(match.group(1))


def read_sequence(folder: Path) -> FrameList:
    """The ``*.png`` frames of one sequence folder, sorted by frame number.

    Raises:
        DatasetFormatError: the folder holds no frame.
    """
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.lower().endswith(".png")]
    if not names:
        raise DatasetFormatError(f"{folder}: empty tracklet (expected *.png frames)")
    return FrameList(folder, sort_frame_names(names, folder))


def sequences(cam_dirs: list[Path], persons: list[str], cams: tuple[int, ...]) -> list[Tracklet]:
    """One tracklet per person folder and camera index (pid = the person number)."""
    return [
        Tracklet(read_sequence(cam_dirs[c] / p), person_id(p), c) for p in persons for c in cams
    ]


@DATASETS.register("ilidsvid")
class ILIDSVID(VideoDataset):
    """iLIDS-VID in its public layout, with the 10 official train/test splits.

    Row ``split_id`` of ``ls_set`` (10 x 300, 1-based indices into the sorted person folders of
    ``cam1``) splits the ids in halves. As in Wang et al.'s protocol (and torchreid), the first
    half are the test ids and the second half the training ids. Query = the test ids' ``cam1``
    sequences, gallery = their ``cam2`` sequences; pids are the person numbers.

    Args:
        root: folder holding ``i-LIDS-VID/`` and ``train-test people splits/``.
        split_id: which of the splits (0-based row of ``ls_set``).
        min_frames: drop sequences shorter than this (None keeps all).
    """

    name = "ilidsvid"
    layout = (
        "i-LIDS-VID/sequences/{cam1,cam2}/personXXX/*.png, "
        "train-test people splits/train_test_splits_ilidsvid.mat (key ls_set, 10 x 300)"
    )

    def __init__(
        self, root: str | Path, *, split_id: int = 0, min_frames: int | None = None
    ) -> None:
        super().__init__(root)
        self.split_id = split_id
        self.min_frames = min_frames

    def index_files(self) -> list[Path]:
        """The split file and the camera folders (a person added or removed changes them)."""
        seq_root = self.root / "i-LIDS-VID" / "sequences"
        return [self.root / SPLIT_FILE, *(seq_root / cam for cam in _CAMERAS)]

    def _parse(self) -> ReidSplit:
        seq_root = self.root / "i-LIDS-VID" / "sequences"
        cam_dirs = [self._require(seq_root / cam, f"{cam} sequences") for cam in _CAMERAS]
        split_path = self._require(self.root / SPLIT_FILE, "the train/test split file")
        persons = sorted(p.name for p in cam_dirs[0].iterdir() if p.is_dir())
        missing = sorted(set(persons) ^ {p.name for p in cam_dirs[1].iterdir() if p.is_dir()})
        if missing:
            raise DatasetFormatError(
                f"{seq_root}: {missing[0]} is not in both cam1 and cam2 (expected the same persons)"
            )
        ls_set = _read_ls_set(split_path, num_persons=len(persons))
        if not 0 <= self.split_id < ls_set.shape[0]:
            raise ConfigError(
                f"split_id={self.split_id} is out of range 0..{ls_set.shape[0] - 1} ({split_path})"
            )
        row = ls_set[self.split_id]
        half = len(row) // 2
        test_dirs = [persons[i - 1] for i in sorted(row[:half].tolist())]
        train_dirs = [persons[i - 1] for i in sorted(row[half:].tolist())]

        return ReidSplit(
            train=relabel(drop_short(sequences(cam_dirs, train_dirs, (0, 1)), self.min_frames)),
            query=drop_short(sequences(cam_dirs, test_dirs, (0,)), self.min_frames),
            gallery=drop_short(sequences(cam_dirs, test_dirs, (1,)), self.min_frames),
        )


def _read_ls_set(path: Path, *, num_persons: int) -> np.ndarray:
    try:
        raw = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several unrelated types on bad files
        raise DatasetFormatError(f"{path}: not a readable .mat file ({exc})") from None
    if "ls_set" not in raw:
        found = sorted(k for k in raw if not k.startswith("__"))
        raise DatasetFormatError(f"{path}: no variable 'ls_set' (found {found})")
    ls_set = np.asarray(raw["ls_set"])
    if ls_set.ndim != 2 or ls_set.shape[1] < 2 or not np.issubdtype(ls_set.dtype, np.number):
        raise DatasetFormatError(
            f"{path}: ls_set has shape {ls_set.shape}; expected (splits, persons) numbers"
        )
    ls_set = ls_set.astype(np.int64)
    for r, row in enumerate(ls_set, start=1):
        if row.min() < 1 or row.max() > num_persons or len(set(row.tolist())) != len(row):
            raise DatasetFormatError(
                f"{path}: ls_set row {r} must hold distinct 1-based person indices in "
                f"1..{num_persons} (the sorted cam1 person folders)"
            )
    return ls_set
