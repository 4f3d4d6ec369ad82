"""Search-space names and the TrainConfig paths they set.

A search-space name is one of the seed's short names (:data:`PARAM_ALIASES`), a ``training``
key of the spec (:data:`TRAINING_PATHS`) or a dotted :class:`~reid_core.config.TrainConfig`
path such as ``loss.center_lr``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from hpo.errors import SpecError
from reid_core.config import TrainConfig

#: The seed's parameter names (and a few handy short names) -> TrainConfig path.
PARAM_ALIASES: dict[str, str] = {
    "sigma": "loss.osm_sigma",
    "alpha": "loss.osm_alpha",
    "l": "loss.osm_l",
    "margin": "loss.triplet_margin",
    "beta": "loss.beta",
    "gamma": "optim.gamma",
    "weight_decay": "optim.weight_decay",
    "lr": "optim.lr",
    "batch_size": "data.batch_size",
    "num_instances": "data.num_instances",
    "seq_len": "data.seq_len",
    "label_smoothing": "loss.label_smoothing",
    "center_weight": "loss.center_weight",
    "warmup_epochs": "optim.warmup_epochs",
}

#: Each ``training`` key of the spec -> its TrainConfig path.
TRAINING_PATHS: dict[str, str] = {
    "epochs": "epochs",
    "eval_every": "eval_every",
    "amp": "amp",
    "channels_last": "channels_last",
    "compile": "compile",
    "deterministic": "deterministic",
    "device": "device",
    **{
        name: f"data.{name}"
        for name in (
            "height",
            "width",
            "seq_len",
            "batch_size",
            "num_instances",
            "test_max_clips",
            "test_batch_size",
            "num_workers",
            "random_erasing",
            "labelled_erasing",
            "erasing_style",
            "pad",
            "cache_frames",
            "epoch_sampling",
            "translation",
            "augment_scope",
            "test_clips",
        )
    },
    **{
        name: f"optim.{name}"
        for name in ("lr", "weight_decay", "warmup_epochs", "warmup_factor", "milestones", "gamma")
    },
    **{
        name: f"loss.{name}"
        for name in (
            "label_smoothing",
            "triplet_weight",
            "triplet_margin",
            "triplet_distance",
            "center_weight",
            "center_lr",
            "beta",
            "osm_alpha",
            "osm_l",
            "osm_sigma",
            "prototypes",
            "attention_weight",
        )
    },
}

# TrainConfig paths a study fixes in other sections; searching them is refused.
_UNSEARCHABLE = ("seed", "output_dir", "device", "data.dataset", "data.root", "data.split_id")
_UNSEARCHABLE_PREFIXES = ("data.validation", "data.mars_gallery")


def field_owner(path: str) -> tuple[type, str]:
    """The dataclass owning the leaf of a dotted TrainConfig path, and the leaf name."""
    cls: type = TrainConfig
    *parents, leaf = path.split(".")
    for part in parents:
        hints = typing.get_type_hints(cls)
        nested = hints.get(part)
        if not (isinstance(nested, type) and dataclasses.is_dataclass(nested)):
            raise SpecError(f"{path!r} is not a TrainConfig path ({part!r} is not a section)")
        cls = nested
    if leaf not in {f.name for f in dataclasses.fields(cls)}:
        raise SpecError(f"{path!r} is not a TrainConfig path (no field {leaf!r} in {cls.__name__})")
    hint = typing.get_type_hints(cls)[leaf]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        raise SpecError(f"{path!r} is a section, not a single value")
    return cls, leaf


def resolve_param_path(name: str) -> str:
    """The dotted TrainConfig path a search-space name sets.

    Args:
        name: A short name (:data:`PARAM_ALIASES`), a ``training`` key, or a dotted path.

    Returns:
        The path, e.g. ``"loss.osm_sigma"`` for ``"sigma"``.

    Raises:
        SpecError: The name maps to nothing, or to a value the study fixes elsewhere.

    Example:
        >>> resolve_param_path("margin"), resolve_param_path("loss.center_lr")
        ('loss.triplet_margin', 'loss.center_lr')
    """
    path = PARAM_ALIASES.get(name) or TRAINING_PATHS.get(name) or name
    if path == name and "." not in name and name not in TRAINING_PATHS:
        known = sorted({*PARAM_ALIASES, *TRAINING_PATHS})
        raise SpecError(
            f"unknown parameter {name!r}; use one of {known} or a dotted TrainConfig path"
        )
    if path in _UNSEARCHABLE or path.startswith(_UNSEARCHABLE_PREFIXES):
        raise SpecError(
            f"{path!r} is fixed by the study (dataset / validation / seed sections) or, for "
            "device, by the worker that runs the trial"
        )
    field_owner(path)
    return path


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``path == "a.b.c"``, creating the sections."""
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def coerce_to_field(path: str, value: Any) -> Any:
    """``value`` as the field's type where lossless (``1`` -> ``1.0`` for a float field)."""
    owner, leaf = field_owner(path)
    hint = typing.get_type_hints(owner)[leaf]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


__all__ = [
    "PARAM_ALIASES",
    "TRAINING_PATHS",
    "coerce_to_field",
    "field_owner",
    "resolve_param_path",
    "set_path",
]
