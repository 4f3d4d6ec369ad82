"""``reid-hpo bench search --quick``: real training curves replayed by sampler x pruner studies.

The quick run trains its 3 configurations for real (tiny synthetic MARS, 3 epochs) once for the
module; the assertions are on the JSON structure and on epochs spent, never on timings.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.bench import BENCHMARKS
from hpo.bench._search import QUICK
from hpo.bench._search import Curve
from hpo.bench._search import CurveCache
from hpo.bench._search import StudyTrace
from hpo.bench._search import bench_spec
from hpo.bench._search import config_key
from hpo.bench._search import make_lookup
from hpo.bench._search import param_levels
from hpo.bench._search import snap
from hpo.cli import app
from hpo.spec import FloatParam


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One ``reid-hpo bench search --quick`` run: its JSON and its figure folder."""
    out = tmp_path_factory.mktemp("bench")
    figures = tmp_path_factory.mktemp("search")
    mp = pytest.MonkeyPatch()
    mp.setenv("REID_HPO_BENCH_SEARCH_DIR", str(figures))
    try:
        result = CliRunner().invoke(app, ["bench", "search", "--quick", "--out", str(out)])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
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
    trace = StudyTrace("tpe", "median", 0, epochs=[3, 1, 3], values=[0.5, None, 0.7])
    assert trace.epochs_to_reach(0.6) == 7
    assert trace.epochs_to_reach(0.8) is None
    assert trace.best_so_far() == [(3, 0.5), (4, 0.5), (7, 0.7)]


def test_quick_run_has_rows_for_every_strategy(quick_run: tuple[dict, Path]) -> None:
    data, _ = quick_run
    strategies = {(r["sampler"], r["pruner"]) for r in data["rows"]}
    assert strategies == {(s, p) for s in QUICK.samplers for p in QUICK.pruners}
    assert data["targets"][0]["threshold"] == pytest.approx(1 / 3)


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
    for seed, info in data["details"]["per_seed"].items():
        runs = info["strategies"]
        for sampler in QUICK.samplers:
            unpruned = runs[f"{sampler}/none"]
            assert unpruned["pruned"] == 0
            per_trial_unpruned = unpruned["epochs_spent"] / unpruned["trials"]
            for pruner in ("median", "hyperband", "sha"):
                run = runs[f"{sampler}/{pruner}"]
                assert run["pruned"] > 0, (seed, sampler, pruner)
                assert run["epochs_spent"] / run["trials"] < per_trial_unpruned


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
    for values in series.values():
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
