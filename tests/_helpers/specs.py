"""Tiny valid study specs for tests (as dicts, YAML files or StudySpec objects)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SEVEN_PARAMS: dict[str, dict[str, Any]] = {
    "sigma": {"type": "float", "low": 0.1, "high": 1.0},
    "alpha": {"type": "float", "low": 0.5, "high": 3.0},
    "l": {"type": "float", "low": 0.1, "high": 1.0},
    "margin": {"type": "float", "low": 1.0e-6, "high": 1.0, "log": True},
    "beta": {"type": "float", "low": 1.0e-6, "high": 1.0},
    "gamma": {"type": "float", "low": 1.0e-6, "high": 1.0},
    "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0},
}

_TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "mars", "root": "data/mars"},
    "model": {"arch": "ta_bt", "backbone": "resnet18", "attention": "pooled", "pretrained": False},
    "training": {
        "epochs": 3,
        "eval_every": 1,
        "height": 32,
        "width": 16,
        "batch_size": 8,
        "num_instances": 2,
        "milestones": [2],
        "num_workers": 0,
    },
    "objective": {"metric": "map", "direction": "maximize"},
    "search_space": SEVEN_PARAMS,
    "sampler": {"name": "tpe", "seed": 0},
    "pruner": {"name": "median", "options": {"n_startup_trials": 1}},
    "budget": {"n_trials": 4},
    "artifacts": {"root": "runs"},
}


def tiny_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A deep copy of a small valid spec with top-level keys replaced by ``overrides``."""
    data = copy.deepcopy(_TINY)
    data.update(copy.deepcopy(overrides))
    return data


def tiny_spec(**overrides: Any):  # type: ignore[no-untyped-def]
    """The :class:`hpo.spec.StudySpec` of :func:`tiny_spec_dict`."""
    from hpo.spec import parse_spec

    return parse_spec(tiny_spec_dict(**overrides), source="<tiny>")


def write_spec(path: Path, **overrides: Any) -> Path:
    """Write :func:`tiny_spec_dict` as YAML to ``path`` and return it."""
    path.write_text(yaml.safe_dump(tiny_spec_dict(**overrides), sort_keys=False))
    return path
