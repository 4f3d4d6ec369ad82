"""Frame-level helpers shared by readers, loaders and the dataset check: ordering and decoding."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from PIL import UnidentifiedImageError

from reid_core.errors import DatasetFormatError

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_number(path: Path | str) -> int:
    """The frame number of a frame file: the last run of digits in its file stem.

    ``0001C1T0001F017.jpg`` -> 17, ``cam1_person001_00317.png`` -> 317, ``0009.png`` -> 9.

    Raises:
        DatasetFormatError: the file stem holds no digits.
    """
    stem = Path(path).stem
    match = _LAST_NUMBER.search(stem)
    if match is None:
        raise DatasetFormatError(f"{path}: no frame number in the file name (expected digits)")
    return int(match.group(1))


def sort_frames(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Paths sorted by frame number (ties by name), never by filesystem or string order."""
    return tuple(sorted(paths, key=lambda p: (frame_number(p), p.name)))


def load_frame(path: Path) -> np.ndarray:
    """Decode one frame as an ``uint8`` RGB array of shape (H, W, 3).

    Raises:
        DatasetFormatError: the file is missing, truncated or not an image (names the file).
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise DatasetFormatError(f"missing frame {path}") from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetFormatError(f"cannot decode frame {path}: {exc}") from None


def verify_frame(path: Path) -> None:
    """Open ``path`` and check that it is a complete, decodable image.

    Raises:
        DatasetFormatError: the file is missing or corrupt (names the file).
    """
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            img.load()
    except FileNotFoundError:
        raise DatasetFormatError(f"missing frame {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DatasetFormatError(f"corrupt frame {path}: {exc}") from None


class FrameCache:
    """A bounded least-recently-used cache of decoded frames (one per process / worker).

    Args:
        max_bytes: total size of the cached arrays before the oldest are evicted.
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._bytes = 0

    def load(self, path: Path) -> np.ndarray:
        """Decoded frame from the cache, decoding and inserting it on a miss."""
        frame = self._items.get(path)
        if frame is not None:
            self._items.move_to_end(path)
            return frame
        frame = load_frame(path)
        if frame.nbytes <= self.max_bytes:
            self._items[path] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return frame

    def __len__(self) -> int:
        return len(self._items)
