"""fp16 steps under the gradient scaler, on the CPU (torch's CPU GradScaler does the same
bookkeeping as the CUDA one): no host read per step, a skipped step does not fail the run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch

from reid_core.engine import Trainer
from reid_core.engine._step import step_skipping_overflow
from reid_core.errors import NonFiniteLossError
from tests.reid_core.engine.conftest import TinyConfig


def _scaled(trainer: Trainer) -> Trainer:
    """The trainer with an enabled scaler and fused Adam (which takes the scaler's flags on
    the device), as an fp16 run on a GPU has them."""
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    trainer.optimizer = torch.optim.Adam(params, lr=1e-3, fused=True)
    return trainer


def _batch(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    (clips, _), pids, _ = next(iter(trainer._train_loader(0)))
    return clips.float() / 255.0, pids


def test_the_center_step_reads_nothing_back_from_the_device(
    tiny_cfg: TinyConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _scaled(Trainer(tiny_cfg(epochs=1)))
    clips, pids = _batch(trainer)
    centers = [p.detach().clone() for p in trainer.criterion.center_parameters()]

    def no_read(self: torch.Tensor) -> Any:
        raise AssertionError("a host read (Tensor.item) in the training step")

    monkeypatch.setattr(torch.Tensor, "item", no_read)
    trainer.train_step(clips, pids)
    monkeypatch.undo()
    moved = [
        p
        for p, before in zip(trainer.criterion.center_parameters(), centers, strict=True)
        if not torch.equal(p, before)
    ]
    assert moved  # the centres did take their SGD step


def test_an_overflowing_center_step_is_skipped_as_the_scaler_would() -> None:
    center = torch.nn.Parameter(torch.ones(2, 3))
    optimizer = torch.optim.SGD([center], lr=0.5)
    scaler = torch.amp.GradScaler("cpu")
    center.grad = torch.tensor([[1.0, float("inf"), 0.0], [0.0, 0.0, 0.0]])
    step_skipping_overflow(optimizer, scaler)
    assert torch.equal(center.detach(), torch.ones(2, 3))
    center.grad = torch.full((2, 3), 2.0)
    step_skipping_overflow(optimizer, scaler)
    assert torch.equal(center.detach(), torch.zeros(2, 3))


def test_one_skipped_step_does_not_fail_the_epoch_but_all_skipped_does(
    tiny_cfg: TinyConfig,
) -> None:
    cfg = tiny_cfg(epochs=1)
    trainer = _scaled(Trainer(replace(cfg, data=replace(cfg.data, batch_size=4))))
    step = trainer.train_step
    calls: list[int] = []

    def sometimes_inf(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        losses = step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1 or inf_always:
            losses["total"] = torch.tensor(float("inf"))
        return losses

    trainer.train_step = sometimes_inf  # type: ignore[method-assign]
    inf_always = False
    means = trainer.train_one_epoch(0)
    assert len(calls) > 1 and torch.isfinite(torch.tensor(means["total"]))
    inf_always = True
    with pytest.raises(NonFiniteLossError, match="not finite at every step"):
        trainer.train_one_epoch(1)
