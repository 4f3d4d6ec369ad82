"""``train --preset bbot_attn_cl`` (the paper's Attn-CL model) on the synthetic set: the attention
loss is trained and logged, and the erased frames' attention falls against the same run
without it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hpo.cli import app
from reid_core.config import TrainConfig
from reid_core.data import build_train_loader
from reid_core.data import erased_frames
from reid_core.data import erasing_style
from reid_core.data import write_synthetic
from reid_core.engine import Trainer
from reid_core.engine import finish_on_device
from reid_core.engine import load_checkpoint

runner = CliRunner()
EPOCHS = 3
TINY = [
    "--backbone", "resnet10", "--attention", "pooled", "--no-pretrained", "--height", "16",
    "--width", "8", "--seq-len", "4", "--batch-size", "8", "--num-instances", "2",
    "--no-validation", "--num-workers", "0", "--device", "cpu", "--warmup-epochs", "0",
    "--milestones", "100", "--lr", "3e-4", "--epochs", str(EPOCHS), "--eval-every", str(EPOCHS),
]  # fmt: skip


@pytest.fixture(scope="module")
def mars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mars") / "mars"
    return write_synthetic(root, "mars", ids=16, frames=8, height=16, width=8, seed=0)


def _train(mars: Path, out: Path, *extra: str) -> str:
    args = ["train", "--preset", "bbot_attn_cl", "--dataset", "mars", "--root", str(mars)]
    result = runner.invoke(app, [*args, "--output", str(out), *TINY, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _erased_attention(model: torch.nn.Module, batches: list, fill: tuple) -> float:
    """Mean raw attention score (the reference's a_vals, what the loss acts on) of the frames
    the labelled erasing hit, over fixed batches."""
    model.eval()
    scores = []
    with torch.no_grad():
        for (clips, boxes), _, _ in batches:
            out = model(finish_on_device(clips, boxes, torch.device("cpu"), fill))
            scores.append(out.attention_scores[erased_frames(boxes) == 1])
    return float(torch.cat(scores).mean())


def test_the_attention_loss_lowers_the_erased_frames_attention(
    mars: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="reid_core"):
        _train(mars, tmp_path / "attn_cl")
    assert " attention " in caplog.text  # the epoch line on the console names every term
    _train(mars, tmp_path / "without", "--attention-weight", "0")

    cfg = TrainConfig.from_dict(json.loads((tmp_path / "attn_cl" / "config.json").read_text()))
    assert (cfg.loss.attention_weight, cfg.data.labelled_erasing, cfg.loss.beta) == (1, 0.5, 1)
    logged = [json.loads(line)["losses"] for line in (tmp_path / "attn_cl" / "metrics.jsonl")
              .read_text().splitlines()]  # fmt: skip
    assert logged[0]["attention"] > logged[-1]["attention"] >= 0
    without = (tmp_path / "without" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line)["losses"]["attention"] == 0 for line in without)

    # Both runs start from the same weights (same seed and model): this trainer's.
    trainer = Trainer(cfg, progress=False)
    loader = build_train_loader(trainer.train_records, cfg.data, seed=7, finish_on_host=False)
    batches = [batch for _, batch in zip(range(3), loader, strict=False)]
    assert sum(int(erased_frames(boxes).sum()) for (_, boxes), _, _ in batches) > 0
    fill = erasing_style(cfg.data.erasing_style).fill
    initial = _erased_attention(trainer.model, batches, fill)
    trained = {}
    for run in ("attn_cl", "without"):
        trainer.model.load_state_dict(load_checkpoint(tmp_path / run / "last.pt")["model"])
        trained[run] = _erased_attention(trainer.model, batches, fill)
    assert trained["attn_cl"] < initial
    assert trained["attn_cl"] < trained["without"]
