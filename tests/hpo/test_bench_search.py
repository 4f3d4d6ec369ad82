"""``reid-hpo bench search --quick``: real training curves replayed by sampler x pruner studies.

The quick run trains its 3 configurations for real (tiny synthetic MARS, 4 epochs) once for the
module; the assertions are on the JSON structure and on epochs spent, never on timings.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hpo.bench import BENCHMARKS
from hpo.bench._replay import BUDGET
from hpo.bench._replay import FULL as FULL_EPOCHS
from hpo.bench._replay import LADDER
from hpo.bench._replay import Table
from hpo.bench._replay import Trace
from hpo.bench._replay import build_table
from hpo.bench._replay import replay_brief
from hpo.bench._replay import replay_ladder
from hpo.bench._replay import replay_optuna
from hpo.bench._search import CANDIDATES
from hpo.bench._search import DEFAULT_STRATEGY
from hpo.bench._search import FULL
from hpo.bench._search import QUICK
from hpo.bench._search import Curve
from hpo.bench._search import CurveCache
from hpo.bench._search import Strategy
from hpo.bench._search import StudyTrace
from hpo.bench._search import bench_spec
from hpo.bench._search import config_key
from hpo.bench._search import make_lookup
from hpo.bench._search import param_levels
from hpo.bench._search import select_candidate
from hpo.bench._search import snap
from hpo.bench._search_v2 import FIRST_ROUND
from hpo.bench._search_v2 import FOLLOW_UP
from hpo.bench._search_v2 import LADDER_8
from hpo.bench._search_v2 import QUICK_LABELS
from hpo.bench._search_v2 import STRATEGIES
from hpo.bench._search_v2 import STRATEGIES_8
from hpo.bench._search_v2 import TRAINING_SEEDS
from hpo.bench._search_v2 import _replay_all
from hpo.bench._search_v2 import cache_fingerprint
from hpo.bench._search_v2 import select
from hpo.bench._stats import icc1
from hpo.bench._stats import spearman
from hpo.bench._stats import wilson
from hpo.bench._surrogate import NARROW_BACKBONE
from hpo.bench._surrogate import SHARD_DIR
from hpo.bench._surrogate import eval_epochs
from hpo.bench._surrogate import init_sha256
from hpo.bench._surrogate import load_shards
from hpo.bench._surrogate import mars_space
from hpo.bench._surrogate import scaled_schedule
from hpo.bench._surrogate import shard_path
from hpo.bench._surrogate import sobol_design
from hpo.bench._surrogate import surrogate_spec
from hpo.bench._surrogate import train_shard
from hpo.bench._surrogate import write_shard
from hpo.cli import app
from hpo.search import build_pruner
from hpo.search import build_sampler
from hpo.spec import FloatParam
from hpo.spec import PrunerSpec
from hpo.spec import SamplerSpec
from reid_core.models import build_backbone


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One ``reid-hpo bench search --quick`` run: its JSON and its figure folder."""
    out = tmp_path_factory.mktemp("bench")
    figures = tmp_path_factory.mktemp("search")
    mp = pytest.MonkeyPatch()
    workdir = tmp_path_factory.mktemp("cwd")
    mp.setenv("REID_HPO_BENCH_SEARCH_DIR", str(figures))
    mp.chdir(workdir)
    try:
        result = CliRunner().invoke(app, ["bench", "search", "--quick", "--out", str(out)])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    # The replayed studies' artifacts (their markers) never land in the working directory.
    assert list(workdir.iterdir()) == []
    return json.loads((out / "search.json").read_text()), figures


def test_search_is_registered() -> None:
    assert "search" in BENCHMARKS.names()


def test_levels_are_bin_centres_in_log_space_for_log_ranges() -> None:
    param = FloatParam(type="float", low=1e-6, high=1.0, log=True)
    assert param_levels(param, 3) == pytest.approx([1e-5, 1e-3, 1e-1])


def test_snap_picks_the_nearest_level_in_log_space() -> None:
    spec = bench_spec(QUICK)
    levels = {"weight_decay": [1e-5, 1e-3, 1e-1]}
    # 2e-4 is nearer 1e-3 than 1e-5 in log space (but nearer 1e-5 on a linear scale).
    assert snap({"weight_decay": 2e-4}, levels, spec) == {"weight_decay": 1e-3}


def test_epochs_to_reach_counts_pruned_epochs_and_only_completed_values() -> None:
    trace = StudyTrace(Strategy("tpe", "median"), 0, epochs=[3, 1, 3], values=[0.5, None, 0.7])
    assert trace.epochs_to_reach(0.6) == 7
    assert trace.epochs_to_reach(0.8) is None
    assert trace.best_so_far() == [(3, 0.5), (4, 0.5), (7, 0.7)]


def test_quick_run_has_rows_for_every_strategy(quick_run: tuple[dict, Path]) -> None:
    data, _ = quick_run
    labels = [r["strategy"] for r in data["rows"]]
    grid = [f"{s}/{p}" for s in QUICK.samplers for p in QUICK.pruners]
    assert labels == [*grid, "tpe/median+patience=1"]
    assert data["targets"][0]["threshold"] == pytest.approx(1 / 3)


def test_quick_run_reports_selection_and_heldout_seeds_apart(quick_run: tuple[dict, Path]) -> None:
    data, _ = quick_run
    assert {seed: info["set"] for seed, info in data["details"]["per_seed"].items()} == {
        "0": "selection",
        "1": "held-out",
    }
    row = data["rows"][0]
    assert {"median ratio (selection)", "median ratio (held-out)"} <= set(row)
    # The first target is the default's on the held-out seeds, the second on the selection ones.
    ratios = data["details"]["ratios"][DEFAULT_STRATEGY.label]
    assert [t["value"] for t in data["targets"]] == [ratios["held-out"][0], ratios["selection"][0]]


def test_quick_run_selects_on_the_selection_seeds_only(quick_run: tuple[dict, Path]) -> None:
    data, _ = quick_run
    verdict = data["details"]["candidates"]
    ratios = data["details"]["ratios"]
    chosen = select_candidate(QUICK.candidates, {k: v["selection"] for k, v in ratios.items()})
    assert verdict["selected"] == chosen.label
    assert verdict["confirmed"] == (ratios[chosen.label]["held-out"][0] <= 1 / 3)


def test_quick_run_trained_every_grid_configuration(quick_run: tuple[dict, Path]) -> None:
    data, figures = quick_run
    details = data["details"]
    assert details["grid_size"] == details["grid_cached"] == 3
    lines = (figures / "curves.jsonl").read_text().splitlines()
    curves = [json.loads(line) for line in lines]
    assert {c["key"] for c in curves} == {
        config_key({"weight_decay": v}) for v in details["setup"]["levels"]["weight_decay"]
    }
    assert all(len(c["values"]) == QUICK.epochs for c in curves if c["state"] == "COMPLETE")


def test_pruned_strategies_spend_fewer_epochs_than_unpruned(quick_run: tuple[dict, Path]) -> None:
    data, _ = quick_run
    per_seed = data["details"]["per_seed"].values()
    for sampler in QUICK.samplers:
        for pruner in ("median", "hyperband", "sha"):
            runs = [(info["strategies"][f"{sampler}/{pruner}"], info) for info in per_seed]
            # Every default pruner prunes some trial (the weak configuration) on some seed.
            assert any(run["pruned"] for run, _ in runs), (sampler, pruner)
            for run, info in runs:
                unpruned = info["strategies"][f"{sampler}/none"]
                assert unpruned["pruned"] == 0
                if run["pruned"]:
                    per_trial = run["epochs_spent"] / run["trials"]
                    assert per_trial < unpruned["epochs_spent"] / unpruned["trials"]


def test_baseline_budget_is_trials_times_epochs(quick_run: tuple[dict, Path]) -> None:
    data, _ = quick_run
    for info in data["details"]["per_seed"].values():
        assert info["budget_epochs"] == QUICK.baseline_trials * QUICK.epochs
        assert 0.0 < info["target"] <= 1.0
        baseline = info["strategies"]["random/none"]
        assert baseline["trials"] == QUICK.baseline_trials
        assert baseline["ratio"] is not None and baseline["ratio"] <= 1.0


def test_best_so_far_series_and_figures(quick_run: tuple[dict, Path]) -> None:
    data, figures = quick_run
    series = data["details"]["best_so_far"]
    budget = data["summary"]["baseline epochs"]
    assert set(series) == {"selection", "held-out"}
    for values in (v for by_label in series.values() for v in by_label.values()):
        assert len(values) == budget + 1
        assert all(b >= a for a, b in itertools.pairwise(values))
        assert all(math.isfinite(v) for v in values)
    assert (figures / "search_efficiency.html").stat().st_size > 1000
    assert (figures / "search_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((figures / "figure_data.json").read_text())["best_so_far"] == series


def test_cache_round_trips_and_falls_back_to_the_nearest_curve(tmp_path: Path) -> None:
    spec = bench_spec(QUICK)
    cache = CurveCache(tmp_path / "curves.jsonl")
    low = Curve({"weight_decay": 1e-5}, [0.2, 0.4, 0.6], "COMPLETE")
    high = Curve({"weight_decay": 1e-1}, [0.2, 0.3], "FAIL", fail_reason="nonfinite_loss")
    cache.add(low)
    cache.add(high)
    reread = CurveCache(tmp_path / "curves.jsonl")
    assert reread.get({"weight_decay": 1e-5}) == low
    assert reread.get({"weight_decay": 1e-1}).fail_reason == "nonfinite_loss"
    lookup = make_lookup(QUICK, reread)
    assert lookup({"weight_decay": 1e-5}) == (low, False)
    # 3e-2 is not cached; in log space it is nearest to 1e-1.
    assert lookup({"weight_decay": 3e-2}) == (high, True)
    assert reread.nearest({"weight_decay": 1e-4}, spec) == low


def test_selection_rule_median_then_seeds_within_a_third_then_order() -> None:
    a, b, c = (Strategy("tpe", "median", (("patience", i),)) for i in range(3))
    # b has the smallest median.
    assert select_candidate([a, b, c], {a.label: [0.5], b.label: [0.4], c.label: [0.6]}) == b
    # Equal medians (0.3): c has more seeds <= 1/3.
    ratios = {a.label: [0.1, 0.3, 2.0], b.label: [0.3, 0.3, 2.0], c.label: [0.2, 0.3, 0.3]}
    assert select_candidate([a, b, c], ratios) == c
    # Full tie: the earlier candidate.
    assert select_candidate([b, a], {a.label: [0.2], b.label: [0.2]}) == b


def test_default_row_is_what_a_spec_without_options_builds() -> None:
    spec = bench_spec(FULL, strategy=DEFAULT_STRATEGY, seed=3)
    assert spec.pruner == PrunerSpec()
    assert spec.sampler == SamplerSpec(seed=3)
    plain = spec.model_copy(update={"pruner": PrunerSpec(), "sampler": SamplerSpec(seed=3)})
    built, product = build_pruner(spec), build_pruner(plain)
    assert type(built) is type(product)
    assert vars(built) == vars(product)
    assert type(build_sampler(spec)) is type(build_sampler(plain))
    # On the surrogate's schedule (warm-up 1, milestone 4 of 6 epochs) no trial is compared
    # before epoch index 4.
    assert built._n_warmup_steps == 4


def test_candidates_carry_explicit_options_and_full_setup_confirms_on_new_seeds() -> None:
    assert all(c.pruner_options for c in CANDIDATES)
    assert set(FULL.seeds).isdisjoint(FULL.heldout_seeds)
    assert FULL.candidates == CANDIDATES


# ------------------------------------------------------------------- search v2 (issue 20)


def _table(count: int = 9) -> Table:
    """A hand-made cache: configuration c scores c / 10 on every schedule and seed (the best is
    the last), quality c / 10 too."""
    params = sobol_design(count, mars_space())
    val, rung, test = {}, {}, {}
    for c in range(count):
        for s in (0, 1):
            val[(c, s)] = {e: c / 10 * e / 24 for e in eval_epochs()}
            for epochs in LADDER:
                rung[(c, s, epochs)] = c / 10 * epochs / 24
                test[(c, s, epochs)] = c / 10
    return Table(params, (0, 1), val, rung, test, [c / 10 for c in range(count)])


def _spent_per_step(trace: Trace) -> list[int]:
    spent = [s for s, _ in trace.steps]
    return [b - a for a, b in zip([0, *spent], spent, strict=False)]


def test_sobol_design_covers_the_shipped_mars_space_and_is_a_prefix() -> None:
    space = mars_space()
    assert set(space) == {"sigma", "alpha", "l", "margin", "beta", "gamma", "weight_decay"}
    short, long = sobol_design(8, space), sobol_design(64, space)
    assert short == long[:8]
    for config in long:
        assert all(space[n].low <= v <= space[n].high for n, v in config.items())


def test_compressed_schedules_are_the_products_rungs_and_evaluations_cover_rung_ends() -> None:
    assert LADDER == (3, 8, 24)
    assert scaled_schedule(3) == {"epochs": 3, "warmup_epochs": 0, "milestones": [1, 2]}
    assert scaled_schedule(8) == {"epochs": 8, "warmup_epochs": 1, "milestones": [3, 5]}
    assert eval_epochs() == [2, 3, 4, 6, 8, 9, 10, 12, 14, 15, 16, 18, 20, 22, 24]


def test_narrow_backbone_is_registered_and_small() -> None:
    backbone = build_backbone(NARROW_BACKBONE, pretrained=False)
    assert 1.1e6 < sum(p.numel() for p in backbone.parameters()) < 1.4e6
    assert backbone.out_channels == 256


def test_every_surrogate_run_starts_from_the_committed_weights() -> None:
    # The bench's stand-in for ImageNet weights: two builds are identical, unlike random init.
    assert surrogate_spec("unused", mars_space(), artifacts_root="unused").model.pretrained
    first = build_backbone(NARROW_BACKBONE, pretrained=True).state_dict()
    second = build_backbone(NARROW_BACKBONE, pretrained=True).state_dict()
    fresh = build_backbone(NARROW_BACKBONE, pretrained=False).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["conv1.weight"], fresh["conv1.weight"])
    assert len(init_sha256()) == 64


def test_a_cache_mixing_starting_weights_is_refused(tmp_path: Path) -> None:
    write_shard(shard_path(0, 0, tmp_path), {"config_index": 0, "seed": 0, "init_sha256": "a"})
    write_shard(shard_path(1, 0, tmp_path), {"config_index": 1, "seed": 0})
    with pytest.raises(ValueError, match="2 different starting weights"):
        load_shards(tmp_path)


def test_existing_shard_is_skipped_and_writes_are_atomic(tmp_path: Path) -> None:
    path = shard_path(3, 1, tmp_path)
    write_shard(path, {"config_index": 3, "seed": 1})
    design = sobol_design(4, mars_space())
    # An existing shard is never retrained (a missing data root would fail if it were).
    assert train_shard(3, 1, design=design, data_root=tmp_path / "absent", folder=tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["c003_s1.json"]
    assert load_shards(tmp_path) == [{"config_index": 3, "seed": 1}]


def test_compressed_sha_pays_rung_epochs_and_promotes_a_third(tmp_path: Path) -> None:
    table = _table()
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    trace = replay_ladder(table, spec, kind="sha", sampler="random", seed=0, label="x")
    steps = _spent_per_step(trace)
    assert set(steps) <= set(LADDER)
    assert BUDGET <= trace.steps[-1][0] < BUDGET + FULL_EPOCHS
    n3, n8, n24 = (steps.count(e) for e in LADDER)
    # ASHA: about a third of a rung goes up (a promoted run that later drops out of the top
    # third stays promoted); nobody waits: new configurations keep starting at the bottom.
    assert 0 < n24 < n8 / 2 and n8 < n3 / 2
    assert steps[:3] == [3, 3, 3] and steps[3] == 8
    # The incumbent is the best configuration trained on the full schedule.
    assert trace.incumbent_at(BUDGET) == len(table.params) - 1


def test_ladder_replay_uses_the_products_promotion_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def never(results: dict, promoted: list, eta: int) -> list:
        calls.append(len(results))
        return []

    monkeypatch.setattr("hpo.bench._replay.promotions", never)
    monkeypatch.setattr("hpo.bench._replay.BUDGET", 60)
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    trace = replay_ladder(_table(), spec, kind="sha", sampler="random", seed=0, label="x")
    assert _spent_per_step(trace) == [3] * 20 and calls


def test_compressed_hyperband_starts_brackets_on_every_rung(tmp_path: Path) -> None:
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    trace = replay_ladder(_table(), spec, kind="hyperband", sampler="random", seed=1, label="x")
    steps = _spent_per_step(trace)
    # Bracket 2 starts configurations directly on the full schedule, within the first round.
    assert FULL_EPOCHS in steps[:17] and 8 in steps[:17]
    assert BUDGET <= trace.steps[-1][0] < BUDGET + FULL_EPOCHS


def test_brief_training_spends_n_short_runs_then_k_full_ones(tmp_path: Path) -> None:
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    trace = replay_brief(_table(), spec, epochs=3, n=20, keep=2, seed=0, label="x")
    assert _spent_per_step(trace) == [3] * 20 + [FULL_EPOCHS] * 2
    assert trace.quality_at(_table(), 0) == 0.0


def test_median_pruned_replay_stops_bad_curves_after_the_last_milestone(tmp_path: Path) -> None:
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    trace = replay_optuna(_table(), spec, sampler="random", pruner="median", seed=0, label="x")
    steps = _spent_per_step(trace)
    # Schedule-derived median: no comparison before epoch index 14 (1-based 15).
    assert min(steps) >= 15 and any(s < FULL_EPOCHS for s in steps)
    unpruned = replay_optuna(_table(), spec, sampler="random", pruner="none", seed=0, label="x")
    assert set(_spent_per_step(unpruned)) == {FULL_EPOCHS} and len(unpruned.steps) == 60


def test_statistics() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert icc1([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]) == pytest.approx(1.0)
    assert icc1([[1.0, 2.0], [2.0, 1.0], [1.5, 1.5]]) < 0
    low, high = wilson(7, 10)
    assert (round(low, 3), round(high, 3)) == (0.397, 0.892)


def test_selection_rule_successes_then_tenth_then_order() -> None:
    def row(successes: int, tenth: float) -> dict:
        return {"successes": successes, "diff@1/10": [tenth], "seeds": 10}

    rows = {"tpe+median": row(5, 0.0), "csha-tpe": row(7, -0.02), "chb-tpe": row(7, -0.01)}
    assert select(rows, fidelity_allowed=True) == "chb-tpe"
    assert select(rows, fidelity_allowed=False) == "tpe+median"
    rows["chb-tpe"] = row(7, -0.02)
    assert select(rows, fidelity_allowed=True) == "csha-tpe"


def test_the_follow_up_keeps_its_registered_strategies() -> None:
    # The committed traces (benchmarks/data/search_v2/traces/) were made with these, in this
    # order; the two shared with the first round are its own strategies, taken by label.
    assert [s.label for s in STRATEGIES_8] == [
        "tpe+median",
        "csha8-tpe",
        "chb8-tpe",
        "csha8-random",
        "chb8-random",
        "random-60",
    ]
    first = {s.label: s for s in STRATEGIES}
    assert STRATEGIES_8[0] is first["tpe+median"] and STRATEGIES_8[-1] is first["random-60"]
    assert FOLLOW_UP.strategies is STRATEGIES_8


def test_search_v2_quick_replays_the_committed_cache(tmp_path: Path) -> None:
    shards = load_shards(SHARD_DIR)
    configurations = len(build_table(shards, TRAINING_SEEDS).params)
    mp = pytest.MonkeyPatch()
    mp.setenv("REID_HPO_BENCH_SEARCH_V2_DIR", str(tmp_path / "figures"))
    try:
        result = CliRunner().invoke(app, ["bench", "search-v2", "--quick", "--out", str(tmp_path)])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "search-v2.json").read_text())
    details = data["details"]
    assert details["configurations"] == configurations >= 2
    assert details["shards"] == len(shards)
    assert [r["strategy"] for r in data["rows"]] == [
        s.label for s in STRATEGIES if s.label in QUICK_LABELS
    ]
    for results in details["per_seed"].values():
        baseline = results["random-60"]
        # random-60 matches itself at its own full budget on every seed.
        assert baseline["diff@all"] == [0.0] * baseline["seeds"]
    assert (tmp_path / "figures" / "search_v2.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figures" / "search_v2.html").stat().st_size > 1000


def test_a_stopped_replay_resumes_from_its_stored_traces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    jobs = [("random-60", 0), ("brief3-top6", 1)]
    first = _replay_all(_table(), spec, jobs, processes=1, store=tmp_path / "traces")
    assert sorted(p.name for p in (tmp_path / "traces").iterdir()) == [
        "brief3-top6_s1.json",
        "random-60_s0.json",
    ]

    def never(*args: object) -> Trace:
        raise AssertionError("a stored trace was replayed again")

    monkeypatch.setattr("hpo.bench._search_v2._replay_one", never)
    again = _replay_all(_table(), spec, jobs, processes=1, store=tmp_path / "traces")
    assert again == first
    assert cache_fingerprint([{"a": 1}]) != cache_fingerprint([{"a": 2}])


def test_the_follow_up_round_uses_the_8_epoch_ladder_and_fresh_seeds(tmp_path: Path) -> None:
    spec = surrogate_spec("unused", mars_space(), artifacts_root=tmp_path)
    trace = replay_ladder(
        _table(), spec, kind="sha", sampler="random", seed=0, label="x", ladder=LADDER_8
    )
    steps = _spent_per_step(trace)
    assert set(steps) == {8, FULL_EPOCHS} and steps[:3] == [8, 8, 8]
    # Held-out seeds are spent once: the follow-up's seeds are new to every earlier round.
    first = {*FIRST_ROUND.selection, *FIRST_ROUND.heldout}
    assert not first & {*FOLLOW_UP.selection, *FOLLOW_UP.heldout}
    assert len(FOLLOW_UP.selection) >= 10 and len(FOLLOW_UP.heldout) >= 30
    labels = [s.label for s in FOLLOW_UP.strategies]
    assert labels[0] == "tpe+median" and "random-60" in labels and FOLLOW_UP.gate_rung == 8
