"""Frame-level helpers shared by readers, loaders and the dataset check: ordering and decoding."""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL import UnidentifiedImageError
from torchvision.io import ImageReadMode
from torchvision.io import decode_jpeg
from torchvision.io import read_file
from torchvision.transforms.v2 import functional as tvf

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


def sort_frame_names(names: Iterable[str], folder: Path | str = "") -> list[str]:
    """File names sorted as :func:`sort_frames` sorts their paths (no path objects made).

    Raises:
        DatasetFormatError: a name holds no digits (names ``folder / name``).
    """
    keyed = []
    for name in names:
        match = _LAST_NUMBER.search(name.rsplit(".", 1)[0] if "." in name else name)
        if match is None:
            raise DatasetFormatError(
                f"{Path(folder, name)}: no frame number in the file name (expected digits)"
            )
        keyed.append((int(match.group(1)), name))
    keyed.sort()
    return [name for _, name in keyed]


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


def decode_frame(path: Path) -> torch.Tensor:
    """Decode one frame as an ``uint8`` RGB tensor of shape (3, H, W).

    JPEG files go through torchvision's libjpeg-turbo decoder (about 3x faster than PIL's
    ``open`` + ``convert`` + copy); other formats, and any JPEG that decoder rejects, through
    :func:`load_frame`.

    Raises:
        DatasetFormatError: the file is missing, truncated or not an image (names the file).
    """
    if str(path).lower().endswith((".jpg", ".jpeg")):
        try:
            with warnings.catch_warnings():
                # torchvision 0.29 deprecates its image codecs (in favour of TorchCodec) and
                # warns on every call; they are still the fastest JPEG path here.
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # load_frame decides: PIL may still read it, or it names the problem
    return torch.from_numpy(np.ascontiguousarray(load_frame(path).transpose(2, 0, 1)))


def decode_resized(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """:func:`decode_frame`, resized to ``size`` = (height, width) when it differs.

    The resize is torchvision's antialiased bilinear one on ``uint8`` (the same as
    ``v2.Resize(size, antialias=True)``), so a resized frame is bit-identical to resizing it
    inside a clip transform.
    """
    frame = decode_frame(path)
    if tuple(frame.shape[-2:]) != tuple(size):
        frame = tvf.resize(frame, list(size), antialias=True)
    return frame


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
        max_bytes: total size of the cached frames before the oldest are evicted.
        load: decodes a frame on a miss (:func:`load_frame` by default; the loaders pass
            :func:`decode_resized`, so a hit skips both decoding and resizing).
    """

    def __init__(
        self, max_bytes: int = 256 * 2**20, load: Callable[[Path], Any] = load_frame
    ) -> None:
        self.max_bytes = max_bytes
        self._load = load
        self._items: OrderedDict[Path, Any] = OrderedDict()
        self._bytes = 0

    def load(self, path: Path) -> Any:
        """Decoded frame from the cache, decoding and inserting it on a miss."""
        frame = self._items.get(path)
        if frame is not None:
            self._items.move_to_end(path)
            return frame
        frame = self._load(path)
        if frame.nbytes <= self.max_bytes:
            self._items[path] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return frame

    def __len__(self) -> int:
        return len(self._items)
