"""One trial's training configuration: the spec's fixed recipe overridden by sampled values."""

from __future__ import annotations

from typing import Any

from hpo.errors import SpecError
from hpo.spec._paths import TRAINING_PATHS
from hpo.spec._paths import coerce_to_field
from hpo.spec._paths import resolve_param_path
from hpo.spec._paths import set_path
from hpo.spec._schema import StudySpec
from reid_core.config import TrainConfig


def to_train_config(
    spec: StudySpec, params: dict[str, Any], *, trial_number: int, output_dir: str
) -> TrainConfig:
    """The TrainConfig of one trial: the spec's fixed recipe overridden by ``params``.

    Args:
        spec: The study spec.
        params: Sampled values by search-space name (``trial.params``).
        trial_number: The trial's number; its seed is ``spec.seed``, plus ``trial_number``
            under ``seed_policy: per_trial``.
        output_dir: The trial's directory (checkpoints, metrics).

    Returns:
        The training configuration.

    Raises:
        SpecError: A parameter name maps onto no TrainConfig field.
        reid_core.errors.ConfigError: The combined values are inconsistent.
    """
    validation = spec.validation
    raw: dict[str, Any] = {
        "data": {
            "dataset": spec.dataset.name,
            "root": spec.dataset.root,
            "split_id": spec.dataset.split_id,
            "mars_gallery": spec.dataset.mars_gallery,
            "validation": {
                "sampling": validation.sampling,
                "protocol": validation.protocol,
                "fraction": validation.fraction,
                "distractor_fraction": validation.distractor_fraction,
                "seed": validation.seed,
                "guided_ids": validation.guided_ids,
                "preset": validation.preset,
            },
        },
        "model": spec.model.model_dump(),
        "seed": spec.seed + (trial_number if spec.seed_policy == "per_trial" else 0),
        "output_dir": str(output_dir),
        "init_from": spec.init_from,
    }
    for key, path in TRAINING_PATHS.items():
        set_path(raw, path, getattr(spec.training, key))
    for name, value in params.items():
        try:
            path = resolve_param_path(name)
        except SpecError as exc:
            raise SpecError(f"search_space.{name}", exc.reason) from None
        set_path(raw, path, coerce_to_field(path, value))
    if raw["data"]["validation"]["guided_ids"] is None:
        del raw["data"]["validation"]["guided_ids"]
    return TrainConfig.from_dict(raw)


__all__ = ["to_train_config"]
