"""Typed records shared by readers, samplers and the trainer."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload


class FrameList(Sequence[Path]):
    """The frame paths of one tracklet: a folder and the frame file names in it, in order.

    Behaves as a read-only sequence of :class:`~pathlib.Path` (``folder / name``), built on
    access: a reader stores one folder and the name strings it already holds, so parsing
    MARS's 1.19 M frame names makes no path object. Equal (and hashing equal) to another
    ``FrameList`` or to a tuple of the same paths.

    Example:
        >>> frames = FrameList(Path("bbox_train/0001"), ("0001C1T0001F001.jpg",))
        >>> frames[0].as_posix(), len(frames)
        ('bbox_train/0001/0001C1T0001F001.jpg', 1)
    """

    __slots__ = ("folder", "names")

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = folder
        self.names = tuple(names)

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Path, ...]: ...

    def __getitem__(self, index: int | slice) -> Path | tuple[Path, ...]:
        if isinstance(index, slice):
            return tuple(self.folder / name for name in self.names[index])
        return self.folder / self.names[index]

    def __iter__(self) -> Iterator[Path]:
        folder = self.folder
        return (folder / name for name in self.names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameList):
            return self.names == other.names and self.folder == other.folder
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"FrameList({str(self.folder)!r}, {len(self.names)} frames)"


@dataclass(frozen=True)
class Tracklet:
    """One tracklet: frames of one person seen by one camera, sorted by frame number.

    ``pid`` is the dataset's own person id for query/gallery records and the relabelled
    contiguous id (0..num_train_pids-1) for training records; ``camid`` is 0-based.
    ``frames`` is a tuple of paths or a :class:`FrameList` (same sequence behaviour).
    """

    frames: Sequence[Path]
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
