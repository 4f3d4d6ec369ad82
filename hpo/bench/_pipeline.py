"""``pipeline`` benchmark: frames/s of the training clip loader (issue 5, target 3 CPU part).

Baseline, the reference's approach: every frame of every clip is opened with PIL each time,
transformed on its own as a PIL image (resize, flip, pad + crop), turned into a float tensor,
normalised, and the frames are stacked, in the training process (``num_workers=0``).

Ours: :func:`reid_core.data.build_train_loader`: in the ``DataLoader`` workers, JPEG frames
decoded by torchvision's decoder and resized to 224 x 112 on ``uint8`` (optionally kept
resized in the per-worker frame cache, ``DataConfig.cache_frames``), flip / pad / crop of the
whole clip as ``uint8`` tensor slicing, ``uint8`` batches sent to the main process, which
converts, normalises and applies random erasing once per batch.

Both read the same clips (same P x K batches, same frame windows) of a synthetic MARS dataset
written by :func:`reid_core.data.write_synthetic` at the real frame size 256 x 128 and resized
to 224 x 112. Equality, without augmentation: ours (test transform on the stacked clip) must be
bit-identical to the per-frame definition of the same transform, and is compared with the
baseline's PIL resize (a different resampling filter, so a stated tolerance).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as tv1
from torchvision.transforms import v2

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._registry import run_child
from reid_core.config import DataConfig
from reid_core.data import IMAGENET_MEAN
from reid_core.data import IMAGENET_STD
from reid_core.data import RandomIdentitySampler
from reid_core.data import TrackletDataset
from reid_core.data import build_dataset
from reid_core.data import build_test_transform
from reid_core.data import build_train_loader
from reid_core.data import sample_test_clips
from reid_core.data import sample_train_clip
from reid_core.data import write_synthetic

PIPELINE_TARGET = 3.0
FRAME_SIZE = (256, 128)  # MARS frames (height, width)
OUT_SIZE = (224, 112)
SEQ_LEN = 4
PAD = 10
#: Max |difference| allowed between our resize (torch, antialiased bilinear) and PIL's.
PIL_TOLERANCE = 0.1


def _config(*, batch_size: int, num_workers: int, cache: bool) -> DataConfig:
    return DataConfig(
        height=OUT_SIZE[0],
        width=OUT_SIZE[1],
        seq_len=SEQ_LEN,
        batch_size=batch_size,
        num_instances=4,
        num_workers=num_workers,
        random_erasing=0.5,
        pad=PAD,
        cache_frames=cache,
        validation=None,
    )


def write_dataset(
    root: Path, *, ids: int, frames: int, seed: int, cameras: int = 4, tracklets: int = 4
) -> Path:
    """The synthetic MARS dataset the benchmark reads (256 x 128 JPEG frames)."""
    return write_synthetic(
        root,
        "mars",
        ids=ids,
        cameras=cameras,
        tracklets=tracklets,
        frames=frames,
        seed=seed,
        height=FRAME_SIZE[0],
        width=FRAME_SIZE[1],
    )


def _naive_frame_transform() -> tv1.Compose:
    """The reference's per-frame PIL pipeline (random erasing as in the training recipe)."""
    return tv1.Compose(
        [
            tv1.Resize(OUT_SIZE, interpolation=tv1.InterpolationMode.BILINEAR),
            tv1.RandomHorizontalFlip(),
            tv1.Pad(PAD),
            tv1.RandomCrop(OUT_SIZE),
            tv1.ToTensor(),
            tv1.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            tv1.RandomErasing(p=0.5, value=0),
        ]
    )


def _naive_batches(root: str, batch_size: int, batches: int, seed: int) -> list[list[Any]]:
    """The frame paths of each clip of the first ``batches`` P x K batches (epoch 0)."""
    records = build_dataset("mars", root).train
    sampler = RandomIdentitySampler([t.pid for t in records], batch_size, 4, seed)
    sampler.set_epoch(0)
    rng_seeds = np.random.default_rng([seed, 0, 1])
    clips = []
    for index in sampler:
        clip_rng = np.random.default_rng(int(rng_seeds.integers(2**63 - 1)))
        record = records[index]
        clips.append(
            [record.frames[i] for i in sample_train_clip(len(record.frames), SEQ_LEN, clip_rng)]
        )
        if len(clips) == batches * batch_size:
            break
    return [clips[i : i + batch_size] for i in range(0, len(clips), batch_size)]


def child_naive(root: str, batch_size: int, batches: int, seed: int) -> dict[str, Any]:
    """Frames/s of the per-frame PIL loader, in this process."""
    torch.manual_seed(seed)
    plan = _naive_batches(root, batch_size, batches, seed)
    transform = _naive_frame_transform()
    frames = 0
    start = time.perf_counter()
    for batch in plan:
        clips = []
        for paths in batch:
            imgs = []
            for path in paths:
                with Image.open(path) as img:
                    imgs.append(transform(img.convert("RGB")))
            clips.append(torch.stack(imgs))
            frames += len(paths)
        out = torch.stack(clips)
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "shape": list(out.shape)}


def child_ours(
    root: str, batch_size: int, batches: int, seed: int, num_workers: int, cache: bool, epochs: int
) -> dict[str, Any]:
    """Frames/s of ``build_train_loader`` per epoch (the first ``batches`` batches of each)."""
    records = build_dataset("mars", root).train
    cfg = _config(batch_size=batch_size, num_workers=num_workers, cache=cache)
    loader = build_train_loader(records, cfg, seed=seed)
    per_epoch = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(0)  # the same clips every epoch: the cache's best case
        frames = 0
        start = time.perf_counter()
        for step, (clips, _pids, _camids) in enumerate(loader):
            frames += clips.shape[0] * clips.shape[1]
            shape = list(clips.shape)
            if step + 1 == batches:
                break
        per_epoch.append({"epoch": epoch, "frames": frames, "seconds": time.perf_counter() - start})
    return {"epochs": per_epoch, "shape": shape}


def child_equality(root: str, tracklets: int) -> dict[str, Any]:
    """Deterministic outputs (no augmentation): ours vs per-frame definitions."""
    records = build_dataset("mars", root).train[:tracklets]
    transform = build_test_transform(*OUT_SIZE)
    dataset = TrackletDataset(
        records, seq_len=SEQ_LEN, transform=transform, train=False, size=OUT_SIZE, cache_frames=True
    )
    pil_frame = tv1.Compose(
        [tv1.Resize(OUT_SIZE), tv1.ToTensor(), tv1.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    identical, max_pil_diff, frames = True, 0.0, 0
    for index, record in enumerate(records):
        ours, _, _ = dataset[index]  # [N_clips, T, 3, H, W]
        per_frame, via_pil = [], []
        for path in record.frames:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
                per_frame.append(transform(v2.functional.pil_to_tensor(rgb)[None])[0])
                via_pil.append(pil_frame(rgb))
        clips = sample_test_clips(len(record.frames), SEQ_LEN, None)
        definition = torch.stack([torch.stack([per_frame[i] for i in clip]) for clip in clips])
        reference = torch.stack([torch.stack([via_pil[i] for i in clip]) for clip in clips])
        identical &= torch.equal(ours, definition)
        max_pil_diff = max(max_pil_diff, float((ours - reference).abs().max()))
        frames += len(record.frames)
    return {"frames": frames, "identical": bool(identical), "max_abs_diff_vs_pil": max_pil_diff}


@BENCHMARKS.register("pipeline")
def bench_pipeline(options: BenchOptions) -> BenchResult:
    """Training clip loader frames/s: ours vs the naive per-frame PIL loader (CPU)."""
    # Full run: 160 training ids, so an epoch really holds ``batches`` = 20 P x K batches (8 ids
    # each) and worker start-up / refill at each epoch start weighs as little as in training.
    ids, cams, tracklets, frames, batches, batch_size = (
        (16, 4, 4, 12, 3, 16) if options.quick else (320, 2, 2, 12, 20, 32)
    )
    workers = min(2, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="reid-hpo-pipeline-") as tmp:
        root = str(
            write_dataset(
                Path(tmp) / "mars",
                ids=ids,
                frames=frames,
                seed=options.seed,
                cameras=cams,
                tracklets=tracklets,
            )
        )
        common = {"root": root, "batch_size": batch_size, "batches": batches, "seed": options.seed}
        naive = run_child("hpo.bench._pipeline:child_naive", common, options.threads)
        runs = {
            "ours, 0 workers, no cache": run_child(
                "hpo.bench._pipeline:child_ours",
                {**common, "num_workers": 0, "cache": False, "epochs": 1},
                options.threads,
            ),
            f"ours, {workers} workers, no cache": run_child(
                "hpo.bench._pipeline:child_ours",
                {**common, "num_workers": workers, "cache": False, "epochs": 2},
                options.threads,
            ),
            f"ours, {workers} workers, frame cache": run_child(
                "hpo.bench._pipeline:child_ours",
                {**common, "num_workers": workers, "cache": True, "epochs": 2},
                options.threads,
            ),
        }
        equality = run_child(
            "hpo.bench._pipeline:child_equality",
            {"root": root, "tracklets": 4 if options.quick else 16},
            options.threads,
        )
    naive_fps = naive["frames"] / naive["seconds"]
    rows = [
        {
            "loader": "naive PIL per frame (reference)",
            "epoch": 0,
            "frames_per_s": naive_fps,
            "speedup": 1.0,
        }
    ]
    for label, run in runs.items():
        for epoch in run["epochs"]:
            fps = epoch["frames"] / epoch["seconds"]
            rows.append(
                {
                    "loader": label,
                    "epoch": epoch["epoch"],
                    "frames_per_s": fps,
                    "speedup": fps / naive_fps,
                }
            )
    # Workers without cache hits (what full MARS sees), epoch 1: worker start-up excluded.
    cold = rows[3]["frames_per_s"] / naive_fps
    warm = rows[-1]["frames_per_s"] / naive_fps
    targets = [
        Target("frames/s vs naive, workers without cache hits", cold, PIPELINE_TARGET),
        Target("ours bit-identical to the per-frame definition", float(equality["identical"]), 1.0),
        Target(
            "max |ours - PIL resize| (normalised units)",
            equality["max_abs_diff_vs_pil"],
            PIL_TOLERANCE,
            False,
        ),
    ]
    return BenchResult(
        name="pipeline",
        title=f"training clip loader, {SEQ_LEN} x 256x128 JPEG -> 224x112, batch {batch_size}",
        columns=["loader", "epoch", "frames_per_s", "speedup"],
        rows=rows,
        targets=targets,
        summary={"speedup_no_cache": cold, "speedup_warm_cache": warm},
        details={
            **environment(options),
            "dataset": {
                "ids": ids,
                "cameras": cams,
                "tracklets_per_id": tracklets,
                "max_frames": frames,
                "frame_size": FRAME_SIZE,
            },
            "batches": batches,
            "batch_size": batch_size,
            "workers": workers,
            "equality": equality,
            "runs": {"naive": naive, **runs},
        },
    )
