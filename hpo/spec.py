"""Study specs: the YAML file that fully describes one study, validated by pydantic.

A spec names the dataset and validation split, the model, the fixed training recipe, the
objective, the search space, the sampler, the pruner and the budget (see ``studies/*.yaml``).
Everything is checked when the spec is loaded, so a typo fails at ``reid-hpo study create``,
not at epoch 0 of the first trial: unknown keys, wrong types, empty or inverted ranges, unknown
dataset / model / backbone / sampler / pruner names, search-space names that do not map onto a
:class:`reid_core.engine.config.TrainConfig` field, ``batch_size % num_instances != 0`` for any
combination the search can draw, ``eval_every > epochs``, and a budget without a limit.

Search-space names: the seed's short names (``sigma``, ``alpha``, ``l``, ``margin``, ``beta``,
``gamma``, ``weight_decay``; see :data:`PARAM_ALIASES`), any ``training`` key of the spec
(``lr``, ``osm_alpha``, ...) or any dotted TrainConfig path (``loss.center_lr``).

Pruner steps are epochs: trials report at the 0-based index of each evaluated epoch.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import typing
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import Literal

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import ValidationInfo
from pydantic import field_validator
from pydantic import model_validator

from hpo.errors import SpecError
from reid_core.engine.config import DataConfig
from reid_core.engine.config import LossConfig
from reid_core.engine.config import ModelConfig
from reid_core.engine.config import OptimConfig
from reid_core.engine.config import TrainConfig

_D = DataConfig()
_L = LossConfig()
_O = OptimConfig()
_M = ModelConfig()
_T = TrainConfig()

# Used when the reid_core registries are not importable (e.g. while they are being built).
_FALLBACK_DATASETS = ("ilidsvid", "mars", "prid")
_FALLBACK_ARCHS = ("ta", "ta_bt", "tp")
_FALLBACK_BACKBONES = ("resnet10", "resnet101", "resnet18", "resnet34", "resnet50")

# Guard against enumerating absurd integer ranges in the batch_size / num_instances check.
_MAX_COMBINATIONS = 200_000

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
            "pad",
            "cache_frames",
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
            "triplet_margin",
            "triplet_distance",
            "center_weight",
            "center_lr",
            "beta",
            "osm_alpha",
            "osm_l",
            "osm_sigma",
            "prototypes",
        )
    },
}

# TrainConfig paths a study fixes in other sections; searching them is refused.
_UNSEARCHABLE = ("seed", "output_dir", "data.dataset", "data.root", "data.split_id")
_UNSEARCHABLE_PREFIXES = ("data.validation", "data.mars_gallery")


def _registry_names(module: str, attr: str, fallback: tuple[str, ...]) -> list[str]:
    """Names of a reid_core registry, or ``fallback`` when it cannot be imported yet."""
    try:
        registry = getattr(__import__(module, fromlist=[attr]), attr)
        names = list(registry.names())
    except (ImportError, AttributeError):
        return list(fallback)
    return names or list(fallback)


def known_datasets() -> list[str]:
    """Dataset names accepted in ``dataset.name`` (``reid_core.data.DATASETS``)."""
    return _registry_names("reid_core.data", "DATASETS", _FALLBACK_DATASETS)


def known_archs() -> list[str]:
    """Model names accepted in ``model.arch`` (``reid_core.models.MODELS``)."""
    return _registry_names("reid_core.models", "MODELS", _FALLBACK_ARCHS)


def known_backbones() -> list[str]:
    """Backbone names accepted in ``model.backbone`` (``reid_core.models.BACKBONES``)."""
    return _registry_names("reid_core.models", "BACKBONES", _FALLBACK_BACKBONES)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class DatasetSpec(_Spec):
    """Which dataset, where it lives on every worker, and which of its test splits."""

    name: str
    root: str = Field(min_length=1)
    split_id: int = Field(0, ge=0)
    mars_gallery: Literal["exclude_query", "official"] = "exclude_query"

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        names = known_datasets()
        if value not in names:
            raise ValueError(f"unknown dataset {value!r}; available: {names}")
        return value


class ValidationSpec(_Spec):
    """How the validation split is carved from the training ids (the test set is never used)."""

    sampling: Literal["random", "guided"] = "random"
    fraction: float = Field(0.1, gt=0, lt=1)
    distractor_fraction: float = Field(0.25, ge=0, le=1)
    seed: int = 0
    guided_ids: list[int] | None = None

    @field_validator("guided_ids")
    @classmethod
    def _guided_ids_need_guided(
        cls, value: list[int] | None, info: ValidationInfo
    ) -> list[int] | None:
        if value is not None and info.data.get("sampling") != "guided":
            raise ValueError("guided_ids is only used with sampling: guided")
        if value is not None and not value:
            raise ValueError("guided_ids must list at least one id (or be null)")
        return value


class ModelSpec(_Spec):
    """The video model: architecture, backbone, attention variant."""

    arch: str = _M.arch
    backbone: str = _M.backbone
    attention: Literal["full_map", "pooled"] = _M.attention
    last_stride: Literal[1, 2] = 1
    pretrained: bool = _M.pretrained

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        names = known_archs()
        if value not in names:
            raise ValueError(f"unknown model arch {value!r}; available: {names}")
        return value

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        names = known_backbones()
        if value not in names:
            raise ValueError(f"unknown backbone {value!r}; available: {names}")
        return value


class TrainingSpec(_Spec):
    """The fixed (non-searched) recipe; every key is a TrainConfig field (see TRAINING_PATHS)."""

    epochs: int = Field(_T.epochs, ge=1)
    eval_every: int = Field(_T.eval_every, ge=1)
    height: int = Field(_D.height, ge=1)
    width: int = Field(_D.width, ge=1)
    seq_len: int = Field(_D.seq_len, ge=1)
    batch_size: int = Field(_D.batch_size, ge=1)
    num_instances: int = Field(_D.num_instances, ge=1)
    test_max_clips: int = Field(_D.test_max_clips, ge=1)
    test_batch_size: int = Field(_D.test_batch_size, ge=1)
    num_workers: int = Field(_D.num_workers, ge=0)
    random_erasing: float = Field(_D.random_erasing, ge=0, le=1)
    pad: int = Field(_D.pad, ge=0)
    cache_frames: bool = _D.cache_frames
    lr: float = Field(_O.lr, gt=0)
    weight_decay: float = Field(_O.weight_decay, ge=0)
    warmup_epochs: int = Field(_O.warmup_epochs, ge=0)
    warmup_factor: float = Field(_O.warmup_factor, gt=0, le=1)
    milestones: list[int] = Field(default_factory=lambda: list(_O.milestones))
    gamma: float = Field(_O.gamma, gt=0)
    label_smoothing: float = Field(_L.label_smoothing, ge=0, lt=1)
    triplet_margin: float = Field(_L.triplet_margin, ge=0)
    triplet_distance: Literal["euclidean", "cosine"] = _L.triplet_distance
    center_weight: float = Field(_L.center_weight, ge=0)
    center_lr: float = Field(_L.center_lr, gt=0)
    beta: float = Field(_L.beta, ge=0, le=1)
    osm_alpha: float = Field(_L.osm_alpha, gt=0)
    osm_l: float = Field(_L.osm_l, ge=0, le=1)
    osm_sigma: float = Field(_L.osm_sigma, gt=0)
    prototypes: Literal["classifier", "centers"] = _L.prototypes
    amp: bool = _T.amp
    device: str = _T.device

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(m < 1 for m in value) or any(a >= b for a, b in itertools.pairwise(value)):
            raise ValueError(f"{value} must be strictly increasing epochs >= 1")
        return value


class FloatParam(_Spec):
    """``{type: float, low, high, log: false, step: null}`` -> ``trial.suggest_float``."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_bounds(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self


class IntParam(_Spec):
    """``{type: int, low, high, log: false, step: 1}`` -> ``trial.suggest_int``."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_bounds(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError(f"log and step={self.step} cannot be combined (step must be 1)")
        return self

    def values(self) -> range:
        """Every value the distribution can take."""
        return range(self.low, self.high + 1, self.step)


class CategoricalParam(_Spec):
    """``{type: categorical, choices: [...]}`` -> ``trial.suggest_categorical``."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _plain_choices(cls, value: list[Any]) -> list[Any]:
        for index, choice in enumerate(value):
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise ValueError(f"choice {index} ({choice!r}) must be a bool, number, str or null")
            if isinstance(choice, float) and not math.isfinite(choice):
                raise ValueError(f"choice {index} ({choice!r}) must be finite")
        if len({json.dumps(c) for c in value}) != len(value):
            raise ValueError(f"choices {value} contain duplicates")
        return value


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
_PARAM_CLASSES: dict[str, type[_Spec]] = {
    "float": FloatParam,
    "int": IntParam,
    "categorical": CategoricalParam,
}


def _check_bounds(low: float, high: float, log: bool) -> None:
    if not low <= high:
        raise ValueError(f"low={low} must be <= high={high}")
    if log and low <= 0:
        raise ValueError(f"log=true needs low > 0, got low={low}")


class ObjectiveSpec(_Spec):
    """The validation metric a trial returns and whether to maximise it."""

    metric: Literal["map", "rerank_map", "rank1"] = "map"
    direction: Literal["maximize", "minimize"] = "maximize"


class SamplerSpec(_Spec):
    """``tpe`` | ``random`` | ``gp`` | ``cmaes`` | ``qmc``, its seed and constructor options."""

    name: Literal["tpe", "random", "gp", "cmaes", "qmc"] = "tpe"
    seed: int | None = 0
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from hpo.samplers import check_sampler_options

        if "name" in info.data:
            check_sampler_options(info.data["name"], value)
        return value


class PrunerSpec(_Spec):
    """``median`` | ``hyperband`` | ``sha`` | ``none`` and its options (steps are epochs).

    Options left out are not written here: :func:`hpo.pruners.build_pruner` derives them from
    the training schedule (no comparison before the first epoch at the final learning rate).
    """

    name: Literal["median", "hyperband", "sha", "none"] = "median"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from hpo.pruners import check_pruner_options

        if "name" in info.data:
            check_pruner_options(info.data["name"], value)
        return value


class BudgetSpec(_Spec):
    """Study-wide budget: finished (complete + pruned) trials and/or wall-clock hours."""

    n_trials: int | None = Field(None, ge=1)
    timeout_hours: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.n_trials is None and self.timeout_hours is None:
            raise ValueError("set n_trials, timeout_hours or both")
        return self


class ArtifactsSpec(_Spec):
    """Where trial checkpoints go: a path every worker sees (shared filesystem)."""

    root: str = Field("runs", min_length=1)


class StudySpec(_Spec):
    """A whole study. ``StudySpec.model_validate_json(spec.model_dump_json()) == spec``."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    dataset: DatasetSpec
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    search_space: dict[str, ParamSpec] = Field(min_length=1)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    budget: BudgetSpec
    artifacts: ArtifactsSpec = Field(default_factory=ArtifactsSpec)
    seed: int = 0

    @model_validator(mode="after")
    def _cross_field(self) -> StudySpec:
        seen: dict[str, str] = {}
        for name, param in self.search_space.items():
            where = f"search_space.{name}"
            try:
                path = resolve_param_path(name)
            except SpecError as exc:
                raise ValueError(f"{where}: {exc.reason}") from None
            if path in seen:
                raise ValueError(f"{where}: sets {path}, already set by {seen[path]!r}")
            seen[path] = name
            _check_param_fits(self, where, path, param)
        _check_divisible(self)
        _check_eval_every(self)
        from hpo.pruners import build_pruner

        try:
            build_pruner(self)
        except SpecError as exc:
            raise ValueError(f"pruner.options: {exc.reason}") from None
        return self

    def fingerprint(self) -> str:
        """Canonical JSON of the spec (sorted keys): equal specs give equal strings."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def _leaf(path: str) -> tuple[type, str]:
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
        raise SpecError(f"{path!r} is fixed by the study (dataset / validation / seed sections)")
    _leaf(path)
    return path


def _spec_field_of(path: str) -> tuple[type[_Spec], str]:
    """The spec section and key holding the fixed value of a TrainConfig path."""
    if path.startswith("model."):
        return ModelSpec, path.split(".", 1)[1]
    for key, key_path in TRAINING_PATHS.items():
        if key_path == path:
            return TrainingSpec, key
    raise SpecError(f"{path!r} cannot be searched by a study")


def _candidate_corners(param: FloatParam | IntParam | CategoricalParam) -> list[tuple[str, Any]]:
    if isinstance(param, CategoricalParam):
        return [(f"choices.{i}", choice) for i, choice in enumerate(param.choices)]
    return [("low", param.low), ("high", param.high)]


def _check_param_fits(spec: StudySpec, where: str, path: str, param: Any) -> None:
    """The distribution's type matches the field, and its extremes pass the field's checks."""
    owner, leaf = _leaf(path)
    hint = typing.get_type_hints(owner)[leaf]
    section_cls, key = _spec_field_of(path)
    if hint is int and isinstance(param, FloatParam):
        raise ValueError(f"{where}: {path} is an integer; use type: int or categorical")
    if hint not in (int, float) and not isinstance(param, CategoricalParam):
        raise ValueError(f"{where}: {path} is not numeric; use type: categorical")
    section = spec.model if section_cls is ModelSpec else spec.training
    for corner, value in _candidate_corners(param):
        try:
            section_cls.model_validate({**section.model_dump(), key: value})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            reason = _one_line(first["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{where}.{corner}: {key}={value!r} is invalid: {reason}") from None


def _int_values(spec: StudySpec, key: str) -> list[int] | range:
    """Every value a training integer can take in this study (searched or fixed)."""
    for name, param in spec.search_space.items():
        if resolve_param_path(name) == TRAINING_PATHS[key]:
            if isinstance(param, IntParam):
                return param.values()
            return sorted(int(c) for c in param.choices)
    return [getattr(spec.training, key)]


def _check_divisible(spec: StudySpec) -> None:
    sizes = _int_values(spec, "batch_size")
    ks = _int_values(spec, "num_instances")
    if len(sizes) * len(ks) > _MAX_COMBINATIONS:
        raise ValueError(
            "search_space: too many (batch_size, num_instances) combinations to check; "
            "narrow the ranges or use categorical choices"
        )
    for size in sizes:
        for k in ks:
            if size % k:
                raise ValueError(
                    f"training.batch_size: batch_size={size} is not a multiple of "
                    f"num_instances={k} (P x K sampling); every combination the search can "
                    "draw must divide"
                )


def _check_eval_every(spec: StudySpec) -> None:
    every = _int_values(spec, "eval_every")
    epochs = _int_values(spec, "epochs")
    every, epochs = max(every[0], every[-1]), min(epochs[0], epochs[-1])
    if every > epochs:
        raise ValueError(f"training.eval_every: eval_every={every} must be <= epochs={epochs}")


# ----------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec YAML file.

    Args:
        path: The ``.yaml`` file.

    Returns:
        The validated spec.

    Raises:
        SpecError: One line ``"<file>: <field.path>: <reason>"`` for a missing or unreadable
            file, malformed YAML, or any invalid field.

    Example:
        >>> load_spec("studies/demo.yaml").name  # doctest: +SKIP
        'demo'
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such spec file", file=source) from None
    except UnicodeDecodeError:
        raise SpecError("not a UTF-8 text file", file=source) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc}", file=source) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(where, f"invalid YAML: {_one_line(problem)}", file=source) from None
    return parse_spec(data, source=source)


def parse_spec(data: Any, *, source: str = "<spec>") -> StudySpec:
    """Validate an already-parsed spec mapping; errors name ``source``.

    Raises:
        SpecError: The data is not a mapping or a field is invalid.
    """
    if data is None:
        raise SpecError(
            "the spec is empty; expected a mapping with name, dataset, ...", file=source
        )
    if not isinstance(data, dict):
        raise SpecError(f"the top level must be a mapping, got {type(data).__name__}", file=source)
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        raise _to_spec_error(exc, source) from None


def spec_from_json(text: str, *, source: str = "<json>") -> StudySpec:
    """Validate a spec stored as JSON (e.g. the study user attr ``"spec"``).

    Raises:
        SpecError: The JSON is malformed or describes an invalid spec.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"invalid JSON: {_one_line(str(exc))}", file=source) from None
    return parse_spec(data, source=source)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "search_space" and parts[2] in _PARAM_CLASSES:
        del parts[2]
    return ".".join(str(p) for p in parts)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str] | None:
    """Keys allowed at the mapping holding ``loc[-1]`` (for "unknown key" messages)."""
    parent = loc[:-1]
    model: Any = None
    if not parent:
        model = StudySpec
    elif len(parent) == 1 and parent[0] in StudySpec.model_fields:
        model = StudySpec.model_fields[parent[0]].annotation
    elif len(parent) == 3 and parent[0] == "search_space":
        model = _PARAM_CLASSES.get(str(parent[2]))
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def _to_spec_error(exc: ValidationError, source: str) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    field = _format_loc(loc)
    kind = first["type"]
    message = _one_line(first["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        reason = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        reason = "required key is missing"
    elif kind == "union_tag_not_found":
        reason = "missing 'type' (one of: float, int, categorical)"
    elif kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag")
        reason = f"unknown type {tag!r}; expected one of: float, int, categorical"
    elif kind == "value_error":
        reason = message
        if not field and ": " in message:
            field, reason = message.split(": ", 1)
    else:
        reason = f"{message}, got {_short_repr(first.get('input'))}"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return SpecError(field, reason, file=source)


# ----------------------------------------------------------------------------- mapping


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _coerce(path: str, value: Any) -> Any:
    owner, leaf = _leaf(path)
    hint = typing.get_type_hints(owner)[leaf]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_train_config(
    spec: StudySpec, params: dict[str, Any], *, trial_number: int, output_dir: str
) -> TrainConfig:
    """The TrainConfig of one trial: the spec's fixed recipe overridden by ``params``.

    Args:
        spec: The study spec.
        params: Sampled values by search-space name (``trial.params``).
        trial_number: The trial's number; its seed is ``spec.seed + trial_number``.
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
                "fraction": validation.fraction,
                "distractor_fraction": validation.distractor_fraction,
                "seed": validation.seed,
                "guided_ids": validation.guided_ids,
            },
        },
        "model": spec.model.model_dump(),
        "seed": spec.seed + trial_number,
        "output_dir": str(output_dir),
    }
    for key, path in TRAINING_PATHS.items():
        _set_path(raw, path, getattr(spec.training, key))
    for name, value in params.items():
        try:
            path = resolve_param_path(name)
        except SpecError as exc:
            raise SpecError(f"search_space.{name}", exc.reason) from None
        _set_path(raw, path, _coerce(path, value))
    if raw["data"]["validation"]["guided_ids"] is None:
        del raw["data"]["validation"]["guided_ids"]
    return TrainConfig.from_dict(raw)


__all__ = [
    "PARAM_ALIASES",
    "TRAINING_PATHS",
    "ArtifactsSpec",
    "BudgetSpec",
    "CategoricalParam",
    "DatasetSpec",
    "FloatParam",
    "IntParam",
    "ModelSpec",
    "ObjectiveSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "StudySpec",
    "TrainingSpec",
    "ValidationSpec",
    "known_archs",
    "known_backbones",
    "known_datasets",
    "load_spec",
    "parse_spec",
    "resolve_param_path",
    "spec_from_json",
    "to_train_config",
]
