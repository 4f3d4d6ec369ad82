"""Start a run from another run's backbone and temporal attention (cross-dataset fine-tuning).

A MARS model fine-tuned on PRID-2011 keeps what transfers (the ResNet backbone and the
temporal attention) and starts afresh what depends on the ids (BNNeck, classifier, center-loss
centers). The source checkpoint is verified against its SHA-256 sidecar; its path and hash are
recorded in the new run's checkpoints and ``results.json``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_core.engine._checkpoint import checksum_path
from reid_core.engine._checkpoint import load_checkpoint
from reid_core.engine._checkpoint import verify_checkpoint
from reid_core.errors import CheckpointError

logger = logging.getLogger(__name__)

#: State-dict prefixes of the layers taken from the source; the rest start afresh.
TRANSFERRED_PREFIXES = ("backbone.", "temporal.")


@dataclass(frozen=True)
class InitSource:
    """Where a run's initial weights came from (stored as ``init_from`` in its checkpoints).

    Attributes:
        checkpoint: The verified source checkpoint (symlinks resolved).
        sha256: Its SHA-256, as recorded in its sidecar.
        epoch: The 1-based epoch the source checkpoint ends.
        dataset: The dataset the source was trained on.
        tensors: How many tensors were copied.
    """

    checkpoint: str
    sha256: str
    epoch: int | None
    dataset: str | None
    tensors: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def transferable_state(model: nn.Module, path: Path) -> tuple[dict[str, torch.Tensor], InitSource]:
    """The backbone and temporal-attention tensors of checkpoint ``path``, checked to fit
    ``model`` tensor by tensor.

    Args:
        model: The model that will receive them (its head is not compared).
        path: A checkpoint file, ``last.pt`` or a run directory.

    Returns:
        The tensors by state-dict name, and a description of the source.

    Raises:
        CheckpointError: The checkpoint is missing, corrupt or not a model checkpoint, or a
            layer is missing on one side or has another shape (named in the message).
    """
    real = verify_checkpoint(path)
    state = load_checkpoint(real, map_location="cpu")
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(f"--init-from {real}: the checkpoint holds no model weights")
    target = {k: v for k, v in model.state_dict().items() if k.startswith(TRANSFERRED_PREFIXES)}
    source = {k: v for k, v in weights.items() if k.startswith(TRANSFERRED_PREFIXES)}
    for name, tensor in target.items():
        if name not in source:
            raise CheckpointError(
                f"--init-from {real} does not fit this model: layer {name} is missing from the "
                f"checkpoint (trained as {_arch_of(state)})"
            )
        if source[name].is_floating_point() != tensor.is_floating_point():
            raise CheckpointError(
                f"--init-from {real} does not fit this model: layer {name} holds "
                f"{source[name].dtype} values in the checkpoint, {tensor.dtype} here"
            )
        if tuple(source[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"--init-from {real} does not fit this model: layer {name} has shape "
                f"{tuple(source[name].shape)} in the checkpoint, {tuple(tensor.shape)} here"
            )
    extra = sorted(set(source) - set(target))
    if extra:
        raise CheckpointError(
            f"--init-from {real} does not fit this model: layer {extra[0]} of the checkpoint "
            f"has no counterpart here (trained as {_arch_of(state)})"
        )
    digest = checksum_path(real).read_text(encoding="utf-8").split(maxsplit=1)[0]
    config = state.get("config") or {}
    info = InitSource(
        checkpoint=str(real),
        sha256=digest,
        epoch=state.get("epoch"),
        dataset=(config.get("data") or {}).get("dataset"),
        tensors=len(target),
    )
    return {name: source[name] for name in target}, info


def init_from_checkpoint(model: nn.Module, path: Path) -> InitSource:
    """Copy the backbone and temporal attention of checkpoint ``path`` into ``model``.

    BNNeck, classifier (and, in the trainer, the center-loss centers) keep their fresh
    initialisation for this run's ids.

    Raises:
        CheckpointError: See :func:`transferable_state`.
    """
    tensors, info = transferable_state(model, path)
    with torch.no_grad():
        own = model.state_dict()
        for name, tensor in tensors.items():
            own[name].copy_(tensor)
    logger.info(
        "initialised %d backbone/attention tensors from %s (%s, epoch %s, sha256 %s...)",
        info.tensors,
        info.checkpoint,
        info.dataset,
        info.epoch,
        info.sha256[:12],
    )
    return info


def _arch_of(state: dict[str, Any]) -> str:
    model = (state.get("config") or {}).get("model") or {}
    return (
        f"{model.get('arch')}/{model.get('backbone')}, attention {model.get('attention')}, "
        f"last stride {model.get('last_stride')}"
    )


__all__ = ["TRANSFERRED_PREFIXES", "InitSource", "init_from_checkpoint", "transferable_state"]
