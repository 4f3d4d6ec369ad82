"""Benchmarks of reid_core.metrics: ``ranking``, ``rerank`` and ``scaling``.

Each measurement runs in a fresh child process (``hpo.bench._child``) so that its peak RSS and
its thread settings are its own. Inputs are MARS-like synthetic features
(:func:`hpo.bench._data.mars_like_features`): 1,980 queries and 9,330 gallery tracklets of
2,048-d at full size.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpo.bench._data import mars_like_features
from hpo.bench._data import squared_distances
from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._registry import run_child
from reid_core.metrics import evaluate_ranking_full
from reid_core.metrics import rerank
from reid_core.metrics.reference import evaluate_ranking_loop
from reid_core.metrics.reference import rerank_loop

RANKING_TARGET = 20.0
RANKING_REPEATS = 7
RERANK_TARGET = 25.0
RERANK_MEMORY_TARGET_MB = 1500.0


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def _rss_now_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return _peak_rss_mb()
    return pages * resource.getpagesize() / 1e6


def child_ranking(scale: float, seed: int, repeats: int, official: bool) -> dict[str, Any]:
    """Time evaluate_ranking_full and the per-query loop side by side on one distance matrix.

    The timed loop uses ``np.argsort``'s default quicksort, as the reference code did. One
    untimed warm-up call of each comes first (first-touch page faults of the buffers).
    """
    feats = mars_like_features(scale, seed=seed)
    if official:
        feats = feats.with_queries_in_gallery()
    dist = squared_distances(feats.q_feats, feats.g_feats)
    args = (dist, feats.q_pids, feats.g_pids, feats.q_camids, feats.g_camids)
    ours_times, loop_times = [], []
    evaluate_ranking_full(*args)
    evaluate_ranking_loop(*args, sort_kind="quicksort")
    for _ in range(repeats):
        start = time.perf_counter()
        ours = evaluate_ranking_full(*args)
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        loop = evaluate_ranking_loop(*args, sort_kind="quicksort")
        loop_times.append(time.perf_counter() - start)
    ours_s, loop_s = float(np.median(ours_times)), float(np.median(loop_times))
    # Equality is checked against the stable-sort loop: the quicksort one orders ties arbitrarily.
    loop = evaluate_ranking_loop(*args)
    return {
        "gallery": "incl. queries" if official else "excl. queries",
        "num_query": int(dist.shape[0]),
        "num_gallery": int(dist.shape[1]),
        "ours_s": ours_s,
        "loop_s": loop_s,
        "speedup": loop_s / ours_s,
        "max_cmc_diff": float(np.abs(ours.cmc - loop.cmc).max()),
        "map_diff": abs(ours.mAP - loop.mAP),
        "mAP": ours.mAP,
        "rank1": float(ours.cmc[0]),
    }


def child_rerank(impl: str, scale: float, seed: int, out: str | None) -> dict[str, Any]:
    """Time one re-ranking implementation; peak RSS of this process; save the result."""
    feats = mars_like_features(scale, seed=seed)
    q_feats, g_feats = feats.q_feats, feats.g_feats
    del feats
    start_rss = _rss_now_mb()
    start = time.perf_counter()
    if impl == "ours":
        result = rerank(q_feats, g_feats)
    else:
        result = rerank_loop(q_feats, g_feats, dtype=np.float16 if impl == "loop16" else np.float32)
    seconds = time.perf_counter() - start
    peak = _peak_rss_mb()
    if out:
        np.save(out, result)
    return {"seconds": seconds, "peak_rss_mb": peak, "start_rss_mb": start_rss}


def child_scaling(scale: float, seed: int) -> dict[str, Any]:
    """Time evaluate_ranking_full and rerank at one size; peak RSS of the process."""
    feats = mars_like_features(scale, seed=seed)
    dist = squared_distances(feats.q_feats, feats.g_feats)
    start = time.perf_counter()
    evaluate_ranking_full(dist, feats.q_pids, feats.g_pids, feats.q_camids, feats.g_camids)
    ranking_s = time.perf_counter() - start
    del dist
    start_rss = _rss_now_mb()
    start = time.perf_counter()
    rerank(feats.q_feats, feats.g_feats)
    rerank_s = time.perf_counter() - start
    return {
        "scale": scale,
        "num_query": int(feats.q_feats.shape[0]),
        "num_gallery": int(feats.g_feats.shape[0]),
        "ranking_s": ranking_s,
        "rerank_s": rerank_s,
        "peak_rss_mb": _peak_rss_mb(),
        "rerank_extra_mb": _peak_rss_mb() - start_rss,
    }


@BENCHMARKS.register("ranking")
def bench_ranking(options: BenchOptions) -> BenchResult:
    """evaluate_ranking vs the per-query numpy loop, both gallery conventions (1 thread)."""
    scale = 0.1 if options.quick else 1.0
    rows = [
        run_child(
            "hpo.bench._metrics:child_ranking",
            {
                "scale": scale,
                "seed": options.seed,
                "repeats": RANKING_REPEATS,
                "official": official,
            },
            threads=1,
        )
        for official in (False, True)
    ]
    targets = [
        Target(f"ranking speedup, gallery {row['num_gallery']}", row["speedup"], RANKING_TARGET)
        for row in rows
    ] + [Target("max |mAP difference| to the loop", max(r["map_diff"] for r in rows), 1e-6, False)]
    return BenchResult(
        name="ranking",
        title=f"CMC/mAP: evaluate_ranking vs per-query numpy loop (scale {scale} of MARS)",
        columns=[
            "gallery",
            "num_query",
            "num_gallery",
            "ours_s",
            "loop_s",
            "speedup",
            "max_cmc_diff",
            "map_diff",
            "mAP",
            "rank1",
        ],
        rows=rows,
        targets=targets,
        details={
            **environment(options),
            "threads": 1,
            "scale": scale,
            "repeats": RANKING_REPEATS,
            "timing": f"median of {RANKING_REPEATS} after one warm-up call each, ours and loop "
            "alternating in one process",
        },
    )


@BENCHMARKS.register("rerank")
def bench_rerank(options: BenchOptions) -> BenchResult:
    """rerank vs the reference float16 numpy loop and the float32 loop definition."""
    scale = 0.1 if options.quick else 1.0
    labels = {
        "ours": "ours (torch float32)",
        "loop16": "reference loop (float16)",
        "loop32": "definition loop (float32)",
    }
    feats = mars_like_features(scale, seed=options.seed)
    with tempfile.TemporaryDirectory() as tmp:
        runs, outputs = {}, {}
        for impl in labels:
            out = str(Path(tmp) / f"{impl}.npy")
            runs[impl] = run_child(
                "hpo.bench._metrics:child_rerank",
                {"impl": impl, "scale": scale, "seed": options.seed, "out": out},
                threads=options.threads,
            )
            outputs[impl] = np.load(out)
    definition = outputs["loop32"]
    def_top1 = definition.argmin(1)
    def_top10 = np.argsort(definition, axis=1)[:, :10]
    rows = []
    for impl, label in labels.items():
        dist = outputs[impl]
        result = evaluate_ranking_full(
            dist, feats.q_pids, feats.g_pids, feats.q_camids, feats.g_camids
        )
        rows.append(
            {
                "implementation": label,
                "seconds": runs[impl]["seconds"],
                "peak_rss_mb": runs[impl]["peak_rss_mb"],
                "start_rss_mb": runs[impl]["start_rss_mb"],
                "call_peak_mb": runs[impl]["peak_rss_mb"] - runs[impl]["start_rss_mb"],
                "max_abs_err": float(np.abs(dist - definition).max()),
                "top1_agree": float((dist.argmin(1) == def_top1).mean()),
                "top10_agree": float((np.argsort(dist, axis=1)[:, :10] == def_top10).all(1).mean()),
                "rerank_mAP": result.mAP,
                "rerank_rank1": float(result.cmc[0]),
            }
        )
    speedup = runs["loop16"]["seconds"] / runs["ours"]["seconds"]
    targets = [
        Target("rerank speedup vs float16 loop", speedup, RERANK_TARGET),
        Target(
            "ours peak RSS of the call (MB)",
            rows[0]["call_peak_mb"],
            RERANK_MEMORY_TARGET_MB,
            False,
        ),
        Target("ours max |error| vs float32 definition", rows[0]["max_abs_err"], 1e-4, False),
    ]
    return BenchResult(
        name="rerank",
        title=f"k-reciprocal re-ranking: rerank vs numpy loops (scale {scale} of MARS)",
        columns=[
            "implementation",
            "seconds",
            "peak_rss_mb",
            "start_rss_mb",
            "call_peak_mb",
            "max_abs_err",
            "top1_agree",
            "top10_agree",
            "rerank_mAP",
            "rerank_rank1",
        ],
        rows=rows,
        targets=targets,
        details={
            **environment(options),
            "scale": scale,
            "speedup_vs_float16_loop": speedup,
            "k1": 20,
            "k2": 6,
            "lambda_value": 0.3,
            "memory": "peak RSS of a fresh process per implementation (ru_maxrss), "
            "start_rss_mb = RSS with inputs loaded, before the call (the interpreter, torch and "
            "every module hpo.bench imports), call_peak_mb = peak_rss_mb - start_rss_mb: what "
            "the call itself needs at its peak (the memory target)",
        },
    )


@BENCHMARKS.register("scaling")
def bench_scaling(options: BenchOptions) -> BenchResult:
    """Time and memory of evaluate_ranking and rerank at 25/50/100/200% of MARS size."""
    factors = (0.25, 0.5, 1.0, 2.0)
    base = 0.1 if options.quick else 1.0
    rows = [
        run_child(
            "hpo.bench._metrics:child_scaling",
            {"scale": base * f, "seed": options.seed},
            threads=options.threads,
        )
        for f in factors
    ]
    n = np.array([r["num_query"] + r["num_gallery"] for r in rows], dtype=float)

    def exponent(key: str) -> float:
        return float(np.polyfit(np.log(n), np.log([r[key] for r in rows]), 1)[0])

    exponents = {
        "rerank_time": exponent("rerank_s"),
        "ranking_time": exponent("ranking_s"),
        "rerank_extra_memory": exponent("rerank_extra_mb"),
    }
    return BenchResult(
        name="scaling",
        title=f"Scaling with N = queries + gallery (base scale {base} of MARS)",
        columns=[
            "scale",
            "num_query",
            "num_gallery",
            "ranking_s",
            "rerank_s",
            "peak_rss_mb",
            "rerank_extra_mb",
        ],
        rows=rows,
        summary={f"growth exponent, {key}": value for key, value in exponents.items()},
        details={
            **environment(options),
            "factors": list(factors),
            "growth_exponents": exponents,
            "fit": "least squares slope of log(value) against log(N)",
        },
    )
