"""Performance benchmarks behind ``reid-hpo bench`` (results recorded in BENCHMARKS.md).

A benchmark is a function ``(BenchOptions) -> BenchResult`` registered under a name::

    from hpo.bench import BENCHMARKS, BenchOptions, BenchResult

    @BENCHMARKS.register("storage")
    def bench_storage(options: BenchOptions) -> BenchResult: ...

The benchmark modules import torch and the whole product, so nothing imports them until
:func:`load_benchmarks` is called (``reid-hpo bench`` does, other commands never).
"""

from __future__ import annotations

import importlib

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import Benchmark
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._registry import run_child
from reid_core.registry import Registry

_BENCHMARK_MODULES = (
    "_cli",
    "_gpu",
    "_metrics",
    "_parse",
    "_pipeline",
    "_search",
    "_search_v2",
    "_storage",
)


def load_benchmarks() -> Registry[Benchmark]:
    """Import every benchmark module (registering its benchmarks) and return the registry."""
    for module in _BENCHMARK_MODULES:
        importlib.import_module(f"hpo.bench.{module}")
    return BENCHMARKS


__all__ = [
    "BENCHMARKS",
    "BenchOptions",
    "BenchResult",
    "Benchmark",
    "Target",
    "environment",
    "load_benchmarks",
    "run_child",
]
