"""``reid-hpo bench cli``: how fast the CLI answers, side by side with Optuna's own CLI.

Each command is run as a fresh process, as a user types it, ``repeats`` times in turn (so
machine load hits all of them alike); the median wall time is reported. The commands that read
a study run on a SQLite storage holding the demo study, created beforehand; ``optuna studies``
on the same storage is what Optuna's CLI needs for the same answer.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment

RATIO_TARGET = 2.0
"""``reid-hpo --help`` and ``reid-hpo study list`` within this factor of ``optuna --help``."""
REPEATS = 10
QUICK_REPEATS = 3


def _script(name: str) -> str:
    """The console script ``name`` installed beside this Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"console script {name!r} not found beside {sys.executable}")
    return str(path)


def _wall_s(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _demo_storage(folder: Path) -> str:
    """A SQLite storage holding the demo study (as a user's would after ``study create``)."""
    from hpo.demo import default_spec_path
    from hpo.spec import load_spec
    from hpo.study import create_study

    url = f"sqlite:///{folder / 'reid_hpo.db'}"
    create_study(load_spec(default_spec_path()), url)
    return url


@BENCHMARKS.register("cli")
def bench_cli(options: BenchOptions) -> BenchResult:
    """CLI latency: reid-hpo --help and study list against optuna --help (fresh processes)."""
    repeats = QUICK_REPEATS if options.quick else REPEATS
    with tempfile.TemporaryDirectory(prefix="reid-hpo-cli-bench-") as tmp:
        url = _demo_storage(Path(tmp))
        commands = {
            "optuna --help": [_script("optuna"), "--help"],
            "optuna studies": [_script("optuna"), "studies", "--storage", url],
            "reid-hpo --help": [_script("reid-hpo"), "--help"],
            "reid-hpo study list": [_script("reid-hpo"), "study", "list", "--storage", url],
            "reid-hpo study status": [
                _script("reid-hpo"),
                *("study", "status", "demo", "--storage", url),
            ],
        }
        for command in commands.values():
            _wall_s(command)  # warm the file-system cache once
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, command in commands.items():
                times[name].append(_wall_s(command))
    baseline = statistics.median(times["optuna --help"])
    rows = [
        {
            "command": name,
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "ratio_to_optuna_help": round(statistics.median(values) / baseline, 2),
        }
        for name, values in times.items()
    ]
    by_name = {row["command"]: row for row in rows}
    targets = [
        Target(
            f"{name} / optuna --help (median wall time)",
            by_name[name]["ratio_to_optuna_help"],
            RATIO_TARGET,
            False,
        )
        for name in ("reid-hpo --help", "reid-hpo study list")
    ]
    return BenchResult(
        name="cli",
        title=f"CLI latency: fresh processes, median of {repeats}",
        columns=["command", "median_s", "min_s", "ratio_to_optuna_help"],
        rows=rows,
        targets=targets,
        summary={row["command"] + " s": row["median_s"] for row in rows},
        details={**environment(options), "repeats": repeats, "raw_s": times},
    )


__all__ = ["RATIO_TARGET", "bench_cli"]
