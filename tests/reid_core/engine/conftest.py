"""A tiny synthetic MARS dataset and a tiny CPU training config for the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reid_core.data import write_synthetic
from reid_core.engine import DataConfig
from reid_core.engine import ModelConfig
from reid_core.engine import OptimConfig
from reid_core.engine import TrainConfig
from reid_core.engine import ValidationConfig

TinyConfig = Callable[..., TrainConfig]


@pytest.fixture(scope="session")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 identities (6 train, 6 test), 4 tracklets each over 3 cameras, 32x16 frames."""
    root = tmp_path_factory.mktemp("data") / "mars"
    return write_synthetic(
        root, "mars", ids=12, cameras=3, tracklets=4, frames=6, seed=0, height=32, width=16
    )


@pytest.fixture()
def tiny_cfg(mars_root: Path, tmp_path: Path) -> TinyConfig:
    """Factory of a resnet10 TA_BT config on ``mars_root``; keyword overrides of TrainConfig."""

    def make(**overrides: Any) -> TrainConfig:
        data = DataConfig(
            dataset="mars",
            root=str(mars_root),
            height=32,
            width=16,
            seq_len=2,
            batch_size=8,
            num_instances=2,
            test_max_clips=2,
            test_batch_size=8,
            num_workers=0,
            random_erasing=0.0,
            validation=ValidationConfig(fraction=0.34, distractor_fraction=0.25, seed=0),
        )
        settings: dict[str, Any] = {
            "data": data,
            "model": ModelConfig(
                arch="ta_bt", backbone="resnet10", attention="pooled", pretrained=False
            ),
            "optim": OptimConfig(lr=1e-3, warmup_epochs=1, warmup_factor=0.1, milestones=()),
            "epochs": 2,
            "eval_every": 1,
            "device": "cpu",
            "output_dir": str(tmp_path / "run"),
        }
        settings.update(overrides)
        return TrainConfig(**settings)

    return make
