"""Storage-scale benchmark: concurrent worker processes doing ask/tell on one study.

Each scenario (backend x sampler x study size) creates a fresh database (PostgreSQL: a new
database on the server, dropped afterwards; SQLite: a new file), creates one study, and starts
``workers`` processes that each open the storage with :func:`hpo.storage.open_storage`, wait
for a common start signal and then run ``trials / workers`` ask/tell rounds of a cheap
quadratic objective. Every round records the trial number it got, the ask latency (``study.ask``
with the search space, so the parameters are sampled and stored) and the tell latency.

After the run the study is read back through a fresh, uncached storage and checked: every told
trial is stored COMPLETE exactly once with the value its worker computed, trial numbers are
``0..n-1`` without duplicates, and the stored count equals the sum of the workers' counts.
Latencies are reported per band of trial numbers (the study size when the trial was asked).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sqlalchemy.engine import make_url

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._storage_worker import STUDY_NAME
from hpo.bench._storage_worker import quadratic
from hpo.bench._storage_worker import search_space
from hpo.errors import StorageError
from hpo.storage import close_storage
from hpo.storage import mask_url
from hpo.storage import normalise_url
from hpo.storage import open_storage

logger = logging.getLogger(__name__)

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
ENV_PG_ADMIN_URL = "REID_HPO_BENCH_PG_URL"
P95_ASK_TARGET_MS = 100.0
BACKENDS = ("postgresql", "sqlite")
SAMPLERS = ("random", "tpe")
STORAGES = ("optuna",)


@dataclass(frozen=True)
class Scenario:
    """One measured run: ``trials`` ask/tell rounds split over ``workers`` processes."""

    backend: str
    sampler: str
    storage: str
    trials: int
    workers: int


@dataclass(frozen=True)
class StorageBenchConfig:
    """What :func:`run_storage_bench` measures.

    Attributes:
        workers: Concurrent worker processes per scenario.
        random_trials: Study size of the RandomSampler scenarios.
        tpe_trials: Study size of the TPE scenarios (TPE's own cost grows with the study).
        sqlite_trials: Cap on the study size of the SQLite scenarios (8 writers on one file
            are an order of magnitude slower than PostgreSQL).
        band: Width of a latency band, in trial numbers.
        params: Float parameters of the quadratic objective.
        backends: Any of ``postgresql`` and ``sqlite``.
        samplers: Any of ``random`` and ``tpe``.
        storages: How workers open the storage: ``optuna`` (Optuna's own ``RDBStorage``
            through :func:`hpo.storage.open_storage`, as reid-hpo workers do).
        pg_admin_url: A PostgreSQL URL whose user may create and drop databases.
    """

    workers: int = 8
    random_trials: int = 10_000
    tpe_trials: int = 1_000
    sqlite_trials: int = 2_000
    band: int = 1_000
    params: int = 5
    backends: tuple[str, ...] = BACKENDS
    samplers: tuple[str, ...] = SAMPLERS
    storages: tuple[str, ...] = STORAGES
    pg_admin_url: str = field(
        default_factory=lambda: os.environ.get(ENV_PG_ADMIN_URL, DEFAULT_PG_ADMIN_URL)
    )

    @classmethod
    def quick(cls, **overrides: Any) -> StorageBenchConfig:
        """The small configuration the tests run: 2 workers x 50 trials, RandomSampler only."""
        values: dict[str, Any] = {
            "workers": 2,
            "random_trials": 100,
            "tpe_trials": 40,
            "sqlite_trials": 100,
            "samplers": ("random",),
            "band": 50,
        }
        values.update(overrides)
        return cls(**values)

    def scenarios(self) -> list[Scenario]:
        """The scenarios in run order (PostgreSQL first)."""
        sizes = {"random": self.random_trials, "tpe": self.tpe_trials}
        return [
            Scenario(
                backend,
                sampler,
                storage,
                min(sizes[sampler], self.sqlite_trials) if backend == "sqlite" else sizes[sampler],
                self.workers,
            )
            for backend in self.backends
            for sampler in self.samplers
            for storage in self.storages
        ]


def run_storage_bench(config: StorageBenchConfig, *, workdir: Path | None = None) -> dict[str, Any]:
    """Run every scenario of ``config`` and return the results (JSON-serialisable).

    Args:
        config: What to measure.
        workdir: Where the SQLite files and the per-worker logs go (a temporary directory
            when None).

    Returns:
        ``{"benchmark": "storage", "config": ..., "scenarios": [...]}``; each scenario has
        throughput, overall and per-band ask/tell latencies and an ``integrity`` block.

    Raises:
        StorageError: The PostgreSQL server cannot be reached or a worker failed.
        ValueError: Unknown backend or sampler, or fewer trials than workers.
    """
    _check_config(config)
    results = []
    with _workdir(workdir) as root:
        for index, scenario in enumerate(config.scenarios()):
            logger.info(
                "storage bench: %s / %s / %s storage, %d workers x %d trials",
                scenario.backend,
                scenario.sampler,
                scenario.storage,
                scenario.workers,
                scenario.trials // scenario.workers,
            )
            scenario_dir = (
                root / f"{index}-{scenario.backend}-{scenario.sampler}-{scenario.storage}"
            )
            scenario_dir.mkdir(parents=True, exist_ok=True)
            with _database(scenario.backend, config.pg_admin_url, scenario_dir) as url:
                results.append(_run_scenario(scenario, url, config, scenario_dir))
    return {
        "benchmark": "storage",
        "config": {**asdict(config), "pg_admin_url": mask_url(config.pg_admin_url)},
        "p95_ask_target_ms": P95_ASK_TARGET_MS,
        "scenarios": results,
    }


def _check_config(config: StorageBenchConfig) -> None:
    for backend in config.backends:
        if backend not in BACKENDS:
            raise ValueError(f"unknown storage bench backend {backend!r}; expected {BACKENDS}")
    for sampler in config.samplers:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown storage bench sampler {sampler!r}; expected {SAMPLERS}")
    for storage in config.storages:
        if storage not in STORAGES:
            raise ValueError(f"unknown storage bench storage {storage!r}; expected {STORAGES}")
    for scenario in config.scenarios():
        if scenario.trials < scenario.workers or scenario.workers < 1:
            raise ValueError(
                f"{scenario.sampler}: {scenario.trials} trials for {scenario.workers} workers; "
                "expected at least one trial per worker"
            )
    if config.band < 1 or config.params < 1:
        raise ValueError(f"band={config.band} and params={config.params} must be >= 1")


@contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="reid-hpo-storage-bench-") as tmp:
        yield Path(tmp)


@contextmanager
def _database(backend: str, pg_admin_url: str, scenario_dir: Path) -> Iterator[str]:
    """A fresh, empty database URL for one scenario; a PostgreSQL one is dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{scenario_dir / 'study.db'}"
        return
    import psycopg2

    admin = make_url(normalise_url(pg_admin_url))
    name = f"reid_hpo_bench_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg2.connect(
            host=admin.host or "127.0.0.1",
            port=admin.port or 5432,
            user=admin.username,
            password=admin.password,
            dbname=admin.database or "postgres",
            connect_timeout=10,
        )
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()
        raise StorageError(
            f"cannot reach PostgreSQL at {mask_url(pg_admin_url)} for the storage benchmark: "
            f"{first[0] if first else type(exc).__name__}"
        ) from None
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


_WORKER_BOOTSTRAP = "from hpo.bench._storage_worker import worker_main; worker_main()"


def _run_scenario(
    scenario: Scenario, url: str, config: StorageBenchConfig, scenario_dir: Path
) -> dict[str, Any]:
    storage = open_storage(url)
    try:
        optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="minimize")
    finally:
        close_storage(storage)
    quotas = [
        scenario.trials // scenario.workers + (1 if i < scenario.trials % scenario.workers else 0)
        for i in range(scenario.workers)
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        for index, quota in enumerate(quotas):
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOTSTRAP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            job = {
                "index": index,
                "url": url,
                "sampler": scenario.sampler,
                "storage": scenario.storage,
                "quota": quota,
                "params": config.params,
                "out": str(scenario_dir / f"worker-{index}.json"),
            }
            assert proc.stdin is not None and proc.stdout is not None
            # The URL travels on stdin, never on a command line other users can read.
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            procs.append(proc)
        for index, proc in enumerate(procs):
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                proc.wait()
                _collect(procs[: index + 1], scenario_dir)
                raise StorageError(f"storage bench worker {index} did not start")
        started = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            proc.stdin.close()
        for proc in procs:
            proc.wait()
        finished = time.time()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    records = _collect(procs, scenario_dir)
    integrity = _verify(url, records, config.params)
    result = _summarise(scenario, records, integrity, started, finished, config.band)
    # The machine's 1-minute load average at the end: other jobs share the cores.
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    return result


def _collect(procs: list[subprocess.Popen[str]], scenario_dir: Path) -> list[dict[str, Any]]:
    records = []
    for index, proc in enumerate(procs):
        path = scenario_dir / f"worker-{index}.json"
        if not path.exists():
            raise StorageError(
                f"storage bench worker {index} exited with code {proc.returncode} and no log"
            )
        record = json.loads(path.read_text())
        if "error" in record:
            logger.debug("worker %d traceback:\n%s", index, record.get("traceback", ""))
            raise StorageError(f"storage bench worker {index} failed: {record['error']}")
        records.append(record)
    return records


def _verify(url: str, records: list[dict[str, Any]], params: int) -> dict[str, Any]:
    """Read the study back (uncached) and check every told trial is COMPLETE exactly once."""
    told = [(n, v) for r in records for n, v in zip(r["numbers"], r["values"], strict=True)]
    told_numbers = [n for n, _ in told]
    storage = open_storage(url)
    try:
        study_id = storage.get_study_id_from_name(STUDY_NAME)
        trials = storage.get_all_trials(study_id, deepcopy=False)
    finally:
        close_storage(storage)
    stored = {t.number: t for t in trials}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    lost = [n for n in set(told_numbers) if n not in stored or stored[n].state.name != "COMPLETE"]
    mismatched = [
        n
        for n, value in told
        if n in stored
        and (stored[n].value is None or not math.isclose(stored[n].value, value, rel_tol=1e-12))
    ]
    recomputed = [
        t.number
        for t in complete
        if len(t.params) != params or not math.isclose(quadratic(t.params), t.value or 0.0)
    ]
    duplicates_told = len(told_numbers) - len(set(told_numbers))
    duplicates_stored = len(trials) - len(stored)
    per_worker = [len(r["numbers"]) for r in records]
    ok = (
        duplicates_told == 0
        and duplicates_stored == 0
        and not lost
        and not mismatched
        and not recomputed
        and len(trials) == len(complete) == sum(per_worker)
        and sorted(stored) == list(range(len(trials)))
    )
    return {
        "told": len(told_numbers),
        "per_worker": per_worker,
        "stored": len(trials),
        "complete": len(complete),
        "duplicate_numbers": duplicates_told + duplicates_stored,
        "lost_trials": len(lost),
        "value_mismatches": len(mismatched) + len(recomputed),
        "numbers_contiguous": sorted(stored) == list(range(len(trials))),
        "ok": ok,
    }


def _percentiles_ms(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p95": float("nan"), "mean": float("nan"), "max": float("nan")}
    ms = values * 1000.0
    return {
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "mean": round(float(ms.mean()), 3),
        "max": round(float(ms.max()), 3),
    }


def _summarise(
    scenario: Scenario,
    records: list[dict[str, Any]],
    integrity: dict[str, Any],
    started: float,
    finished: float,
    band: int,
) -> dict[str, Any]:
    numbers = np.concatenate([np.asarray(r["numbers"], dtype=np.int64) for r in records])
    ask = np.concatenate([np.asarray(r["ask_s"], dtype=np.float64) for r in records])
    tell = np.concatenate([np.asarray(r["tell_s"], dtype=np.float64) for r in records])
    ends = np.concatenate([np.asarray(r["end_time"], dtype=np.float64) for r in records])
    wall = finished - started
    bands = []
    for first in range(0, scenario.trials, band):
        mask = (numbers >= first) & (numbers < first + band)
        if not mask.any():
            continue
        # Band throughput: the middle 90% of the band's tells over the time they took
        # (robust to the workers' interleaving at the band edges).
        lo, hi = np.percentile(ends[mask], [5, 95])
        span = float(hi - lo)
        a, t = _percentiles_ms(ask[mask]), _percentiles_ms(tell[mask])
        bands.append(
            {
                "first": first,
                "last": min(first + band, scenario.trials) - 1,
                "trials": int(mask.sum()),
                "ask_p50_ms": a["p50"],
                "ask_p95_ms": a["p95"],
                "tell_p50_ms": t["p50"],
                "tell_p95_ms": t["p95"],
                "trials_per_s": round(0.9 * int(mask.sum()) / span, 1) if span > 0 else None,
            }
        )
    ask_ms = _percentiles_ms(ask)
    result: dict[str, Any] = {
        **asdict(scenario),
        "wall_s": round(wall, 3),
        "trials_per_s": round(len(numbers) / wall, 1) if wall > 0 else None,
        "ask_ms": ask_ms,
        "tell_ms": _percentiles_ms(tell),
        "worst_band_ask_p95_ms": max(b["ask_p95_ms"] for b in bands),
        "bands": bands,
        "integrity": integrity,
    }
    if scenario.backend == "postgresql":
        result["p95_ask_below_target"] = result["worst_band_ask_p95_ms"] < P95_ASK_TARGET_MS
    return result


def format_storage_table(result: dict[str, Any]) -> str:
    """A plain-text table of a :func:`run_storage_bench` result (one block per scenario)."""
    lines = []
    for s in result["scenarios"]:
        integ = s["integrity"]
        lines.append(
            f"{s['backend']} / {s['sampler']} / {s['storage']} storage: {s['workers']} workers, "
            f"{s['trials']} trials, "
            f"{s['wall_s']:.1f} s, {s['trials_per_s']} trials/s, ask p50/p95 "
            f"{s['ask_ms']['p50']:.1f}/{s['ask_ms']['p95']:.1f} ms, tell p50/p95 "
            f"{s['tell_ms']['p50']:.1f}/{s['tell_ms']['p95']:.1f} ms; integrity "
            f"{'ok' if integ['ok'] else 'FAILED'} (stored {integ['stored']}, complete "
            f"{integ['complete']}, duplicates {integ['duplicate_numbers']}, lost "
            f"{integ['lost_trials']})"
        )
        lines.append(
            f"  {'trials':>13}  {'ask p50':>8}  {'ask p95':>8}  {'tell p50':>8}  "
            f"{'tell p95':>8}  {'trials/s':>8}"
        )
        for b in s["bands"]:
            rate = "-" if b["trials_per_s"] is None else f"{b['trials_per_s']:.1f}"
            lines.append(
                f"  {b['first']:>6}-{b['last']:<6}  {b['ask_p50_ms']:>8.1f}  "
                f"{b['ask_p95_ms']:>8.1f}  {b['tell_p50_ms']:>8.1f}  {b['tell_p95_ms']:>8.1f}  "
                f"{rate:>8}"
            )
    return "\n".join(lines)


@BENCHMARKS.register("storage")
def bench_storage(options: BenchOptions) -> BenchResult:
    """8 worker processes doing ask/tell on PostgreSQL and SQLite, per 1,000-trial band."""
    config = StorageBenchConfig.quick() if options.quick else StorageBenchConfig()
    result = run_storage_bench(config)
    rows = []
    for s in result["scenarios"]:
        for b in s["bands"]:
            rows.append(
                {
                    "backend": s["backend"],
                    "sampler": s["sampler"],
                    "storage": s["storage"],
                    "trials": f"{b['first']}-{b['last']}",
                    "ask_p50_ms": b["ask_p50_ms"],
                    "ask_p95_ms": b["ask_p95_ms"],
                    "tell_p50_ms": b["tell_p50_ms"],
                    "tell_p95_ms": b["tell_p95_ms"],
                    "trials_per_s": b["trials_per_s"],
                }
            )
    summary: dict[str, float] = {}
    targets = []
    bad = sum(
        s["integrity"]["duplicate_numbers"]
        + s["integrity"]["lost_trials"]
        + s["integrity"]["value_mismatches"]
        + (0 if s["integrity"]["ok"] else 1)
        for s in result["scenarios"]
    )
    targets.append(Target("duplicated + lost + wrong trials (all runs)", float(bad), 0.0, False))
    for s in result["scenarios"]:
        key = f"{s['backend']}/{s['sampler']}/{s['storage']}"
        summary[f"{key} trials/s"] = s["trials_per_s"]
        summary[f"{key} ask p95 ms (worst band)"] = s["worst_band_ask_p95_ms"]
        if s["backend"] == "postgresql" and s["sampler"] == "random" and s["storage"] == "optuna":
            targets.append(
                Target(
                    f"PostgreSQL ask p95, worst band, {s['workers']} workers ({key})",
                    s["worst_band_ask_p95_ms"],
                    P95_ASK_TARGET_MS,
                    False,
                )
            )
    return BenchResult(
        name="storage",
        title=f"storage scale: {config.workers} worker processes doing ask/tell",
        columns=[
            "backend",
            "sampler",
            "storage",
            "trials",
            "ask_p50_ms",
            "ask_p95_ms",
            "tell_p50_ms",
            "tell_p95_ms",
            "trials_per_s",
        ],
        rows=rows,
        targets=targets,
        summary=summary,
        details={**environment(options), **result},
    )


__all__ = [
    "BACKENDS",
    "DEFAULT_PG_ADMIN_URL",
    "ENV_PG_ADMIN_URL",
    "P95_ASK_TARGET_MS",
    "SAMPLERS",
    "STORAGES",
    "Scenario",
    "StorageBenchConfig",
    "bench_storage",
    "format_storage_table",
    "quadratic",
    "run_storage_bench",
    "search_space",
]
