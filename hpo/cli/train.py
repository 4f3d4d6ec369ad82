"""``reid-hpo train`` and ``reid-hpo evaluate``: one training run, one test evaluation.

The trainer (torch) is imported inside the commands, not at CLI start.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hpo.cli._app import app
from reid_core.config import DataConfig
from reid_core.config import LossConfig
from reid_core.config import ModelConfig
from reid_core.config import OptimConfig
from reid_core.config import TrainConfig
from reid_core.errors import ConfigError
from reid_core.presets import PRESETS
from reid_core.presets import apply_preset

logger = logging.getLogger(__name__)

_RANKS = (1, 5, 10, 20)

_TRAIN_EPILOG = """\
Example (a tiny CPU run on a synthetic dataset):

\b
  reid-hpo data synth data/mars --layout mars
  reid-hpo train --dataset mars --root data/mars --backbone resnet18 \\
      --no-pretrained --height 64 --width 32 --epochs 5 --eval-every 1 \\
      --output runs/train
"""


def build_train_config(
    base: TrainConfig,
    *,
    data: dict[str, Any],
    model: dict[str, Any],
    optim: dict[str, Any],
    top: dict[str, Any],
    loss: dict[str, Any] | None = None,
    validation: bool = True,
) -> TrainConfig:
    """Apply command-line overrides (``None`` = not given) to a base configuration.

    Args:
        base: Defaults, or the configuration read from ``--config``.
        data: Overrides of :class:`DataConfig` fields.
        model: Overrides of :class:`ModelConfig` fields.
        loss: Overrides of :class:`LossConfig` fields.
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
        loss=replace(base.loss, **given(loss or {})),
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


class Dataset(StrEnum):
    """``--dataset``."""

    mars = "mars"
    ilidsvid = "ilidsvid"
    prid = "prid"


class Arch(StrEnum):
    """``--arch``."""

    tp = "tp"
    ta = "ta"
    ta_bt = "ta_bt"


class Backbone(StrEnum):
    """``--backbone``."""

    resnet10 = "resnet10"
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"
    resnet101 = "resnet101"


class Attention(StrEnum):
    """``--attention``."""

    full_map = "full_map"
    pooled = "pooled"


PresetName = StrEnum("PresetName", {name: name for name in PRESETS})  # type: ignore[misc]
"""``--preset``: :data:`reid_core.presets.PRESETS`."""


class Prototypes(StrEnum):
    """``--prototypes``."""

    classifier = "classifier"
    centers = "centers"


class ErasingStyle(StrEnum):
    """``--erasing-style``."""

    reference = "reference"
    torchvision = "torchvision"


class Distance(StrEnum):
    """``--triplet-distance``."""

    euclidean = "euclidean"
    cosine = "cosine"


class Amp(StrEnum):
    """``--amp``: the precision policy."""

    auto = "auto"
    fp16 = "fp16"
    bf16 = "bf16"
    off = "off"


_D, _M, _L, _O, _T = DataConfig(), ModelConfig(), LossConfig(), OptimConfig(), TrainConfig()


def _opt(*names: str, default: Any, help: str, **kwargs: Any) -> Any:
    """An option whose ``None`` means "not given" (the config or preset value stays), with
    the recipe's default shown in ``--help``."""
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
    return typer.Option(None, *names, help=help, show_default=shown, **kwargs)


@app.command("train", epilog=_TRAIN_EPILOG)
def train_command(
    dataset: Dataset | None = typer.Option(
        None, "--dataset", help="Dataset layout (required unless --config)."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Dataset root directory (required unless --config)."
    ),
    split_id: int | None = _opt(
        "--split-id", default=_D.split_id, min=0, help="iLIDS-VID / PRID train/test split (0-9)."
    ),
    preset: PresetName | None = typer.Option(
        None,
        "--preset",
        help="A row of the reference's table (see README); the options below override it.",
    ),
    epochs: int | None = _opt("--epochs", default=_T.epochs, min=1, help="Training epochs."),
    eval_every: int | None = _opt(
        "--eval-every", default=_T.eval_every, min=1, help="Evaluate and checkpoint every N epochs."
    ),
    arch: Arch | None = _opt(
        "--arch", default=_M.arch, help="TP (average pooling), TA (attention), TA_BT (+ BNNeck)."
    ),
    backbone: Backbone | None = _opt("--backbone", default=_M.backbone, help="ResNet depth."),
    attention: Attention | None = _opt(
        "--attention", default=_M.attention, help="full_map (faithful, tied to the frame size)."
    ),
    last_stride: int | None = _opt(
        "--last-stride", default=_M.last_stride, min=1, max=2, help="Stride of ResNet layer4."
    ),
    height: int | None = _opt("--height", default=_D.height, min=1, help="Frame height."),
    width: int | None = _opt("--width", default=_D.width, min=1, help="Frame width."),
    seq_len: int | None = _opt("--seq-len", default=_D.seq_len, min=1, help="Frames per clip."),
    batch_size: int | None = _opt(
        "--batch-size", default=_D.batch_size, min=1, help="Clips per batch (P x K)."
    ),
    num_instances: int | None = _opt(
        "--num-instances", default=_D.num_instances, min=1, help="K: clips per id in a batch."
    ),
    pad: int | None = _opt(
        "--pad", default=_D.pad, min=0, help="Padding before the random translation, in pixels."
    ),
    random_erasing: float | None = _opt(
        "--random-erasing", default=_D.random_erasing, min=0.0, max=1.0, help="Probability."
    ),
    labelled_erasing: float | None = _opt(
        "--labelled-erasing",
        default=_D.labelled_erasing,
        min=0.0,
        max=1.0,
        help="Probability of a second, labelled erasing per frame (Attn-CL).",
    ),
    erasing_style: ErasingStyle | None = _opt(
        "--erasing-style",
        default=_D.erasing_style,
        help="Erasing box and fill: the reference's (area <= 0.4) or torchvision's.",
    ),
    lr: float | None = _opt("--lr", default=_O.lr, min=0.0, help="Adam learning rate."),
    weight_decay: float | None = _opt(
        "--weight-decay", default=_O.weight_decay, min=0.0, help="Adam weight decay."
    ),
    warmup_epochs: int | None = _opt(
        "--warmup-epochs", default=_O.warmup_epochs, min=0, help="Linear warm-up from 0.01x."
    ),
    milestones: str | None = _opt(
        "--milestones", default=_O.milestones, help="Epochs where the LR is multiplied by gamma."
    ),
    gamma: float | None = _opt("--gamma", default=_O.gamma, min=0.0, help="LR decay factor."),
    label_smoothing: float | None = _opt(
        "--label-smoothing", default=_L.label_smoothing, min=0.0, max=0.99, help="CE epsilon."
    ),
    triplet: bool | None = typer.Option(
        None,
        "--triplet/--no-triplet",
        help="Batch-hard triplet term, weight (1 - beta) (default: on)",
        show_default=False,
    ),
    margin: float | None = _opt(
        "--margin", default=_L.triplet_margin, min=0.0, help="Triplet margin."
    ),
    triplet_distance: Distance | None = _opt(
        "--triplet-distance", default=_L.triplet_distance, help="Triplet distance."
    ),
    center: bool | None = typer.Option(
        None,
        "--center/--no-center",
        help=f"Center loss, weight {_L.center_weight:g} (default: on)",
        show_default=False,
    ),
    osm: bool | None = typer.Option(
        None,
        "--osm/--no-osm",
        help="OSM + CAA loss; --osm alone sets beta 1 (the reference's plain training). "
        "(default: off)",
        show_default=False,
    ),
    beta: float | None = _opt(
        "--beta", default=_L.beta, min=0.0, max=1.0, help="OSM weight; triplet gets 1 - beta."
    ),
    prototypes: Prototypes | None = _opt(
        "--prototypes", default=_L.prototypes, help="OSM class prototypes (centers: CL centers)."
    ),
    sigma: float | None = _opt("--sigma", default=_L.osm_sigma, min=0.0, help="OSM sigma."),
    alpha: float | None = _opt("--alpha", default=_L.osm_alpha, min=0.0, help="OSM alpha."),
    osm_l: float | None = _opt(
        "--osm-l", default=_L.osm_l, min=0.0, max=1.0, help="OSM l (negative-pair share)."
    ),
    attention_weight: float | None = _opt(
        "--attention-weight",
        default=_L.attention_weight,
        min=0.0,
        help="Attention loss (Attn-CL): raw attention scores of the labelled-erased frames.",
    ),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="Start from this checkpoint's backbone and temporal attention (e.g. a MARS model "
        "for PRID); neck, classifier and centers start afresh.",
    ),
    seed: int | None = _opt("--seed", default=_T.seed, help="Random seed."),
    output: Path | None = _opt("--output", default=_T.output_dir, help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/last.pt."),
    pretrained: bool | None = typer.Option(
        None,
        "--pretrained/--no-pretrained",
        help="ImageNet weights from the torch hub cache (default: pretrained)",
        show_default=False,
    ),
    amp: Amp | None = _opt(
        "--amp", default=_T.amp, help="Precision policy (auto: bf16/fp16 on GPU)."
    ),
    no_validation: bool = typer.Option(
        False, "--no-validation", help="Train on every train id; no evaluation during training."
    ),
    eval_rerank: bool = typer.Option(
        False, "--eval-rerank", help="Also report re-ranked validation metrics."
    ),
    device: str | None = _opt("--device", default=_T.device, help="auto, cpu, cuda, cuda:1, ..."),
    num_workers: int | None = _opt(
        "--num-workers", default=_D.num_workers, min=0, help="Data-loading processes."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TrainConfig JSON (e.g. a run's config.json); options override it."
    ),
) -> None:
    """Train one model (validation metrics only; the test set is left to `evaluate`).

    Order: the defaults (the reference's full-size MARS recipe) or --config, then --preset,
    then every option given.
    """
    base = _read_config(config) if config is not None else TrainConfig()
    if config is None and (dataset is None or root is None):
        raise ConfigError("--dataset and --root are required (or give --config)")
    if preset is not None:
        base = apply_preset(base, preset.value)
    cfg = build_train_config(
        base,
        data={
            "dataset": _value(dataset),
            "root": None if root is None else str(root),
            "split_id": split_id,
            "height": height,
            "width": width,
            "seq_len": seq_len,
            "batch_size": batch_size,
            "num_instances": num_instances,
            "num_workers": num_workers,
            "pad": pad,
            "random_erasing": random_erasing,
            "labelled_erasing": labelled_erasing,
            "erasing_style": _value(erasing_style),
        },
        model={
            "arch": _value(arch),
            "backbone": _value(backbone),
            "attention": _value(attention),
            "last_stride": last_stride,
            "pretrained": pretrained,
        },
        loss=loss_overrides(
            base.loss,
            triplet=triplet,
            center=center,
            osm=osm,
            beta=beta,
            values={
                "label_smoothing": label_smoothing,
                "triplet_margin": margin,
                "triplet_distance": _value(triplet_distance),
                "prototypes": _value(prototypes),
                "osm_sigma": sigma,
                "osm_alpha": alpha,
                "osm_l": osm_l,
                "attention_weight": attention_weight,
            },
        ),
        optim={
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup_epochs": warmup_epochs,
            "milestones": _parse_milestones(milestones),
            "gamma": gamma,
        },
        top={
            "epochs": epochs,
            "eval_every": eval_every,
            "seed": seed,
            "output_dir": None if output is None else str(output),
            "amp": _value(amp),
            "device": device,
            "init_from": None if init_from is None else str(init_from),
        },
        validation=not no_validation,
    )
    from reid_core.engine import Trainer
    from reid_core.engine import gpus_hidden
    from reid_core.engine import resolve_checkpoint

    with gpus_hidden(cfg.device):
        resume_from = resolve_checkpoint(Path(cfg.output_dir)) if resume else None
        trainer = Trainer(cfg, evaluate_rerank=eval_rerank)
        result = trainer.fit(resume_from=resume_from)
    console = Console()
    if result.final_metrics:
        console.print(_metrics_table("Validation (final epoch)", result.final_metrics))
    if trainer.init_source:
        console.print(f"initialised from: {trainer.init_source['checkpoint']}")
    console.print(f"checkpoint: {result.checkpoint}")
    console.print(f"results:    {Path(cfg.output_dir) / 'results.json'}")


def loss_overrides(
    base: LossConfig,
    *,
    triplet: bool | None,
    center: bool | None,
    osm: bool | None,
    beta: float | None,
    values: dict[str, Any],
) -> dict[str, Any]:
    """The LossConfig overrides of the loss switches and values (``None`` = not given).

    ``--osm`` without ``--beta`` sets beta 1 (the reference's plain training: OSM replaces the
    triplet); ``--no-osm`` sets beta 0; ``--no-triplet`` and ``--no-center`` set their weight 0.

    Raises:
        ConfigError: ``--osm`` with ``--beta 0``, or ``--no-osm`` with ``--beta`` > 0.
    """
    if osm is True and beta == 0.0:
        raise ConfigError("--osm with --beta 0 leaves the OSM loss out; give --beta > 0")
    if osm is False and beta is not None and beta > 0.0:
        raise ConfigError(f"--no-osm with --beta {beta}: beta is the OSM weight; drop one")
    if beta is None and osm is not None:
        beta = (1.0 if base.beta == 0.0 else base.beta) if osm else 0.0
    overrides = {**values, "beta": beta}
    if triplet is not None:
        overrides["triplet_weight"] = 1.0 if triplet else 0.0
    if center is not None:
        overrides["center_weight"] = LossConfig().center_weight if center else 0.0
    return overrides


def _value(choice: StrEnum | None) -> str | None:
    return None if choice is None else choice.value


@app.command("evaluate")
def evaluate_command(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (.pt), last.pt or a run directory."),
    root: Path | None = typer.Option(
        None, "--root", help="Dataset root, if it moved since training.", show_default=False
    ),
    rerank: bool = typer.Option(False, "--rerank", help="Also report k-reciprocal re-ranking."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    num_workers: int | None = typer.Option(
        None, "--num-workers", min=0, help="Data-loading processes (default: the run's)."
    ),
    amp: Amp | None = typer.Option(
        None, "--amp", help="Precision of the features (default: the run's policy)."
    ),
) -> None:
    """Evaluate a checkpoint once on the TEST split; writes <checkpoint>.test.json beside it.

    Example: reid-hpo evaluate runs/train/last.pt --rerank
    """
    from reid_core.engine import evaluate_checkpoint
    from reid_core.engine import gpus_hidden
    from reid_core.engine import resolve_checkpoint
    from reid_core.files import output_file_target
    from reid_core.files import write_output_file

    with gpus_hidden(device):
        path = resolve_checkpoint(checkpoint)
        out = path.with_name(path.stem + ".test.json")
        output_file_target(out, what="the test result")
        result, info = evaluate_checkpoint(
            path,
            root=root,
            rerank=rerank,
            device=device,
            num_workers=num_workers,
            amp=_value(amp),
        )
    document = json.dumps({**info, **result.to_dict()}, indent=2, sort_keys=True, default=str)
    write_output_file(out, document + "\n", what="the test result")
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
