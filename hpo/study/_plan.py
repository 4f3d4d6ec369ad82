"""``reid-hpo study plan``: what a study will cost, computed before a GPU-hour is spent.

The plan is derived from the spec and the dataset's index (parsed once, as a worker would):
the training / validation sizes after the carve-out, the batches of one epoch under the
spec's epoch definition, the evaluations per trial, where the pruner may first compare, the
budget and the checkpoints' disk use. :func:`measure_costs` adds timings of the spec's model
on this device (synthetic input of the spec's shape: model compute only, no data loading).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from hpo.search import rung_plan
from hpo.spec import StudySpec
from hpo.spec import pruner_options
from hpo.spec import to_train_config
from hpo.study._accounting import REFERENCE_TRIALS

if TYPE_CHECKING:
    from reid_core.config import TrainConfig
    from reid_core.data import VideoDataset

#: Epoch checkpoints a trial keeps (``CheckpointManager`` default) and bytes per stored value
#: (float32 weights plus Adam's two moments).
CHECKPOINTS_KEPT = 2
_BYTES_PER_PARAM = 4 * 3


@dataclass(frozen=True)
class StudyPlan:
    """Sizes and costs of one study (the JSON of ``study plan --format json``)."""

    study: str
    dataset: str
    root: str
    all_train_ids: int
    train_ids: int
    train_tracklets: int
    val_ids: int
    val_query: int
    val_gallery: int
    val_clips: int
    epoch_sampling: str
    iterations_per_epoch: int
    epochs: int
    evaluations: int
    first_prune_epoch: int | None
    n_trials: int | None
    timeout_hours: float | None
    max_epochs_total: int | None
    checkpoint_mb: float
    disk_mb: float | None
    step_seconds: float | None = None
    eval_seconds: float | None = None
    trial_hours: float | None = None
    study_hours: float | None = None
    study_hours_pruned: float | None = None
    reference_hours: float | None = None
    """Hours of the reference's search (60 full trials, no pruning) at the measured pace."""
    device: str | None = None
    precision: str | None = None
    """The precision policy the measured steps ran under (the trainer's, from ``amp``)."""
    notes: tuple[str, ...] = ()
    """One line per way the dataset is read differently from the published protocol."""
    rung_epochs: tuple[int, ...] | None = None
    """A ``fidelity:`` study's rungs (compressed schedules' epochs, the full one last)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def evaluation_epochs(epochs: int, eval_every: int) -> list[int]:
    """0-based epochs at which a trial evaluates (and reports to the pruner).

    Example:
        >>> evaluation_epochs(121, 10)[-3:]
        [109, 119, 120]
    """
    return [e for e in range(epochs) if (e + 1) % eval_every == 0 or e == epochs - 1]


def first_prune_epoch(spec: StudySpec) -> int | None:
    """The first evaluated epoch at which the study's pruner can stop a trial (None: never).

    ``median``: the first evaluation at or after ``n_warmup_steps`` (plus ``patience`` more
    evaluations); ``sha`` / ``hyperband``: the first evaluation at or after the lowest rung,
    ``min_resource * reduction_factor ** min_early_stopping_rate``.
    """
    if spec.pruner.name == "none":
        return None
    options = pruner_options(spec)
    steps = evaluation_epochs(spec.training.epochs, spec.training.eval_every)
    if spec.pruner.name == "median":
        eligible = [i for i, s in enumerate(steps) if s >= options["n_warmup_steps"]]
        index = eligible[0] + options.get("patience", 0) if eligible else len(steps)
    else:
        rung = options["min_resource"]
        if spec.pruner.name == "sha":
            rung *= options.get("reduction_factor", 4) ** options.get("min_early_stopping_rate", 0)
        index = next((i for i, s in enumerate(steps) if s >= rung), len(steps))
    return steps[index] if index < len(steps) else None


def build_plan(spec: StudySpec, dataset: VideoDataset) -> StudyPlan:
    """The plan of ``spec`` on the parsed ``dataset`` (trial 0's validation carve-out)."""
    from reid_core.data import RandomIdentitySampler
    from reid_core.data import carve_validation

    cfg = to_train_config(spec, {}, trial_number=0, output_dir="plan")
    train = dataset.train
    data = cfg.data
    val_ids = val_query = val_gallery = val_clips = 0
    if data.validation is not None:
        split = carve_validation(train, data.validation)
        val_ids = len({t.pid for t in split.query})
        val_query, val_gallery = len(split.query), len(split.gallery)
        val_clips = sum(
            min(math.ceil(len(t.frames) / data.seq_len), data.test_max_clips or math.inf)
            for t in (*split.query, *split.gallery)
        )
        train = split.train
    sampler = RandomIdentitySampler(
        [t.pid for t in train],
        data.batch_size,
        data.num_instances,
        cfg.seed,
        epoch_sampling=data.epoch_sampling,
    )
    checkpoint_mb = _parameters(cfg, len({t.pid for t in train})) * _BYTES_PER_PARAM / 2**20
    n_trials = spec.budget.n_trials
    return StudyPlan(
        study=spec.name,
        dataset=spec.dataset.name,
        root=str(dataset.root),
        all_train_ids=dataset.num_train_pids,
        train_ids=len({t.pid for t in train}),
        train_tracklets=len(train),
        val_ids=val_ids,
        val_query=val_query,
        val_gallery=val_gallery,
        val_clips=val_clips,
        epoch_sampling=data.epoch_sampling,
        iterations_per_epoch=len(sampler) // data.batch_size,
        epochs=cfg.epochs,
        evaluations=len(evaluation_epochs(cfg.epochs, cfg.eval_every)),
        first_prune_epoch=first_prune_epoch(spec),
        n_trials=n_trials,
        timeout_hours=spec.budget.timeout_hours,
        max_epochs_total=None if n_trials is None else n_trials * cfg.epochs,
        checkpoint_mb=round(checkpoint_mb, 1),
        disk_mb=None if n_trials is None else round(checkpoint_mb * CHECKPOINTS_KEPT * n_trials),
        notes=tuple(dataset.notes()),
        rung_epochs=plan.ladder if (plan := rung_plan(spec)) is not None else None,
    )


def _parameters(cfg: TrainConfig, num_classes: int) -> int:
    """Model + center-loss parameters of ``cfg`` (built on the CPU, random weights)."""
    from dataclasses import replace

    from reid_core.models import build_model_from_config

    model = build_model_from_config(
        replace(cfg.model, pretrained=False),
        num_classes=num_classes,
        input_size=(cfg.data.height, cfg.data.width),
    )
    return sum(p.numel() for p in model.parameters()) + num_classes * model.feat_dim


def measure_costs(spec: StudySpec, plan: StudyPlan, steps: int) -> StudyPlan:
    """``plan`` with timings of ``steps`` training steps and one evaluation on this device.

    A step is the trainer's own (:func:`reid_core.engine.optimisation_step` on the parts of
    :func:`reid_core.engine.build_step_parts`: the spec's precision, ``channels_last``,
    ``compile``, fused Adam on CUDA, the centre-loss step) on one batch of the spec's shape;
    an evaluation is the forward of every validation clip (``plan.val_clips``) under the same
    precision, from the time of chunks sized as evaluation sizes them
    (:func:`reid_core.engine.evaluation_chunk`: ``test_batch_size`` on a CPU).
    Input is synthetic: frame decoding and augmentation are not counted.
    """
    from dataclasses import replace

    import torch

    from reid_core.engine import build_step_parts
    from reid_core.engine import evaluation_chunk
    from reid_core.engine import optimisation_step
    from reid_core.engine import select_device

    cfg = to_train_config(spec, {}, trial_number=0, output_dir="plan")
    cfg = replace(cfg, model=replace(cfg.model, pretrained=False))
    data = cfg.data
    device = select_device(cfg.device)
    parts = build_step_parts(cfg, plan.train_ids, device)  # the trainer's own precision,
    model = parts.model  # layout, compilation and optimisers
    clips = torch.randn(data.batch_size, data.seq_len, 3, data.height, data.width, device=device)
    pids = torch.arange(data.batch_size, device=device) // data.num_instances % plan.train_ids
    erased = torch.rand(data.batch_size, data.seq_len, device=device) < data.labelled_erasing
    erased = erased.float()

    def step() -> None:
        optimisation_step(parts, clips, pids, erased, cfg.loss.center_weight)

    model.train()
    step()  # warm-up: allocations, kernel selection
    step_s = _timed(step, steps, device) / steps
    model.eval()
    clip = (data.seq_len, 3, data.height, data.width)
    per_pass = evaluation_chunk(data.test_batch_size, device, clip)  # as evaluation sizes it
    chunk = torch.randn(per_pass, *clip, device=device)

    def forward() -> None:
        with torch.no_grad(), parts.precision.autocast():
            model(chunk)

    forward()
    chunks = math.ceil(plan.val_clips / per_pass)
    eval_s = _timed(forward, 3, device) / 3 * chunks
    trial_s = step_s * plan.iterations_per_epoch * plan.epochs + eval_s * plan.evaluations
    study_h = None if plan.n_trials is None else trial_s * plan.n_trials / 3600
    pruned_h = None
    if plan.n_trials is not None and plan.first_prune_epoch is not None:
        startup = min(plan.n_trials, pruner_options(spec).get("n_startup_trials", 0))
        epoch_s = step_s * plan.iterations_per_epoch
        evals_before = len(
            [
                e
                for e in evaluation_epochs(plan.epochs, cfg.eval_every)
                if e <= plan.first_prune_epoch
            ]
        )
        short_s = epoch_s * (plan.first_prune_epoch + 1) + eval_s * evals_before
        pruned_h = (startup * trial_s + (plan.n_trials - startup) * short_s) / 3600
    return replace(
        plan,
        step_seconds=round(step_s, 4),
        eval_seconds=round(eval_s, 2),
        trial_hours=round(trial_s / 3600, 4),
        study_hours=None if study_h is None else round(study_h, 4),
        study_hours_pruned=None if pruned_h is None else round(pruned_h, 4),
        reference_hours=round(trial_s * REFERENCE_TRIALS / 3600, 4),
        device=str(device),
        precision=parts.precision.name,
    )


def _timed(fn: Any, repeats: int, device: Any) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


__all__ = ["StudyPlan", "build_plan", "evaluation_epochs", "first_prune_epoch", "measure_costs"]
