"""Plain dataclasses describing one training run. ``hpo`` builds these; reid_core consumes them.

Defaults are the faithful full-size recipe of the reference (MARS, ResNet50TA_BT, 224x112,
T=4, P x K = 8 x 4, Adam 3.5e-4, warm-up 10 epochs, decay at 40 and 70). It imports
no torch and no reid_core module but ``reid_core.errors``, so every package imports it downward.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any
from typing import Literal

from reid_core.errors import ConfigError


@dataclass(frozen=True)
class ValidationConfig:
    """How a validation split is carved out of the training ids (never from the test set).

    ``sampling="random"`` draws ``fraction`` of the train ids with ``seed``; ``"guided"`` takes
    a fixed list of hard ids: ``guided_ids``, or the named ``preset`` (``"paper"``: the
    reference's 32 MARS ids); ``"colour_hardness"`` takes the ``fraction`` of ids with the
    lowest per-id AP under a model-free colour-histogram embedding (see
    :func:`reid_core.data.carve_validation`). ``distractor_fraction`` of the remaining training
    tracklets are added to the validation gallery as distractors.

    ``protocol`` builds the validation query / gallery of those ids: ``"reference"`` (the
    reference code's): for each id, the tracklets of every camera but its last-seen one are
    merged into one query per camera, and the last camera's tracklets are the gallery;
    ``"one_per_camera"``: one random tracklet per camera is a query, the others the gallery.
    """

    sampling: Literal["random", "guided", "colour_hardness"] = "random"
    protocol: Literal["reference", "one_per_camera"] = "reference"
    fraction: float = 0.1
    distractor_fraction: float = 0.25
    seed: int = 0
    guided_ids: tuple[int, ...] | None = None
    preset: Literal["paper"] | None = None


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mars"
    root: str = "data/mars"
    split_id: int = 0
    mars_gallery: Literal["exclude_query", "official"] = "exclude_query"
    height: int = 224
    width: int = 112
    seq_len: int = 4
    batch_size: int = 32
    num_instances: int = 4
    #: At most this many test clips per tracklet (41: the reference); None: every clip (the
    #: TA baseline's code).
    test_max_clips: int | None = 41
    #: Test clips per forward pass on a CPU; a CUDA device sizes it from its free memory
    #: (:func:`reid_core.engine.evaluation_chunk`).
    test_batch_size: int = 32
    num_workers: int = 4
    random_erasing: float = 0.5
    #: Probability of a second, labelled random erasing per frame, drawn after the plain one:
    #: the reference's Attn-CL loader (``VideoDataset_inderase``), whose 0/1 per-frame labels
    #: feed the attention loss (``loss.attention_weight``); 0 draws none.
    labelled_erasing: float = 0.0
    #: Random erasing's box and fill: "reference" (area 0.02-0.4 of the frame, aspect ratio
    #: uniform in [0.3, 1/0.3], 100 attempts, the values 0.485/0.456/0.406 written into the
    #: normalised frame) or "torchvision" (``v2.RandomErasing``'s defaults: area 0.02-0.33,
    #: log-uniform ratio in [0.3, 3.3], 10 attempts, 0 in the normalised frame).
    erasing_style: Literal["reference", "torchvision"] = "reference"
    pad: int = 10
    cache_frames: bool = False
    validation: ValidationConfig | None = field(default_factory=ValidationConfig)
    #: "per_id": each training id once per epoch with K tracklets (the reference's sampler:
    #: floor(ids * K / batch) batches); "per_tracklet": every tracklet once per epoch.
    epoch_sampling: Literal["per_id", "per_tracklet"] = "per_id"
    #: "reference": pad + the reference's random 2-D translation (x1.125 resize + crop half the
    #: time, else a resize); "pad_crop": pad + random crop back to size.
    translation: Literal["reference", "pad_crop"] = "reference"
    #: Random flip / translation / erasing drawn per "frame" (the reference) or once per "clip".
    augment_scope: Literal["frame", "clip"] = "frame"
    #: Test clips: the "first" test_max_clips consecutive clips (the reference) or that many
    #: "spaced" evenly over the whole tracklet.
    test_clips: Literal["first", "spaced"] = "first"


@dataclass(frozen=True)
class ModelConfig:
    arch: Literal["tp", "ta", "ta_bt"] = "ta_bt"
    backbone: str = "resnet50"
    last_stride: int = 1
    attention: Literal["full_map", "pooled"] = "full_map"
    pretrained: bool = True


@dataclass(frozen=True)
class LossConfig:
    """Total loss ``CE_ls + triplet_weight*(1-beta)*triplet + center_weight*center +
    beta*OSM_CAA + attention_weight*attention``; ``triplet_weight`` 0 switches the triplet
    term off (``--no-triplet``)."""

    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3
    triplet_distance: Literal["euclidean", "cosine"] = "cosine"
    center_weight: float = 5e-4
    center_lr: float = 0.5
    beta: float = 0.0
    osm_alpha: float = 1.2
    osm_l: float = 0.5
    osm_sigma: float = 0.8
    prototypes: Literal["classifier", "centers"] = "centers"
    #: Weight of the attention loss (the paper's Attn-CL model): the raw temporal-attention
    #: scores of the frames the labelled erasing hit, summed per clip, averaged over the
    #: batch (the reference adds it with weight 1); 0 switches it off.
    attention_weight: float = 0.0


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    warmup_factor: float = 0.01
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1


AmpMode = Literal["auto", "fp16", "bf16", "off"]
AMP_MODES: tuple[str, ...] = ("auto", "fp16", "bf16", "off")


def normalize_amp(value: object) -> AmpMode:
    """An ``amp`` setting as one of :data:`AMP_MODES`.

    ``True``/``False`` (the boolean setting of older configs and checkpoints, and what YAML
    makes of ``on``/``off``) mean ``"auto"``/``"off"``.

    Raises:
        ConfigError: Any other value.

    Example:
        >>> normalize_amp(False), normalize_amp("bf16")
        ('off', 'bf16')
    """
    if isinstance(value, bool):
        return "auto" if value else "off"
    if value not in AMP_MODES:
        raise ConfigError(f"amp={value!r} must be one of {', '.join(AMP_MODES)}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    ``amp`` is the precision policy (:func:`reid_core.engine.resolve_precision`): ``"off"``
    trains in float32 (the reference), ``"bf16"``/``"fp16"`` under autocast (fp16 with a
    gradient scaler), ``"auto"`` picks bf16 on GPUs that have it, fp16 on other GPUs and
    float32 on the CPU. ``channels_last`` and ``compile`` (``model.compile()`` in place) are
    speed options with float-rounding-level effects; ``deterministic`` asks for
    deterministic kernels (bit-identical reruns on one GPU, slower).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 121
    eval_every: int = 10
    seed: int = 0
    amp: AmpMode = "off"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    output_dir: str = "runs/train"
    deterministic: bool = False
    #: A checkpoint whose backbone and temporal attention start this run (cross-dataset
    #: fine-tuning); the neck, classifier and centers start afresh for this run's ids.
    init_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "amp", normalize_amp(self.amp))
        d = self.data
        if d.batch_size % d.num_instances != 0:
            raise ConfigError(
                f"batch_size={d.batch_size} must be a multiple of num_instances={d.num_instances}"
            )
        if d.seq_len < 1:
            raise ConfigError(f"seq_len={d.seq_len} must be >= 1")
        if self.epochs < 1 or self.eval_every < 1:
            raise ConfigError(f"epochs={self.epochs} and eval_every={self.eval_every} must be >= 1")
        if self.loss.attention_weight > 0 and self.model.arch == "tp":
            raise ConfigError("the attention loss needs a temporal attention: arch ta or ta_bt")
        if self.loss.attention_weight > 0 and d.labelled_erasing <= 0:
            raise ConfigError(
                "the attention loss learns from the labelled erasing's frames: give "
                "data.labelled_erasing > 0 (the reference: 0.5)"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly nested dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        return _build(cls, raw)


def _build(cls: type, raw: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        nested = _NESTED_TYPES.get(name)
        if nested is not None and isinstance(value, dict):
            kwargs[name] = _build(nested, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_NESTED_TYPES: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "validation": ValidationConfig,
}


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; anything else unchanged.

    Raises:
        ConfigError: ``device`` names a CUDA device this machine does not have.
    """
    name, _, index = device.partition(":")
    if device != "auto" and not (name == "cuda" and (index == "" or index.isdigit())):
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() or int(index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {device}: no such CUDA device on this machine "
            f"({torch.cuda.device_count()} visible); use --device cpu or auto"
        )
    return device


def config_path(output_dir: str | Path) -> Path:
    """Where a run writes its configuration: ``output_dir / "config.json"``."""
    return Path(output_dir) / "config.json"
