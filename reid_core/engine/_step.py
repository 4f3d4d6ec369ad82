"""What one optimisation step needs and the step itself, shared by the trainer and by
``study plan --measure`` (so the plan times the precision, memory layout, compilation and
optimisers a trial really uses).

The model (``channels_last`` and ``compile`` as configured), the criterion, Adam (fused on
CUDA: one kernel per step, taking the gradient scaler's flags on the device), the centre-loss
SGD, the precision policy and its gradient scaler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reid_core import losses as reid_losses
from reid_core import models as reid_models
from reid_core.config import TrainConfig
from reid_core.engine._compiler import require_c_compiler
from reid_core.engine._onednn import check_cpu_bf16_training
from reid_core.engine._precision import Precision
from reid_core.engine._precision import resolve_precision

__all__ = ["StepParts", "build_step_parts", "optimisation_step", "step_skipping_overflow"]


@dataclass
class StepParts:
    """The model, criterion, optimisers, precision and scaler of one training run."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    center_optimizer: torch.optim.Optimizer | None
    precision: Precision
    scaler: Any


def build_step_parts(cfg: TrainConfig, num_classes: int, device: torch.device) -> StepParts:
    """Build what :func:`optimisation_step` needs, as a training run of ``cfg`` has it.

    Args:
        cfg: The run's configuration (``model``, ``loss``, ``optim``, ``amp``,
            ``channels_last``, ``compile``; ImageNet weights per ``model.pretrained``).
        num_classes: Training identities.
        device: Where the run trains (selected: :func:`~reid_core.engine.select_device`).
    """
    precision = resolve_precision(cfg.amp, device)
    size = (cfg.data.height, cfg.data.width)
    model = reid_models.build_model_from_config(cfg.model, num_classes=num_classes, input_size=size)
    check_cpu_bf16_training(model, precision, size, cfg.data.seq_len)
    model = model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.compile:
        require_c_compiler()
        model.compile()  # in place: parameter names and state-dict keys unchanged
    criterion = reid_losses.ReidCriterion(
        cfg.loss, num_classes=num_classes, feat_dim=model.feat_dim
    ).to(device)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        fused=device.type == "cuda",  # one kernel per step instead of a loop
    )
    centers = [p for p in criterion.center_parameters() if p.requires_grad]
    center_optimizer = torch.optim.SGD(centers, lr=cfg.loss.center_lr) if centers else None
    return StepParts(
        model, criterion, optimizer, center_optimizer, precision, precision.grad_scaler()
    )


def optimisation_step(
    parts: Any,
    clips: torch.Tensor,
    pids: torch.Tensor,
    erased: torch.Tensor | None,
    center_weight: float,
) -> dict[str, torch.Tensor]:
    """One step on a batch already on the device (normalised clips, labels checked,
    ``erased[B, T]`` the erased-frame labels the attention loss needs); returns the detached
    loss terms, still on the device (nothing is read back). ``parts``: a :class:`StepParts`
    or an object with the same attributes (the :class:`~reid_core.engine.Trainer`)."""
    parts.optimizer.zero_grad(set_to_none=True)
    if parts.center_optimizer is not None:
        parts.center_optimizer.zero_grad(set_to_none=True)
    with parts.precision.autocast():
        output = parts.model(clips)
    output = type(output)(*(None if t is None else t.float() for t in output))
    losses = parts.criterion(
        output, pids, parts.model.classifier.weight.float(), erased=erased, check_labels=False
    )
    parts.scaler.scale(losses["total"]).backward()
    parts.scaler.step(parts.optimizer)
    if parts.center_optimizer is not None:
        parts.scaler.unscale_(parts.center_optimizer)
        reid_losses.rescale_center_grads(parts.criterion, center_weight)
        step_skipping_overflow(parts.center_optimizer, parts.scaler)
    parts.scaler.update()
    return {name: value.detach() for name, value in losses.items()}


def step_skipping_overflow(optimizer: torch.optim.Optimizer, scaler: Any) -> None:
    """``scaler.step(optimizer)`` for a plain SGD (no momentum, no weight decay), without the
    host synchronisation ``scaler.step`` makes to read its overflow flag.

    Gradients already unscaled (``scaler.unscale_``); where any of them is not finite, all
    are zeroed on the device, which makes this SGD step a no-op, as the scaler's skipped step.
    """
    if scaler.is_enabled():
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        grads = [g for g in grads if g is not None]
        if grads:
            finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
            for grad in grads:
                torch.where(finite, grad, torch.zeros_like(grad), out=grad)
    optimizer.step()
