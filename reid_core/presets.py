"""Named variants of the reference's results table: each one a set of TrainConfig values.

``baseline`` is the temporal-attention model without the bag of tricks (Gao & Nevatia's TA, the
reference's "Baseline" row); ``bot`` adds the tricks (last stride 1, BNNeck, label smoothing,
warm-up, random erasing, center loss, cosine triplet); ``bot_osm`` adds OSM + CAA with the
classifier weights as class prototypes; ``bot_osm_cl`` uses the center-loss centers ("CL
centers") instead. A preset sets model, loss and augmentation fields only; the schedule, the
epochs and the searched OSM parameters (sigma, alpha, l) stay the caller's. Values given
after a preset (command-line options, spec fields) override it.

Torch-free, like :mod:`reid_core.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reid_core.config import TrainConfig
from reid_core.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """One row of the reference's table as TrainConfig values.

    Attributes:
        name: The preset's name (``--preset NAME``, ``preset: NAME`` in a spec).
        row: The table row it reproduces, with the published MARS numbers when there are any.
        values: Dotted TrainConfig path -> value.
    """

    name: str
    row: str
    values: Mapping[str, Any]


_TRICKS_ON: dict[str, Any] = {
    "model.arch": "ta_bt",
    "model.last_stride": 1,
    "loss.label_smoothing": 0.1,
    "loss.triplet_weight": 1.0,
    "loss.triplet_distance": "cosine",
    "loss.center_weight": 5e-4,
    "optim.warmup_epochs": 10,
    "data.random_erasing": 0.5,
}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "baseline",
            "TA baseline (Gao & Nevatia's temporal attention): MARS 76.7 mAP, 83.3 rank-1",
            {
                "model.arch": "ta",
                "model.last_stride": 2,
                "loss.label_smoothing": 0.0,
                "loss.triplet_weight": 1.0,
                "loss.triplet_distance": "euclidean",
                "loss.triplet_margin": 0.3,
                "loss.center_weight": 0.0,
                "loss.beta": 0.0,
                "optim.warmup_epochs": 0,
                "data.random_erasing": 0.0,
            },
        ),
        Preset(
            "bot",
            "+ bag of tricks (CE-LS + triplet + center): MARS 81.3 mAP, 87.1 rank-1",
            {**_TRICKS_ON, "loss.beta": 0.0},
        ),
        Preset(
            "bot_osm",
            "+ OSM loss (classifier prototypes): no published number",
            {**_TRICKS_ON, "loss.beta": 1.0, "loss.prototypes": "classifier"},
        ),
        Preset(
            "bot_osm_cl",
            "+ OSM + CL centers (the paper's model): MARS 82.9 mAP, 88.6 rank-1",
            {**_TRICKS_ON, "loss.beta": 1.0, "loss.prototypes": "centers"},
        ),
    )
}
"""The presets by name. ``beta = 1`` in the OSM presets is the reference's plain-training
script (``beta_ratio = 1.0``): OSM + CAA replaces the triplet term."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ConfigError: No such preset (the message lists them).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}") from None


def apply_preset(cfg: TrainConfig, name: str) -> TrainConfig:
    """``cfg`` with the values of preset ``name``.

    Example:
        >>> apply_preset(TrainConfig(), "bot_osm_cl").loss.prototypes
        'centers'
    """
    raw = cfg.to_dict()
    for path, value in get_preset(name).values.items():
        section, leaf = path.rsplit(".", 1)
        raw[section][leaf] = value
    return TrainConfig.from_dict(raw)


__all__ = ["PRESETS", "Preset", "apply_preset", "get_preset"]
