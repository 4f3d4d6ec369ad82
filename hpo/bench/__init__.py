"""Performance benchmarks behind ``reid-hpo bench`` (results recorded in BENCHMARKS.md).

A benchmark is a function ``(BenchOptions) -> BenchResult`` registered under a name::

    from hpo.bench import BENCHMARKS, BenchOptions, BenchResult

    @BENCHMARKS.register("storage")
    def bench_storage(options: BenchOptions) -> BenchResult: ...

and its module imported below so that registration happens when the package is imported.
"""

from __future__ import annotations

from hpo.bench import _metrics  # noqa: F401  (registers ranking, rerank, scaling)
from hpo.bench import _pipeline  # noqa: F401  (registers pipeline)
from hpo.bench import _search  # noqa: F401  (registers search)
from hpo.bench import _storage  # noqa: F401  (registers storage)
from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import Benchmark
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.bench._registry import run_child

__all__ = [
    "BENCHMARKS",
    "BenchOptions",
    "BenchResult",
    "Benchmark",
    "Target",
    "environment",
    "run_child",
]
