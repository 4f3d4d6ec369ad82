"""The reader base class, its summary dataclasses, and the dataset registry."""

from __future__ import annotations

import logging
from abc import ABC
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from reid_core.data.records import ReidSplit
from reid_core.data.records import Tracklet
from reid_core.errors import DatasetNotFoundError
from reid_core.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubsetSummary:
    """Counts of one subset (train, query or gallery)."""

    ids: int
    tracklets: int
    frames: int
    cameras: int

    @classmethod
    def of(cls, records: Sequence[Tracklet]) -> SubsetSummary:
        """Count the identities, tracklets, frames and cameras of ``records``."""
        return cls(
            ids=len({t.pid for t in records}),
            tracklets=len(records),
            frames=sum(len(t.frames) for t in records),
            cameras=len({t.camid for t in records}),
        )


@dataclass(frozen=True)
class DatasetSummary:
    """Counts per subset of a parsed dataset, as printed by ``reid-hpo data check``."""

    name: str
    train: SubsetSummary
    query: SubsetSummary
    gallery: SubsetSummary

    def rows(self) -> list[tuple[str, SubsetSummary]]:
        """``[("train", ...), ("query", ...), ("gallery", ...)]`` for tables."""
        return [("train", self.train), ("query", self.query), ("gallery", self.gallery)]


class VideoDataset(ABC):
    """A video re-ID benchmark read from its public on-disk layout.

    Parsing is lazy and happens once, on first access to ``train``, ``query`` or ``gallery``.
    ``train`` pids are relabelled ``0..num_train_pids-1`` (sorted by original id); ``query`` and
    ``gallery`` keep the dataset's own pids. Camera ids are 0-based. Frames are sorted by the
    frame number in their file name.

    Args:
        root: the dataset's root folder (the one holding the layout shown by ``layout``).
    """

    #: Registry key, set by each subclass.
    name: str = ""
    #: The expected on-disk tree, shown when something is missing.
    layout: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @abstractmethod
    def index_files(self) -> list[Path]:
        """Files and folders whose change means the layout must be parsed again."""

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """``(path, mtime_ns, size)`` of every existing :meth:`index_files` entry."""
        stamps = []
        for path in self.index_files():
            try:
                stat = path.stat()
            except OSError:
                continue
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def notes(self) -> list[str]:
        """One line per way this copy is read differently from the published protocol."""
        return []

    @abstractmethod
    def _parse(self) -> ReidSplit:
        """Read the layout and return the split (train already relabelled)."""

    @cached_property
    def split(self) -> ReidSplit:
        """The parsed train / query / gallery records."""
        if not self.root.is_dir():
            self._missing(self.root, "the dataset root folder")
        split = self._parse()
        logger.debug(
            "%s: %d train / %d query / %d gallery tracklets from %s",
            self.name,
            len(split.train),
            len(split.query),
            len(split.gallery),
            self.root,
        )
        return split

    @property
    def train(self) -> tuple[Tracklet, ...]:
        """Training tracklets, pids relabelled ``0..num_train_pids-1``."""
        return self.split.train

    @property
    def query(self) -> tuple[Tracklet, ...]:
        """Query tracklets with the dataset's own pids."""
        return self.split.query

    @property
    def gallery(self) -> tuple[Tracklet, ...]:
        """Gallery tracklets with the dataset's own pids."""
        return self.split.gallery

    @property
    def num_train_pids(self) -> int:
        """Number of training identities (the classifier's output size)."""
        return self.split.num_train_pids

    def summary(self) -> DatasetSummary:
        """Identity / tracklet / frame / camera counts of each subset."""
        return DatasetSummary(
            name=self.name,
            train=SubsetSummary.of(self.train),
            query=SubsetSummary.of(self.query),
            gallery=SubsetSummary.of(self.gallery),
        )

    def _missing(self, path: Path, what: str) -> None:
        raise DatasetNotFoundError(
            f"{self.name}: {path} not found ({what}); expected under {self.root}: {self.layout}"
        )

    def _require(self, path: Path, what: str) -> Path:
        if not path.exists():
            self._missing(path, what)
        return path


def relabel(records: Sequence[Tracklet]) -> tuple[Tracklet, ...]:
    """Map pids to ``0..N-1`` in sorted order of the original pids."""
    label = {pid: i for i, pid in enumerate(sorted({t.pid for t in records}))}
    return tuple(Tracklet(t.frames, label[t.pid], t.camid) for t in records)


def drop_short(records: Sequence[Tracklet], min_frames: int | None) -> tuple[Tracklet, ...]:
    """Records with at least ``min_frames`` frames (all of them when ``min_frames`` is None)."""
    if not min_frames:
        return tuple(records)
    return tuple(t for t in records if len(t.frames) >= min_frames)


DATASETS: Registry[type[VideoDataset]] = Registry("dataset")
