"""Surrogate v2 of the search benchmark: learning curves of a Sobol design over the MARS space.

Issue 20. Each shard is one configuration x one training seed, trained three times by the
``reid_core`` trainer on a synthetic MARS-layout dataset (128 ids, validation fraction 0.5: 32
validation ids, 32 training ids): the full 24-epoch schedule (warm-up 2, milestones [8, 14]) and
its compressed copies (3 and 8 epochs, warm-up and milestones scaled). No checkpoints are
written. The full run is evaluated on the validation split at :func:`eval_epochs` (every 2
epochs, plus the rung ends and right after each milestone); every run ends with one evaluation
on the test split: the full run's test mAP is the configuration's "true quality", which no
strategy ever sees.

Shards are JSON files under :data:`SHARD_DIR`, written atomically and skipped when present, so
the cache fills in resumable steps (``benchmarks/search_v2_fill.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.models.resnet import ResNet

from hpo.bench._search import _TRAINING as V1_TRAINING
from hpo.search import Schedule
from hpo.search import scale_schedule
from hpo.spec import FloatParam
from hpo.spec import StudySpec
from hpo.spec import load_spec
from hpo.spec import parse_spec
from hpo.spec import to_train_config
from reid_core import data as reid_data
from reid_core.data import write_synthetic
from reid_core.engine import Trainer
from reid_core.engine import evaluate
from reid_core.errors import NonFiniteLossError
from reid_core.files import atomic_write
from reid_core.files import atomic_write_text
from reid_core.models import BACKBONES
from reid_core.models import ResNetBackbone

#: The shipped spec whose search space the design covers.
MARS_SPEC = Path("studies/mars_map_random.yaml")
#: Committed shards of the v2 cache (one JSON file per configuration x training seed).
SHARD_DIR = Path("benchmarks/data/search_v2/shards")

FULL_EPOCHS = 24
WARMUP = 2
MILESTONES = (8, 14)
#: Compressed schedules (epochs) trained beside the full one.
COMPRESSED = (3, 8)
NARROW_BACKBONE = "resnet10_w32"
NARROW_WIDTH = 32

DATA = {"ids": 128, "cameras": 4, "tracklets": 4, "frames": 8, "height": 32, "width": 16}
#: The narrow backbone's starting weights (fp16), the bench's stand-in for ImageNet weights:
#: trained by :func:`pretrain_backbone` on :data:`PRETRAIN_DATA`, identities disjoint from
#: :data:`DATA` (another generator seed).
INIT_WEIGHTS = Path("benchmarks/data/search_v2/resnet10_w32_init.pt")
PRETRAIN_DATA = {**DATA, "ids": 256}
PRETRAIN_SEED = 1
PRETRAIN_EPOCHS = 30

#: The recipe of the v1 surrogate (``hpo.bench._search``) on the 24-epoch schedule.
TRAINING: dict[str, Any] = {
    **V1_TRAINING,
    "epochs": FULL_EPOCHS,
    "eval_every": 2,
    "warmup_epochs": WARMUP,
    "milestones": list(MILESTONES),
    "test_max_clips": 2,
}


def _narrow_resnet10(*, last_stride: int = 1, pretrained: bool = False) -> ResNetBackbone:
    """ResNet-10 (one BasicBlock per stage) with stage widths 32/64/128/256: about 1.2 M
    parameters, a bench-only backbone; ``pretrained`` loads :data:`INIT_WEIGHTS` (the bench's
    stand-in for ImageNet weights, made by :func:`pretrain_backbone`)."""
    resnet = ResNet(BasicBlock, [1, 1, 1, 1])
    width = NARROW_WIDTH
    resnet.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    resnet.bn1 = nn.BatchNorm2d(width)
    stages, inplanes = [], width
    for index in range(4):
        planes, stride = width * 2**index, 1 if index == 0 else 2
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        stages.append(nn.Sequential(BasicBlock(inplanes, planes, stride, downsample)))
        inplanes = planes
    resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4 = stages
    resnet.fc = nn.Linear(inplanes, 1)
    for module in resnet.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    backbone = ResNetBackbone(resnet, name=NARROW_BACKBONE, last_stride=last_stride)
    if pretrained:
        if not INIT_WEIGHTS.is_file():
            raise FileNotFoundError(
                f"{INIT_WEIGHTS} is missing: run python benchmarks/search_v2_fill.py --pretrain"
            )
        state = torch.load(INIT_WEIGHTS, map_location="cpu", weights_only=True)
        backbone.load_state_dict({k: v.float() for k, v in state.items()})
    return backbone


if NARROW_BACKBONE not in BACKBONES.names():
    BACKBONES.register(NARROW_BACKBONE)(_narrow_resnet10)


# ------------------------------------------------------------------------------ the design


def mars_space() -> dict[str, FloatParam]:
    """The search space of the shipped MARS spec (floats only)."""
    spec = load_spec(MARS_SPEC)
    return {name: param for name, param in spec.search_space.items()}


def sobol_design(count: int, space: dict[str, FloatParam], seed: int = 0) -> list[dict[str, float]]:
    """``count`` configurations of a scrambled Sobol design over ``space`` (log where log),
    values to 4 significant digits; the first ``n`` points of a longer design are the same."""
    engine = torch.quasirandom.SobolEngine(len(space), scramble=True, seed=seed)
    points = engine.draw(count).tolist()
    out = []
    for point in points:
        config = {}
        for u, (name, param) in zip(point, space.items(), strict=True):
            if param.log:
                lo, hi = math.log(param.low), math.log(param.high)
                value = math.exp(lo + u * (hi - lo))
            else:
                value = param.low + u * (param.high - param.low)
            config[name] = float(f"{value:.4g}")
        out.append(config)
    return out


def scaled_schedule(epochs: int) -> dict[str, Any]:
    """The full schedule compressed to ``epochs`` by the product's rule
    (:func:`hpo.search.scale_schedule`): warm-up and milestones scaled."""
    full = Schedule(FULL_EPOCHS, WARMUP, MILESTONES, eval_every=2)
    scaled = scale_schedule(full, epochs)
    return {
        "epochs": epochs,
        "warmup_epochs": scaled.warmup_epochs,
        "milestones": list(scaled.milestones),
    }


def eval_epochs(epochs: int = FULL_EPOCHS) -> list[int]:
    """1-based epochs after which the full run is evaluated on validation: every 2 epochs, the
    compressed schedules' lengths (rung ends) and right after each milestone."""
    points = set(range(2, epochs + 1, 2)) | {e for e in COMPRESSED if e <= epochs}
    points |= {m + 1 for m in MILESTONES if m < epochs} | {epochs}
    return sorted(points)


def surrogate_spec(
    data_root: str | Path,
    space: dict[str, FloatParam],
    artifacts_root: str | Path,
    *,
    pretrained: bool = True,
) -> StudySpec:
    """The study spec of the surrogate (narrow backbone started from :data:`INIT_WEIGHTS`,
    24-epoch recipe, the MARS space); studies made from it write their marker file under
    ``artifacts_root``."""
    return parse_spec(
        {
            "name": "bench-search-v2",
            "dataset": {"name": "mars", "root": str(data_root)},
            "validation": {"sampling": "random", "fraction": 0.5, "distractor_fraction": 0.25},
            "model": {
                "arch": "ta_bt",
                "backbone": NARROW_BACKBONE,
                "attention": "pooled",
                "last_stride": 1,
                "pretrained": pretrained,
            },
            "training": TRAINING,
            "objective": {"metric": "map", "direction": "maximize"},
            "search_space": {name: p.model_dump() for name, p in space.items()},
            "sampler": {"name": "random", "seed": 0},
            "pruner": {"name": "none"},
            "budget": {"n_trials": 60},
            "artifacts": {"root": str(artifacts_root)},
            "seed": 0,
        },
        source="hpo.bench._surrogate",
    )


def prepare_data(root: Path) -> Path:
    """Write the synthetic 128-id MARS-layout dataset under ``root`` once (deterministic)."""
    data_root = root / "mars"
    if not data_root.exists():
        write_synthetic(data_root, "mars", seed=0, **DATA)
    return data_root


# ------------------------------------------------------------------------------- training


def pretrain_backbone(root: Path, out: Path = INIT_WEIGHTS) -> Path:
    """Train the narrow backbone from random initialisation on :data:`PRETRAIN_DATA` (written
    under ``root``) for :data:`PRETRAIN_EPOCHS` epochs at the centre of the MARS space and
    write its weights (fp16) to ``out`` atomically: every surrogate run starts from them, as
    every real trial starts from the same ImageNet weights."""
    data_root = root / "pretrain"
    if not data_root.exists():
        write_synthetic(data_root, "mars", seed=PRETRAIN_SEED, **PRETRAIN_DATA)
    space = mars_space()
    spec = surrogate_spec(data_root, space, artifacts_root=root / "artifacts", pretrained=False)
    params = {name: _centre(param) for name, param in space.items()}
    cfg = to_train_config(spec, params, trial_number=0, output_dir=str(root / "run"))
    optim = dataclasses.replace(cfg.optim, warmup_epochs=2, milestones=(PRETRAIN_EPOCHS - 6,))
    cfg = dataclasses.replace(cfg, optim=optim, epochs=PRETRAIN_EPOCHS, seed=0)
    trainer = Trainer(cfg, progress=False)
    for epoch in range(PRETRAIN_EPOCHS):
        trainer.train_one_epoch(epoch)
        trainer.scheduler.step()
    state = {k: v.detach().half() for k, v in trainer.model.backbone.state_dict().items()}
    atomic_write(out, lambda handle: torch.save(state, handle))
    return out


def _centre(param: FloatParam) -> float:
    if param.log:
        return math.sqrt(param.low * param.high)
    return (param.low + param.high) / 2


@dataclass
class RunRecord:
    """One training run of one schedule.

    Attributes:
        epochs: Schedule length.
        val: Validation mAP after each evaluated epoch (1-based epoch -> mAP).
        test: Test-split mAP at the end (None when the run failed).
        state: ``"COMPLETE"`` or ``"FAIL"`` (non-finite loss).
        train_s: Wall time.
    """

    epochs: int
    val: dict[int, float]
    test: float | None
    state: str
    train_s: float


def train_run(
    spec: StudySpec, params: dict[str, float], *, seed: int, epochs: int, out: Path
) -> RunRecord:
    """Train one configuration on one schedule with training seed ``seed``; no checkpoints."""
    cfg = to_train_config(spec, params, trial_number=0, output_dir=str(out))
    optim = dataclasses.replace(
        cfg.optim,
        warmup_epochs=scaled_schedule(epochs)["warmup_epochs"],
        milestones=tuple(scaled_schedule(epochs)["milestones"]),
    )
    cfg = dataclasses.replace(cfg, optim=optim, epochs=epochs, seed=seed)
    started = time.monotonic()
    trainer = Trainer(cfg, progress=False)
    points = set(eval_epochs(epochs)) if epochs == FULL_EPOCHS else {epochs}
    val: dict[int, float] = {}
    try:
        for epoch in range(epochs):
            trainer.train_one_epoch(epoch)
            trainer.scheduler.step()
            if epoch + 1 in points:
                val[epoch + 1] = float(trainer.evaluate().metrics["mAP"])
    except NonFiniteLossError:
        return RunRecord(epochs, val, None, "FAIL", time.monotonic() - started)
    test = _test_map(trainer)
    return RunRecord(epochs, val, test, "COMPLETE", time.monotonic() - started)


def _test_map(trainer: Trainer) -> float:
    data_cfg = trainer.cfg.data
    dataset = reid_data.build_dataset(
        data_cfg.dataset,
        data_cfg.root,
        split_id=data_cfg.split_id,
        mars_gallery=data_cfg.mars_gallery,
    )
    result = evaluate(
        trainer.model,
        reid_data.build_test_loader(tuple(dataset.query), data_cfg),
        reid_data.build_test_loader(tuple(dataset.gallery), data_cfg),
        device=trainer.device,
        rerank=False,
        chunk=data_cfg.test_batch_size,
        amp=trainer.cfg.amp,
    )
    return float(result.metrics["mAP"])


def shard_path(index: int, seed: int, folder: Path = SHARD_DIR) -> Path:
    """The shard file of configuration ``index`` and training seed ``seed``."""
    return folder / f"c{index:03d}_s{seed}.json"


def write_shard(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file + rename)."""
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def train_shard(
    index: int, seed: int, *, design: list[dict[str, float]], data_root: Path, folder: Path
) -> Path | None:
    """Train configuration ``index`` of ``design`` with seed ``seed`` on every schedule and write
    its shard; None (nothing trained) when the shard already exists."""
    path = shard_path(index, seed, folder)
    if path.exists():
        return None
    space = mars_space()
    spec = surrogate_spec(data_root, space, artifacts_root=data_root.parent / "artifacts")
    params = design[index]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="reid-hpo-bench-v2-") as tmp:
        for epochs in (FULL_EPOCHS, *COMPRESSED):
            record = train_run(spec, params, seed=seed, epochs=epochs, out=Path(tmp) / str(epochs))
            runs[str(epochs)] = {
                "val": {str(k): round(v, 5) for k, v in record.val.items()},
                "test": None if record.test is None else round(record.test, 5),
                "state": record.state,
                "train_s": round(record.train_s, 2),
                "schedule": scaled_schedule(epochs),
            }
    payload = {
        "config_index": index,
        "seed": seed,
        "params": params,
        "runs": runs,
        "threads": torch.get_num_threads(),
        "data": DATA,
        "backbone": NARROW_BACKBONE,
        "init_sha256": init_sha256(),
    }
    write_shard(path, payload)
    return path


def init_sha256(path: Path = INIT_WEIGHTS) -> str:
    """SHA-256 of the starting weights every shard was trained from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_shards(folder: Path = SHARD_DIR) -> list[dict[str, Any]]:
    """Every shard of ``folder``, sorted by configuration then seed.

    Raises:
        ValueError: the shards were not all trained from the same starting weights (a cache
            mixes two surrogates).
    """
    shards = [json.loads(p.read_text()) for p in sorted(folder.glob("c*_s*.json"))]
    inits = {s.get("init_sha256") for s in shards}
    if len(inits) > 1:
        raise ValueError(
            f"the shards in {folder} come from {len(inits)} different starting weights; "
            "move the stale ones away"
        )
    return sorted(shards, key=lambda s: (s["config_index"], s["seed"]))
