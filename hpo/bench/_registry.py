"""The benchmark registry, its options and result types, and the subprocess runner."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np

from reid_core.registry import Registry


@dataclass(frozen=True)
class BenchOptions:
    """How to run a benchmark.

    Attributes:
        quick: small sizes (seconds, for tests and smoke runs) instead of the full ones.
        threads: CPU threads for torch / BLAS in the measured processes. 1 by default: on a
            shared machine, multi-threaded timings mostly measure the other users' load.
        seed: random seed of the synthetic inputs.
    """

    quick: bool = False
    threads: int = 1
    seed: int = 0


@dataclass(frozen=True)
class Target:
    """A performance target and whether this run met it."""

    description: str
    value: float
    threshold: float
    higher_is_better: bool = True

    @property
    def met(self) -> bool:
        """True when ``value`` is on the right side of ``threshold``."""
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold


@dataclass
class BenchResult:
    """What one benchmark measured: a table of rows, targets, headline numbers, run details."""

    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (targets with their ``met`` flag)."""
        data = asdict(self)
        data["targets"] = [{**asdict(t), "met": t.met} for t in self.targets]
        return data


Benchmark = Callable[[BenchOptions], BenchResult]

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
"""Named benchmarks of ``reid-hpo bench``; add one with ``@BENCHMARKS.register("name")``."""


def environment(options: BenchOptions) -> dict[str, Any]:
    """Machine and library versions recorded with every result."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "threads": options.threads,
        "quick": options.quick,
        "seed": options.seed,
    }


_NOTABLE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def cpu_model() -> str:
    """The CPU's model name with its SIMD / matrix extensions of note (figures depend on both).

    Read from ``/proc/cpuinfo`` on Linux; elsewhere the platform's processor string.
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.machine()
    flags = set(fields.get("flags", "").split())
    notable = [f for f in _NOTABLE_FLAGS if f in flags]
    return f"{name} ({', '.join(notable)})" if notable else name


def run_child(target: str, kwargs: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh interpreter and return its dict result.

    A fresh process gives each measurement its own peak RSS and thread settings.

    Raises:
        RuntimeError: the child failed (its stderr tail is in the message).
    """
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run(
        [sys.executable, "-m", "hpo.bench._child", target, json.dumps(kwargs), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"benchmark child {target} failed: {' | '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
