"""The study spec schema: pydantic models of the YAML file that fully describes one study.

A spec names the dataset and validation split, the model, the fixed training recipe, the
objective, the search space, the sampler, the pruner and the budget (see ``studies/*.yaml``).
Everything is checked when the spec is validated, so a typo fails at ``reid-hpo study create``,
not at epoch 0 of the first trial: unknown keys, wrong types, empty or inverted ranges, unknown
dataset / model / backbone / sampler / pruner names, search-space names that do not map onto a
:class:`~reid_core.config.TrainConfig` field, ``batch_size % num_instances != 0`` for any
combination the search can draw, ``eval_every > epochs``, and a budget without a limit.

Dataset, model and backbone names are checked against the ``reid_core`` registries, which
import torch. A spec read back from a study was checked when the study was created, so
:data:`TRUSTED_NAMES` (a validation context) skips that import for commands that only read a
study (``study list``, ``status``, ``best``, ``export``).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import typing
from dataclasses import dataclass
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import ValidationInfo
from pydantic import field_validator
from pydantic import model_validator

from hpo.errors import SpecError
from hpo.errors import one_line
from hpo.spec._options import check_pruner_options
from hpo.spec._options import check_sampler_options
from hpo.spec._paths import TRAINING_PATHS
from hpo.spec._paths import field_owner
from hpo.spec._paths import resolve_param_path
from hpo.spec._schedule import pruner_options
from hpo.spec._warm_start import fit_to_space
from hpo.spec._warm_start import preset_values
from hpo.spec._warm_start import value_problem
from hpo.url_secrets import has_secret
from hpo.url_secrets import mask_url
from reid_core.config import DataConfig
from reid_core.config import LossConfig
from reid_core.config import ModelConfig
from reid_core.config import OptimConfig
from reid_core.config import TrainConfig
from reid_core.config import normalize_amp
from reid_core.presets import PRESETS

_D = DataConfig()
_L = LossConfig()
_O = OptimConfig()
_M = ModelConfig()
_T = TrainConfig()

# Guard against enumerating absurd integer ranges in the batch_size / num_instances check.
_MAX_COMBINATIONS = 200_000

#: A seed every generator takes (NumPy's legacy RandomState, which Optuna's samplers use).
Seed = Annotated[int, Field(ge=0, lt=2**32)]
#: The longest heartbeat interval / grace: a thread waits no longer than the OS allows.
MAX_HEARTBEAT_S = 86_400

TRUSTED_NAMES: dict[str, Any] = {"trusted_names": True}
"""Validation context for a spec read back from a study: its registry names were checked when
the study was created, so they are not checked again (no torch import)."""


def known_datasets() -> list[str]:
    """Dataset names accepted in ``dataset.name`` (``reid_core.data.DATASETS``)."""
    from reid_core.data import DATASETS

    return DATASETS.names()


def known_archs() -> list[str]:
    """Model names accepted in ``model.arch`` (``reid_core.models.MODELS``)."""
    from reid_core.models import MODELS

    return MODELS.names()


def known_backbones() -> list[str]:
    """Backbone names accepted in ``model.backbone`` (``reid_core.models.BACKBONES``)."""
    from reid_core.models import BACKBONES

    return BACKBONES.names()


def _check_name(kind: str, value: str, known: Any, info: ValidationInfo) -> str:
    """Refuse a name the registry does not know, unless the context trusts stored names."""
    if info.context and info.context.get("trusted_names"):
        return value
    names = known()
    if value not in names:
        raise ValueError(f"unknown {kind} {value!r}; available: {names}")
    return value


class _Spec(BaseModel):
    # Strict: a bool is not a number (``epochs: true`` is refused, not taken as 1), a string
    # is not a number, and a float is not an integer.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class DatasetSpec(_Spec):
    """Which dataset, where it lives on every worker, and which of its test splits."""

    name: str
    root: str = Field(min_length=1)
    split_id: int = Field(0, ge=0)
    mars_gallery: Literal["exclude_query", "official"] = "exclude_query"

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, value: str, info: ValidationInfo) -> str:
        return _check_name("dataset", value, known_datasets, info)


class ValidationSpec(_Spec):
    """How the validation split is carved from the training ids (the test set is never used)."""

    sampling: Literal["random", "guided", "colour_hardness"] = "random"
    protocol: Literal["reference", "one_per_camera"] = "reference"
    """How the validation ids' tracklets become query and gallery
    (:class:`reid_core.config.ValidationConfig`)."""
    fraction: float = Field(0.1, gt=0, lt=1)
    distractor_fraction: float = Field(0.25, ge=0, le=1)
    seed: Seed = 0
    guided_ids: list[int] | None = None
    preset: Literal["paper"] | None = None

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

    @model_validator(mode="after")
    def _guided_needs_one_list(self) -> ValidationSpec:
        if self.preset is not None and self.sampling != "guided":
            raise ValueError("preset is only used with sampling: guided")
        if self.sampling == "guided" and (self.preset is None) == (self.guided_ids is None):
            raise ValueError(
                "sampling: guided takes its ids from exactly one of preset (paper: the "
                "reference's 32 MARS ids) or guided_ids; for the hardest ids under a "
                "colour-histogram embedding use sampling: colour_hardness"
            )
        return self


class ModelSpec(_Spec):
    """The video model: architecture, backbone, attention variant."""

    arch: str = _M.arch
    backbone: str = _M.backbone
    attention: Literal["full_map", "pooled"] = _M.attention
    last_stride: Literal[1, 2] = 1
    pretrained: bool = _M.pretrained

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str, info: ValidationInfo) -> str:
        return _check_name("model arch", value, known_archs, info)

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str, info: ValidationInfo) -> str:
        return _check_name("backbone", value, known_backbones, info)


class TrainingSpec(_Spec):
    """The fixed (non-searched) recipe; every key is a TrainConfig field (see TRAINING_PATHS)."""

    epochs: int = Field(_T.epochs, ge=1)
    eval_every: int = Field(_T.eval_every, ge=1)
    height: int = Field(_D.height, ge=1)
    width: int = Field(_D.width, ge=1)
    seq_len: int = Field(_D.seq_len, ge=1)
    batch_size: int = Field(_D.batch_size, ge=1)
    num_instances: int = Field(_D.num_instances, ge=1)
    test_max_clips: int | None = Field(_D.test_max_clips, ge=1)
    """At most this many test clips per tracklet; null: every clip."""
    test_batch_size: int = Field(_D.test_batch_size, ge=1)
    """Test clips per forward pass on a CPU; a GPU sizes it from its free memory."""
    num_workers: int = Field(_D.num_workers, ge=0)
    random_erasing: float = Field(_D.random_erasing, ge=0, le=1)
    labelled_erasing: float = Field(_D.labelled_erasing, ge=0, le=1)
    erasing_style: Literal["reference", "torchvision"] = _D.erasing_style
    pad: int = Field(_D.pad, ge=0)
    cache_frames: bool = _D.cache_frames
    epoch_sampling: Literal["per_id", "per_tracklet"] = _D.epoch_sampling
    translation: Literal["reference", "pad_crop"] = _D.translation
    augment_scope: Literal["frame", "clip"] = _D.augment_scope
    test_clips: Literal["first", "spaced"] = _D.test_clips
    lr: float = Field(_O.lr, gt=0)
    weight_decay: float = Field(_O.weight_decay, ge=0)
    warmup_epochs: int = Field(_O.warmup_epochs, ge=0)
    warmup_factor: float = Field(_O.warmup_factor, gt=0, le=1)
    milestones: list[int] = Field(default_factory=lambda: list(_O.milestones))
    gamma: float = Field(_O.gamma, gt=0)
    label_smoothing: float = Field(_L.label_smoothing, ge=0, lt=1)
    triplet_weight: float = Field(_L.triplet_weight, ge=0)
    triplet_margin: float = Field(_L.triplet_margin, ge=0)
    triplet_distance: Literal["euclidean", "cosine"] = _L.triplet_distance
    center_weight: float = Field(_L.center_weight, ge=0)
    center_lr: float = Field(_L.center_lr, gt=0)
    beta: float = Field(_L.beta, ge=0, le=1)
    osm_alpha: float = Field(_L.osm_alpha, gt=0)
    osm_l: float = Field(_L.osm_l, ge=0, le=1)
    osm_sigma: float = Field(_L.osm_sigma, gt=0)
    prototypes: Literal["classifier", "centers"] = _L.prototypes
    attention_weight: float = Field(_L.attention_weight, ge=0)
    amp: Literal["auto", "fp16", "bf16", "off"] = _T.amp
    channels_last: bool = _T.channels_last
    compile: bool = _T.compile
    deterministic: bool = _T.deterministic
    device: str = Field(_T.device, pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    """Kept for ``TrainConfig``; a study's trials run where their worker puts them (``--gpus``)."""

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_from_bool(cls, value: Any) -> Any:
        # YAML reads `off`/`on` (and older specs' `false`/`true`) as booleans.
        return normalize_amp(value) if isinstance(value, bool) else value

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
PARAM_CLASSES: dict[str, type[_Spec]] = {
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
    """The validation metric a trial returns, whether to maximise it, and what a trial whose
    loss turns NaN returns."""

    metric: Literal["map", "rerank_map", "rank1"] = "map"
    direction: Literal["maximize", "minimize"] = "maximize"
    on_nan: Literal["worst", "fail"] = "worst"
    """``worst``: the trial completes with the metric's worst value (0 when maximising, as the
    reference scores a NaN trial), so the sampler learns the region diverges; ``fail``: the
    trial FAILs and the sampler never sees it."""

    @property
    def worst_value(self) -> float:
        """The worst value of the metric (a fraction in [0, 1]) in this direction."""
        return 0.0 if self.direction == "maximize" else 1.0


class SamplerSpec(_Spec):
    """``tpe`` | ``random`` | ``gp`` | ``cmaes`` | ``qmc``, its seed and constructor options."""

    name: Literal["tpe", "random", "gp", "cmaes", "qmc"] = "tpe"
    seed: Seed | None = 0
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "name" in info.data:
            check_sampler_options(info.data["name"], value)
        return value


class PrunerSpec(_Spec):
    """``median`` | ``hyperband`` | ``sha`` | ``none`` and its options (steps are epochs).

    Options left out are not written here: :func:`hpo.spec.pruner_options` derives them from
    the training schedule (no comparison before the first epoch at the final learning rate).
    """

    name: Literal["median", "hyperband", "sha", "none"] = "median"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
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


class FidelitySpec(_Spec):
    """Successive halving over compressed schedules (``hpo.search._fidelity`` has the rules).

    ``kind: none`` (the default) trains every trial on the full schedule. ``sha`` runs
    asynchronous successive halving over a ladder of rungs, each the recipe with its epochs,
    warm-up, milestones and evaluation period scaled down; ``hyperband`` runs one such bracket per
    starting rung. The ladder has ``rungs`` rungs (default 3) or as many as keep the bottom rung
    at ``min_epochs`` or more; ``eta`` is the reduction factor. New configurations come from the
    study's sampler (``random``: ASHA's random proposals; TPE sees every completed rung trial's
    value, compressed or full, as one objective); the pruner must be ``none`` (rungs replace it)
    and the budget's ``n_trials`` counts full-schedule trials' worth of epochs.
    """

    kind: Literal["none", "sha", "hyperband"] = "none"
    eta: int = Field(3, ge=2)
    rungs: int | None = Field(None, ge=1)
    min_epochs: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_ladder_rule(self) -> FidelitySpec:
        if self.rungs is not None and self.min_epochs is not None:
            raise ValueError("give rungs or min_epochs, not both")
        return self

    @property
    def enabled(self) -> bool:
        """Whether trials run as rungs of compressed schedules."""
        return self.kind != "none"


# Keys a careless spec might use to carry object-store credentials (matched lower-case).
_CREDENTIAL_KEYS = ("access_key", "secret", "session_token", "token", "password", "credential")
# S3 presigned-URL query parameters: a URL carrying one carries a signature or a key.
_SIGNED_QUERY = re.compile(r"[?&](x-amz-|awsaccesskeyid|signature)", re.IGNORECASE)


class ArtifactsSpec(_Spec):
    """Where trial checkpoints, metrics and TensorBoard files go (:mod:`hpo.study`).

    ``kind: filesystem`` (the default): ``root`` is a path every worker sees (a shared file
    system, guarded by the study's marker). ``kind: s3``: an S3-compatible object store
    (``bucket``, optional ``prefix``, ``endpoint_url`` for MinIO/Ceph/..., ``region``) holds
    them, and ``root`` is each host's local working copy. Credentials never appear here: boto3
    reads them from the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_PROFILE``, an instance or pod role).
    """

    kind: Literal["filesystem", "s3"] = "filesystem"
    root: str = Field("runs", min_length=1)
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    prefix: str = Field("", pattern=r"^[A-Za-z0-9._\-/]*$")
    endpoint_url: str | None = Field(None, pattern=r"^https?://")
    region: str | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if any(word in str(key).lower() for word in _CREDENTIAL_KEYS):
                    raise ValueError(
                        f"{key}: credentials are never stored with the study; give them through "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role"
                    )
        return data

    @field_validator("endpoint_url")
    @classmethod
    def _no_secret_in_url(cls, value: str | None) -> str | None:
        if value is not None and ("@" in value or _SIGNED_QUERY.search(value)):
            raise ValueError(
                "the URL carries a credential, which would be stored with the study; give it "
                "through AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role"
            )
        return value

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ArtifactsSpec:
        if self.kind == "s3" and self.bucket is None:
            raise ValueError("bucket: required when kind is s3")
        given = {"bucket": self.bucket, "prefix": self.prefix or None}
        given |= {"endpoint_url": self.endpoint_url, "region": self.region}
        extra = sorted(k for k, v in given.items() if v is not None)
        if self.kind == "filesystem" and extra:
            raise ValueError(f"{', '.join(extra)}: only for kind s3 (kind is filesystem)")
        return self

    @property
    def location(self) -> str:
        """Where the study folders live, for messages (``s3://bucket/prefix`` or the root)."""
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")
        return self.root


class HeartbeatSpec(_Spec):
    """How often a running trial signals life, and how long a silence fails it (seconds).

    Stored with the study, so every worker uses the same values: a worker with a shorter
    grace would fail the healthy trials of a worker with a longer interval.
    """

    interval: int = Field(30, ge=1, le=MAX_HEARTBEAT_S)
    grace: int | None = Field(None, ge=1, le=3 * MAX_HEARTBEAT_S)

    @model_validator(mode="after")
    def _grace_covers_beats(self) -> HeartbeatSpec:
        if self.grace is not None and self.grace < 2 * self.interval:
            raise ValueError(
                f"grace={self.grace} must be at least two intervals ({2 * self.interval} s), "
                "or one late beat fails a healthy trial"
            )
        return self

    @property
    def grace_s(self) -> int:
        """The grace period in seconds (three intervals when not set)."""
        return self.grace if self.grace is not None else 3 * self.interval


WarmStartValue = bool | int | float | str | None


class FromStudySpec(_Spec):
    """A finished study whose best ``top_k`` COMPLETE trials seed this one."""

    name: str = Field(min_length=1)
    top_k: int = Field(3, ge=1)
    storage: str | None = Field(None, min_length=1)
    """Its storage URL; this study's storage when null. Stored with the spec, so it may not
    hold a password or another secret parameter (``sslpassword``, ...: give them through
    ``PGPASSWORD``, ``~/.pgpass`` or the service file)."""

    @field_validator("storage")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        if value is not None and has_secret(value):
            raise ValueError(
                f"the URL carries a credential ({mask_url(value)}), which would be stored with the "
                "study; give it through PGPASSWORD, ~/.pgpass or a service file instead"
            )
        return value


class WarmStartSpec(_Spec):
    """Configurations enqueued when the study is created, before the sampler proposes any.

    In this order: ``configs`` (each a full or partial assignment of search-space names;
    every value must lie in its distribution), the ``preset`` (:mod:`hpo.spec._warm_start`
    says where its numbers come from; values outside the search range are moved to the
    nearest bound) and the best ``from_study.top_k`` trials of another study (parameters of
    the same TrainConfig path, moved into range likewise). Parameters a configuration leaves
    out are drawn by the sampler.
    """

    configs: list[dict[str, WarmStartValue]] = Field(default_factory=list)
    preset: Literal["paper", "bot_defaults"] | None = None
    from_study: FromStudySpec | None = None

    @property
    def max_trials(self) -> int:
        """The most trials this section can enqueue."""
        top_k = self.from_study.top_k if self.from_study is not None else 0
        return len(self.configs) + (self.preset is not None) + top_k


@dataclass(frozen=True)
class WarmStartConfig:
    """One configuration to enqueue, and where it came from (stored with its trial)."""

    source: str
    params: dict[str, Any]
    notes: tuple[str, ...] = ()
    """One line per value moved into the search range."""


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
    heartbeat: HeartbeatSpec = Field(default_factory=HeartbeatSpec)
    warm_start: WarmStartSpec = Field(default_factory=WarmStartSpec)
    fidelity: FidelitySpec = Field(default_factory=FidelitySpec)
    seed: Seed = 0
    seed_policy: Literal["shared", "per_trial"] = "shared"
    """``shared``: every trial trains with ``seed`` (the reference: common random numbers, so
    two trials differ by their parameters, not their draws); ``per_trial``: trial n trains with
    ``seed + n`` (differences include seed noise, which the search then averages over)."""
    preset: str | None = None
    """A row of the reference's table (:data:`reid_core.presets.PRESETS`): its values fill
    the ``model`` and ``training`` keys and the ``seed`` the spec does not give."""
    init_from: str | None = None
    """A checkpoint whose backbone and temporal attention start every trial."""

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or raw.get("preset") is None:
            return raw
        name = raw["preset"]
        if name not in PRESETS:
            raise ValueError(f"preset: unknown preset {name!r}; available: {', '.join(PRESETS)}")
        filled = {**raw}
        for path, value in PRESETS[name].values.items():
            if path == "seed":
                filled.setdefault("seed", value)
                continue
            section, key = _spec_key_of(path)
            given = filled.get(section)
            given = given.model_dump() if isinstance(given, BaseModel) else dict(given or {})
            given.setdefault(key, list(value) if isinstance(value, tuple) else value)
            filled[section] = given
        return filled

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> StudySpec:
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
            _check_param_fits(self, where, path, param, info.context)
        _check_divisible(self)
        _check_eval_every(self)
        _check_schedule(self)
        _check_attention_loss(self)
        warm_start_configs(self)
        _check_warm_start(self)
        try:
            pruner_options(self)
        except ValueError as exc:
            raise ValueError(f"pruner.options: {exc}") from None
        _check_fidelity(self)
        return self

    def fingerprint(self) -> str:
        """Canonical JSON of the spec (sorted keys): equal specs give equal strings."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def warm_start_configs(spec: StudySpec) -> list[WarmStartConfig]:
    """The ``configs`` and ``preset`` of ``spec.warm_start``, checked against the search space,
    in enqueue order (``from_study`` needs the storage: :mod:`hpo.study` adds it).

    Raises:
        ValueError: ``warm_start.configs.<i>.<name>: <reason>`` for an empty configuration, a
            name outside the search space or a value outside its distribution; a preset that
            sets none of the searched parameters or sets a categorical one to a non-choice.
    """
    found: list[WarmStartConfig] = []
    for index, config in enumerate(spec.warm_start.configs):
        where = f"warm_start.configs.{index}"
        if not config:
            raise ValueError(f"{where}: empty; give at least one search-space parameter")
        for name, value in config.items():
            param = spec.search_space.get(name)
            if param is None:
                known = ", ".join(spec.search_space)
                raise ValueError(f"{where}.{name}: not in this study's search space ({known})")
            problem = value_problem(param, value)
            if problem is not None:
                raise ValueError(f"{where}.{name}: {problem}")
        found.append(WarmStartConfig(f"configs.{index}", dict(config)))
    preset = spec.warm_start.preset
    if preset is not None:
        where = f"warm_start.preset {preset}"
        values = preset_values(preset, spec.dataset.name)
        params, notes = fit_to_space(spec.search_space, values, where)
        if not params:
            raise ValueError(f"{where}: sets none of this study's parameters")
        found.append(WarmStartConfig(f"preset:{preset}", params, tuple(notes)))
    return found


def _check_warm_start(spec: StudySpec) -> None:
    source = spec.warm_start.from_study
    if source is not None and source.storage is None and source.name == spec.name:
        raise ValueError("warm_start.from_study.name: is this study's own name")
    most, n_trials = spec.warm_start.max_trials, spec.budget.n_trials
    if n_trials is not None and most > n_trials:
        raise ValueError(
            f"warm_start: enqueues up to {most} trials but budget.n_trials is {n_trials}; "
            "raise the budget or enqueue fewer"
        )


def _check_fidelity(spec: StudySpec) -> None:
    fidelity = spec.fidelity
    if not fidelity.enabled:
        return
    if spec.pruner.name != "none":
        raise ValueError(
            f"pruner: {spec.pruner.name!r} cannot run with fidelity.kind {fidelity.kind!r} "
            "(rungs replace the pruner); set pruner: {name: none}"
        )
    if fidelity.min_epochs is not None and fidelity.min_epochs > spec.training.epochs:
        raise ValueError(
            f"fidelity.min_epochs: {fidelity.min_epochs} is more than "
            f"training.epochs {spec.training.epochs}"
        )


def _spec_key_of(path: str) -> tuple[str, str]:
    """The spec section (``model`` or ``training``) and key of a TrainConfig path."""
    section_cls, key = _spec_field_of(path)
    return ("model" if section_cls is ModelSpec else "training"), key


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


def _check_param_fits(
    spec: StudySpec, where: str, path: str, param: Any, context: dict[str, Any] | None
) -> None:
    """The distribution's type matches the field, and its extremes pass the field's checks."""
    owner, leaf = field_owner(path)
    hint = typing.get_type_hints(owner)[leaf]
    section_cls, key = _spec_field_of(path)
    if hint is int and isinstance(param, FloatParam):
        raise ValueError(f"{where}: {path} is an integer; use type: int or categorical")
    if hint not in (int, float) and not isinstance(param, CategoricalParam):
        raise ValueError(f"{where}: {path} is not numeric; use type: categorical")
    section = spec.model if section_cls is ModelSpec else spec.training
    for corner, value in _candidate_corners(param):
        try:
            section_cls.model_validate({**section.model_dump(), key: value}, context=context)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            reason = one_line(first["msg"]).removeprefix("Value error, ")
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


def _check_attention_loss(spec: StudySpec) -> None:
    """The attention loss (on, or searched) needs an attention model and labelled erasing."""
    searched = {resolve_param_path(name) for name in spec.search_space}
    if spec.training.attention_weight == 0 and "loss.attention_weight" not in searched:
        return
    if spec.model.arch == "tp":
        raise ValueError(
            "training.attention_weight: the attention loss needs a temporal attention "
            "(model arch ta or ta_bt)"
        )
    if spec.training.labelled_erasing == 0 and "data.labelled_erasing" not in searched:
        raise ValueError(
            "training.attention_weight: the attention loss learns from the labelled erasing's "
            "frames; set training.labelled_erasing > 0 (the reference: 0.5)"
        )


def _check_eval_every(spec: StudySpec) -> None:
    every = _int_values(spec, "eval_every")
    epochs = _int_values(spec, "epochs")
    every, epochs = max(every[0], every[-1]), min(epochs[0], epochs[-1])
    if every > epochs:
        raise ValueError(f"training.eval_every: eval_every={every} must be <= epochs={epochs}")


def _check_schedule(spec: StudySpec) -> None:
    """Refuse ``gamma`` searched while no milestone falls inside the epochs: the learning rate
    never decays, so the search draws a parameter that does nothing. A milestone past the
    epochs is otherwise ignored, as the reference's scheduler does."""
    epochs = min(_int_values(spec, "epochs"))
    searched = {resolve_param_path(name): name for name in spec.search_space}
    milestones = spec.training.milestones
    gamma = searched.get(TRAINING_PATHS["gamma"])
    if gamma is not None and not any(m < epochs for m in milestones):
        raise ValueError(
            f"search_space.{gamma}: gamma scales the learning rate at the milestones, but none "
            f"of training.milestones {milestones} falls inside the {epochs} epochs; add a "
            f"milestone below {epochs} or stop searching gamma"
        )


__all__ = [
    "PARAM_CLASSES",
    "TRUSTED_NAMES",
    "ArtifactsSpec",
    "BudgetSpec",
    "CategoricalParam",
    "DatasetSpec",
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
    "known_archs",
    "known_backbones",
    "known_datasets",
    "warm_start_configs",
]
