"""``reid-hpo bench parse``: dataset index parsing against a plain loop over the same table.

Each dataset is written at its real size without images (MARS: the metadata-only index of
:func:`reid_core.data.write_mars_metadata`, 1,191,003 frame names; iLIDS-VID and PRID-2011:
their folder trees with empty frame files). Per dataset, our reader (``build_dataset(...,
reuse=False)``, so nothing is cached) and a plain loop run in turn ``repeats`` times in one
process and the medians are compared. The plain loop is what torchreid's readers do: read
the lists, then for each table row (or person folder) slice the names and build the
frame-path strings with ``os.path.join`` (MARS: with torchreid's pid / camera checks); it
builds no record objects, does not sort by frame number and checks nothing else.
"""

from __future__ import annotations

import glob
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from reid_core.data import MarsSize
from reid_core.data import build_dataset
from reid_core.data import write_mars_metadata
from reid_core.data._synthetic import savemat_fixed

RATIO_TARGET = 2.0
"""Our parse within this factor of the plain loop."""
REPEATS = 3
QUICK_SIZE = MarsSize(
    train_ids=60,
    train_tracklets=800,
    train_frames=50_000,
    test_ids=60,
    test_tracklets=1_200,
    test_frames=68_000,
    queries=180,
    junk_tracklets=80,
    distractor_tracklets=100,
)
#: (persons, cameras seen) and frame count ranges of the sequence layouts at their real size.
ILIDS_PERSONS, ILIDS_FRAMES = 300, (23, 192)
PRID_CAM_A, PRID_CAM_B, PRID_SHARED, PRID_FRAMES = 385, 749, 200, (5, 675)


def plain_mars(root: Path) -> int:
    """torchreid's MARS reader loop: names, tables, then per row the frame-path strings."""
    info = root / "info"

    def names(path: Path) -> list[str]:
        with open(path) as f:
            return [line.rstrip() for line in f]

    frames = 0
    for subset in ("train", "test"):
        name_list = names(info / f"{subset}_name.txt")
        table = scipy.io.loadmat(str(info / f"tracks_{subset}_info.mat"))[f"track_{subset}_info"]
        home = str(root / f"bbox_{subset}")
        for start, end, pid, _camid in table.astype(int).tolist():
            if pid == -1:
                continue
            img_names = name_list[start - 1 : end]
            if len({n[:4] for n in img_names}) != 1 or len({n[5] for n in img_names}) != 1:
                raise ValueError("a tracklet mixes persons or cameras")
            paths = [os.path.join(home, n[:4], n) for n in img_names]
            frames += len(paths)
    scipy.io.loadmat(str(info / "query_IDX.mat"))
    return frames


def plain_sequences(root: Path, cameras: tuple[str, ...]) -> int:
    """torchreid's iLIDS-VID / PRID loop: per person folder, the sorted ``*.png`` paths."""
    frames = 0
    for cam in cameras:
        for person in sorted(os.listdir(root / cam)):
            frames += len(sorted(glob.glob(os.path.join(root, cam, person, "*.png"))))
    return frames


def _write_sequences(root: Path, cams: dict[str, list[int]], rng: np.random.Generator) -> None:
    low, high = ILIDS_FRAMES if "cam1" in cams else PRID_FRAMES
    for cam, persons in cams.items():
        for person in persons:
            name = f"person_{person:04d}" if "_" in cam else f"person{person:03d}"
            folder = root / cam / name
            folder.mkdir(parents=True)
            # Uniform lengths for iLIDS-VID; PRID's are skewed short (mean about 100).
            n = rng.integers(low, high + 1) if "cam1" in cams else low + rng.geometric(1 / 95)
            for f in range(1, min(int(n), high) + 1):
                (folder / f"{f:05d}.png").touch()


def _layouts(
    tmp: Path, options: BenchOptions
) -> dict[str, tuple[Callable[[], object], Callable[[], int]]]:
    rng = np.random.default_rng(options.seed)
    mars = write_mars_metadata(tmp / "mars", QUICK_SIZE if options.quick else MarsSize())
    scale = 10 if options.quick else 1
    ilids = tmp / "ilidsvid"
    seq = ilids / "i-LIDS-VID" / "sequences"
    persons = list(range(1, ILIDS_PERSONS // scale + 1))
    _write_sequences(seq, {"cam1": persons, "cam2": persons}, rng)
    (ilids / "train-test people splits").mkdir()
    ls_set = np.stack([rng.permutation(len(persons)) + 1 for _ in range(10)]).astype(float)
    savemat_fixed(
        ilids / "train-test people splits" / "train_test_splits_ilidsvid.mat", "ls_set", ls_set
    )
    prid = tmp / "prid"
    shot = prid / "prid_2011" / "multi_shot"
    _write_sequences(
        shot,
        {
            "cam_a": list(range(1, PRID_CAM_A // scale + 1)),
            "cam_b": list(range(1, PRID_CAM_B // scale + 1)),
        },
        rng,
    )
    return {
        "mars": (lambda: build_dataset("mars", mars, reuse=False).split, lambda: plain_mars(mars)),
        "ilidsvid": (
            lambda: build_dataset("ilidsvid", ilids, reuse=False).split,
            lambda: plain_sequences(seq, ("cam1", "cam2")),
        ),
        "prid": (
            lambda: build_dataset("prid", prid, reuse=False).split,
            lambda: plain_sequences(shot, ("cam_a", "cam_b")),
        ),
    }


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@BENCHMARKS.register("parse")
def bench_parse(options: BenchOptions) -> BenchResult:
    """Dataset index parsing (MARS, iLIDS-VID, PRID-2011 at real size) vs a plain loop."""
    repeats = REPEATS
    rows = []
    raw: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="reid-hpo-parse-bench-") as tmp:
        for name, (ours, plain) in _layouts(Path(tmp), options).items():
            frames = plain()  # warm the file-system cache once
            times: dict[str, list[float]] = {"ours": [], "plain": []}
            for _ in range(repeats):
                times["ours"].append(_seconds(ours))
                times["plain"].append(_seconds(plain))
            raw[name] = times
            ours_s, plain_s = statistics.median(times["ours"]), statistics.median(times["plain"])
            rows.append(
                {
                    "dataset": name,
                    "frame_names": frames,
                    "ours_s": round(ours_s, 3),
                    "plain_loop_s": round(plain_s, 3),
                    "ratio": round(ours_s / plain_s, 2),
                }
            )
    targets = [
        Target(f"{row['dataset']} parse / plain loop (median)", row["ratio"], RATIO_TARGET, False)
        for row in rows
    ]
    return BenchResult(
        name="parse",
        title=f"Dataset index parse vs a plain loop, median of {repeats}",
        columns=["dataset", "frame_names", "ours_s", "plain_loop_s", "ratio"],
        rows=rows,
        targets=targets,
        summary={f"{row['dataset']} ratio": row["ratio"] for row in rows},
        details={**environment(options), "repeats": repeats, "raw_s": raw},
    )


__all__ = ["RATIO_TARGET", "bench_parse", "plain_mars", "plain_sequences"]
