"""``reid-hpo bench gpu``: training throughput per precision and option, side by side.

The faithful model (ResNet50TA_BT, full-map attention, 224x112, T=4, batch 32 = 8 ids x 4)
trains on a synthetic MARS-layout dataset, one fresh process per variant, all from the same
seed (same initial weights, same batches). Per variant: clips/s, the fraction of the wall time
the GPU is busy (CUDA events around each step against the wall time), peak GPU memory, the
data-loader wait per step, the mean gap of its smoothed loss curve to the float32 run's, and
the feature extraction time of a MARS-size test evaluation (per clip, and scaled to the
1,980 + 9,330 test tracklets at ``test_max_clips`` clips each; no decoding).
The baseline is the previous step loop: float32, batches normalised on the host (a pageable
float32 copy) and the loss read back every step. The float32 checkpoint's size and write time
are measured too.

Without a GPU it is a dry run on the CPU: a tiny model (``--quick``) or the full-size one for
a few steps, CUDA-only variants skipped, and no targets judged (a CPU cannot tell GPU speed-ups
or GPU run-to-run noise).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from hpo.bench._data import MARS_GALLERY
from hpo.bench._data import MARS_QUERY
from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._registry import run_child
from reid_core.config import DataConfig
from reid_core.config import ModelConfig
from reid_core.config import TrainConfig
from reid_core.data import build_dataset
from reid_core.data import build_train_loader
from reid_core.data import erasing_style
from reid_core.data import write_synthetic
from reid_core.engine import Trainer
from reid_core.engine import extract_features
from reid_core.engine import finish_on_device
from reid_core.engine import save_checkpoint
from reid_core.engine import verify_checkpoint

BASELINE = "fp32, host finish, per-step read (previous loop)"
FP32 = "fp32"
VARIANTS: dict[str, dict[str, Any]] = {
    BASELINE: {"amp": "off", "host": True},
    FP32: {"amp": "off"},
    "bf16": {"amp": "bf16"},
    "fp16 + scaler": {"amp": "fp16", "cuda_only": True},
    "bf16, channels_last": {"amp": "bf16", "channels_last": True},
    "bf16, channels_last, compile": {
        "amp": "bf16",
        "channels_last": True,
        "compile": True,
        "cuda_only": True,
    },
}
SPEEDUP_TARGET = 2.5
BUSY_TARGET = 0.9
SMOOTH = 10


def _sizes(quick: bool, cuda: bool) -> dict[str, Any]:
    """Model, input and step counts of a run."""
    if quick:
        return {"full": False, "height": 64, "width": 32, "batch": 8, "warmup": 2, "steps": 3}
    steps = (20, 200) if cuda else (1, 3)
    return {
        "full": True,
        "height": 224,
        "width": 112,
        "batch": 32,
        "warmup": steps[0],
        "steps": steps[1],
    }


def _config(
    root: str, out: str, size: dict[str, Any], variant: dict[str, Any], workers: int
) -> TrainConfig:
    model = (
        ModelConfig(arch="ta_bt", backbone="resnet50", attention="full_map", pretrained=False)
        if size["full"]
        else ModelConfig(arch="ta_bt", backbone="resnet10", attention="pooled", pretrained=False)
    )
    data = DataConfig(
        dataset="mars",
        root=root,
        height=size["height"],
        width=size["width"],
        seq_len=4,
        batch_size=size["batch"],
        num_instances=4,
        num_workers=workers,
        validation=None,
    )
    return TrainConfig(
        data=data,
        model=model,
        amp=variant["amp"],
        channels_last=variant.get("channels_last", False),
        compile=variant.get("compile", False),
        device="cuda" if torch.cuda.is_available() else "cpu",
        output_dir=out,
    )


def _batches(loader: Any) -> Iterator[Any]:
    """The loader's batches, epoch after epoch."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def child_variant(
    root: str, name: str, size: dict[str, Any], workers: int, checkpoint: bool
) -> dict[str, Any]:
    """Train one variant for ``warmup + steps`` steps; timings cover the last ``steps``."""
    variant = VARIANTS[name]
    with tempfile.TemporaryDirectory(prefix="reid-hpo-gpu-bench-") as out:
        cfg = _config(root, out, size, variant, workers)
        trainer = Trainer(cfg, progress=False)
        device = trainer.device
        cuda = device.type == "cuda"
        host = variant.get("host", False)
        loader = build_train_loader(
            trainer.train_records,
            cfg.data,
            seed=cfg.seed,
            finish_on_host=host,
            pin_memory=cuda,
        )
        batches = _batches(loader)
        trainer.model.train()
        totals: list[Any] = []
        events: list[tuple[Any, Any]] = []
        wait_s = 0.0
        total_steps = size["warmup"] + size["steps"]
        started = 0.0
        for step in range(total_steps):
            if step == size["warmup"]:
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                events, wait_s, started = [], 0.0, time.perf_counter()
            before = time.perf_counter()
            batch = next(batches)
            wait_s += time.perf_counter() - before
            if host:
                clips, pids, _ = batch
                clips = clips.to(device, non_blocking=True)
            else:
                (raw, boxes), pids, _ = batch
                clips = finish_on_device(
                    raw, boxes, device, erasing_style(cfg.data.erasing_style).fill
                )
            trainer.criterion.check_labels(pids)
            if cuda:
                events.append((_event(), _event()))
                events[-1][0].record()
            losses = trainer.train_step(clips, pids.to(device, non_blocking=True))
            if cuda:
                events[-1][1].record()
            totals.append(float(losses["total"]) if host else losses["total"])
        if cuda:
            torch.cuda.synchronize()
        wall_s = time.perf_counter() - started
        curve = [float(t) for t in totals]
        result: dict[str, Any] = {
            "device": str(device),
            "precision": trainer.precision.name,
            "clips_per_s": size["steps"] * size["batch"] / wall_s,
            "wall_s": wall_s,
            "loader_wait_ms_per_step": 1000.0 * wait_s / size["steps"],
            "gpu_busy": (
                sum(a.elapsed_time(b) for a, b in events) / 1000.0 / wall_s if cuda else None
            ),
            "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "loss_curve": curve,
        }
        result.update(_evaluation_cost(trainer, cuda))
        if checkpoint:
            result.update(_checkpoint_cost(trainer, Path(out)))
    return result


def _evaluation_cost(trainer: Trainer, cuda: bool) -> dict[str, float]:
    """Feature extraction of synthetic ``uint8`` test tracklets as evaluation runs it
    (finished on the device, pinned staging, one copy back), scaled to the MARS test split
    at its most clips: (1,980 + 9,330) tracklets x ``test_max_clips`` clips each. Model,
    transfer and normalisation only: no frame decoding."""
    data = trainer.cfg.data
    tracklets, clips = (64, data.test_max_clips) if cuda else (2, 4)
    generator = torch.Generator().manual_seed(0)
    shape = (clips, data.seq_len, 3, data.height, data.width)
    loader = [
        (torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator), pid, 0)
        for pid in range(tracklets)
    ]

    def extract(items: list[Any]) -> None:
        extract_features(
            trainer.model,
            items,
            device=trainer.device,
            chunk=data.test_batch_size,
            amp=trainer.cfg.amp,
        )  # ends with the features' one copy to the host: synchronised

    extract(loader[:1])  # warm-up: kernel selection, pinned-memory pool
    begin = time.perf_counter()
    extract(loader)
    per_clip = (time.perf_counter() - begin) / (tracklets * clips)
    return {
        "eval_ms_per_clip": 1000.0 * per_clip,
        "mars_test_eval_s": per_clip * (MARS_QUERY + MARS_GALLERY) * data.test_max_clips,
    }


def _event() -> Any:
    return torch.cuda.Event(enable_timing=True)


def _checkpoint_cost(trainer: Trainer, folder: Path) -> dict[str, float]:
    """Size and write time of one full checkpoint (hashed while written), and what re-reading
    it for the checksum, as the previous writer did, would add."""
    state = trainer.state_dict(0)
    begin = time.perf_counter()
    path = save_checkpoint(folder / "epoch_0001.pt", state)
    write_s = time.perf_counter() - begin
    begin = time.perf_counter()
    verify_checkpoint(path)  # reads the file back and hashes it
    return {
        "checkpoint_mb": path.stat().st_size / 1e6,
        "checkpoint_write_s": write_s,
        "checkpoint_reread_s": time.perf_counter() - begin,
    }


def _smooth(values: list[float]) -> list[float]:
    window = max(1, min(SMOOTH, len(values)))
    return [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def _gap(a: list[float], b: list[float]) -> float:
    """Mean absolute difference of two smoothed loss curves."""
    return statistics.fmean(abs(x - y) for x, y in zip(_smooth(a), _smooth(b), strict=True))


@BENCHMARKS.register("gpu")
def bench_gpu(options: BenchOptions) -> BenchResult:
    """Training clips/s, GPU busy, memory per precision/option vs the float32 loop (GPU)."""
    cuda = torch.cuda.is_available()
    size = _sizes(options.quick, cuda)
    workers = min(8, os.cpu_count() or 1) if cuda else 0
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="reid-hpo-gpu-data-") as tmp:
        root = write_synthetic(
            Path(tmp) / "mars",
            "mars",
            ids=64 if size["full"] else 16,
            cameras=2,
            tracklets=4,
            frames=8,
            seed=options.seed,
            height=size["height"],
            width=size["width"],
        )
        build_dataset("mars", root)  # fail here, not in every child, if the data is wrong
        for name, variant in VARIANTS.items():
            if variant.get("cuda_only") and not cuda:
                continue
            kwargs = {
                "root": str(root),
                "name": name,
                "size": size,
                "workers": workers,
                "checkpoint": name == FP32,
            }
            runs[name] = run_child("hpo.bench._gpu:child_variant", kwargs, options.threads)
    base = runs[BASELINE]
    reference = runs[FP32]["loss_curve"]
    rows = [
        {
            "variant": name,
            "precision": run["precision"],
            "clips_per_s": round(run["clips_per_s"], 2),
            "speedup": round(run["clips_per_s"] / base["clips_per_s"], 2),
            "gpu_busy": None if run["gpu_busy"] is None else round(run["gpu_busy"], 3),
            "peak_gpu_mem_gib": (
                None if run["peak_gpu_mem_gib"] is None else round(run["peak_gpu_mem_gib"], 2)
            ),
            "loader_wait_ms_per_step": round(run["loader_wait_ms_per_step"], 2),
            "loss_gap_vs_fp32": round(_gap(run["loss_curve"], reference), 5),
            "eval_ms_per_clip": round(run["eval_ms_per_clip"], 2),
            "mars_test_eval_s": round(run["mars_test_eval_s"], 1),
        }
        for name, run in runs.items()
    ]
    noise = _gap(base["loss_curve"], reference)  # two float32 runs: GPU run-to-run noise
    skipped = [n for n, v in VARIANTS.items() if n not in runs]
    fp32 = runs[FP32]
    summary = {
        "checkpoint_mb": round(fp32["checkpoint_mb"], 1),
        "checkpoint_write_s": round(fp32["checkpoint_write_s"], 3),
        "checkpoint_reread_s": round(fp32["checkpoint_reread_s"], 3),
        "fp32_run_to_run_loss_gap": round(noise, 5),
    }
    targets = []
    if cuda:
        bf16 = runs["bf16"]
        targets = [
            Target(
                "bf16 + device-side augmentation clips/s / float32 baseline",
                bf16["clips_per_s"] / base["clips_per_s"],
                SPEEDUP_TARGET,
            ),
            Target("bf16 GPU busy fraction", bf16["gpu_busy"], BUSY_TARGET),
            Target(
                f"bf16 loss-curve gap / fp32 run-to-run gap over {len(reference)} steps",
                _gap(bf16["loss_curve"], reference) / max(noise, 1e-12),
                1.0,
                False,
            ),
        ]
    model = "ResNet50TA_BT full-map" if size["full"] else "resnet10 TA_BT pooled (quick)"
    return BenchResult(
        name="gpu",
        title=(
            f"Training throughput on {runs[FP32]['device']}: {model}, "
            f"{size['height']}x{size['width']}, T=4, batch {size['batch']}, "
            f"{size['steps']} timed steps after {size['warmup']}"
        ),
        columns=[
            "variant",
            "precision",
            "clips_per_s",
            "speedup",
            "gpu_busy",
            "peak_gpu_mem_gib",
            "loader_wait_ms_per_step",
            "loss_gap_vs_fp32",
            "eval_ms_per_clip",
            "mars_test_eval_s",
        ],
        rows=rows,
        targets=targets,
        summary=summary,
        details={
            **environment(options),
            "device": runs[FP32]["device"],
            "loader_workers": workers,
            "skipped_without_cuda": skipped,
            "loss_curves": {name: run["loss_curve"] for name, run in runs.items()},
        },
    )


__all__ = ["VARIANTS", "bench_gpu", "child_variant"]
