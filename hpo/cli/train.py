"""``reid-hpo train`` and ``reid-hpo evaluate``: one training run, one test evaluation.

The trainer (torch) is imported inside the commands, not at CLI start.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hpo.cli._app import app
from reid_core.config import TrainConfig
from reid_core.errors import CheckpointError
from reid_core.errors import ConfigError

logger = logging.getLogger(__name__)

_RANKS = (1, 5, 10, 20)

_TRAIN_EPILOG = """\
Example (a tiny CPU run on a synthetic dataset):

  reid-hpo data synth data/mars --layout mars

  reid-hpo train --dataset mars --root data/mars --backbone resnet18 --no-pretrained
  --height 64 --width 32 --epochs 5 --eval-every 1 --output runs/train
"""


def build_train_config(
    base: TrainConfig,
    *,
    data: dict[str, Any],
    model: dict[str, Any],
    optim: dict[str, Any],
    top: dict[str, Any],
    validation: bool = True,
) -> TrainConfig:
    """Apply command-line overrides (``None`` = not given) to a base configuration.

    Args:
        base: Defaults, or the configuration read from ``--config``.
        data: Overrides of :class:`DataConfig` fields.
        model: Overrides of :class:`ModelConfig` fields.
        optim: Overrides of :class:`OptimConfig` fields.
        top: Overrides of the top-level :class:`TrainConfig` fields.
        validation: False trains on every training id, without any validation split.

    Returns:
        The resolved configuration.

    Raises:
        ConfigError: If the result is inconsistent.
    """

    def given(overrides: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in overrides.items() if value is not None}

    data_cfg = replace(base.data, **given(data))
    if not validation:
        data_cfg = replace(data_cfg, validation=None)
    return replace(
        base,
        data=data_cfg,
        model=replace(base.model, **given(model)),
        optim=replace(base.optim, **given(optim)),
        **given(top),
    )


def _read_config(path: Path) -> TrainConfig:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must hold a JSON object (a TrainConfig dict)")
    return TrainConfig.from_dict(raw)


def _parse_milestones(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"--milestones {text!r} must be comma-separated epochs, e.g. 40,70"
        ) from None


@app.command("train", epilog=_TRAIN_EPILOG)
def train_command(
    dataset: str | None = typer.Option(None, "--dataset", help="mars, ilidsvid or prid."),
    root: Path | None = typer.Option(None, "--root", help="Dataset root directory."),
    split_id: int | None = typer.Option(None, "--split-id", help="iLIDS-VID / PRID split (0-9)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1),
    eval_every: int | None = typer.Option(None, "--eval-every", min=1),
    arch: str | None = typer.Option(None, "--arch", help="tp, ta or ta_bt."),
    backbone: str | None = typer.Option(None, "--backbone", help="resnet10/18/34/50/101."),
    attention: str | None = typer.Option(None, "--attention", help="pooled or full_map."),
    height: int | None = typer.Option(None, "--height", min=1),
    width: int | None = typer.Option(None, "--width", min=1),
    seq_len: int | None = typer.Option(None, "--seq-len", min=1),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    num_instances: int | None = typer.Option(None, "--num-instances", min=1),
    pad: int | None = typer.Option(
        None, "--pad", min=0, help="Random-crop padding in pixels (10 at 224x112)."
    ),
    lr: float | None = typer.Option(None, "--lr", min=0.0),
    warmup_epochs: int | None = typer.Option(None, "--warmup-epochs", min=0),
    milestones: str | None = typer.Option(None, "--milestones", help="e.g. 40,70"),
    seed: int | None = typer.Option(None, "--seed"),
    output: Path | None = typer.Option(None, "--output", help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/last.pt."),
    no_pretrained: bool = typer.Option(False, "--no-pretrained", help="No ImageNet weights."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (CUDA only)."),
    no_validation: bool = typer.Option(
        False, "--no-validation", help="Train on every train id; no evaluation during training."
    ),
    eval_rerank: bool = typer.Option(
        False, "--eval-rerank", help="Also report re-ranked validation metrics."
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:1, ..."),
    num_workers: int | None = typer.Option(None, "--num-workers", min=0),
    config: Path | None = typer.Option(
        None, "--config", help="TrainConfig JSON (e.g. a run's config.json); flags override it."
    ),
) -> None:
    """Train one model (validation metrics only; the test set is left to `evaluate`)."""
    base = _read_config(config) if config is not None else TrainConfig()
    if config is None and (dataset is None or root is None):
        raise ConfigError("--dataset and --root are required (or give --config)")
    cfg = build_train_config(
        base,
        data={
            "dataset": dataset,
            "root": None if root is None else str(root),
            "split_id": split_id,
            "height": height,
            "width": width,
            "seq_len": seq_len,
            "batch_size": batch_size,
            "num_instances": num_instances,
            "num_workers": num_workers,
            "pad": pad,
        },
        model={
            "arch": arch,
            "backbone": backbone,
            "attention": attention,
            "pretrained": False if no_pretrained else None,
        },
        optim={
            "lr": lr,
            "warmup_epochs": warmup_epochs,
            "milestones": _parse_milestones(milestones),
        },
        top={
            "epochs": epochs,
            "eval_every": eval_every,
            "seed": seed,
            "output_dir": None if output is None else str(output),
            "amp": True if amp else None,
            "device": device,
        },
        validation=not no_validation,
    )
    from reid_core.engine import Trainer
    from reid_core.engine import resolve_checkpoint

    resume_from = None
    if resume:
        resume_from = resolve_checkpoint(Path(cfg.output_dir))
    trainer = Trainer(cfg, evaluate_rerank=eval_rerank)
    result = trainer.fit(resume_from=resume_from)
    console = Console()
    if result.final_metrics:
        console.print(_metrics_table("Validation (final epoch)", result.final_metrics))
    console.print(f"checkpoint: {result.checkpoint}")
    console.print(f"results:    {Path(cfg.output_dir) / 'results.json'}")


@app.command("evaluate")
def evaluate_command(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (.pt), last.pt or a run directory."),
    root: Path | None = typer.Option(None, "--root", help="Dataset root, if it moved."),
    rerank: bool = typer.Option(False, "--rerank", help="Also report k-reciprocal re-ranking."),
    device: str = typer.Option("auto", "--device"),
    num_workers: int | None = typer.Option(None, "--num-workers", min=0),
) -> None:
    """Evaluate a checkpoint once on the TEST split; writes <checkpoint>.test.json beside it."""
    from reid_core.engine import evaluate_checkpoint
    from reid_core.engine import resolve_checkpoint
    from reid_core.engine import write_json_atomic

    path = resolve_checkpoint(checkpoint)
    result, info = evaluate_checkpoint(
        path, root=root, rerank=rerank, device=device, num_workers=num_workers
    )
    out = path.with_name(path.stem + ".test.json")
    try:
        write_json_atomic(out, {**info, **result.to_dict()})
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror or exc}") from None
    table = _metrics_table(f"Test split: {info['dataset']}", result.metrics)
    table.caption = f"{result.num_query} query / {result.num_gallery} gallery tracklets"
    Console().print(table)
    typer.echo(f"written: {out}")


def _metrics_table(title: str, metrics: dict[str, float]) -> Table:
    reranked = any(name.startswith("rerank_") for name in metrics)
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("plain (%)", justify="right")
    if reranked:
        table.add_column("re-ranked (%)", justify="right")
    for name in ("mAP", *(f"rank{k}" for k in _RANKS)):
        if name not in metrics:
            continue
        row = [name, f"{100 * metrics[name]:.1f}"]
        if reranked:
            value = metrics.get(f"rerank_{name}")
            row.append("-" if value is None else f"{100 * value:.1f}")
        table.add_row(*row)
    return table
