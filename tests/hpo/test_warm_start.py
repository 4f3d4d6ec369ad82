"""Warm start (``warm_start:`` in the spec): configurations and presets enqueued at creation,
in order and once, refused when they do not fit the search space, the best trials of a
finished study copied, and all of them run first by a real worker, inside the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.errors import SpecError
from hpo.errors import StudyNotFoundError
from hpo.spec import StudySpec
from hpo.spec import parse_spec
from hpo.spec import warm_start_configs
from hpo.study import TrialAttr
from hpo.study import create_study
from hpo.worker import run_worker
from reid_core.config import LossConfig
from tests._helpers.specs import SEVEN_PARAMS
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import trials_of
from tests.hpo._worker_support import write_spec

_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _raw(tmp_path: Path, data_root: Path, name: str, **kwargs: Any) -> dict[str, Any]:
    warm_start = kwargs.pop("warm_start", None)
    raw = spec_dict(name=name, data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    if warm_start is not None:
        raw["warm_start"] = warm_start
    return raw


def _spec(tmp_path: Path, data_root: Path, name: str, **kwargs: Any) -> StudySpec:
    return StudySpec.model_validate(_raw(tmp_path, data_root, name, **kwargs))


def _warm(trials: list[Any]) -> list[tuple[dict[str, Any], str | None]]:
    return [(t.params, t.user_attrs.get(TrialAttr.WARM_START)) for t in trials]


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# ------------------------------------------------------------------------- spec checks


def test_presets_take_their_values_from_the_recipe_and_fit_them_into_the_space(
    tmp_path: Path, data_root: Path
) -> None:
    raw = _raw(tmp_path, data_root, "p", n_trials=4, warm_start={"preset": "bot_defaults"})
    raw["search_space"]["beta"] = {"type": "float", "low": 1.0e-6, "high": 1.0}
    (config,) = warm_start_configs(parse_spec(raw))
    loss = LossConfig()
    assert config.source == "preset:bot_defaults"
    # beta 0 (bag of tricks without OSM) lies below the range: moved to its low bound.
    assert config.params == {"sigma": loss.osm_sigma, "margin": loss.triplet_margin, "beta": 1e-6}
    assert config.notes == ("warm_start.preset bot_defaults: beta=0.0 moved to 1e-06",)


def test_the_paper_preset_enqueues_configuration_59_on_mars_and_the_prid_one_on_prid(
    tmp_path: Path, data_root: Path
) -> None:
    raw = _raw(tmp_path, data_root, "p", n_trials=4, warm_start={"preset": "paper"})
    raw["search_space"] = SEVEN_PARAMS  # the reference's search space
    raw["training"]["milestones"] = [1]  # gamma is searched: a milestone inside the epochs
    # Written from bagoftricks.py:132-147 (README.md: "Use 59 configuration ... for MARS").
    mars = {"sigma": 0.9047814732165316, "alpha": 2.8436551583293728, "l": 0.5873389293193368}
    mars |= {"margin": 4.4132437486402204e-05, "beta": 1.0, "gamma": 0.3282654557691594}
    prid = {"sigma": 0.8769823511927456, "alpha": 1.5747007053351507, "l": 0.5241677630566622}
    prid |= {"margin": 0.040520629258433416, "beta": 0.7103921571238655}
    prid |= {"gamma": 0.368667605025003, "weight_decay": 0.014055481861393148}
    (config,) = warm_start_configs(parse_spec(raw))
    assert (config.source, config.params, config.notes) == (
        "preset:paper",
        {**mars, "weight_decay": 0.0005},
        (),
    )
    raw["dataset"] = {"name": "prid", "root": str(tmp_path / "prid"), "split_id": 0}
    (config,) = warm_start_configs(parse_spec(raw))
    assert config.params == prid


def test_a_preset_that_sets_no_searched_parameter_is_refused(
    tmp_path: Path, data_root: Path
) -> None:
    raw = _raw(tmp_path, data_root, "p", n_trials=4, warm_start={"preset": "paper"})
    raw["search_space"] = {"lr": {"type": "float", "low": 1e-4, "high": 1e-3}}
    with pytest.raises(SpecError, match=r"warm_start\.preset paper: sets none"):
        parse_spec(raw)


@pytest.mark.parametrize(
    ("warm_start", "expected"),
    [
        (
            {"configs": [{"sigma": 0.5}, {"sigma": 0.2, "margin": 1.5}]},
            "warm_start.configs.1.margin: 1.5 is outside the search range [0.001, 1.0]",
        ),
        (
            {"configs": [{"sigmaa": 0.5}]},
            "warm_start.configs.0.sigmaa: not in this study's search space (margin, sigma)",
        ),
        ({"configs": [{"sigma": "0.5"}]}, "warm_start.configs.0.sigma: '0.5' is not a number"),
        ({"preset": "best"}, "warm_start.preset"),
        (
            {"from_study": {"name": "src", "top_k": 9}},
            "warm_start: enqueues up to 9 trials but budget.n_trials is 4",
        ),
        (
            {"from_study": {"name": "src", "storage": "postgresql://u:secret@db/x"}},
            "warm_start.from_study.storage: the URL carries a credential (postgresql://u:***@db/x)",
        ),
    ],
    ids=["out-of-range", "unknown-name", "not-a-number", "bad-preset",
         "over-budget", "password-in-url"],
)  # fmt: skip
def test_study_create_refuses_what_does_not_fit_in_one_line(
    warm_start: dict[str, Any], expected: str, tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    raw = _raw(tmp_path, data_root, "bad", n_trials=4, warm_start=warm_start)
    spec_file = write_spec(tmp_path / "bad.yaml", raw)
    line = _one_error_line(["study", "create", str(spec_file), "--storage", sqlite_url])
    assert expected in line
    assert "secret" not in line
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


# ---------------------------------------------------------------------- on the storage


def test_configs_then_preset_are_enqueued_first_in_order_and_once(
    tmp_path: Path, data_root: Path, url: str
) -> None:
    configs = [{"sigma": 0.9, "margin": 0.01}, {"sigma": 0.3}, {"sigma": 0.9, "margin": 0.01}]
    warm_start = {"configs": configs, "preset": "bot_defaults"}
    raw = _raw(tmp_path, data_root, "ws", n_trials=5, warm_start=warm_start)
    spec_file = write_spec(tmp_path / "ws.yaml", raw)
    created = CliRunner().invoke(app, ["study", "create", str(spec_file), "--storage", url])
    assert created.exit_code == 0, created.output
    assert "Queued 3 warm-start trial(s) first" in created.output
    expected = [
        ({}, "configs.0"),
        ({}, "configs.1"),
        ({}, "preset:bot_defaults"),
    ]
    trials = trials_of("ws", url)
    # WAITING trials hold their parameters as fixed params, not yet as trial params.
    assert [t.state for t in trials] == [TrialState.WAITING] * 3
    assert _warm(trials) == expected  # configs.2 equals configs.0: skipped

    for _ in range(2):
        resumed = CliRunner().invoke(
            app, ["study", "create", str(spec_file), "--storage", url, "--resume"]
        )
        assert resumed.exit_code == 0, resumed.output
        assert "Queued" not in resumed.output
    assert len(trials_of("ws", url)) == 3

    result = run_worker("ws", url, trainer_factory=fake_trainer_factory())
    trials = trials_of("ws", url)
    loss = LossConfig()
    assert _warm(trials[:3]) == [
        ({"sigma": 0.9, "margin": 0.01}, "configs.0"),
        ({"sigma": 0.3, "margin": trials[1].params["margin"]}, "configs.1"),
        ({"sigma": loss.osm_sigma, "margin": loss.triplet_margin}, "preset:bot_defaults"),
    ]
    assert 1e-3 <= trials[1].params["margin"] <= 1.0  # drawn by the sampler
    # The fake trainer's metric is sigma: the warm-start trials really trained.
    assert [t.value for t in trials[:3]] == pytest.approx([0.9, 0.3, loss.osm_sigma])
    # They count toward the budget of 5: two sampled trials follow, then the worker stops.
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert [TrialAttr.WARM_START in t.user_attrs for t in trials] == [True] * 3 + [False] * 2
    assert (result.trials_run, result.stop_reason) == (5, "budget")


def test_from_study_copies_the_best_trials_of_a_finished_study(
    tmp_path: Path, data_root: Path, url: str
) -> None:
    # The source searched sigma by its long name: matched by the TrainConfig path it sets.
    raw = _raw(tmp_path, data_root, "src", n_trials=4)
    raw["search_space"] = {"loss.osm_sigma": raw["search_space"]["sigma"]}
    create_study(parse_spec(raw), url)
    run_worker("src", url, trainer_factory=fake_trainer_factory())
    source = sorted(trials_of("src", url), key=lambda t: -t.value)
    assert len(source) == 4

    # A narrower space: the best sigma lies above its high bound and is moved onto it; the
    # second one fits; margin (not in the source) is drawn by the sampler.
    best, second = (t.params["loss.osm_sigma"] for t in source[:2])
    high = (best + second) / 2
    warm_start = {"from_study": {"name": "src", "top_k": 2}}
    narrow = _raw(tmp_path, data_root, "dst", n_trials=3, warm_start=warm_start)
    narrow["search_space"]["sigma"]["high"] = high
    create_study(parse_spec(narrow), url)
    expected = [(high, f"study:src#{source[0].number}"), (second, f"study:src#{source[1].number}")]
    run_worker("dst", url, trainer_factory=fake_trainer_factory())
    trials = trials_of("dst", url)
    assert [(t.params["sigma"], t.user_attrs[TrialAttr.WARM_START]) for t in trials[:2]] == (
        expected
    )
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3


def test_from_study_in_another_storage(tmp_path: Path, data_root: Path, sqlite_url: str) -> None:
    other = f"sqlite:///{tmp_path / 'mars.db'}"
    create_study(_spec(tmp_path, data_root, "mars", n_trials=2), other)
    run_worker("mars", other, trainer_factory=fake_trainer_factory())
    (best,) = sorted(trials_of("mars", other), key=lambda t: -t.value)[:1]
    warm_start = {"from_study": {"name": "mars", "top_k": 1, "storage": other}}
    create_study(_spec(tmp_path, data_root, "prid", n_trials=2, warm_start=warm_start), sqlite_url)
    (queued,) = trials_of("prid", sqlite_url)
    assert queued.user_attrs[TrialAttr.WARM_START] == f"study:mars#{best.number}"
    run_worker("prid", sqlite_url, max_trials=1, trainer_factory=fake_trainer_factory())
    assert trials_of("prid", sqlite_url)[0].params == best.params


def test_a_source_that_cannot_seed_leaves_no_study_behind(
    tmp_path: Path, data_root: Path, url: str
) -> None:
    warm_start = {"from_study": {"name": "src", "top_k": 1}}
    spec = _spec(tmp_path, data_root, "dst", n_trials=2, warm_start=warm_start)
    with pytest.raises(StudyNotFoundError, match="from_study: no study 'src'"):
        create_study(spec, url)
    create_study(_spec(tmp_path, data_root, "src", n_trials=2), url)  # no trial has run
    with pytest.raises(SpecError, match="study 'src' has no COMPLETE trial with a finite value"):
        create_study(spec, url)
    assert optuna.get_all_study_names(storage=url) == ["src"]
