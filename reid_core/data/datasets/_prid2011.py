"""PRID-2011 (Hirzer et al., SCIA 2011), multi-shot: 178 ids seen long enough by both cameras."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from reid_core.data.datasets._base import DATASETS
from reid_core.data.datasets._base import VideoDataset
from reid_core.data.datasets._base import relabel
from reid_core.data.datasets._ilidsvid import read_sequence
from reid_core.data.datasets._ilidsvid import sequences
from reid_core.data.records import ReidSplit
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError

logger = logging.getLogger(__name__)

SPLIT_FILE = "splits_prid2011.json"
DEFAULT_MIN_FRAMES = 21
NUM_SPLITS = 10
SPLIT_SEED = 0
_CAMERAS = ("cam_a", "cam_b")


@DATASETS.register("prid")
class PRID2011(VideoDataset):
    """PRID-2011 multi-shot in its public layout, with 10 random 50/50 id splits.

    Only persons with at least ``min_frames`` frames in both cameras are used (178 ids with the
    default 21). When ``splits_prid2011.json`` (the public split file: a list of
    ``{"train": [folder, ...], "test": [folder, ...]}``) sits in the root it defines the splits
    as given; otherwise 10 splits are drawn from the eligible persons with a fixed seed (0),
    train = the first half of each permutation, and nothing is written to disk.
    Query = ``cam_a``, gallery = ``cam_b`` of the test ids; pids are the person numbers.

    Args:
        root: folder holding ``prid_2011/multi_shot/`` (and optionally the split file).
        split_id: which split (0-based).
        min_frames: eligibility threshold per camera; None means 21.
    """

    name = "prid"
    layout = "prid_2011/multi_shot/{cam_a,cam_b}/person_XXXX/*.png [, splits_prid2011.json]"

    def __init__(
        self, root: str | Path, *, split_id: int = 0, min_frames: int | None = None
    ) -> None:
        super().__init__(root)
        self.split_id = split_id
        self.min_frames = DEFAULT_MIN_FRAMES if min_frames is None else min_frames

    def index_files(self) -> list[Path]:
        """The optional split file and the camera folders."""
        shot = self.root / "prid_2011" / "multi_shot"
        return [self.root / SPLIT_FILE, *(shot / cam for cam in _CAMERAS)]

    def notes(self) -> list[str]:
        """A note when the public split file is missing (the splits are then our own)."""
        if (self.root / SPLIT_FILE).exists():
            return []
        return [
            f"PRID-2011: no {SPLIT_FILE} in {self.root}: using {NUM_SPLITS} splits drawn with "
            f"seed {SPLIT_SEED}, not the public ones the published numbers used"
        ]

    def _parse(self) -> ReidSplit:
        shot = self.root / "prid_2011" / "multi_shot"
        cam_dirs = [self._require(shot / cam, f"{cam} sequences") for cam in _CAMERAS]
        split_path = self.root / SPLIT_FILE
        if split_path.exists():
            splits = _read_splits(split_path, cam_dirs)
            source = str(split_path)
        else:
            for note in self.notes():
                logger.warning(note)
            splits = self._generate_splits(cam_dirs)
            source = f"the {NUM_SPLITS} generated splits"
        if not 0 <= self.split_id < len(splits):
            raise ConfigError(
                f"split_id={self.split_id} is out of range 0..{len(splits) - 1} ({source})"
            )
        train_dirs, test_dirs = splits[self.split_id]

        return ReidSplit(
            train=relabel(sequences(cam_dirs, train_dirs, (0, 1))),
            query=tuple(sequences(cam_dirs, test_dirs, (0,))),
            gallery=tuple(sequences(cam_dirs, test_dirs, (1,))),
        )

    def _generate_splits(self, cam_dirs: list[Path]) -> list[tuple[list[str], list[str]]]:
        def long_enough(cam: Path) -> set[str]:
            return {
                p.name
                for p in cam.iterdir()
                if p.is_dir() and len(read_sequence(p)) >= self.min_frames
            }

        eligible = sorted(long_enough(cam_dirs[0]) & long_enough(cam_dirs[1]))
        if len(eligible) < 2:
            raise DatasetFormatError(
                f"{cam_dirs[0].parent}: {len(eligible)} persons have >= {self.min_frames} frames "
                "in both cameras; need at least 2"
            )
        rng = np.random.default_rng(SPLIT_SEED)
        half = len(eligible) // 2
        splits = []
        for _ in range(NUM_SPLITS):
            order = rng.permutation(len(eligible))
            splits.append(
                (
                    [eligible[i] for i in sorted(order[:half].tolist())],
                    [eligible[i] for i in sorted(order[half:].tolist())],
                )
            )
        return splits


def _read_splits(path: Path, cam_dirs: list[Path]) -> list[tuple[list[str], list[str]]]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise DatasetFormatError(f"{path}: expected a non-empty list of {{train, test}} splits")
    splits = []
    for i, entry in enumerate(raw):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("train"), list)
            and isinstance(entry.get("test"), list)
        ):
            raise DatasetFormatError(f"{path}: split {i} must be {{'train': [...], 'test': [...]}}")
        for name in entry["train"] + entry["test"]:
            if not all((cam / str(name)).is_dir() for cam in cam_dirs):
                raise DatasetFormatError(
                    f"{path}: split {i} names {name!r}, which is not a folder in both cam_a "
                    "and cam_b"
                )
        splits.append(([str(n) for n in entry["train"]], [str(n) for n in entry["test"]]))
    return splits
