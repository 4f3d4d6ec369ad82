"""The ready specs in studies/: each loads and maps onto a TrainConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.spec import first_comparable_step
from hpo.spec import load_spec
from hpo.spec import pruner_options
from hpo.spec import to_train_config
from hpo.study import first_prune_epoch

STUDIES = Path(__file__).resolve().parents[2] / "studies"
FULL_SIZE = sorted(p.name for p in STUDIES.glob("*.yaml") if p.name != "demo.yaml")
SEVEN = ["sigma", "alpha", "l", "margin", "beta", "gamma", "weight_decay"]


def test_the_expected_specs_exist() -> None:
    assert FULL_SIZE == [
        "ilidsvid.yaml",
        "mars_map_guided.yaml",
        "mars_map_random.yaml",
        "mars_rerank_map_guided.yaml",
        "mars_rerank_map_random.yaml",
        "prid.yaml",
    ]


@pytest.mark.parametrize("filename", FULL_SIZE)
def test_full_size_specs_use_the_reference_recipe(filename: str) -> None:
    spec = load_spec(STUDIES / filename)
    assert list(spec.search_space) == SEVEN
    assert spec.search_space["margin"].log is True
    cfg = to_train_config(spec, {}, trial_number=0, output_dir="runs/x")
    assert (cfg.epochs, cfg.eval_every) == (121, 10)
    assert (cfg.data.height, cfg.data.width, cfg.data.seq_len) == (224, 112, 4)
    assert (cfg.data.batch_size, cfg.data.num_instances) == (32, 4)
    assert (cfg.model.arch, cfg.model.backbone, cfg.model.pretrained) == ("ta_bt", "resnet50", True)
    assert cfg.optim.milestones == (40, 70) and cfg.optim.lr == 3.5e-4
    assert spec.budget.n_trials == 60


@pytest.mark.parametrize(
    ("filename", "metric", "sampling"),
    [
        ("mars_map_random.yaml", "map", "random"),
        ("mars_map_guided.yaml", "map", "guided"),
        ("mars_rerank_map_random.yaml", "rerank_map", "random"),
        ("mars_rerank_map_guided.yaml", "rerank_map", "guided"),
        ("ilidsvid.yaml", "rank1", "random"),
        ("prid.yaml", "rank1", "random"),
    ],
)
def test_objective_and_validation_sampling(filename: str, metric: str, sampling: str) -> None:
    spec = load_spec(STUDIES / filename)
    assert (spec.objective.metric, spec.validation.sampling) == (metric, sampling)
    assert spec.validation.guided_ids is None
    # Guided = the reference's fixed 32 ids (preset paper), not a colour-histogram guess.
    assert spec.validation.preset == ("paper" if sampling == "guided" else None)
    # Query / gallery built as the reference's (merged per camera, last camera = gallery).
    assert spec.validation.protocol == "reference"


@pytest.mark.parametrize("filename", FULL_SIZE)
def test_full_size_specs_train_and_test_as_the_reference_search(filename: str) -> None:
    cfg = to_train_config(load_spec(STUDIES / filename), {}, trial_number=0, output_dir="x")
    assert cfg.data.epoch_sampling == "per_id"  # each id once per epoch, K=4 tracklets
    assert cfg.data.random_erasing == 0.0  # no erasing in the reference's search
    assert (cfg.data.translation, cfg.data.augment_scope, cfg.data.pad) == (
        "reference",
        "frame",
        10,
    )
    assert (cfg.data.test_clips, cfg.data.test_max_clips) == ("first", 41)


@pytest.mark.parametrize("filename", FULL_SIZE)
def test_full_size_specs_never_prune_before_every_searched_parameter_has_acted(
    filename: str,
) -> None:
    # gamma (searched) acts from the first LR milestone; the schedule rule waits for the
    # final rate (epoch 70), so the first comparison is the evaluation at epoch index 79.
    spec = load_spec(STUDIES / filename)
    options = pruner_options(spec)
    assert "gamma" in spec.search_space and spec.training.milestones[0] == 40
    assert options["n_warmup_steps"] == first_comparable_step(spec) == 70
    assert first_prune_epoch(spec) == 79


def test_study_names_are_unique() -> None:
    names = [load_spec(p).name for p in STUDIES.glob("*.yaml")]
    assert len(names) == len(set(names))


def test_demo_spec_is_small() -> None:
    spec = load_spec(STUDIES / "demo.yaml")
    cfg = to_train_config(spec, {"sigma": 0.5}, trial_number=1, output_dir="demo_out/runs/t1")
    assert spec.dataset.root == "demo_out/data/mars"
    assert cfg.model.backbone in ("resnet10", "resnet18") and cfg.model.pretrained is False
    assert (cfg.model.attention, cfg.data.height, cfg.data.width) == ("pooled", 64, 32)
    assert (cfg.data.batch_size, cfg.data.num_instances, cfg.data.seq_len) == (16, 4, 4)
    assert cfg.epochs <= 8 and cfg.eval_every == 1
    assert spec.budget.n_trials is not None and spec.budget.n_trials <= 10
    assert (spec.sampler.name, spec.pruner.name) == ("tpe", "median")
    assert spec.pruner.options["n_startup_trials"] == 2
