"""Typed records shared by readers, samplers and the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tracklet:
    """One tracklet: frames of one person seen by one camera, sorted by frame number.

    ``pid`` is the dataset's own person id for query/gallery records and the relabelled
    contiguous id (0..num_train_pids-1) for training records; ``camid`` is 0-based.
    """

    frames: tuple[Path, ...]
    pid: int
    camid: int


@dataclass(frozen=True)
class ReidSplit:
    """Train / query / gallery record lists of one dataset (or one validation carve-out)."""

    train: tuple[Tracklet, ...]
    query: tuple[Tracklet, ...]
    gallery: tuple[Tracklet, ...]

    @property
    def num_train_pids(self) -> int:
        return len({t.pid for t in self.train})
