"""The named warm-start configurations (``warm_start.preset``), as TrainConfig path -> value.

``paper``: the searched configuration the reference publishes and applies to every row of its
table: configuration 59 (tools/val.conf, hard-coded in bagoftricks.py) for MARS and every
dataset but PRID, the PRID configuration bagoftricks.py hard-codes for PRID-2011
(:func:`reid_core.presets.searched_configuration`): sigma, alpha, l, margin, beta, gamma and
weight decay, the seven parameters of the reference's search.

``bot_defaults``: the bag-of-tricks recipe of reid-hpo's library defaults, the
:class:`~reid_core.config.TrainConfig` defaults (triplet margin 0.3, beta 0, gamma 0.1, ...),
read from that class, never copied here, so it sets every searchable parameter.

Torch-free and Optuna-free, like the rest of :mod:`hpo.spec`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from hpo.spec._paths import resolve_param_path
from reid_core.config import TrainConfig
from reid_core.presets import searched_configuration

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

    walk("", TrainConfig().to_dict())
    return flat


def preset_values(name: str, dataset: str = "mars") -> dict[str, Any]:
    """The values of warm-start preset ``name`` for ``dataset``, by dotted TrainConfig path.

    Example:
        >>> preset_values("bot_defaults")["loss.triplet_margin"]
        0.3
        >>> preset_values("paper", "prid")["loss.beta"]
        0.7103921571238655
    """
    if name == "paper":
        return searched_configuration(dataset)
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
