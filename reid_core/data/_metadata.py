"""A metadata-only MARS at full size: the index files of the public release, no image.

For tests and benchmarks of everything that reads only the index (parsing, epoch sizes,
validation carve-outs, evaluation shapes) at the real scale: 625 training ids / 8,298
tracklets / 509,914 frame names, 636 test ids / 12,180 tracklets / 681,089 names (1,191,003
in all), 1,980 queries, junk tracklets (pid -1, folder ``00-1``) and distractors (pid 0), so
the gallery holds 9,330 tracklets (11,310 with the official convention), as in MARS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid_core.data._synthetic import savemat_fixed
from reid_core.errors import ConfigError


@dataclass(frozen=True)
class MarsSize:
    """The counts a metadata-only MARS is written with (defaults: the real MARS)."""

    train_ids: int = 625
    train_tracklets: int = 8_298
    train_frames: int = 509_914
    test_ids: int = 636
    test_tracklets: int = 12_180
    test_frames: int = 681_089
    queries: int = 1_980
    junk_tracklets: int = 870
    distractor_tracklets: int = 1_000
    cameras: int = 6


def write_mars_metadata(out: str | Path, size: MarsSize = MarsSize(), *, seed: int = 0) -> Path:
    """Write ``info/`` of a MARS layout with ``size``'s counts and empty image folders.

    Every training and test id is seen by 2..``cameras`` cameras; queries are the first
    tracklet of (test id, camera) pairs, one camera per id in turn; tracklet
    lengths (1..999 frames) sum to the frame counts exactly. Same arguments, same bytes.

    Args:
        out: destination folder; created, must be empty if it exists.
        size: the counts.
        seed: seed of every random choice.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: ``out`` is not empty, or the counts cannot be met.

    Example:
        >>> root = write_mars_metadata("/tmp/mars_meta")  # doctest: +SKIP
        >>> len(build_dataset("mars", root).train)  # doctest: +SKIP
        8298
    """
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} exists and is not an empty folder")
    rng = np.random.default_rng(seed)
    pids = rng.choice(np.arange(1, 1501), size=size.train_ids + size.test_ids, replace=False)
    train_pids = np.sort(pids[: size.train_ids]).tolist()
    test_pids = np.sort(pids[size.train_ids :]).tolist()
    real_test = size.test_tracklets - size.junk_tracklets - size.distractor_tracklets
    train_plan = _plan(rng, train_pids, size.train_tracklets, size.cameras)
    test_plan = _plan(rng, test_pids, real_test, size.cameras)
    test_plan += [(0, int(c)) for c in rng.integers(1, size.cameras + 1, size.distractor_tracklets)]
    test_plan += [(-1, int(c)) for c in rng.integers(1, size.cameras + 1, size.junk_tracklets)]
    info = root / "info"
    info.mkdir(parents=True)
    for subset, plan, frames in (
        ("train", train_plan, size.train_frames),
        ("test", test_plan, size.test_frames),
    ):
        (root / f"bbox_{subset}").mkdir()
        rows, names = _tracklets(rng, plan, frames)
        (info / f"{subset}_name.txt").write_text("".join(n + "\n" for n in names))
        savemat_fixed(info / f"tracks_{subset}_info.mat", f"track_{subset}_info", rows)
        if subset == "test":
            savemat_fixed(info / "query_IDX.mat", "query_IDX", _queries(rows, size.queries))
    return root


def _plan(rng: np.random.Generator, pids: list[int], tracklets: int, cameras: int) -> list:
    """(pid, camera) of every tracklet: at least 2 per id, each id on 2..cameras cameras."""
    if tracklets < 2 * len(pids):
        raise ConfigError(f"{tracklets} tracklets cannot give {len(pids)} ids two each")
    counts = np.full(len(pids), 2) + np.bincount(
        rng.integers(0, len(pids), tracklets - 2 * len(pids)), minlength=len(pids)
    )
    plan = []
    for pid, n in zip(pids, counts.tolist(), strict=True):
        n_cams = int(rng.integers(2, min(cameras, n) + 1))
        cams = sorted(rng.choice(np.arange(1, cameras + 1), size=n_cams, replace=False).tolist())
        plan += [(pid, cams[k % n_cams]) for k in range(n)]
    return plan


def _tracklets(rng: np.random.Generator, plan: list, frames: int) -> tuple[np.ndarray, list[str]]:
    """The rows (start, end, pid, camid; 1-based) and the sorted name list of ``plan``."""
    if not len(plan) <= frames <= 999 * len(plan):
        raise ConfigError(f"{frames} frames cannot fill {len(plan)} tracklets of 1..999 frames")
    weights = rng.gamma(0.8, size=len(plan))
    lengths = np.clip(np.floor(weights / weights.sum() * frames), 1, 999).astype(np.int64)
    while (gap := frames - int(lengths.sum())) != 0:
        pick = rng.integers(0, len(plan), abs(gap))
        np.add.at(lengths, pick, 1 if gap > 0 else -1)
        lengths = np.clip(lengths, 1, 999)
    counters: dict[tuple[int, int], int] = {}
    tracks = []
    for (pid, cam), n in zip(plan, lengths.tolist(), strict=True):
        t = counters[(pid, cam)] = counters.get((pid, cam), 0) + 1
        folder = "00-1" if pid == -1 else f"{pid:04d}"
        tracks.append((f"{folder}C{cam}T{t:04d}F", n, pid, cam))
    tracks.sort()
    names = [f"{prefix}{f:03d}.jpg" for prefix, n, _, _ in tracks for f in range(1, n + 1)]
    ends = np.cumsum([n for _, n, _, _ in tracks])
    rows = np.stack(
        [
            ends - [n for _, n, _, _ in tracks] + 1,
            ends,
            [p for *_, p, _ in tracks],
            [c for *_, c in tracks],
        ],
        axis=1,
    )
    return rows.astype(float), names


def _queries(rows: np.ndarray, wanted: int) -> np.ndarray:
    """1-based rows of ``wanted`` queries: the first tracklet of (pid > 0, camera) pairs, taken
    one camera per id in turn (every id's first camera, then every id's second, ...)."""
    firsts: dict[int, dict[int, int]] = {}
    for i, (_, _, pid, cam) in enumerate(rows.astype(np.int64).tolist(), start=1):
        if pid > 0:
            firsts.setdefault(pid, {}).setdefault(cam, i)
    rounds = [list(cams.values()) for _, cams in sorted(firsts.items())]
    picked = [r[k] for k in range(max(map(len, rounds))) for r in rounds if k < len(r)]
    if len(picked) < wanted:
        raise ConfigError(f"only {len(picked)} (id, camera) pairs for {wanted} queries")
    return np.array([sorted(picked[:wanted])], float)


__all__ = ["MarsSize", "write_mars_metadata"]
