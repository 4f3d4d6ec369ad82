"""``reid-hpo train`` then ``reid-hpo evaluate`` on tiny synthetic datasets of every layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from reid_core.data import write_synthetic
from reid_core.engine import load_checkpoint

TINY = [
    "--backbone", "resnet10", "--attention", "pooled", "--no-pretrained",
    "--height", "32", "--width", "16", "--seq-len", "2",
    "--batch-size", "4", "--num-instances", "2",
    "--eval-every", "1", "--num-workers", "0", "--device", "cpu",
]  # fmt: skip
LAYOUT_IDS = {"mars": 8, "ilidsvid": 8, "prid": 8}
runner = CliRunner()


@pytest.mark.parametrize("layout", ["mars", "ilidsvid", "prid"])
def test_train_then_evaluate_on_the_test_split(layout: str, tmp_path: Path) -> None:
    root = write_synthetic(
        tmp_path / layout, layout, ids=LAYOUT_IDS[layout], frames=6, height=32, width=16
    )
    out = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            layout,
            "--root",
            str(root),
            "--output",
            str(out),
            *TINY,
            "--epochs",
            "1",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "mAP" in trained.output
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 1
    assert 0.0 <= results["final_metrics"]["mAP"] <= 1.0
    assert load_checkpoint(out / "last.pt")["config"]["data"]["dataset"] == layout

    evaluated = runner.invoke(
        app, ["evaluate", str(out / "last.pt"), "--rerank", "--device", "cpu"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "re-ranked" in evaluated.output
    report = json.loads((out / "last.test.json").read_text())
    assert report["split"] == "test"
    assert report["dataset"] == layout
    assert set(report["metrics"]) >= {"mAP", "rank1", "rank20", "rerank_mAP", "rerank_rank1"}
    assert len(report["cmc"]) >= 1


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "mars", "mars", ids=8, frames=6, height=32, width=16)
    out = tmp_path / "run"
    args = ["train", "--dataset", "mars", "--root", str(root), "--output", str(out), *TINY]
    assert runner.invoke(app, [*args, "--epochs", "1"]).exit_code == 0
    resumed = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_resume_without_checkpoint_is_one_line_error(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "mars", "mars", ids=8, frames=6, height=32, width=16)
    out = tmp_path / "empty"
    result = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            "mars",
            "--root",
            str(root),
            "--output",
            str(out),
            *TINY,
            "--resume",
        ],
    )
    assert result.exit_code == 2
    assert "checkpoint not found" in result.output


def test_missing_dataset_is_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--output", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--dataset and --root are required" in result.output


def test_corrupt_checkpoint_is_refused_by_evaluate(tmp_path: Path) -> None:
    bad = tmp_path / "epoch_0000.pt"
    bad.write_bytes(b"not a checkpoint")
    (tmp_path / "epoch_0000.pt.sha256").write_text("0" * 64 + "  epoch_0000.pt\n")
    result = runner.invoke(app, ["evaluate", str(bad)])
    assert result.exit_code == 2
    assert "SHA-256" in result.output


def test_cpu_bf16_that_would_train_wrong_gradients_is_one_line_error(tmp_path: Path) -> None:
    """`--last-stride 2` at 32x16 gives layer4 a one-column input: torch 2.14.1's CPU bf16
    weight gradient of that convolution reads memory it never wrote (test_onednn.py)."""
    root = write_synthetic(tmp_path / "mars", "mars", ids=8, frames=6, height=32, width=16)
    args = ["train", "--dataset", "mars", "--root", str(root), *TINY, "--epochs", "1"]
    out = tmp_path / "bf16"
    refused = runner.invoke(
        app, [*args, "--output", str(out), "--last-stride", "2", "--amp", "bf16"]
    )
    assert refused.exit_code == 2, refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: amp=bf16 on the CPU")
    assert "backbone.layer4.0.conv1" in lines[0] and "Traceback" not in refused.output
    assert not (out / "last.pt").exists()
