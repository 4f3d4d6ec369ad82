"""Named rows of the reference's results table: each one the reference's full recipe for it.

``baseline`` is Gao & Nevatia's temporal-attention model trained by their own code (the
reference README's "Baseline" row copies its 76.7 mAP / 83.3 rank-1); ``bot`` adds the bag of
tricks (last stride 1, BNNeck, label smoothing, warm-up, random erasing, center loss, cosine
triplet); ``bot_osm`` replaces the triplet by OSM + CAA with the classifier weights as class
prototypes; ``bot_osm_cl`` uses the center-loss centers ("CL centers") instead;
``bbot_attn_cl`` (the paper's proposed model) adds the attention loss that keeps the temporal
attention off randomly erased frames; ``bot_osm_cl_prid`` is ``bot_osm_cl`` on PRID-2011 with
the reference's PRID configuration. Every preset but ``baseline`` carries the searched
configuration the reference applies to its whole table (:data:`CONFIG_59` on MARS,
:data:`PRID_CONFIG` on PRID) and its plain-training schedule (800 epochs, 400 for
``bbot_attn_cl``; tested every 10, seed 1, float32). The values are checked field by field against
a table written from the reference code (``tests/data/reference_recipes.json``).

A preset does not choose the data: the published rows train on every training id
(``train --no-validation``). Values given after a preset (command-line options, spec fields)
override it.

Torch-free, like :mod:`reid_core.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from reid_core.config import TrainConfig
from reid_core.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """One row of the reference's table as TrainConfig values.

    Attributes:
        name: The preset's name (``--preset NAME``, ``preset: NAME`` in a spec).
        row: The table row it reproduces.
        values: Dotted TrainConfig path -> value (``seed`` and ``epochs`` are top-level).
        published: The row's published numbers in % (``mAP``, ``rank1``, ``rank5``,
            ``rank20`` and their ``rerank_`` twins where the reference gives them).
    """

    name: str
    row: str
    values: Mapping[str, Any]
    published: Mapping[str, float] = field(default_factory=dict)


CONFIG_59: dict[str, float] = {
    "loss.osm_sigma": 0.9047814732165316,
    "loss.osm_alpha": 2.8436551583293728,
    "loss.osm_l": 0.5873389293193368,
    "loss.triplet_margin": 4.4132437486402204e-05,
    "loss.beta": 1.0,
    "optim.gamma": 0.3282654557691594,
    "optim.weight_decay": 0.0005,
}
"""The reference's searched MARS configuration (tools/val.conf entry 59, hard-coded in
bagoftricks.py for every row), by TrainConfig path."""

PRID_CONFIG: dict[str, float] = {
    "loss.osm_sigma": 0.8769823511927456,
    "loss.osm_alpha": 1.5747007053351507,
    "loss.osm_l": 0.5241677630566622,
    "loss.triplet_margin": 0.040520629258433416,
    "loss.beta": 0.7103921571238655,
    "optim.gamma": 0.368667605025003,
    "optim.weight_decay": 0.014055481861393148,
}
"""The PRID-2011 configuration bagoftricks.py hard-codes, by TrainConfig path."""

_GAO_NEVATIA_CLIPS: dict[str, Any] = {
    "model.backbone": "resnet50",
    "model.pretrained": True,
    "model.attention": "full_map",
    "data.height": 224,
    "data.width": 112,
    "data.seq_len": 4,
    "data.batch_size": 32,
    "data.num_instances": 4,
    "data.epoch_sampling": "per_id",
    "data.translation": "reference",
    "data.augment_scope": "frame",
    "data.test_clips": "first",
    "loss.label_smoothing": 0.1,
    "loss.triplet_weight": 1.0,
    "seed": 1,
    "amp": "off",
}
"""What the reference's scripts keep of Gao & Nevatia's code they grew from: an ImageNet
ResNet-50, 224x112 clips of 4 frames, 8 ids x 4 tracklets per batch, the per-frame random
translation, dense test clips from the first frame, CE with label smoothing 0.1 plus a triplet
term, seed 1, float32."""

_REFERENCE_TRAINING: dict[str, Any] = {
    **_GAO_NEVATIA_CLIPS,
    "model.arch": "ta_bt",
    "model.last_stride": 1,
    "data.pad": 10,
    "data.random_erasing": 0.5,
    "data.erasing_style": "reference",
    "data.test_max_clips": 41,
    "loss.triplet_distance": "cosine",
    "loss.center_weight": 5e-4,
    "loss.center_lr": 0.5,
    "optim.lr": 3.5e-4,
    "optim.warmup_epochs": 10,
    "optim.warmup_factor": 0.01,
    "optim.milestones": (40, 70),
    "epochs": 800,
    "eval_every": 10,
}
"""bagoftricks.py's plain training with ``--validation-training`` (as its README's commands
pass): 800 epochs, the test split evaluated every 10."""

_MARS = {**_REFERENCE_TRAINING, **CONFIG_59}

_ATTN_CL: dict[str, Any] = {
    "data.labelled_erasing": 0.5,
    "loss.attention_weight": 1.0,
    "epochs": 400,
}
"""config_trainer.py --attn-loss --cl-centers (README's Attn-CL command): the loader erases
every frame a second time with probability 0.5 and labels it (VideoDataset_inderase), the
model returns its raw attention scores (ResNet50TA_BT2), the attention loss joins with
weight 1; 400 epochs (no --validation-training)."""

_BASELINE: dict[str, Any] = {
    **_GAO_NEVATIA_CLIPS,
    "model.arch": "ta",
    "model.last_stride": 2,
    "data.pad": 0,
    "data.random_erasing": 0.0,
    "data.test_max_clips": None,
    "loss.triplet_distance": "euclidean",
    "loss.triplet_margin": 0.3,
    "loss.center_weight": 0.0,
    "loss.beta": 0.0,
    "optim.lr": 3e-4,
    "optim.weight_decay": 5e-4,
    "optim.warmup_epochs": 0,
    "optim.milestones": (200, 400, 600),
    "optim.gamma": 0.1,
    "epochs": 800,
    "eval_every": 50,
}
"""Gao & Nevatia's main_video_person_reid.py --arch=resnet50ta: Adam 3e-4, StepLR x0.1
every 200 of 800 epochs, label smoothing 0.1, euclidean triplet 0.3, no pad, no erasing,
every test clip, tested every 50 epochs."""


def _published(mean_ap: float, *ranks: float, rerank: tuple[float, ...] = ()) -> dict[str, float]:
    """A row's numbers: mAP, rank-1/5/20, then the same re-ranked (MARS rows only)."""
    names = ("mAP", "rank1", "rank5", "rank20")
    plain = dict(zip(names, (mean_ap, *ranks), strict=True))
    return plain | {f"rerank_{name}": value for name, value in zip(names, rerank, strict=True)}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "baseline",
            "Baseline (TA, Gao & Nevatia)",
            _BASELINE,
            _published(76.7, 83.3, 93.8, 97.4, rerank=(84.5, 85.0, 94.7, 97.7)),
        ),
        Preset(
            "bot",
            "Baseline + BOT",
            {**_MARS, "loss.beta": 0.0},
            _published(81.3, 87.1, 95.9, 98.2, rerank=(88.4, 87.6, 96.0, 98.4)),
        ),
        Preset(
            "bot_osm",
            "Baseline + BOT + OSM Loss",
            {**_MARS, "loss.prototypes": "classifier"},
            _published(82.4, 87.9, 96.0, 98.0, rerank=(88.1, 87.6, 95.7, 98.5)),
        ),
        Preset(
            "bot_osm_cl",
            "(Proposed) Baseline + BOT + OSM Loss + CL Centers",
            {**_MARS, "loss.prototypes": "centers"},
            _published(81.2, 86.3, 95.6, 98.2, rerank=(88.5, 88.0, 96.1, 98.5)),
        ),
        Preset(
            "bbot_attn_cl",
            "(Proposed) B-BOT + Attn-CL loss",
            {**_MARS, **_ATTN_CL, "loss.prototypes": "centers"},
            _published(82.9, 88.6, 96.2, 98.0, rerank=(87.8, 88.0, 95.4, 98.3)),
        ),
        Preset(
            "bot_osm_cl_prid",
            "PRID-2011: Baseline + BOT + OSM Loss + CL Centers",
            {**_REFERENCE_TRAINING, **PRID_CONFIG, "loss.prototypes": "centers"},
            {"rank1": 93.1, "rank5": 98.9, "rank20": 100.0},
        ),
    )
}
"""The presets by name. ``bot`` runs bagoftricks.py's no-OSM branch (``ide + triplet +
center``: beta 0 although configuration 59 says 1); ``beta = 1`` in the MARS OSM presets
means OSM + CAA replaces the triplet term."""


def searched_configuration(dataset: str) -> dict[str, float]:
    """The reference's searched configuration for ``dataset``: :data:`PRID_CONFIG` on
    ``"prid"``, :data:`CONFIG_59` on every other dataset (bagoftricks.py knows only these two).

    Example:
        >>> searched_configuration("mars")["loss.osm_sigma"]
        0.9047814732165316
    """
    return dict(PRID_CONFIG if dataset == "prid" else CONFIG_59)


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
        section, _, leaf = path.rpartition(".")
        (raw[section] if section else raw)[leaf] = value
    return TrainConfig.from_dict(raw)


__all__ = [
    "CONFIG_59",
    "PRESETS",
    "PRID_CONFIG",
    "Preset",
    "apply_preset",
    "get_preset",
    "searched_configuration",
]
