"""Rebuild a trained model from a checkpoint and evaluate it on a dataset's TEST split."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from reid_core import data as reid_data
from reid_core import models as reid_models
from reid_core.config import TrainConfig
from reid_core.engine._checkpoint import load_checkpoint
from reid_core.engine._checkpoint import verify_checkpoint
from reid_core.engine._device import select_device
from reid_core.engine._evaluation import EvaluationResult
from reid_core.engine._evaluation import evaluate
from reid_core.errors import CheckpointError
from reid_core.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model restored from a checkpoint, with what produced it.

    Attributes:
        model: The network, in eval mode, on the requested device.
        config: The training configuration stored in the checkpoint.
        checkpoint: The verified checkpoint file (symlinks resolved).
        epoch: 1-based epoch after which the checkpoint was written.
        metrics: Validation metrics stored with the checkpoint, if any.
    """

    model: nn.Module
    config: TrainConfig
    checkpoint: Path
    epoch: int
    metrics: dict[str, float] | None


def load_model(path: Path, *, device: str = "auto") -> LoadedModel:
    """Rebuild the model of a checkpoint (no ImageNet weights are loaded: all come from it).

    Args:
        path: A checkpoint file, ``last.pt`` or a run directory.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Returns:
        The model and its provenance.

    Raises:
        CheckpointError: If the checkpoint is missing, corrupt or does not match its config.
    """
    real = verify_checkpoint(path)
    state = load_checkpoint(real, map_location="cpu")
    try:
        cfg = TrainConfig.from_dict(state["config"])
        num_classes = int(state["num_classes"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {real} has no usable config: {exc}") from exc
    model = reid_models.build_model_from_config(
        replace(cfg.model, pretrained=False),
        num_classes=num_classes,
        input_size=(cfg.data.height, cfg.data.width),
    )
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise CheckpointError(f"checkpoint {real} weights do not fit its model: {first}") from exc
    model.to(select_device(device)).eval()
    return LoadedModel(model, cfg, real, int(state["epoch"]), state.get("metrics"))


def evaluate_checkpoint(
    path: Path,
    *,
    root: Path | None = None,
    rerank: bool = False,
    device: str = "auto",
    num_workers: int | None = None,
    amp: str | None = None,
) -> tuple[EvaluationResult, dict[str, Any]]:
    """Evaluate a checkpoint once on the TEST split of the dataset it was trained on.

    Args:
        path: A checkpoint file, ``last.pt`` or a run directory.
        root: The dataset root when it moved since training (default: the stored one).
        rerank: Also report k-reciprocal re-ranked metrics.
        device: Where to run the model.
        num_workers: Data-loading workers (default: the stored config's).
        amp: Precision policy of the feature extraction (default: the one the run trained
            with; float32 where this device cannot run it).

    Returns:
        The evaluation and a JSON-friendly description of what was evaluated.

    Raises:
        CheckpointError: If the checkpoint cannot be used.
        DatasetNotFoundError: If the dataset root is missing.
        EvaluationError: If no query has a valid match.
    """
    loaded = load_model(path, device=device)
    data_cfg = loaded.config.data
    if root is not None:
        data_cfg = replace(data_cfg, root=str(root))
    if num_workers is not None:
        data_cfg = replace(data_cfg, num_workers=num_workers)
    pin = next(loaded.model.parameters()).device.type == "cuda"
    dataset = reid_data.build_dataset(
        data_cfg.dataset,
        data_cfg.root,
        split_id=data_cfg.split_id,
        mars_gallery=data_cfg.mars_gallery,
    )
    logger.info(
        "evaluating %s on the %s test split: %d query, %d gallery tracklets",
        loaded.checkpoint,
        data_cfg.dataset,
        len(dataset.query),
        len(dataset.gallery),
    )
    result = evaluate(
        loaded.model,
        reid_data.build_test_loader(dataset.query, data_cfg, pin_memory=pin, finish_on_host=False),
        reid_data.build_test_loader(
            dataset.gallery, data_cfg, pin_memory=pin, finish_on_host=False
        ),
        device=next(loaded.model.parameters()).device,
        rerank=rerank,
        chunk=data_cfg.test_batch_size,
        amp=loaded.config.amp if amp is None else amp,
    )
    info = {
        "checkpoint": str(loaded.checkpoint),
        "epoch": loaded.epoch,  # epochs trained (1-based), as a person reads it
        "dataset": data_cfg.dataset,
        "root": data_cfg.root,
        "split": "test",
        "split_id": data_cfg.split_id,
        "mars_gallery": data_cfg.mars_gallery if data_cfg.dataset == "mars" else None,
        "validation_metrics": loaded.metrics,
    }
    return result, info
