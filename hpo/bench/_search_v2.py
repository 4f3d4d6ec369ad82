"""``search-v2``: search strategies replayed on the surrogate-v2 cache (issue 20).

Reads the committed shards (:mod:`hpo.bench._surrogate`; ``benchmarks/search_v2_fill.py``
fills them), replays every pre-registered strategy (:mod:`hpo.bench._replay`) on the selection
and held-out seeds, and reports, per strategy, the true quality (full-schedule test mAP of the
incumbent) at 1/10, 1/4 and all of random-60's epochs, paired with random-60 on the same seed;
the pre-registered selection of the default and its confirmation on the held-out seeds; the
rank correlations between compressed and full quality; the pilot's seed-noise figures; anytime
figures. Training never happens here: the command replays the committed cache in minutes
(``--quick``: a few seeds and the cheap strategies, seconds).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._replay import BUDGET
from hpo.bench._replay import FULL
from hpo.bench._replay import LADDER
from hpo.bench._replay import Table
from hpo.bench._replay import Trace
from hpo.bench._replay import build_table
from hpo.bench._replay import replay_brief
from hpo.bench._replay import replay_ladder
from hpo.bench._replay import replay_optuna
from hpo.bench._stats import bootstrap
from hpo.bench._stats import icc1
from hpo.bench._stats import spearman
from hpo.bench._stats import wilson
from hpo.bench._surrogate import SHARD_DIR
from hpo.bench._surrogate import load_shards
from hpo.bench._surrogate import mars_space
from hpo.bench._surrogate import surrogate_spec
from hpo.bench._surrogate import write_shard
from hpo.spec import StudySpec

OUT_DIR = Path("benchmarks/data/search_v2")
#: Tolerance of "matches random-60's final true quality" (pre-registered): half a mAP point.
MATCH_TOL = 0.005
#: At 1/10 of the epochs the default must be within this of random-60 (median, paired).
TENTH_TOL = 0.01
SUCCESS_TARGET = 0.70
SPEARMAN_TARGET = 0.6
SELECTION_SEEDS = tuple(range(10))
HELDOUT_SEEDS = tuple(range(100, 130))
TRAINING_SEEDS = (0, 1)
#: Configurations of the full cache (design indices 0-47); fewer is a partial cache.
CACHE_CONFIGS = 48
PILOT_CONFIGS = tuple(range(8))
PILOT_SEEDS = (0, 1, 2)

Replayer = Callable[[Table, StudySpec, int], Trace]


@dataclass(frozen=True)
class Strategy:
    """A pre-registered strategy: its label and how to replay it."""

    label: str
    run: Replayer
    candidate: bool = False


def _optuna(sampler: str, pruner: str, label: str) -> Replayer:
    return lambda t, s, seed: replay_optuna(
        t, s, sampler=sampler, pruner=pruner, seed=seed, label=label
    )


def _ladder(kind: str, sampler: str, label: str, ladder: tuple[int, ...] = LADDER) -> Replayer:
    return lambda t, s, seed: replay_ladder(
        t, s, kind=kind, sampler=sampler, seed=seed, label=label, ladder=ladder
    )


def _brief(epochs: int, n: int, keep: int, label: str) -> Replayer:
    return lambda t, s, seed: replay_brief(
        t, s, epochs=epochs, n=n, keep=keep, seed=seed, label=label
    )


BASELINE = "random-60"
TODAY = "tpe+median"
#: In the pre-registered order (BENCHMARKS.md, "Search efficiency v2"); candidates for the
#: default first, today's default leading (ties keep it).
STRATEGIES: tuple[Strategy, ...] = (
    Strategy(TODAY, _optuna("tpe", "median", TODAY), candidate=True),
    Strategy("csha-tpe", _ladder("sha", "tpe", "csha-tpe"), candidate=True),
    Strategy("chb-tpe", _ladder("hyperband", "tpe", "chb-tpe"), candidate=True),
    Strategy("csha-random", _ladder("sha", "random", "csha-random"), candidate=True),
    Strategy("chb-random", _ladder("hyperband", "random", "chb-random"), candidate=True),
    Strategy(BASELINE, _optuna("random", "none", BASELINE)),
    Strategy("tpe", _optuna("tpe", "none", "tpe")),
    Strategy("gp", _optuna("gp", "none", "gp")),
    Strategy("tpe+sha", _optuna("tpe", "sha", "tpe+sha")),
    Strategy("tpe+hyperband", _optuna("tpe", "hyperband", "tpe+hyperband")),
    Strategy("brief3-top6", _brief(3, 60, 6, "brief3-top6")),
    Strategy("brief8-top4", _brief(8, 30, 4, "brief8-top4")),
)
QUICK_LABELS = ("csha-random", "chb-random", BASELINE, "brief3-top6")
#: The follow-up's ladder (BENCHMARKS.md, "Follow-up: the 8-epoch ladder"): the 3-epoch rung
#: failed the gate, the 8-epoch schedule ranked configurations at 0.78.
LADDER_8 = (8, FULL)
_FIRST_BY_LABEL = {s.label: s for s in STRATEGIES}
#: The follow-up's strategies, pre-registered in this order (today's default leading); the two
#: it shares with the first round are taken by label, so reordering STRATEGIES cannot change it.
STRATEGIES_8: tuple[Strategy, ...] = (
    _FIRST_BY_LABEL[TODAY],
    Strategy("csha8-tpe", _ladder("sha", "tpe", "csha8-tpe", LADDER_8), candidate=True),
    Strategy("chb8-tpe", _ladder("hyperband", "tpe", "chb8-tpe", LADDER_8), candidate=True),
    Strategy("csha8-random", _ladder("sha", "random", "csha8-random", LADDER_8), candidate=True),
    Strategy("chb8-random", _ladder("hyperband", "random", "chb8-random", LADDER_8), True),
    _FIRST_BY_LABEL[BASELINE],
)


@dataclass(frozen=True)
class Round:
    """One pre-registered comparison on the cache.

    Attributes:
        name: The benchmark's name (``reid-hpo bench NAME``).
        strategies: Its strategies in their registered order.
        selection: Seeds the default is selected on.
        heldout: Seeds it is confirmed on, once, on the full cache (never used by another round).
        gate_rung: The compressed schedule whose Spearman with the true quality gates the
            fidelity candidates.
        stem: File stem of its figures.
    """

    name: str
    strategies: tuple[Strategy, ...]
    selection: tuple[int, ...]
    heldout: tuple[int, ...]
    gate_rung: int
    stem: str


FIRST_ROUND = Round("search-v2", STRATEGIES, SELECTION_SEEDS, HELDOUT_SEEDS, LADDER[0], "search_v2")
FOLLOW_UP = Round(
    "search-v2-rung8",
    STRATEGIES_8,
    tuple(range(10, 20)),
    tuple(range(200, 230)),
    LADDER_8[0],
    "search_v2_rung8",
)

POINTS = {"1/10": BUDGET // 10, "1/4": BUDGET // 4, "all": BUDGET}


_BY_LABEL = {s.label: s for s in (*STRATEGIES, *STRATEGIES_8)}
_ORDER = list(_BY_LABEL)


def _replay_one(table: Table, spec: StudySpec, label: str, seed: int) -> Trace:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return _BY_LABEL[label].run(table, spec, seed)


def _replay_all(
    table: Table,
    spec: StudySpec,
    jobs: list[tuple[str, int]],
    *,
    processes: int,
    store: Path | None = None,
) -> dict[tuple[str, int], Trace]:
    """Every ``(label, seed)`` replay, in ``processes`` worker processes (1: in this one).

    With ``store``, each trace is written there as it finishes and traces already there are
    read instead of replayed, so a long replay resumes where it was stopped."""
    done = {job: trace for job in jobs if (trace := _stored_trace(store, job)) is not None}
    todo = [job for job in jobs if job not in done]
    if processes <= 1:
        for job in todo:
            done[job] = _keep(store, _replay_one(table, spec, *job))
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            futures = [pool.submit(_replay_one, table, spec, *job) for job in todo]
            for future in as_completed(futures):
                trace = _keep(store, future.result())
                done[(trace.label, trace.seed)] = trace
    return {job: done[job] for job in jobs}


def cache_fingerprint(shards: list[dict[str, Any]]) -> str:
    """12 hex digits naming the shards' contents: traces stored under it belong to this cache."""
    text = json.dumps(shards, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _trace_path(store: Path, job: tuple[str, int]) -> Path:
    label, seed = job
    return store / f"{label.replace('+', '_')}_s{seed}.json"


def _stored_trace(store: Path | None, job: tuple[str, int]) -> Trace | None:
    if store is None or not _trace_path(store, job).is_file():
        return None
    data = json.loads(_trace_path(store, job).read_text())
    return Trace(data["label"], data["seed"], [(spent, inc) for spent, inc in data["steps"]])


def _keep(store: Path | None, trace: Trace) -> Trace:
    if store is not None:
        payload = {"label": trace.label, "seed": trace.seed, "steps": trace.steps}
        write_shard(_trace_path(store, (trace.label, trace.seed)), payload)
    return trace


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def evaluate_traces(
    table: Table, traces: dict[tuple[str, int], Trace], seeds: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    """Per strategy on ``seeds``: true quality at each budget point, paired differences with
    random-60's final true quality on the same seed, and the success count at 1/4."""
    out: dict[str, dict[str, Any]] = {}
    labels = sorted({label for label, _ in traces}, key=_ORDER.index)
    for label in labels:
        row: dict[str, Any] = {}
        base = [traces[(BASELINE, s)].quality_at(table, BUDGET) for s in seeds]
        for name, epochs in POINTS.items():
            q = [traces[(label, s)].quality_at(table, epochs) for s in seeds]
            row[f"quality@{name}"] = q
            row[f"diff@{name}"] = [a - b for a, b in zip(q, base, strict=True)]
        row["successes"] = sum(d >= -MATCH_TOL for d in row["diff@1/4"])
        row["seeds"] = len(seeds)
        out[label] = row
    return out


def select(
    selection: dict[str, dict[str, Any]],
    fidelity_allowed: bool,
    strategies: tuple[Strategy, ...] = STRATEGIES,
) -> str | None:
    """The pre-registered rule: among the candidates (fidelity ones only when the compressed
    rung's Spearman passed), the most successes at 1/4 on the selection seeds; ties: the larger
    median paired difference at 1/10; then the earlier candidate."""
    candidates = [
        s.label
        for s in strategies
        if s.candidate and s.label in selection and (fidelity_allowed or s.label == TODAY)
    ]

    def rank(item: tuple[int, str]) -> tuple[float, float, int]:
        index, label = item
        row = selection[label]
        return (-row["successes"], -_median(row["diff@1/10"]), index)

    return min(enumerate(candidates), key=rank)[1] if candidates else None


def rank_correlations(table: Table, resamples: int = 1000) -> dict[str, dict[str, float]]:
    """Spearman between each schedule's validation mAP (mean over seeds; compressed runs and the
    full run cut at the same epoch) and the true quality, with a bootstrap over configurations."""
    n = len(table.params)
    out: dict[str, dict[str, float]] = {}

    def mean_over_seeds(get: Callable[[int, int], float]) -> list[float]:
        return [statistics.fmean(get(c, s) for s in table.seeds) for c in range(n)]

    sources: dict[str, list[float]] = {}
    for epochs in (*LADDER[:-1], FULL):
        sources[f"compressed {epochs} ep (val)" if epochs != FULL else "full 24 ep (val)"] = (
            mean_over_seeds(lambda c, s, e=epochs: _nan0(table.rung[(c, s, e)]))
        )
        sources[f"compressed {epochs} ep (test)" if epochs != FULL else "full 24 ep (test)"] = (
            mean_over_seeds(lambda c, s, e=epochs: _nan0(table.test[(c, s, e)]))
        )
    for epochs in LADDER[:-1]:
        sources[f"full run cut at {epochs} ep (val)"] = mean_over_seeds(
            lambda c, s, e=epochs: table.val[(c, s)].get(e, 0.0)
        )
    for name, values in sources.items():
        rho = spearman(values, table.quality)
        low, high = bootstrap(
            n,
            lambda idx, v=values: spearman([v[i] for i in idx], [table.quality[i] for i in idx]),
            resamples=resamples,
        )
        out[name] = {"spearman": round(rho, 3), "low": round(low, 3), "high": round(high, 3)}
    return out


def _nan0(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def pilot_figures(shards: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Seed noise of the pilot (configurations 0-7, the pilot seeds present for all of them,
    full-schedule test mAP): ICC(1), Spearman between seeds, within- and between-configuration
    spread, gamma's main effect against the noise of that difference. None below 2 seeds."""
    pilot = [s for s in shards if s["config_index"] in PILOT_CONFIGS]
    seeds = tuple(
        seed
        for seed in PILOT_SEEDS
        if {s["config_index"] for s in pilot if s["seed"] == seed} == set(PILOT_CONFIGS)
    )
    if len(seeds) < 2:
        return None
    table = build_table(pilot, seeds)
    n = len(table.params)
    groups = [[_nan0(table.test[(c, s, FULL)]) for s in seeds] for c in range(n)]
    val_groups = [[_nan0(table.rung[(c, s, FULL)]) for s in seeds] for c in range(n)]
    pairs = [(i, j) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
    within = math.sqrt(statistics.fmean(statistics.variance(g) for g in groups))
    means = [statistics.fmean(g) for g in groups]
    gammas = [p["gamma"] for p in table.params]
    cut = statistics.median(gammas)
    high = [m for m, g in zip(means, gammas, strict=True) if g > cut]
    low = [m for m, g in zip(means, gammas, strict=True) if g <= cut]
    return {
        "configurations": n,
        "seeds": list(seeds),
        "test_map": [[round(v, 4) for v in g] for g in groups],
        "icc1_test": round(icc1(groups), 3),
        "icc1_val": round(icc1(val_groups), 3),
        "spearman_between_seeds_test": [
            round(spearman([g[i] for g in groups], [g[j] for g in groups]), 3) for i, j in pairs
        ],
        "spearman_between_seeds_val": [
            round(spearman([g[i] for g in val_groups], [g[j] for g in val_groups]), 3)
            for i, j in pairs
        ],
        "within_config_sd": round(within, 4),
        "between_config_sd": round(statistics.stdev(means), 4),
        "range_of_config_means": round(max(means) - min(means), 4),
        "gamma_spearman": round(spearman(gammas, means), 3),
        "gamma_high_minus_low": round(statistics.fmean(high) - statistics.fmean(low), 4),
        "noise_se_of_that_difference": round(
            within * math.sqrt(1 / (len(high) * len(seeds)) + 1 / (len(low) * len(seeds))), 4
        ),
        "full_curve_s": round(statistics.fmean(s["runs"][str(FULL)]["train_s"] for s in pilot), 1),
        "shard_s": round(
            statistics.fmean(sum(r["train_s"] for r in s["runs"].values()) for s in pilot), 1
        ),
    }


def main_effects(table: Table) -> dict[str, float]:
    """Each parameter's main effect on the true quality: the mean quality of the configurations
    above its median minus that below."""
    out = {}
    for name in table.params[0]:
        values = [p[name] for p in table.params]
        cut = statistics.median(values)
        high = [q for q, v in zip(table.quality, values, strict=True) if v > cut]
        low = [q for q, v in zip(table.quality, values, strict=True) if v <= cut]
        out[name] = round(statistics.fmean(high) - statistics.fmean(low), 4)
    return out


def anytime(
    table: Table, traces: dict[tuple[str, int], Trace], seeds: tuple[int, ...], step: int = 24
) -> dict[str, list[float]]:
    """Median over ``seeds`` of the incumbent's true quality every ``step`` epochs."""
    labels = sorted({label for label, _ in traces}, key=_ORDER.index)
    return {
        label: [
            round(_median([traces[(label, s)].quality_at(table, e) for s in seeds]), 5)
            for e in range(0, BUDGET + 1, step)
        ]
        for label in labels
    }


def write_figures(
    series: dict[str, dict[str, list[float]]], out_dir: Path, step: int, stem: str = "search_v2"
) -> dict:
    """Anytime true quality (median over seeds) per strategy: one panel per seed set; HTML + PNG."""
    from plotly.subplots import make_subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    sets = list(series)
    fig = make_subplots(rows=1, cols=len(sets), shared_yaxes=True, subplot_titles=sets)
    for col, name in enumerate(sets, start=1):
        for label, values in series[name].items():
            x = list(range(0, step * len(values), step))
            fig.add_scatter(
                x=x,
                y=values,
                mode="lines",
                name=label,
                legendgroup=label,
                line={"shape": "hv"},
                showlegend=col == 1,
                row=1,
                col=col,
            )
        for frac in (10, 4):
            fig.add_vline(x=BUDGET / frac, line={"dash": "dash", "color": "black"}, row=1, col=col)
        fig.update_xaxes(title_text="epochs spent", row=1, col=col)
    fig.update_yaxes(title_text="true quality of the incumbent (test mAP, median)", row=1, col=1)
    fig.update_layout(
        title="Search v2: anytime true quality (dashed: 1/10 and 1/4 of random-60's epochs)",
        width=700 * len(sets),
        height=520,
    )
    paths = {"html": str(out_dir / f"{stem}.html")}
    fig.write_html(paths["html"], include_plotlyjs=True, full_html=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(sets), figsize=(7 * len(sets), 5), sharey=True, squeeze=False
    )
    for col, name in enumerate(sets):
        ax = axes[0][col]
        for label, values in series[name].items():
            x = list(range(0, step * len(values), step))
            style = "-" if label in (BASELINE, TODAY) or label.startswith("c") else "--"
            ax.step(x, values, where="post", label=label, linestyle=style)
        for frac in (10, 4):
            ax.axvline(BUDGET / frac, linestyle=":", color="black", linewidth=1)
        ax.set_title(f"seeds: {name}")
        ax.set_xlabel("epochs spent")
        ax.grid(alpha=0.3)
        positive = [v for vals in series[name].values() for v in vals if v > 0]
        if positive:
            ax.set_ylim(bottom=min(positive) - 0.01)
    axes[0][0].set_ylabel("true quality of the incumbent (test mAP, median)")
    axes[0][-1].legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    paths["png"] = str(out_dir / f"{stem}.png")
    figure.savefig(paths["png"], dpi=100)
    plt.close(figure)
    return paths


@BENCHMARKS.register("search-v2")
def bench_search_v2(options: BenchOptions) -> BenchResult:
    """Search efficiency v2: strategies replayed on the committed surrogate-v2 cache (issue 20)."""
    return _bench_round(options, FIRST_ROUND)


@BENCHMARKS.register("search-v2-rung8")
def bench_search_v2_rung8(options: BenchOptions) -> BenchResult:
    """The follow-up of search-v2: compressed SHA/Hyperband over the 8-epoch ladder, on fresh
    selection and held-out seeds (BENCHMARKS.md, "Follow-up: the 8-epoch ladder")."""
    return _bench_round(options, FOLLOW_UP)


def _bench_round(options: BenchOptions, plan: Round) -> BenchResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shard_dir = Path(os.environ.get("REID_HPO_BENCH_SEARCH_V2_SHARDS", str(SHARD_DIR)))
    out_dir = Path(os.environ.get("REID_HPO_BENCH_SEARCH_V2_DIR", str(OUT_DIR)))
    shards = load_shards(shard_dir)
    table = build_table(shards, TRAINING_SEEDS)
    if len(table.params) < 2:
        raise FileNotFoundError(f"fewer than 2 complete configurations in {shard_dir}")
    artifacts = tempfile.TemporaryDirectory(prefix="reid-hpo-bench-search-v2-")
    spec = surrogate_spec("unused", mars_space(), artifacts_root=artifacts.name)
    partial = len(table.params) < CACHE_CONFIGS
    strategies = [s for s in plan.strategies if not options.quick or s.label in QUICK_LABELS]
    # The held-out seeds are run once, on the full cache (pre-registered): a partial cache or a
    # quick run replays selection seeds only.
    sets = {"selection": plan.selection[:2] if options.quick else plan.selection}
    if not partial and not options.quick:
        sets["held-out"] = plan.heldout
    started = time.monotonic()
    jobs = [(s.label, seed) for s in strategies for seeds in sets.values() for seed in seeds]
    # Traces of the full run are kept (and reused) per cache; a quick run keeps none.
    store = None if options.quick else out_dir / "traces" / cache_fingerprint(shards)
    with artifacts:
        traces = _replay_all(table, spec, jobs, processes=options.threads, store=store)
    correlations = rank_correlations(table, resamples=200 if options.quick else 1000)
    bottom = correlations[f"compressed {plan.gate_rung} ep (val)"]["spearman"]
    fidelity_allowed = bottom >= SPEARMAN_TARGET
    per_set = {name: evaluate_traces(table, traces, seeds) for name, seeds in sets.items()}
    chosen = select(per_set["selection"], fidelity_allowed, plan.strategies)
    confirm_set = "held-out" if "held-out" in per_set else "selection"
    rows = []
    for label in per_set["selection"]:
        row: dict[str, Any] = {"strategy": label}
        for name, results in per_set.items():
            r = results[label]
            low, high = wilson(r["successes"], r["seeds"])
            row[f"match@1/4 ({name})"] = f"{r['successes']}/{r['seeds']} [{low:.2f}, {high:.2f}]"
            for point in ("1/10", "1/4", "all"):
                row[f"median diff@{point} ({name})"] = round(_median(r[f"diff@{point}"]), 4)
            row[f"median quality@all ({name})"] = round(_median(r["quality@all"]), 4)
        rows.append(row)
    step = 24
    series = {name: anytime(table, traces, seeds, step) for name, seeds in sets.items()}
    figures = write_figures(series, out_dir, step, plan.stem)
    verdict: dict[str, Any] = {
        "rule": "candidates in order; fidelity candidates only if the bottom rung's Spearman >= "
        f"{SPEARMAN_TARGET}; most seeds matching random-60 (diff >= -{MATCH_TOL}) at 1/4 of its "
        "epochs on the selection seeds, ties: larger median paired diff at 1/10, then order; "
        f"confirmed if on the held-out seeds the success fraction >= {SUCCESS_TARGET} and the "
        f"median diff at 1/10 >= -{TENTH_TOL}",
        "partial": partial,
        "fidelity_allowed": fidelity_allowed,
        "selected": chosen,
    }
    targets = [
        Target(
            f"Spearman, {plan.gate_rung}-epoch compressed val mAP vs true quality",
            bottom,
            SPEARMAN_TARGET,
        )
    ]
    if chosen is not None:
        result = per_set[confirm_set][chosen]
        success = result["successes"] / result["seeds"]
        tenth = _median(result["diff@1/10"])
        if confirm_set == "held-out":
            verdict["confirmed"] = success >= SUCCESS_TARGET and tenth >= -TENTH_TOL
            verdict["adopted"] = chosen if verdict["confirmed"] else TODAY
        else:
            verdict["confirmed"] = None
            verdict["adopted"] = TODAY
        targets += [
            Target(
                f"selected {chosen}: {confirm_set} seeds matching random-60 at 1/4 of its epochs",
                success,
                SUCCESS_TARGET,
            ),
            Target(
                f"selected {chosen}: median paired diff at 1/10 of the epochs ({confirm_set})",
                tenth,
                -TENTH_TOL,
            ),
        ]
    details = {
        "environment": environment(options),
        "configurations": len(table.params),
        "training_seeds": list(table.seeds),
        "shards": len(shards),
        "seeds": {name: list(seeds) for name, seeds in sets.items()},
        "budget_epochs": BUDGET,
        "ladder": list(LADDER),
        "rank_correlations": correlations,
        "main_effects": main_effects(table),
        "quality": {
            "min": round(min(table.quality), 4),
            "median": round(_median(table.quality), 4),
            "max": round(max(table.quality), 4),
        },
        "pilot": pilot_figures(shards),
        "verdict": verdict,
        "per_seed": per_set,
        "anytime": series,
        "figures": figures,
        "studies_s": round(time.monotonic() - started, 1),
    }
    (out_dir / f"{plan.stem}_figure_data.json").write_text(
        json.dumps(
            {
                "configurations": len(table.params),
                "partial": partial,
                "anytime_step_epochs": step,
                "anytime": series,
                "verdict": verdict,
            },
            indent=1,
        )
        + "\n"
    )
    label = f"PARTIAL cache: {len(table.params)} of {CACHE_CONFIGS}" if partial else "full cache"
    return BenchResult(
        name=plan.name,
        title=f"{plan.name} ({label} configurations x {len(table.seeds)} training seeds): true "
        f"quality vs random-60 ({BUDGET} epochs)",
        columns=list(rows[0]),
        rows=rows,
        targets=targets,
        summary={
            "configurations": float(len(table.params)),
            "shards": float(len(shards)),
            "partial": float(partial),
        },
        details=details,
    )
