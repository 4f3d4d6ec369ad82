"""The named warm-start configurations (``warm_start.preset``), as TrainConfig path -> value.

``paper``: the reference publishes no searched values (the seed README's tables and
REFERENCE.md give results and search ranges only), so this preset holds the numbers
REFERENCE.md states for the published MARS recipe and nothing else: "Training recipe (MARS)"
(Adam lr 3.5e-4, weight decay 5e-4, warm-up 10 epochs from 0.01x, clips of T = 4, K = 4
tracklets per id, batch 32) and "Losses" (label smoothing 0.1, center loss weight 5e-4 at
lr 0.5). Of the seed's seven searched parameters it sets weight_decay only; the sampler
draws the others.

``bot_defaults``: the bag-of-tricks recipe reid-hpo ships: the
:class:`~reid_core.config.TrainConfig` defaults with the ``bot`` preset of
:data:`reid_core.presets.PRESETS` applied (triplet margin 0.3, beta 0, gamma 0.1, ...), read
from those classes, never copied here, so it sets every searchable parameter.

Torch-free and Optuna-free, like the rest of :mod:`hpo.spec`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from hpo.spec._paths import resolve_param_path
from reid_core.config import TrainConfig
from reid_core.presets import apply_preset

_PAPER: dict[str, Any] = {
    "optim.lr": 3.5e-4,
    "optim.weight_decay": 5e-4,
    "optim.warmup_epochs": 10,
    "optim.warmup_factor": 0.01,
    "data.seq_len": 4,
    "data.num_instances": 4,
    "data.batch_size": 32,
    "loss.label_smoothing": 0.1,
    "loss.center_weight": 5e-4,
    "loss.center_lr": 0.5,
}

WARM_START_PRESETS: tuple[str, ...] = ("paper", "bot_defaults")
"""The names accepted in ``warm_start.preset``."""


def _bot_defaults() -> dict[str, Any]:
    """Every leaf of the bag-of-tricks TrainConfig, by dotted path."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, tree: dict[str, Any]) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[f"{prefix}{key}"] = value

    walk("", apply_preset(TrainConfig(), "bot").to_dict())
    return flat


def preset_values(name: str) -> dict[str, Any]:
    """The values of warm-start preset ``name`` by dotted TrainConfig path.

    Example:
        >>> preset_values("bot_defaults")["loss.triplet_margin"]
        0.3
    """
    if name == "paper":
        return dict(_PAPER)
    if name == "bot_defaults":
        return _bot_defaults()
    raise ValueError(f"unknown warm-start preset {name!r}; available: {WARM_START_PRESETS}")


def value_problem(param: Any, value: Any) -> str | None:
    """Why ``value`` is not a value of search-space entry ``param`` (None when it is).

    ``param`` is a :data:`~hpo.spec.ParamSpec` (read through its ``type``, ``low``, ``high``,
    ``step`` and ``choices``). Booleans are not numbers, and ``1`` is not the choice ``1.0``.

    Example:
        >>> from hpo.spec import FloatParam
        >>> value_problem(FloatParam(type="float", low=0.1, high=1.0), 1.5)
        '1.5 is outside the search range [0.1, 1.0]'
    """
    if param.type == "categorical":
        if json.dumps(value) not in {json.dumps(choice) for choice in param.choices}:
            return f"{value!r} is not one of the choices {param.choices}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number"
    if param.type == "int" and not isinstance(value, int):
        return f"{value!r} is not an integer"
    if not (math.isfinite(value) and param.low <= value <= param.high):
        return f"{value!r} is outside the search range [{param.low}, {param.high}]"
    if param.step is not None:
        k = (value - param.low) / param.step
        if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
            return (
                f"{value!r} is not on the grid low + k * step (low={param.low}, step={param.step})"
            )
    return None


def fitted_value(param: Any, value: Any) -> Any:
    """``value`` moved into a numeric entry's range and onto its grid (other values as given).

    Example:
        >>> from hpo.spec import IntParam
        >>> fitted_value(IntParam(type="int", low=2, high=8, step=2), 9.0)
        8
    """
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if param.type == "categorical" or not numeric or not math.isfinite(value):
        return value
    inside = min(max(value, param.low), param.high)
    if param.step is not None:
        inside = param.low + round((inside - param.low) / param.step) * param.step
        if inside > param.high:
            inside -= param.step
    return int(inside) if param.type == "int" else float(inside)


def fit_to_space(
    search_space: Mapping[str, Any], by_path: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    """The values of ``by_path`` (dotted TrainConfig path -> value) for the entries of
    ``search_space`` that set those paths, each fitted into its entry (:func:`fitted_value`).

    Args:
        search_space: The study's ``search_space`` (names already resolve).
        by_path: The values to fit; paths no entry sets are left out.
        where: What the values are, for messages (``"warm_start.preset paper"``).

    Returns:
        ``(params by search-space name, one note per value that was moved)``.

    Raises:
        ValueError: A value cannot be fitted (a categorical value that is not a choice).
    """
    params: dict[str, Any] = {}
    notes: list[str] = []
    for name, param in search_space.items():
        path = resolve_param_path(name)
        if path not in by_path:
            continue
        value = fitted_value(param, by_path[path])
        problem = value_problem(param, value)
        if problem is not None:
            raise ValueError(f"{where}: {name}: {problem}")
        if value != by_path[path]:
            notes.append(f"{where}: {name}={by_path[path]!r} moved to {value!r}")
        params[name] = value
    return params, notes


__all__ = ["WARM_START_PRESETS", "fit_to_space", "fitted_value", "preset_values", "value_problem"]
