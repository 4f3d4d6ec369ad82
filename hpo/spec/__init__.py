"""The study spec: the YAML file that fully describes one study, validated by pydantic.

- :mod:`~hpo.spec._schema`: the models (:class:`StudySpec` and its sections).
- :mod:`~hpo.spec._paths`: search-space names -> TrainConfig paths.
- :mod:`~hpo.spec._options`: the options each sampler and pruner accepts.
- :mod:`~hpo.spec._schedule`: pruner defaults derived from the training schedule.
- :mod:`~hpo.spec._warm_start`: the warm-start presets and fitting values into the space.
- :mod:`~hpo.spec._loading`: YAML / JSON loading and one-line errors.
- :mod:`~hpo.spec._train_config`: one trial's :class:`~reid_core.config.TrainConfig`.

Nothing here imports Optuna; :mod:`hpo.search` turns a spec into Optuna objects.
Pruner steps are epochs: trials report at the 0-based index of each evaluated epoch.
"""

from __future__ import annotations

from hpo.spec._loading import load_spec
from hpo.spec._loading import parse_spec
from hpo.spec._loading import spec_from_json
from hpo.spec._options import PRUNER_OPTIONS
from hpo.spec._options import SAMPLER_OPTIONS
from hpo.spec._options import check_pruner_options
from hpo.spec._options import check_sampler_options
from hpo.spec._paths import PARAM_ALIASES
from hpo.spec._paths import TRAINING_PATHS
from hpo.spec._paths import resolve_param_path
from hpo.spec._schedule import first_comparable_step
from hpo.spec._schedule import pruner_options
from hpo.spec._schema import TRUSTED_NAMES
from hpo.spec._schema import ArtifactsSpec
from hpo.spec._schema import BudgetSpec
from hpo.spec._schema import CategoricalParam
from hpo.spec._schema import DatasetSpec
from hpo.spec._schema import FidelitySpec
from hpo.spec._schema import FloatParam
from hpo.spec._schema import FromStudySpec
from hpo.spec._schema import HeartbeatSpec
from hpo.spec._schema import IntParam
from hpo.spec._schema import ModelSpec
from hpo.spec._schema import ObjectiveSpec
from hpo.spec._schema import ParamSpec
from hpo.spec._schema import PrunerSpec
from hpo.spec._schema import SamplerSpec
from hpo.spec._schema import StudySpec
from hpo.spec._schema import TrainingSpec
from hpo.spec._schema import ValidationSpec
from hpo.spec._schema import WarmStartConfig
from hpo.spec._schema import WarmStartSpec
from hpo.spec._schema import known_archs
from hpo.spec._schema import known_backbones
from hpo.spec._schema import known_datasets
from hpo.spec._schema import warm_start_configs
from hpo.spec._train_config import to_train_config
from hpo.spec._warm_start import WARM_START_PRESETS
from hpo.spec._warm_start import fit_to_space
from hpo.spec._warm_start import preset_values

__all__ = [
    "PARAM_ALIASES",
    "PRUNER_OPTIONS",
    "SAMPLER_OPTIONS",
    "TRAINING_PATHS",
    "TRUSTED_NAMES",
    "WARM_START_PRESETS",
    "ArtifactsSpec",
    "BudgetSpec",
    "CategoricalParam",
    "DatasetSpec",
    "FidelitySpec",
    "FloatParam",
    "FromStudySpec",
    "HeartbeatSpec",
    "IntParam",
    "ModelSpec",
    "ObjectiveSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "StudySpec",
    "TrainingSpec",
    "ValidationSpec",
    "WarmStartConfig",
    "WarmStartSpec",
    "check_pruner_options",
    "check_sampler_options",
    "first_comparable_step",
    "fit_to_space",
    "known_archs",
    "known_backbones",
    "known_datasets",
    "load_spec",
    "parse_spec",
    "preset_values",
    "pruner_options",
    "resolve_param_path",
    "spec_from_json",
    "to_train_config",
    "warm_start_configs",
]
