"""The doctor's checks of one device: precision, training steps without a host
synchronisation, clips/s in float32 vs bfloat16, GPU busy, out-of-memory handling, and
MARS-size ranking + re-ranking.

Inputs are synthetic (no dataset, no decoding): ``uint8`` clips in pinned memory finished on
the device and the trainer's own optimisation step (:func:`reid_core.engine.optimisation_step`
on :func:`reid_core.engine.build_step_parts`), as a trial runs them.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from hpo.doctor._report import Check
from hpo.doctor._report import Status
from hpo.doctor._report import guarded
from reid_core.config import DataConfig
from reid_core.config import ModelConfig
from reid_core.config import TrainConfig
from reid_core.data import erased_frames
from reid_core.data import erasing_style
from reid_core.engine import build_step_parts
from reid_core.engine import finish_on_device
from reid_core.engine import optimisation_step
from reid_core.engine import release_memory
from reid_core.engine import resolve_precision

if TYPE_CHECKING:
    from hpo.spec import StudySpec

__all__ = ["FULL", "QUICK", "Size", "device_checks"]

SPEEDUP_BAR = 1.2
"""bf16 (or fp16) clips/s over float32 below which the throughput check FAILs."""
BUSY_BAR = 0.8
"""GPU busy fraction (CUDA events over wall time) below which the busy check FAILs."""
_TRAIN_IDS = 625  # MARS training identities: the classifier's width


@dataclass(frozen=True)
class Size:
    """How big the doctor's work is.

    Attributes:
        full: The faithful model (ResNet50 TA_BT, full-map attention) else a tiny one.
        height: Frame height. width: Frame width.
        batch: Clips per step (``batch / 4`` ids x 4).
        steps: Training steps checked for host synchronisations (after one warm-up step).
        timed_steps: Steps timed per precision (after three warm-up steps; CUDA only).
        rank_scale: Size of the ranking check relative to the MARS test split.
        cpu_batch: ``batch`` on a CPU. cpu_steps: ``steps`` on a CPU (the model and input
            size stay; a CPU needs minutes per step of batch 32 and times no GPU anyway).
    """

    full: bool
    height: int
    width: int
    batch: int
    steps: int
    timed_steps: int
    rank_scale: float
    cpu_batch: int
    cpu_steps: int


FULL = Size(True, 224, 112, 32, 5, 20, 1.0, cpu_batch=4, cpu_steps=1)
"""The real size: the reference's input (224x112, T=4, batch 32; 4 clips on a CPU) and the
MARS test split."""
QUICK = Size(False, 64, 32, 8, 2, 3, 0.1, cpu_batch=8, cpu_steps=2)
"""Seconds on a CPU: resnet10 with pooled attention at 64x32, a tenth of MARS."""


def device_checks(
    device: torch.device, size: Size, spec: StudySpec | None, amp: str
) -> Iterator[Check]:
    """The checks of ``device``, one at a time (each line can be shown as it comes)."""
    cuda = device.type == "cuda"
    if not cuda:
        size = replace(size, batch=size.cpu_batch, steps=size.cpu_steps)
    tag = f"[{device}]"
    cfg = _config(spec, size, device, amp)
    yield guarded(f"precision{tag}", lambda: _check_precision(cfg, device, tag))
    yield guarded(f"train_steps{tag}", lambda: _check_steps(cfg, device, size, tag))
    if cuda:
        yield from _throughput_checks(cfg, device, size, tag)
        yield guarded(f"oom{tag}", lambda: _check_oom(cfg, device, tag))
    else:
        why = "needs a CUDA device (a CPU cannot tell GPU speed)"
        yield Check(Status.SKIP, f"throughput{tag}", why)
        yield Check(Status.SKIP, f"gpu_busy{tag}", why)
        yield Check(Status.SKIP, f"oom{tag}", "needs a CUDA device (CUDA out-of-memory)")
    yield guarded(f"ranking{tag}", lambda: _check_ranking(device, size, tag))


def _config(spec: StudySpec | None, size: Size, device: torch.device, amp: str) -> TrainConfig:
    """The study's own training configuration (else the recipe's), at ``size``, random init
    (the weights have their own check)."""
    if spec is not None:
        from hpo.spec import to_train_config

        cfg = to_train_config(spec, {}, trial_number=0, output_dir="doctor")
        model = replace(cfg.model, pretrained=False)
    else:
        cfg = TrainConfig(data=DataConfig(num_workers=0, validation=None), amp=amp)
        model = ModelConfig(pretrained=False)
    if not size.full:
        model = ModelConfig(arch="ta_bt", backbone="resnet10", attention="pooled", pretrained=False)
    data = replace(
        cfg.data,
        height=size.height,
        width=size.width,
        batch_size=size.batch,
        num_instances=4,
        num_workers=0,
    )
    return replace(cfg, data=data, model=model, device=str(device), compile=False)


def _model_name(cfg: TrainConfig) -> str:
    return f"{cfg.model.backbone} {cfg.model.arch} {cfg.model.attention}"


def _check_precision(cfg: TrainConfig, device: torch.device, tag: str) -> Check:
    precision = resolve_precision(cfg.amp, device)
    where = "CPU"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where = f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"
    scaler = ", gradient scaler" if precision.uses_scaler else ""
    return Check(
        Status.PASS, f"precision{tag}", f"amp {cfg.amp} -> {precision.name}{scaler} ({where})"
    )


class _Stepper:
    """The trainer's step on one synthetic batch kept in (pinned) host memory."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        data = cfg.data
        self.cfg, self.device = cfg, device
        self.parts = build_step_parts(cfg, _TRAIN_IDS, device)
        self.parts.model.train()
        size = data.batch_size
        generator = torch.Generator().manual_seed(0)
        shape = (size, data.seq_len, 3, data.height, data.width)
        pin = device.type == "cuda"
        clips = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        boxes = torch.zeros(size, data.seq_len, 2, 4, dtype=torch.int64)
        boxes[:, :, 0] = torch.tensor([data.height // 4, data.width // 4] * 2)
        boxes[:, ::2, 1] = torch.tensor([0, 0, data.height // 3, data.width // 3])
        pids = torch.arange(size) // data.num_instances % _TRAIN_IDS
        self.clips, self.boxes, self.pids = (
            (t.pin_memory() if pin else t) for t in (clips, boxes, pids)
        )
        self.fill = erasing_style(data.erasing_style).fill

    def step(self) -> torch.Tensor:
        """One optimisation step; the total loss, still on the device."""
        self.parts.criterion.check_labels(self.pids)
        boxes = self.boxes.to(self.device, non_blocking=True)
        clips = finish_on_device(self.clips, boxes, self.device, self.fill)
        pids = self.pids.to(self.device, non_blocking=True)
        weight = self.cfg.loss.center_weight
        return optimisation_step(self.parts, clips, pids, erased_frames(boxes), weight)["total"]


@contextlib.contextmanager
def _sync_errors(cuda: bool) -> Iterator[None]:
    """Any host synchronisation raises inside the block (CUDA only)."""
    if not cuda:
        yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _check_steps(cfg: TrainConfig, device: torch.device, size: Size, tag: str) -> Check:
    cuda = device.type == "cuda"
    stepper = _Stepper(cfg, device)
    total = stepper.step()  # warm-up: allocations, kernel selection, constants on the device
    if cuda:
        torch.cuda.synchronize(device)
    try:
        with _sync_errors(cuda):
            for _ in range(size.steps):
                total = total + stepper.step()
    except RuntimeError as exc:
        if "synchroniz" not in str(exc):
            raise
        return Check(
            Status.FAIL, f"train_steps{tag}", f"the step synchronises with the host: {exc}"
        )
    mean = float(total) / (size.steps + 1)
    shape = f"{cfg.data.height}x{cfg.data.width}, T={cfg.data.seq_len}, batch {cfg.data.batch_size}"
    steps = f"{size.steps} step{'' if size.steps == 1 else 's'}"
    what = f"{steps} of {_model_name(cfg)} at {shape}, {stepper.parts.precision.name}"
    if not math.isfinite(mean):
        return Check(Status.FAIL, f"train_steps{tag}", f"{what}: loss is {mean}")
    sync = "no host synchronisation" if cuda else "host-sync check needs CUDA"
    return Check(Status.PASS, f"train_steps{tag}", f"{what}, mean loss {mean:.3f}, {sync}")


def _throughput_checks(
    cfg: TrainConfig, device: torch.device, size: Size, tag: str
) -> Iterator[Check]:
    """clips/s in float32 and in the device's low precision; GPU busy in the latter."""
    low = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        fp32 = _timed_run(replace(cfg, amp="off"), device, size)
        fast = _timed_run(replace(cfg, amp=low), device, size)
    except Exception as exc:
        line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        yield Check(Status.FAIL, f"throughput{tag}", line)
        yield Check(Status.FAIL, f"gpu_busy{tag}", line)
        return
    ratio = fast.clips_per_s / fp32.clips_per_s
    yield Check(
        Status.PASS if ratio >= SPEEDUP_BAR else Status.FAIL,
        f"throughput{tag}",
        f"fp32 {fp32.clips_per_s:.1f} clips/s, {low} {fast.clips_per_s:.1f} clips/s "
        f"({ratio:.2f}x, bar {SPEEDUP_BAR}x; {size.timed_steps} steps of batch "
        f"{cfg.data.batch_size}, peak {fast.peak_gib:.1f} GiB)",
    )
    smi = "" if fast.smi_busy is None else f", nvidia-smi utilization {fast.smi_busy:.0f}%"
    yield Check(
        Status.PASS if fast.busy >= BUSY_BAR else Status.FAIL,
        f"gpu_busy{tag}",
        f"{low} steps kept the GPU busy {100 * fast.busy:.0f}% of the wall time "
        f"(CUDA events, bar {100 * BUSY_BAR:.0f}%){smi}",
    )


@dataclass(frozen=True)
class _Timing:
    clips_per_s: float
    busy: float
    smi_busy: float | None
    peak_gib: float


def _timed_run(cfg: TrainConfig, device: torch.device, size: Size) -> _Timing:
    stepper = _Stepper(cfg, device)
    for _ in range(3):
        stepper.step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    events = []
    with _Utilization(device) as sampler:
        started = time.perf_counter()
        for _ in range(size.timed_steps):
            begin, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            begin.record()
            stepper.step()
            end.record()
            events.append((begin, end))
        torch.cuda.synchronize(device)
        wall = time.perf_counter() - started
    busy = sum(b.elapsed_time(e) for b, e in events) / 1000.0 / wall
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    del stepper
    torch.cuda.empty_cache()
    return _Timing(size.timed_steps * cfg.data.batch_size / wall, busy, sampler.mean(), peak)


class _Utilization:
    """Samples ``nvidia-smi``'s GPU utilization of ``device`` every 0.2 s in a thread."""

    def __init__(self, device: torch.device) -> None:
        self._uuid = _device_uuid(device)
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Utilization:
        if self._uuid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = gpu_utilization(self._uuid or "")
            if value is None:
                return
            self._samples.append(value)

    def mean(self) -> float | None:
        """Mean utilization in percent, None without samples."""
        return statistics.fmean(self._samples) if self._samples else None


def gpu_utilization(uuid: str) -> float | None:
    """``nvidia-smi``'s current utilization (percent) of GPU ``uuid``; None without it."""
    try:
        done = subprocess.run(
            [
                "nvidia-smi",
                "-i",
                uuid,
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return float(done.stdout.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _device_uuid(device: torch.device) -> str | None:
    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _check_oom(cfg: TrainConfig, device: torch.device, tag: str) -> Check:
    """An oversized batch runs out of device memory inside the trainer's step; the worker's
    failure path must classify it ``oom`` (a FAIL trial, the worker goes on) and free the
    memory so that the next step runs."""
    from hpo.worker import fail_reason

    stepper = _Stepper(cfg, device)
    stepper.step()
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    _, total = torch.cuda.mem_get_info(device)
    data = cfg.data
    clip_bytes = 4 * data.seq_len * 3 * data.height * data.width  # float32 on the device
    oversized = math.ceil(1.05 * total / clip_bytes)  # its normalised input alone overflows
    try:
        huge = torch.empty(
            (oversized, data.seq_len, 3, data.height, data.width), dtype=torch.uint8, device=device
        )
        finish = finish_on_device(huge, None, device)
        optimisation_step(stepper.parts, finish, stepper.pids[:1].to(device), None, 0.0)
        torch.cuda.synchronize(device)
    except Exception as exc:
        reason = fail_reason(exc)
    else:
        return Check(Status.FAIL, f"oom{tag}", f"a batch of {oversized} clips did not run out")
    huge = finish = None
    release_memory()  # the worker's own clean-up after a failed trial
    after = torch.cuda.memory_allocated(device)
    stepper.step()
    torch.cuda.synchronize(device)
    detail = (
        f"a batch of {oversized} clips -> fail_reason {reason!r}; memory after the clean-up "
        f"{after / 2**30:.2f} GiB (before {before / 2**30:.2f} GiB); the next step ran"
    )
    ok = reason == "oom" and after <= before + 2**26
    return Check(Status.PASS if ok else Status.FAIL, f"oom{tag}", detail)


def _check_ranking(device: torch.device, size: Size, tag: str) -> Check:
    """Euclidean ranking and k-reciprocal re-ranking of MARS-size synthetic features."""
    from hpo.bench._data import mars_like_features
    from reid_core.engine import squared_euclidean
    from reid_core.metrics import evaluate_ranking
    from reid_core.metrics import rerank

    feats = mars_like_features(size.rank_scale)
    q, g = (torch.from_numpy(f).to(device) for f in (feats.q_feats, feats.g_feats))
    ids = (feats.q_pids, feats.g_pids, feats.q_camids, feats.g_camids)
    timings: list[str] = []
    for name, distances in (
        ("ranking", lambda: squared_euclidean(q, g)),
        ("re-ranking", lambda: rerank(q, g)),
    ):
        begin = time.perf_counter()
        _, mean_ap = evaluate_ranking(distances(), *ids)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if not 0.0 < mean_ap <= 1.0:
            return Check(Status.FAIL, f"ranking{tag}", f"{name}: mAP {mean_ap}")
        timings.append(f"{name} {time.perf_counter() - begin:.2f} s (mAP {mean_ap:.3f})")
    return Check(
        Status.PASS,
        f"ranking{tag}",
        f"{q.shape[0]} queries x {g.shape[0]} gallery, {q.shape[1]}-d on {device}: "
        + ", ".join(timings),
    )
