"""Study spec validation: every bad input is refused with one line naming file and field."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hpo.errors import ReidHpoError
from hpo.errors import SpecError
from hpo.search import build_pruner
from hpo.spec import PARAM_ALIASES
from hpo.spec import TRAINING_PATHS
from hpo.spec import StudySpec
from hpo.spec import load_spec
from hpo.spec import parse_spec
from hpo.spec import resolve_param_path
from hpo.spec import spec_from_json
from hpo.spec import to_train_config
from reid_core.errors import ConfigError
from reid_core.errors import ReidError
from tests._helpers.specs import tiny_spec
from tests._helpers.specs import tiny_spec_dict
from tests._helpers.specs import write_spec


def _error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="s.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("s.yaml: ")
    return info.value


def _with(section: str, **values: Any) -> dict[str, Any]:
    data = tiny_spec_dict()
    data[section] = {**data[section], **values}
    return data


def _with_param(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    data = tiny_spec_dict()
    data["search_space"] = {**data["search_space"], name: entry}
    return data


def test_spec_error_is_a_reid_error_with_field_and_reason() -> None:
    error = SpecError("sampler.name", "unknown", file="f.yaml")
    assert isinstance(error, ReidHpoError) and isinstance(error, ReidError)
    assert (error.field, error.reason, str(error)) == (
        "sampler.name",
        "unknown",
        "f.yaml: sampler.name: unknown",
    )


def test_load_spec_reads_a_valid_file(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml"))
    assert spec.name == "tiny"
    assert list(spec.search_space) == list(tiny_spec_dict()["search_space"])


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: no such spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndataset: {name: mars\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: line \d+, column \d+: invalid YAML") as info:
        load_spec(path)
    assert "\n" not in str(info.value)


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(tiny_spec_dict()) + "name: again\n")
    with pytest.raises(SpecError, match="duplicate key 'name'"):
        load_spec(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="top level must be a mapping, got list"):
        load_spec(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(SpecError, match="spec is empty"):
        load_spec(path)


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    error = _error(tiny_spec_dict(epochs=3))
    assert error.field == "epochs"
    assert "unknown key" in error.reason and "training" in error.reason


def test_unknown_nested_key_names_the_path() -> None:
    error = _error(_with("dataset", nmae="mars"))
    assert error.field == "dataset.nmae"
    assert "allowed: name, root" in error.reason


def test_unknown_key_in_a_search_space_entry() -> None:
    error = _error(_with_param("sigma", {"type": "float", "low": 0.1, "high": 1.0, "lgo": True}))
    assert error.field == "search_space.sigma.lgo"


def test_wrong_type_names_the_field_and_value() -> None:
    error = _error(_with("training", epochs="many"))
    assert error.field == "training.epochs"
    assert "'many'" in error.reason


def test_low_above_high_is_refused() -> None:
    error = _error(_with_param("sigma", {"type": "float", "low": 2.0, "high": 1.0}))
    assert error.field == "search_space.sigma"
    assert "low=2.0 must be <= high=1.0" in error.reason


def test_log_with_non_positive_low_is_refused() -> None:
    error = _error(_with_param("margin", {"type": "float", "low": 0.0, "high": 1.0, "log": True}))
    assert error.field == "search_space.margin"
    assert "low > 0" in error.reason


def test_log_with_step_is_refused() -> None:
    entry = {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}
    assert "log and step" in _error(_with_param("sigma", entry)).reason


def test_unknown_distribution_type_is_refused() -> None:
    error = _error(_with_param("sigma", {"type": "uniform", "low": 0.1, "high": 1.0}))
    assert "unknown type 'uniform'" in error.reason


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("sampler", "name", "tpee"),
        ("pruner", "name", "medain"),
        ("objective", "metric", "mAP"),
        ("objective", "direction", "up"),
    ],
)
def test_unknown_names_are_refused(section: str, key: str, value: str) -> None:
    error = _error(_with(section, **{key: value}))
    assert error.field == f"{section}.{key}"
    assert repr(value) in error.reason


def test_unknown_dataset_lists_the_known_ones() -> None:
    error = _error(_with("dataset", name="marss"))
    assert error.field == "dataset.name"
    assert "unknown dataset 'marss'" in error.reason and "'mars'" in error.reason


def test_unknown_arch_and_backbone_are_refused() -> None:
    assert "unknown model arch" in _error(_with("model", arch="vit")).reason
    assert "unknown backbone" in _error(_with("model", backbone="resnet51")).reason


def test_unknown_search_parameter_is_refused() -> None:
    error = _error(_with_param("sgima", {"type": "float", "low": 0.1, "high": 1.0}))
    assert error.field == "search_space.sgima"
    assert "unknown parameter 'sgima'" in error.reason


def test_unknown_dotted_path_is_refused() -> None:
    error = _error(_with_param("loss.nope", {"type": "float", "low": 0.1, "high": 1.0}))
    assert "no field 'nope' in LossConfig" in error.reason


def test_study_fixed_paths_cannot_be_searched() -> None:
    error = _error(_with_param("data.root", {"type": "categorical", "choices": ["a", "b"]}))
    assert "fixed by the study" in error.reason


@pytest.mark.parametrize(
    ("section", "key", "value", "field"),
    [
        ("training", "epochs", True, "training.epochs"),  # was taken as 1
        ("training", "milestones", [True], "training.milestones.0"),
        ("training", "batch_size", "16", "training.batch_size"),
        ("training", "lr", True, "training.lr"),
        ("training", "amp", 1, "training.amp"),
        ("validation", "seed", 1.5, "validation.seed"),
    ],
)
def test_values_of_the_wrong_type_are_refused_strictly(
    section: str, key: str, value: Any, field: str
) -> None:
    data = tiny_spec_dict()
    data[section] = {**data.get(section, {}), key: value}
    assert _error(data).field == field


def test_a_categorical_choice_of_the_wrong_type_for_its_target_is_refused() -> None:
    data = _with_param("batch_size", {"type": "categorical", "choices": ["16"]})
    assert _error(data).field == "search_space.batch_size.choices.0"


def test_a_bogus_training_device_is_refused() -> None:
    error = _error(_with("training", device="bogus"))
    assert error.field == "training.device"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_real_training_devices_are_accepted(device: str) -> None:
    assert parse_spec(_with("training", device=device)).training.device == device


def test_the_device_cannot_be_searched() -> None:
    error = _error(_with_param("device", {"type": "categorical", "choices": ["cpu", "cuda"]}))
    assert "by the worker that runs the trial" in error.reason


def test_an_exponent_without_a_dot_is_a_number_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    text = yaml.safe_dump(tiny_spec_dict(), sort_keys=False).replace("low: 1.0e-06", "low: 1e-6")
    assert "low: 1e-6" in text
    path.write_text(text)
    assert load_spec(path).search_space["margin"].low == 1e-6


def test_two_names_for_one_field_are_refused() -> None:
    data = _with_param("loss.osm_sigma", {"type": "float", "low": 0.1, "high": 1.0})
    assert "already set by 'sigma'" in _error(data).reason


def test_float_distribution_on_an_integer_field_is_refused() -> None:
    data = _with_param("seq_len", {"type": "float", "low": 2.0, "high": 8.0})
    assert "is an integer" in _error(data).reason


def test_search_range_outside_the_field_constraints_is_refused() -> None:
    error = _error(_with_param("lr", {"type": "float", "low": 0.0, "high": 1.0e-3}))
    assert error.field == "search_space.lr.low"
    assert "greater than 0" in error.reason


def test_categorical_choice_outside_a_literal_is_refused() -> None:
    data = _with_param("model.attention", {"type": "categorical", "choices": ["pooled", "cnn"]})
    assert _error(data).field == "search_space.model.attention.choices.1"


def test_fixed_batch_size_must_divide_by_num_instances() -> None:
    error = _error(_with("training", batch_size=10, num_instances=4))
    assert error.field == "training.batch_size"
    assert "batch_size=10 is not a multiple of num_instances=4" in error.reason


def test_searched_batch_size_checks_every_combination() -> None:
    data = _with_param("batch_size", {"type": "int", "low": 8, "high": 20, "step": 6})
    data["search_space"]["num_instances"] = {"type": "categorical", "choices": [2, 4]}
    assert "batch_size=14 is not a multiple of num_instances=4" in _error(data).reason


def test_searched_batch_size_passes_when_every_combination_divides() -> None:
    data = _with_param("batch_size", {"type": "categorical", "choices": [8, 16, 32]})
    data["search_space"]["num_instances"] = {"type": "int", "low": 2, "high": 4, "step": 2}
    assert parse_spec(data).search_space["batch_size"].type == "categorical"


def test_huge_integer_ranges_are_refused_not_enumerated() -> None:
    data = _with_param("batch_size", {"type": "int", "low": 4, "high": 10**9, "step": 4})
    data["search_space"]["num_instances"] = {"type": "int", "low": 1, "high": 4}
    assert "too many" in _error(data).reason


def test_eval_every_above_epochs_is_refused() -> None:
    error = _error(_with("training", epochs=3, eval_every=5))
    assert error.field == "training.eval_every"


def test_budget_needs_a_limit() -> None:
    error = _error(tiny_spec_dict(budget={"n_trials": None, "timeout_hours": None}))
    assert error.field == "budget"


def test_guided_ids_need_guided_sampling() -> None:
    error = _error(tiny_spec_dict(validation={"sampling": "random", "guided_ids": [1, 2]}))
    assert error.field == "validation.guided_ids"


def test_unknown_sampler_option_is_refused() -> None:
    error = _error(_with("sampler", options={"n_startup_trails": 3}))
    assert error.field == "sampler.options"
    assert "unknown option 'n_startup_trails'" in error.reason


def test_sampler_option_of_wrong_type_is_refused() -> None:
    assert (
        "must be an integer" in _error(_with("sampler", options={"n_startup_trials": "3"})).reason
    )


def test_hyperband_min_resource_above_epochs_is_refused() -> None:
    error = _error(tiny_spec_dict(pruner={"name": "hyperband", "options": {"min_resource": 9}}))
    assert error.field == "pruner.options"
    assert "min_resource=9" in error.reason


def test_missing_required_section() -> None:
    data = tiny_spec_dict()
    del data["dataset"]
    error = _error(data)
    assert (error.field, error.reason) == ("dataset", "required key is missing")


def test_invalid_study_name_is_refused() -> None:
    assert _error(tiny_spec_dict(name="has space")).field == "name"


def test_several_errors_are_counted_in_one_line() -> None:
    data = tiny_spec_dict(foo=1, bar=2)
    assert "(and 1 more error)" in _error(data).reason


def test_resolve_param_path_knows_the_seed_names() -> None:
    assert {name: resolve_param_path(name) for name in ("sigma", "alpha", "l", "margin")} == {
        "sigma": "loss.osm_sigma",
        "alpha": "loss.osm_alpha",
        "l": "loss.osm_l",
        "margin": "loss.triplet_margin",
    }
    assert resolve_param_path("gamma") == "optim.gamma"
    assert resolve_param_path("loss.center_lr") == "loss.center_lr"


def test_every_alias_and_training_key_maps_onto_a_train_config_field() -> None:
    for name in [*PARAM_ALIASES, *TRAINING_PATHS]:
        if name != "device":  # a training key, but the worker's to choose (refused above)
            assert resolve_param_path(name)


def test_to_train_config_maps_params_and_fixed_recipe() -> None:
    spec = tiny_spec()
    params = {
        "sigma": 0.4,
        "alpha": 2.0,
        "l": 0.3,
        "margin": 0.01,
        "beta": 0.5,
        "gamma": 0.2,
        "weight_decay": 1e-3,
    }
    cfg = to_train_config(spec, params, trial_number=7, output_dir="runs/t7")
    assert (cfg.loss.osm_sigma, cfg.loss.osm_alpha, cfg.loss.osm_l) == (0.4, 2.0, 0.3)
    assert (cfg.loss.triplet_margin, cfg.loss.beta) == (0.01, 0.5)
    assert (cfg.optim.gamma, cfg.optim.weight_decay) == (0.2, 1e-3)
    assert cfg.seed == spec.seed  # seed_policy: shared, the reference's
    assert cfg.output_dir == "runs/t7"
    assert (cfg.data.height, cfg.data.width, cfg.data.batch_size) == (32, 16, 8)
    assert cfg.optim.milestones == (2,)
    assert (cfg.model.backbone, cfg.model.attention) == ("resnet18", "pooled")
    assert cfg.data.validation is not None and cfg.data.validation.sampling == "random"
    assert cfg.epochs == 3 and cfg.eval_every == 1


def test_to_train_config_coerces_integer_values_of_float_fields() -> None:
    cfg = to_train_config(tiny_spec(), {"alpha": 2}, trial_number=0, output_dir="o")
    assert isinstance(cfg.loss.osm_alpha, float)


def test_to_train_config_refuses_unknown_params() -> None:
    with pytest.raises(SpecError, match=r"search_space\.bogus"):
        to_train_config(tiny_spec(), {"bogus": 1}, trial_number=0, output_dir="o")


def test_to_train_config_keeps_guided_ids() -> None:
    spec = tiny_spec(validation={"sampling": "guided", "guided_ids": [3, 5]})
    cfg = to_train_config(spec, {}, trial_number=0, output_dir="o")
    assert cfg.data.validation is not None and cfg.data.validation.guided_ids == (3, 5)


def test_to_train_config_surfaces_inconsistent_combinations() -> None:
    spec = tiny_spec()
    with pytest.raises(ConfigError):
        to_train_config(spec, {"num_instances": 3}, trial_number=0, output_dir="o")


def test_json_round_trip_and_bad_json() -> None:
    spec = tiny_spec()
    assert StudySpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec_from_json(spec.model_dump_json()) == spec
    with pytest.raises(SpecError, match="invalid JSON"):
        spec_from_json("{", source="study 'x'")


@pytest.mark.parametrize("options", [{}, {"patience": 1}, {"n_warmup_steps": 29}])
def test_pruner_options_round_trip_and_rebuild_the_same_pruner(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    # The stored spec (JSON user attr) and the YAML file rebuild the same schedule-derived
    # pruner in every worker; defaults are not written into the spec.
    spec = tiny_spec(pruner={"name": "median", "options": options})
    assert spec.pruner.options == options
    restored = spec_from_json(spec.model_dump_json())
    from_yaml = load_spec(
        write_spec(tmp_path / "s.yaml", pruner={"name": "median", "options": options})
    )
    assert restored == from_yaml == spec
    built = [build_pruner(s) for s in (spec, restored, from_yaml)]
    assert len({type(b) for b in built}) == 1
    described = [{k: v for k, v in vars(b).items() if k != "_wrapped_pruner"} for b in built]
    assert described[0] == described[1] == described[2]


def test_patience_option_is_checked_when_the_spec_is_loaded() -> None:
    error = _error(tiny_spec_dict(pruner={"name": "median", "options": {"patience": -1}}))
    assert error.field == "pruner.options"
    assert "patience=-1 must be >= 0" in error.reason


# ----------------------------------------------------------------------------- properties

_NAMES = ["sigma", "alpha", "l", "margin", "beta", "gamma", "weight_decay", "label_smoothing"]
_RANGES = {  # field constraints the bounds must respect
    "sigma": (1e-6, 10.0),
    "alpha": (1e-6, 10.0),
    "l": (0.0, 1.0),
    "margin": (0.0, 5.0),
    "beta": (0.0, 1.0),
    "gamma": (1e-6, 1.0),
    "weight_decay": (0.0, 1.0),
    "label_smoothing": (0.0, 0.99),
}


@st.composite
def _float_entry(draw: st.DrawFn, name: str) -> dict[str, Any]:
    lo, hi = _RANGES[name]
    a = draw(st.floats(lo, hi, allow_nan=False))
    b = draw(st.floats(lo, hi, allow_nan=False))
    low, high = min(a, b), max(a, b)
    log = low > 0 and draw(st.booleans())
    return {"type": "float", "low": low, "high": high, "log": log}


@st.composite
def _valid_spec(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5, unique=True))
    space: dict[str, Any] = {name: draw(_float_entry(name)) for name in names}
    if draw(st.booleans()):
        space["num_instances"] = {"type": "categorical", "choices": [2, 4]}
    if draw(st.booleans()):
        space["model.pretrained"] = {"type": "categorical", "choices": [True, False]}
    return tiny_spec_dict(
        search_space=space,
        sampler={
            "name": draw(st.sampled_from(["tpe", "random", "qmc", "cmaes"])),
            "seed": draw(st.one_of(st.none(), st.integers(0, 2**31))),
        },
        pruner={"name": draw(st.sampled_from(["median", "hyperband", "sha", "none"]))},
        budget={
            "n_trials": draw(st.one_of(st.none(), st.integers(1, 1000))),
            "timeout_hours": draw(st.floats(0.01, 100.0)),
        },
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_valid_spec())
def test_valid_specs_round_trip_through_json(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    again = StudySpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()


_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def _invalid_bounds(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(_ANY_FLOAT)
    high = draw(_ANY_FLOAT)
    log = draw(st.booleans())
    broken = (
        math.isnan(low)
        or math.isnan(high)
        or math.isinf(low)
        or math.isinf(high)
        or low > high
        or (log and low <= 0)
    )
    if not broken:
        low = math.nextafter(high, math.inf)  # force low > high
    return {"type": "float", "low": low, "high": high, "log": log}


@settings(max_examples=100, deadline=None)
@given(_invalid_bounds())
def test_random_invalid_bounds_always_give_spec_error(entry: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        parse_spec(_with_param("sigma", entry))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(-(2**40), 2**40),
    st.integers(-(2**40), 2**40),
    st.integers(-3, 8),
    st.booleans(),
)
def test_random_integer_ranges_never_raise_anything_but_spec_error(
    low: int, high: int, step: int, log: bool
) -> None:
    entry = {"type": "int", "low": low, "high": high, "step": step, "log": log}
    try:
        spec = parse_spec(_with_param("batch_size", entry))
    except SpecError:
        return
    values = range(low, high + 1, step)
    assert all(v % spec.training.num_instances == 0 for v in values)


@pytest.mark.parametrize(("policy", "offset"), [("shared", 0), ("per_trial", 7)])
def test_seed_policy_sets_each_trials_seed(policy: str, offset: int) -> None:
    raw = tiny_spec().model_dump(mode="json")
    spec = StudySpec.model_validate({**raw, "seed": 3, "seed_policy": policy})
    assert to_train_config(spec, {}, trial_number=7, output_dir="t").seed == 3 + offset
