"""The worker process of the storage benchmark (:mod:`hpo.bench._storage`).

Kept outside ``hpo.bench`` so that a worker imports Optuna and the storage code only, not the
other benchmarks (torch): eight workers then start fast and stay small.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import optuna

from hpo.storage import close_storage
from hpo.storage import open_storage

STUDY_NAME = "storage-bench"


def search_space(params: int) -> dict[str, optuna.distributions.BaseDistribution]:
    """``x0..x{params-1}``, each uniform on [-5, 5]."""
    return {f"x{i}": optuna.distributions.FloatDistribution(-5.0, 5.0) for i in range(params)}


def quadratic(params: dict[str, float]) -> float:
    """The cheap objective: ``sum_i (x_i - 0.5 i)^2`` (minimum 0)."""
    return float(sum((params[f"x{i}"] - 0.5 * i) ** 2 for i in range(len(params))))


def _build_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    # The settings of hpo.search.build_sampler for these names (TPE: multivariate with
    # constant liar, one seed per worker).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        return optuna.samplers.RandomSampler(seed=seed)


def worker_main() -> None:
    """Entry point of one benchmark worker process (see :func:`run_storage_bench`).

    Reads its job (JSON) from the first stdin line, opens the study, prints ``ready``, waits
    for the ``go`` line, runs its ask/tell rounds and writes its log to the job's ``out`` file.
    """
    job = json.loads(sys.stdin.readline())
    out = Path(job["out"])
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(job["url"])
        study = optuna.load_study(
            study_name=STUDY_NAME,
            storage=storage,
            sampler=_build_sampler(job["sampler"], seed=job["index"]),
        )
        space = search_space(job["params"])
        print("ready", flush=True)
        sys.stdin.readline()
        log = _ask_tell(study, space, job["quota"])
        payload: dict[str, Any] = {"worker": job["index"], **log}
        close_storage(storage)
    except Exception as exc:
        payload = {"worker": job["index"], "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        payload["traceback"] = traceback.format_exc()
        print("failed", flush=True)
    out.write_text(json.dumps(payload))


def _ask_tell(
    study: optuna.Study,
    space: dict[str, optuna.distributions.BaseDistribution],
    quota: int,
) -> dict[str, list[Any]]:
    log: dict[str, list[Any]] = {
        k: [] for k in ("numbers", "ask_s", "tell_s", "end_time", "values")
    }
    for _ in range(quota):
        t0 = time.perf_counter()
        trial = study.ask(space)
        t1 = time.perf_counter()
        value = quadratic(trial.params)
        t2 = time.perf_counter()
        study.tell(trial, value)
        t3 = time.perf_counter()
        log["numbers"].append(trial.number)
        log["ask_s"].append(t1 - t0)
        log["tell_s"].append(t3 - t2)
        log["end_time"].append(time.time())
        log["values"].append(value)
    return log


__all__ = ["STUDY_NAME", "quadratic", "search_space", "worker_main"]
