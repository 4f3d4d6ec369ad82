"""A synthetic dataset writer: the exact public on-disk layouts, filled with learnable people.

Each identity has a fixed appearance signature (upper / lower body colours, an optional stripe
texture with an accent colour, sleeve length, hair colour, build and an optional bag). Each frame
renders it under a per-camera colour cast (gain and offset), on a per-tracklet cluttered
background, with a random translation / scale ("pose"), a walking leg swing and pixel noise.
A small CNN learns the identities within a few epochs, while raw-pixel matching across cameras
stays far from perfect.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.io
from PIL import Image

from reid_core.data.datasets._ilidsvid import SPLIT_FILE as ILIDS_SPLIT_FILE
from reid_core.data.datasets._prid2011 import DEFAULT_MIN_FRAMES as PRID_MIN_FRAMES
from reid_core.errors import ConfigError

logger = logging.getLogger(__name__)

Layout = Literal["mars", "ilidsvid", "prid"]
LAYOUTS: tuple[str, ...] = ("mars", "ilidsvid", "prid")

_PALETTE = np.array(
    [
        [200, 30, 30],
        [30, 160, 40],
        [35, 60, 200],
        [230, 200, 30],
        [240, 240, 240],
        [25, 25, 25],
        [140, 60, 170],
        [240, 130, 20],
        [110, 110, 110],
        [30, 190, 200],
        [120, 70, 30],
        [240, 120, 170],
    ],
    dtype=np.float32,
)
_SKIN = np.array([[230, 190, 160], [190, 140, 100], [120, 80, 50]], dtype=np.float32)
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by reid_core.data.write_synthetic"


@dataclass(frozen=True)
class _Identity:
    upper: np.ndarray
    lower: np.ndarray
    accent: np.ndarray
    hair: np.ndarray
    skin: np.ndarray
    bag: np.ndarray
    stripes: int  # 0 none, 1 horizontal, 2 vertical
    period: float
    long_sleeves: bool
    build: float
    bag_side: int  # -1 left, 0 none, 1 right


@dataclass(frozen=True)
class _Camera:
    gain: np.ndarray
    offset: np.ndarray
    background: np.ndarray


def _identity(rng: np.random.Generator) -> _Identity:
    def colour() -> np.ndarray:
        base = _PALETTE[rng.integers(len(_PALETTE))]
        return np.clip(base + rng.normal(0, 12, 3), 0, 255).astype(np.float32)

    return _Identity(
        upper=colour(),
        lower=colour(),
        accent=colour(),
        hair=np.clip(rng.uniform(10, 120) + rng.normal(0, 10, 3), 0, 255).astype(np.float32),
        skin=_SKIN[rng.integers(len(_SKIN))],
        bag=colour(),
        stripes=int(rng.integers(3)),
        period=float(rng.choice([0.05, 0.08, 0.12])),
        long_sleeves=bool(rng.integers(2)),
        build=float(rng.uniform(0.8, 1.2)),
        bag_side=int(rng.choice([-1, 0, 0, 1])),
    )


def _camera(rng: np.random.Generator) -> _Camera:
    return _Camera(
        gain=rng.uniform(0.7, 1.25, 3).astype(np.float32),
        offset=rng.uniform(-25, 25, 3).astype(np.float32),
        background=rng.uniform(60, 200, 3).astype(np.float32),
    )


def _render(
    person: _Identity,
    cam: _Camera,
    rng: np.random.Generator,
    n_frames: int,
    height: int,
    width: int,
) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` uint8 RGB frames of one tracklet."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = cam.background + rng.normal(0, 30, 3)
    clutter = rng.normal(0, 1, (4, 2)) * np.array([height, width]) / 3 + [height / 2, width / 2]
    clutter_colour = rng.uniform(40, 220, (4, 3))
    scale0 = rng.uniform(0.82, 1.0)
    dx0, dy0 = rng.uniform(-0.08, 0.08) * width, rng.uniform(-0.04, 0.04) * height
    phase, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.2)
    for f in range(n_frames):
        img = np.empty((height, width, 3), np.float32)
        img[:] = background + (yy / height - 0.5)[..., None] * 30
        for (cy, cx), c in zip(clutter, clutter_colour, strict=True):
            blob = ((yy - cy) / (0.18 * height)) ** 2 + ((xx - cx) / (0.3 * width)) ** 2 < 1
            img[blob] = c
        scale = scale0 * rng.uniform(0.96, 1.04)
        body_h = height * scale
        top = (height - body_h) / 2 + dy0 + rng.normal(0, 0.02) * height
        cx = width / 2 + dx0 + rng.normal(0, 0.03) * width
        v = (yy - top) / body_h
        u = (xx - cx) / (width * scale * 0.5 * person.build)
        swing = 0.25 * np.sin(phase + speed * f)

        torso = (v >= 0.17) & (v < 0.56) & (np.abs(u) < 0.55)
        upper = np.broadcast_to(person.upper, img.shape).copy()
        if person.stripes == 1:
            band = (v / person.period) % 2 < 1
            upper[band] = person.accent
        elif person.stripes == 2:
            band = ((u * 0.5) / person.period) % 2 < 1
            upper[band] = person.accent
        img[torso] = upper[torso]
        arms = (v >= 0.18) & (v < 0.52) & (np.abs(u) >= 0.55) & (np.abs(u) < 0.72)
        sleeve = arms & ((v < 0.32) | person.long_sleeves)
        img[arms] = person.skin
        img[sleeve] = person.upper
        for side in (-1.0, 1.0):
            centre = side * 0.25 + side * swing * (v - 0.56)
            leg = (v >= 0.56) & (v < 0.95) & (np.abs(u - centre) < 0.2)
            img[leg] = person.lower
            shoe = (v >= 0.95) & (v < 1.0) & (np.abs(u - centre) < 0.24)
            img[shoe] = 30
        head = ((v - 0.09) / 0.085) ** 2 + (u / 0.3) ** 2 < 1
        img[head] = person.skin
        img[head & (v < 0.07)] = person.hair
        if person.bag_side:
            bag = (v >= 0.3) & (v < 0.58) & (np.abs(u - person.bag_side * 0.75) < 0.22)
            img[bag] = person.bag

        img = img * cam.gain + cam.offset + rng.normal(0, 8, img.shape)
        yield np.clip(img, 0, 255).astype(np.uint8)


def _save(frame: np.ndarray, path: Path) -> None:
    image = Image.fromarray(frame)
    if path.suffix == ".jpg":
        image.save(path, format="JPEG", quality=92)
    else:
        image.save(path, format="PNG")


def savemat_fixed(path: Path, key: str, value: np.ndarray) -> None:
    """``scipy.io.savemat`` with a fixed header (scipy stamps the current time otherwise)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {key: value})
    data = bytearray(buffer.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    path.write_bytes(bytes(data))


def write_synthetic(
    out: str | Path,
    layout: Layout,
    *,
    ids: int = 16,
    cameras: int = 3,
    tracklets: int = 4,
    frames: int = 12,
    seed: int = 0,
    height: int = 64,
    width: int = 32,
) -> Path:
    """Write a small synthetic dataset in the exact public layout of ``layout``.

    The same arguments always give the same bytes.

    - ``mars``: ``ids`` identities, half for training and half for test (disjoint, random 4-digit
      pids), each with ``tracklets`` JPEG tracklets over 2..``cameras`` cameras, plus pid 0
      distractors and pid -1 junk tracklets in the test set, the name lists, the two
      ``tracks_*_info.mat`` tables and ``query_IDX.mat`` (one query per test id and camera).
    - ``ilidsvid``: ``ids`` persons, one PNG sequence in each of the 2 cameras, and the split
      file (10 random permutations in ``ls_set``).
    - ``prid``: ``ids`` persons with >= 21 frames in both cameras, plus persons too short in
      one camera and persons seen by one camera only, so the eligibility filter has work to do.
      No split file (the reader draws the splits).

    Tracklet lengths are drawn in ``[max(1, frames // 3), frames]`` (PRID's eligible persons:
    ``[21, max(21, frames)]``); frame numbers start at a random offset and may have gaps.

    Args:
        out: destination folder; created, must be empty if it exists.
        layout: ``"mars"``, ``"ilidsvid"`` or ``"prid"``.
        ids: number of identities (see above).
        cameras: MARS cameras (2..6); iLIDS-VID and PRID-2011 always have 2.
        tracklets: MARS tracklets per identity (>= 2); one per camera elsewhere.
        frames: maximum frames per tracklet.
        seed: seed of every random choice.
        height: frame height in pixels.
        width: frame width in pixels.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: an argument is out of range or ``out`` is not empty.

    Example:
        >>> root = write_synthetic("/tmp/mars_demo", "mars", ids=8)  # doctest: +SKIP
        >>> build_dataset("mars", root).num_train_pids  # doctest: +SKIP
        4
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout={layout!r}; expected one of {list(LAYOUTS)}")
    if ids < 2:
        raise ConfigError(f"ids={ids} must be >= 2")
    if not 1 <= frames <= 300:
        raise ConfigError(f"frames={frames} must be in 1..300")
    if height < 16 or width < 8:
        raise ConfigError(f"height={height}, width={width} must be at least 16 x 8")
    if layout == "mars" and not 2 <= cameras <= 6:
        raise ConfigError(f"cameras={cameras} must be in 2..6 for MARS")
    if layout == "mars" and tracklets < 2:
        raise ConfigError(f"tracklets={tracklets} must be >= 2 (an id needs two cameras)")
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} exists and is not an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    size = (height, width)
    if layout == "mars":
        _write_mars(root, rng, ids, cameras, tracklets, frames, size)
    elif layout == "ilidsvid":
        _write_ilidsvid(root, rng, ids, frames, size)
    else:
        _write_prid(root, rng, ids, frames, size)
    logger.debug("wrote a synthetic %s dataset (%d ids, seed %d) to %s", layout, ids, seed, root)
    return root


def _lengths(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1))


def _frame_numbers(rng: np.random.Generator, n: int) -> list[int]:
    steps = rng.choice([1, 1, 1, 2], size=n)
    steps[0] = rng.integers(1, 40)
    return np.cumsum(steps).tolist()


def _write_mars(
    root: Path,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    tracklets: int,
    frames: int,
    size: tuple[int, int],
) -> None:
    cams = [_camera(rng) for _ in range(cameras)]
    pids = (np.sort(rng.choice(np.arange(1, 1500), size=ids, replace=False))).tolist()
    order = rng.permutation(ids)
    train_pids = sorted(pids[i] for i in order[: (ids + 1) // 2])
    test_pids = sorted(pids[i] for i in order[(ids + 1) // 2 :])
    people = {pid: _identity(rng) for pid in pids}
    low = max(1, frames // 3)

    def plan(pid_list: list[int]) -> list[tuple[int, int]]:
        """(pid, camera) of every tracklet."""
        result = []
        for pid in pid_list:
            n_cams = int(rng.integers(2, min(cameras, tracklets) + 1))
            chosen = sorted(rng.choice(cameras, size=n_cams, replace=False).tolist())
            result += [(pid, chosen[k % n_cams] + 1) for k in range(tracklets)]
        return result

    train_plan = plan(train_pids)
    test_plan = plan(test_pids)
    # Distractors (pid 0) and junk (pid -1): two tracklets each, random cameras.
    test_plan += [(p, int(rng.integers(cameras)) + 1) for p in (0, 0, -1, -1)]
    for subset, subset_plan in (("train", train_plan), ("test", test_plan)):
        tracks: dict[tuple[int, int, int], list[str]] = {}
        counters: dict[tuple[int, int], int] = {}
        for pid, cam in subset_plan:
            t = counters[(pid, cam)] = counters.get((pid, cam), 0) + 1
            folder = "00-1" if pid == -1 else f"{pid:04d}"
            n = _lengths(rng, low, frames)
            names = [f"{folder}C{cam}T{t:04d}F{f:03d}.jpg" for f in _frame_numbers(rng, n)]
            person = people.get(pid) or _identity(rng)
            (root / f"bbox_{subset}" / folder).mkdir(parents=True, exist_ok=True)
            rendered = _render(person, cams[cam - 1], rng, n, *size)
            for name, frame in zip(names, rendered, strict=True):
                _save(frame, root / f"bbox_{subset}" / folder / name)
            tracks[(pid, cam, t)] = names
        # Name lists sorted as in the public release; each tracklet is a contiguous range.
        all_names = sorted(name for names in tracks.values() for name in names)
        position = {name: i + 1 for i, name in enumerate(all_names)}
        rows = sorted(
            (position[names[0]], position[names[-1]], pid, cam)
            for (pid, cam, _), names in tracks.items()
        )
        info = root / "info"
        info.mkdir(exist_ok=True)
        (info / f"{subset}_name.txt").write_text("".join(n + "\n" for n in all_names))
        savemat_fixed(
            info / f"tracks_{subset}_info.mat", f"track_{subset}_info", np.array(rows, float)
        )
        if subset == "test":
            query_rows = []
            seen: set[tuple[int, int]] = set()
            for i, (_, _, pid, cam) in enumerate(rows, start=1):
                if pid > 0 and (pid, cam) not in seen:
                    seen.add((pid, cam))
                    query_rows.append(i)
            savemat_fixed(info / "query_IDX.mat", "query_IDX", np.array([query_rows], float))


def _write_ilidsvid(
    root: Path, rng: np.random.Generator, ids: int, frames: int, size: tuple[int, int]
) -> None:
    cams = [_camera(rng) for _ in range(2)]
    numbers = np.sort(rng.choice(np.arange(1, ids + ids // 5 + 2), size=ids, replace=False))
    low = max(1, frames // 3)
    for number in numbers.tolist():
        person = _identity(rng)
        for c, cam_name in enumerate(("cam1", "cam2")):
            folder = root / "i-LIDS-VID" / "sequences" / cam_name / f"person{number:03d}"
            folder.mkdir(parents=True)
            n = _lengths(rng, low, frames)
            rendered = _render(person, cams[c], rng, n, *size)
            for f, frame in zip(_frame_numbers(rng, n), rendered, strict=True):
                _save(frame, folder / f"{cam_name}_person{number:03d}_{f:05d}.png")
    ls_set = np.stack([rng.permutation(ids) + 1 for _ in range(10)]).astype(float)
    (root / ILIDS_SPLIT_FILE).parent.mkdir(parents=True)
    savemat_fixed(root / ILIDS_SPLIT_FILE, "ls_set", ls_set)


def _write_prid(
    root: Path, rng: np.random.Generator, ids: int, frames: int, size: tuple[int, int]
) -> None:
    cams = [_camera(rng) for _ in range(2)]
    n_short = max(1, ids // 4)
    n_single = max(1, ids // 8)
    shared = ids + n_short
    long_high = max(PRID_MIN_FRAMES, frames)
    short_person = set(rng.choice(shared, size=n_short, replace=False).tolist())
    for i in range(shared + 2 * n_single):
        person = _identity(rng)
        # Persons past ``shared`` are seen by one camera only: cam_a first, then cam_b.
        visible = (0, 1) if i < shared else (0,) if i < shared + n_single else (1,)
        short_cam = int(rng.integers(2)) if i in short_person else -1
        for c in visible:
            cam_dir = root / "prid_2011" / "multi_shot" / ("cam_a", "cam_b")[c]
            folder = cam_dir / f"person_{i + 1:04d}"
            folder.mkdir(parents=True)
            if c == short_cam:
                n = _lengths(rng, 5, PRID_MIN_FRAMES - 1)
            else:
                n = _lengths(rng, PRID_MIN_FRAMES, long_high)
            for f, frame in enumerate(_render(person, cams[c], rng, n, *size), start=1):
                _save(frame, folder / f"{f:04d}.png")
