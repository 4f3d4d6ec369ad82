"""``search``: search efficiency of sampler x pruner on a tabular surrogate of real training runs.

Issue 5, target 4: our default sampler + pruner (TPE + median, as ``hpo.samplers`` /
``hpo.pruners`` build them with no options) should reach the best validation mAP of an unpruned
60-trial random search with at most a third of the random search's training epochs.

The surrogate problem (see BENCHMARKS.md, "Search efficiency"):

1. **Curves from the real code path.** The search space is the demo study's seven parameters
   (``sigma``, ``alpha``, ``l``, ``margin``, ``beta``, ``gamma``, ``weight_decay``, demo
   ranges). Each parameter is discretised into a few levels, the centres of equal-width bins of
   its range (in log space for log ranges). Every configuration of that grid is trained ONCE by
   the real objective (:func:`hpo.objective.make_objective`: spec -> TrainConfig -> the
   ``reid_core`` trainer -> :class:`hpo.pruning.OptunaPruningCallback`) on a synthetic
   MARS-layout dataset (:func:`reid_core.data.write_synthetic`), evaluated after every epoch;
   its validation-mAP curve is cached on disk (JSON lines, keyed by the parameters).
2. **Studies replay the curves.** Each sampler x pruner x seed is a real Optuna study
   (:func:`hpo.samplers.build_sampler`, :func:`hpo.pruners.build_pruner`,
   :func:`hpo.search_space.suggest` on the continuous demo ranges). Its objective maps the
   sampled values to the nearest level of each parameter and replays that configuration's
   cached curve epoch by epoch through the real pruning adapter (``trial.report`` +
   ``trial.should_prune``). Epochs spent = epochs replayed before the trial completed or was
   pruned. Grid configurations missing from the cache are trained before the studies run, so
   every lookup is exact (a configuration still missing would be replaced by the nearest
   cached one and counted as a fallback in the results).
3. **Measure.** For each seed, the baseline is random sampling without pruning for 60 trials;
   its best completed value is the target and its epochs (60 x epochs) the budget. Every
   strategy runs with the same seed until it has spent that budget; we record the epochs it
   needed to complete a trial at least as good as the target.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import math
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import optuna
import torch

from hpo.bench._registry import BENCHMARKS
from hpo.bench._registry import BenchOptions
from hpo.bench._registry import BenchResult
from hpo.bench._registry import Target
from hpo.bench._registry import environment
from hpo.objective import make_objective
from hpo.pruners import build_pruner
from hpo.pruning import OptunaPruningCallback
from hpo.samplers import build_sampler
from hpo.search_space import suggest
from hpo.spec import FloatParam
from hpo.spec import StudySpec
from hpo.spec import parse_spec
from reid_core.data import write_synthetic
from reid_core.engine import EpochReport
from reid_core.errors import ConfigError

logger = logging.getLogger(__name__)

SAMPLERS: tuple[str, ...] = ("tpe", "random", "gp", "cmaes")
PRUNERS: tuple[str, ...] = ("median", "hyperband", "sha", "none")
DEFAULT_STRATEGY = ("tpe", "median")
BASELINE_STRATEGY = ("random", "none")
TARGET_RATIO = 1 / 3
#: The ratio recorded for a seed whose strategy never reached the target within the budget
#: (a study stops at the baseline's epochs, so the true ratio is only known to be > 1).
NOT_REACHED = 2.0

#: Where the full run's cached curves, results and figures live (committed).
DATA_DIR = Path("benchmarks/data/search_efficiency")
CURVES_FILE = "curves.jsonl"


@dataclass(frozen=True)
class SurrogateSetup:
    """Sizes of one surrogate benchmark run.

    Attributes:
        data: ``write_synthetic`` arguments of the MARS-layout dataset.
        training: The fixed recipe (the spec's ``training`` section).
        search_space: The searched parameters (spec ``search_space``; floats only).
        levels: Number of levels of each parameter in the curve grid.
        baseline_trials: Trials of the unpruned random-search baseline.
        seeds: Seeds; each seed runs every strategy once.
        max_trials: Cap on the trials of one strategy (pruned trials are cheap).
        samplers: Samplers compared.
        pruners: Pruners compared.
    """

    data: dict[str, int]
    training: dict[str, Any]
    search_space: dict[str, dict[str, Any]]
    levels: dict[str, int]
    baseline_trials: int
    seeds: tuple[int, ...]
    max_trials: int
    samplers: tuple[str, ...] = SAMPLERS
    pruners: tuple[str, ...] = PRUNERS

    @property
    def epochs(self) -> int:
        """Epochs of one full (unpruned) trial."""
        return int(self.training["epochs"])


_DEMO_SPACE: dict[str, dict[str, Any]] = {
    "sigma": {"type": "float", "low": 0.1, "high": 1.0},
    "alpha": {"type": "float", "low": 0.5, "high": 3.0},
    "l": {"type": "float", "low": 0.1, "high": 1.0},
    "margin": {"type": "float", "low": 1.0e-6, "high": 1.0, "log": True},
    "beta": {"type": "float", "low": 1.0e-6, "high": 1.0},
    "gamma": {"type": "float", "low": 1.0e-6, "high": 1.0},
    "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True},
}

_TRAINING: dict[str, Any] = {
    "epochs": 6,
    "eval_every": 1,
    "height": 32,
    "width": 16,
    "seq_len": 4,
    "batch_size": 16,
    "num_instances": 4,
    "lr": 1.0e-3,
    "weight_decay": 5.0e-4,
    "warmup_epochs": 1,
    "milestones": [4],
    "gamma": 0.1,
    "num_workers": 0,
    "pad": 2,
    "test_max_clips": 4,
    "test_batch_size": 32,
    "cache_frames": True,
}

FULL = SurrogateSetup(
    data={"ids": 64, "cameras": 4, "tracklets": 4, "frames": 8, "height": 32, "width": 16},
    training=_TRAINING,
    search_space=_DEMO_SPACE,
    levels={name: 3 if name == "weight_decay" else 2 for name in _DEMO_SPACE},
    baseline_trials=60,
    seeds=(0, 1, 2, 3, 4),
    max_trials=150,
)
"""The recorded run: 192 configurations x 6 epochs, 60-trial baseline, 5 seeds."""

QUICK = SurrogateSetup(
    data={"ids": 24, "cameras": 3, "tracklets": 3, "frames": 6, "height": 32, "width": 16},
    training={**_TRAINING, "epochs": 3, "milestones": [2], "test_max_clips": 2},
    search_space={"weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0, "log": True}},
    levels={"weight_decay": 3},
    baseline_trials=8,
    seeds=(0,),
    max_trials=24,
    samplers=("tpe", "random"),
)
"""Seconds-sized run for tests: one parameter on 3 levels (one of them too strong to learn)."""


# --------------------------------------------------------------------------- spec and grid


def bench_spec(
    setup: SurrogateSetup,
    *,
    data_root: str | Path = "unused",
    sampler: str = "random",
    pruner: str = "none",
    seed: int = 0,
) -> StudySpec:
    """The study spec of the surrogate: demo-like model and recipe, the setup's search space.

    Sampler and pruner take no options: they are exactly what ``hpo.samplers`` and
    ``hpo.pruners`` build by default.
    """
    return parse_spec(
        {
            "name": f"bench-search-{sampler}-{pruner}-{seed}",
            "dataset": {"name": "mars", "root": str(data_root)},
            "validation": {"sampling": "random", "fraction": 0.25, "distractor_fraction": 0.25},
            "model": {
                "arch": "ta_bt",
                "backbone": "resnet10",
                "attention": "pooled",
                "last_stride": 1,
                "pretrained": False,
            },
            "training": setup.training,
            "objective": {"metric": "map", "direction": "maximize"},
            "search_space": setup.search_space,
            "sampler": {"name": sampler, "seed": seed},
            "pruner": {"name": pruner},
            "budget": {"n_trials": setup.baseline_trials},
            "artifacts": {"root": "unused"},
            "seed": 0,
        },
        source="hpo.bench._search",
    )


def param_levels(param: FloatParam, count: int) -> list[float]:
    """``count`` levels of a float parameter: the centres of equal-width bins of its range.

    Log ranges are binned in log space, so random sampling hits every level equally often.

    Example:
        >>> param_levels(FloatParam(type="float", low=0.0, high=1.0), 2)
        [0.25, 0.75]
    """
    if param.log:
        lo, hi = math.log10(param.low), math.log10(param.high)
        return [float(f"{10 ** (lo + (i + 0.5) * (hi - lo) / count):.4g}") for i in range(count)]
    width = (param.high - param.low) / count
    return [float(f"{param.low + (i + 0.5) * width:.4g}") for i in range(count)]


def grid_levels(spec: StudySpec, levels: dict[str, int]) -> dict[str, list[float]]:
    """The levels of every search-space parameter of ``spec``."""
    out: dict[str, list[float]] = {}
    for name, param in spec.search_space.items():
        if not isinstance(param, FloatParam):
            raise ConfigError(f"search_space.{name}: the surrogate grid supports floats only")
        out[name] = param_levels(param, levels[name])
    return out


def grid_configs(levels: dict[str, list[float]]) -> list[dict[str, float]]:
    """Every combination of levels, in a fixed order."""
    names = list(levels)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*levels.values())]


def config_key(params: dict[str, float]) -> str:
    """The cache key of a configuration (sorted names, values to 4 significant digits)."""
    return json.dumps({k: float(f"{params[k]:.4g}") for k in sorted(params)}, sort_keys=True)


def snap(
    params: dict[str, float], levels: dict[str, list[float]], spec: StudySpec
) -> dict[str, float]:
    """Map sampled values to the nearest level of each parameter (log distance for log ones)."""
    out: dict[str, float] = {}
    for name, value in params.items():
        param = spec.search_space[name]
        log = isinstance(param, FloatParam) and param.log

        def distance(level: float, value: float = value, log: bool = log) -> float:
            return abs(math.log(level / value)) if log else abs(level - value)

        out[name] = min(levels[name], key=distance)
    return out


# ------------------------------------------------------------------------------- curve cache


@dataclass(frozen=True)
class Curve:
    """One configuration's validation-mAP curve from one real training run.

    Attributes:
        params: The configuration (grid levels).
        values: Validation mAP after each epoch (0-based epoch = index).
        state: ``"COMPLETE"`` or ``"FAIL"`` (e.g. a non-finite loss; ``values`` stop there).
        fail_reason: The objective's ``fail_reason`` for a failed run.
        train_s: Wall time of the training run.
    """

    params: dict[str, float]
    values: list[float]
    state: str
    fail_reason: str | None = None
    train_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON line of the cache."""
        return {
            "key": config_key(self.params),
            "params": self.params,
            "values": self.values,
            "state": self.state,
            "fail_reason": self.fail_reason,
            "train_s": round(self.train_s, 2),
        }


class CurveCache:
    """Curves keyed by configuration, appended to a JSON-lines file (safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.curves: dict[str, Curve] = {}
        self.reload()

    def reload(self) -> None:
        """Read every curve of the file (later lines win)."""
        if not self.path.exists():
            return
        for line in self.path.read_text().splitlines():
            if line.strip():
                raw = json.loads(line)
                self.curves[raw["key"]] = Curve(
                    params=raw["params"],
                    values=raw["values"],
                    state=raw["state"],
                    fail_reason=raw.get("fail_reason"),
                    train_s=raw.get("train_s", 0.0),
                )

    def get(self, params: dict[str, float]) -> Curve | None:
        """The cached curve of exactly this configuration, if any."""
        return self.curves.get(config_key(params))

    def add(self, curve: Curve) -> None:
        """Append a curve (one locked write of one line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(curve.to_json()) + "\n"
        with self.path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line)
            fcntl.flock(handle, fcntl.LOCK_UN)
        self.curves[config_key(curve.params)] = curve

    def nearest(self, params: dict[str, float], spec: StudySpec) -> Curve:
        """The cached curve closest to ``params`` in range-normalised (log where log) space."""
        if not self.curves:
            raise LookupError(f"no curve cached in {self.path}")

        def distance(curve: Curve) -> float:
            total = 0.0
            for name, value in params.items():
                scale = _unit(spec.search_space[name])
                total += (scale(curve.params[name]) - scale(value)) ** 2
            return total

        return min(self.curves.values(), key=distance)


def _unit(param: Any) -> Callable[[float], float]:
    """Map a float parameter's range onto [0, 1] (log-scaled where the range is log)."""
    if param.log:
        lo, hi = math.log(param.low), math.log(param.high)
        return lambda v: (math.log(v) - lo) / (hi - lo)
    return lambda v: (v - param.low) / ((param.high - param.low) or 1.0)


# ----------------------------------------------------------------------- real training runs


def prepare_data(setup: SurrogateSetup, root: Path) -> Path:
    """Write the setup's synthetic MARS-layout dataset under ``root`` (once; deterministic)."""
    data_root = root / "mars"
    if not data_root.exists():
        write_synthetic(data_root, "mars", seed=0, **setup.data)
    return data_root


def train_curve(setup: SurrogateSetup, params: dict[str, float], data_root: Path) -> Curve:
    """Train one configuration with the real objective and return its validation-mAP curve.

    The run is trial 0 of an in-memory study with no pruning (seed ``spec.seed + 0``), so
    every configuration is trained with the same seed; the curve is what the pruning adapter
    reported at each epoch.
    """
    spec = bench_spec(setup, data_root=data_root)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reid-hpo-bench-search-") as artifacts:
        objective = make_objective(spec, study_name="grid", artifacts_root=artifacts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(
                direction="maximize",
                sampler=optuna.samplers.RandomSampler(seed=0),
                pruner=optuna.pruners.NopPruner(),
            )
        study.enqueue_trial(params)
        study.optimize(objective, n_trials=1, catch=(Exception,))
    trial = study.trials[0]
    values = [float(trial.intermediate_values[k]) for k in sorted(trial.intermediate_values)]
    state = "COMPLETE" if trial.state == optuna.trial.TrialState.COMPLETE else "FAIL"
    return Curve(
        params=dict(params),
        values=values,
        state=state,
        fail_reason=trial.user_attrs.get("fail_reason") if state == "FAIL" else None,
        train_s=time.monotonic() - started,
    )


def fill_cache(
    setup: SurrogateSetup,
    cache: CurveCache,
    data_root: Path,
    *,
    shard: int = 0,
    shards: int = 1,
) -> int:
    """Train every grid configuration missing from ``cache`` (this shard's share of them).

    Configurations are visited in a fixed shuffled order, so a partial cache is a uniform
    sample of the grid. Processes with the same ``shards`` and different ``shard`` split the
    grid between them (the recorded curves were trained by two such processes).

    Returns:
        The number of configurations trained.
    """
    spec = bench_spec(setup, data_root=data_root)
    configs = grid_configs(grid_levels(spec, setup.levels))
    order = torch.randperm(len(configs), generator=torch.Generator().manual_seed(0)).tolist()
    trained = 0
    for position, index in enumerate(order):
        if position % shards != shard:
            continue
        cache.reload()
        params = configs[index]
        if cache.get(params) is not None:
            continue
        curve = train_curve(setup, params, data_root)
        cache.add(curve)
        trained += 1
        logger.info(
            "curve %d/%d %s: %s in %.1fs",
            position + 1,
            len(configs),
            config_key(params),
            [round(v, 3) for v in curve.values],
            curve.train_s,
        )
    return trained


# ------------------------------------------------------------------------ replayed studies


class ReplayedFailure(Exception):
    """A replayed configuration whose real training run failed (the trial FAILs too)."""


@dataclass
class StudyTrace:
    """What one replayed study did, trial by trial.

    Attributes:
        sampler: Sampler name.
        pruner: Pruner name.
        seed: Sampler seed.
        epochs: Epochs each trial spent, in trial order.
        values: Each trial's value (None unless it completed).
        states: Each trial's final state name.
        fallbacks: Trials whose configuration was not cached and was replaced by the nearest
            cached one.
    """

    sampler: str
    pruner: str
    seed: int
    epochs: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    fallbacks: int = 0

    @property
    def total_epochs(self) -> int:
        """Epochs spent by the whole study."""
        return sum(self.epochs)

    def best_so_far(self) -> list[tuple[int, float]]:
        """``(cumulative epochs, best completed value)`` after each trial (0.0 before any)."""
        out: list[tuple[int, float]] = []
        spent, best = 0, 0.0
        for epochs, value in zip(self.epochs, self.values, strict=True):
            spent += epochs
            if value is not None:
                best = max(best, value)
            out.append((spent, best))
        return out

    def epochs_to_reach(self, target: float) -> int | None:
        """Cumulative epochs when a trial first completed with a value >= ``target``."""
        spent = 0
        for epochs, value in zip(self.epochs, self.values, strict=True):
            spent += epochs
            if value is not None and value >= target:
                return spent
        return None


class _ReplayObjective:
    """Sample with the real search space, snap to the grid, replay the cached curve."""

    def __init__(
        self,
        spec: StudySpec,
        levels: dict[str, list[float]],
        lookup: Callable[[dict[str, float]], tuple[Curve, bool]],
        trace: StudyTrace,
    ) -> None:
        self._spec = spec
        self._levels = levels
        self._lookup = lookup
        self._trace = trace

    def __call__(self, trial: optuna.Trial) -> float:
        params = snap(suggest(trial, self._spec), self._levels, self._spec)
        curve, fallback = self._lookup(params)
        self._trace.fallbacks += int(fallback)
        callback = OptunaPruningCallback(trial, "mAP")
        trace = self._trace
        trace.epochs.append(0)
        trace.values.append(None)
        for epoch, value in enumerate(curve.values):
            trace.epochs[-1] += 1
            report = EpochReport(epoch=epoch, losses={"total": 0.0}, lr=0.0, metrics={"mAP": value})
            callback.on_epoch_end(report)
        if curve.state != "COMPLETE" or not curve.values:
            trace.epochs[-1] = min(trace.epochs[-1] + 1, self._spec.training.epochs)
            raise ReplayedFailure(f"configuration {config_key(params)}: {curve.fail_reason}")
        trace.values[-1] = float(curve.values[-1])
        return float(curve.values[-1])


def run_study(
    setup: SurrogateSetup,
    lookup: Callable[[dict[str, float]], tuple[Curve, bool]],
    *,
    sampler: str,
    pruner: str,
    seed: int,
    epoch_budget: int | None = None,
    n_trials: int | None = None,
) -> StudyTrace:
    """Run one in-memory Optuna study of ``sampler`` x ``pruner`` on the replayed curves.

    It stops after ``n_trials`` trials, or once it has spent ``epoch_budget`` epochs, or at
    ``setup.max_trials``.
    """
    spec = bench_spec(setup, sampler=sampler, pruner=pruner, seed=seed)
    levels = grid_levels(spec, setup.levels)
    trace = StudyTrace(sampler=sampler, pruner=pruner, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            study_name=spec.name,
            direction="maximize",
            sampler=build_sampler(spec),
            pruner=build_pruner(spec),
        )
        objective = _ReplayObjective(spec, levels, lookup, trace)
        limit = min(n_trials or setup.max_trials, setup.max_trials)
        while len(trace.epochs) < limit:
            if epoch_budget is not None and trace.total_epochs >= epoch_budget:
                break
            study.optimize(objective, n_trials=1, catch=(ReplayedFailure,))
            trace.states.append(study.trials[-1].state.name)
    return trace


def make_lookup(
    setup: SurrogateSetup, cache: CurveCache
) -> Callable[[dict[str, float]], tuple[Curve, bool]]:
    """``params -> (curve, fell_back)``: the cached curve of the grid configuration, or the
    nearest cached configuration's when that one was never trained (``fell_back`` True)."""
    spec = bench_spec(setup)

    def lookup(params: dict[str, float]) -> tuple[Curve, bool]:
        curve = cache.get(params)
        if curve is not None:
            return curve, False
        return cache.nearest(params, spec), True

    return lookup


# --------------------------------------------------------------------------------- analysis


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def summarise(
    setup: SurrogateSetup, traces: list[StudyTrace]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per strategy (medians over seeds) and the per-seed measurements.

    For each seed the target is the best value of the baseline (random, no pruning,
    ``setup.baseline_trials`` trials) and the budget its total epochs.
    """
    by_key = {(t.sampler, t.pruner, t.seed): t for t in traces}
    per_seed: dict[str, dict[str, Any]] = {}
    for seed in setup.seeds:
        base = by_key[(*BASELINE_STRATEGY, seed)]
        completed = [v for v in base.values if v is not None]
        per_seed[str(seed)] = {
            "target": max(completed) if completed else 0.0,
            "budget_epochs": base.total_epochs,
        }
    rows: list[dict[str, Any]] = []
    for sampler in setup.samplers:
        for pruner in setup.pruners:
            ratios, reached, spent, trials, pruned = [], 0, [], [], []
            for seed in setup.seeds:
                trace = by_key[(sampler, pruner, seed)]
                info = per_seed[str(seed)]
                epochs = trace.epochs_to_reach(info["target"])
                reached += epochs is not None
                ratio = NOT_REACHED if epochs is None else epochs / info["budget_epochs"]
                ratios.append(ratio)
                spent.append(trace.total_epochs)
                trials.append(len(trace.epochs))
                pruned.append(trace.states.count("PRUNED") / max(1, len(trace.states)))
                info.setdefault("strategies", {})[f"{sampler}/{pruner}"] = {
                    "epochs_to_reach": epochs,
                    "ratio": None if epochs is None else round(ratio, 4),
                    "best": max((v for v in trace.values if v is not None), default=None),
                    "trials": len(trace.epochs),
                    "epochs_spent": trace.total_epochs,
                    "pruned": trace.states.count("PRUNED"),
                    "failed": trace.states.count("FAIL"),
                    "fallbacks": trace.fallbacks,
                }
            median_ratio = _median(ratios)
            reached_median = median_ratio < NOT_REACHED
            rows.append(
                {
                    "sampler": sampler,
                    "pruner": pruner,
                    "median ratio": median_ratio if reached_median else "not reached",
                    "reached": f"{reached}/{len(setup.seeds)}",
                    "seeds <= 1/3": sum(r <= TARGET_RATIO for r in ratios),
                    "median trials": _median(trials),
                    "median pruned share": round(_median(pruned), 3),
                }
            )
    return rows, per_seed


def best_so_far_series(
    setup: SurrogateSetup, traces: list[StudyTrace], budget: int
) -> dict[str, list[float]]:
    """Median over seeds of the best-so-far value at every epoch count 0..``budget``."""
    series: dict[str, list[float]] = {}
    for sampler in setup.samplers:
        for pruner in setup.pruners:
            per_seed = []
            for trace in traces:
                if (trace.sampler, trace.pruner) != (sampler, pruner):
                    continue
                steps = trace.best_so_far()
                row, best, i = [], 0.0, 0
                for epoch in range(budget + 1):
                    while i < len(steps) and steps[i][0] <= epoch:
                        best = steps[i][1]
                        i += 1
                    row.append(best)
                per_seed.append(row)
            series[f"{sampler}/{pruner}"] = [
                round(_median(column), 5) for column in zip(*per_seed, strict=True)
            ]
    return series


# ---------------------------------------------------------------------------------- figures


def write_figures(
    series: dict[str, list[float]],
    *,
    setup: SurrogateSetup,
    target: float,
    budget: int,
    out_dir: Path,
) -> dict[str, str]:
    """Best-so-far validation mAP vs epochs spent, one panel per pruner: HTML and PNG.

    Returns:
        ``{"html": path, "png": path}`` (PNG only when matplotlib is installed: the ``bench``
        extra).
    """
    from plotly.subplots import make_subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    colours = {"tpe": "#1f77b4", "random": "#7f7f7f", "gp": "#2ca02c", "cmaes": "#d62728"}
    epochs = list(range(budget + 1))
    fig = make_subplots(
        rows=1,
        cols=len(setup.pruners),
        shared_yaxes=True,
        subplot_titles=[f"pruner: {p}" for p in setup.pruners],
    )
    for col, pruner in enumerate(setup.pruners, start=1):
        for sampler in setup.samplers:
            fig.add_scatter(
                x=epochs,
                y=series[f"{sampler}/{pruner}"],
                mode="lines",
                line={"color": colours.get(sampler), "shape": "hv"},
                name=sampler,
                legendgroup=sampler,
                showlegend=col == 1,
                row=1,
                col=col,
            )
        fig.add_hline(y=target, line={"dash": "dot", "color": "black"}, row=1, col=col)
        fig.add_vline(
            x=budget * TARGET_RATIO, line={"dash": "dash", "color": "black"}, row=1, col=col
        )
        fig.update_xaxes(title_text="epochs spent", row=1, col=col)
    fig.update_yaxes(title_text="best validation mAP so far (median over seeds)", row=1, col=1)
    fig.update_layout(
        title="Search efficiency on the tabular surrogate (dotted: random-60 best; "
        "dashed: 1/3 of its epochs)",
        width=1400,
        height=450,
    )
    paths = {"html": str(out_dir / "search_efficiency.html")}
    fig.write_html(paths["html"], include_plotlyjs=True, full_html=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'reid-hpo[bench]'): no PNG")
        return paths
    figure, axes = plt.subplots(1, len(setup.pruners), figsize=(16, 4.2), sharey=True)
    for ax, pruner in zip(list(getattr(axes, "flat", [axes])), setup.pruners, strict=True):
        for sampler in setup.samplers:
            ax.step(
                epochs,
                series[f"{sampler}/{pruner}"],
                where="post",
                label=sampler,
                color=colours.get(sampler),
            )
        ax.axhline(target, linestyle=":", color="black", linewidth=1)
        ax.axvline(budget * TARGET_RATIO, linestyle="--", color="black", linewidth=1)
        ax.set_title(f"pruner: {pruner}")
        ax.set_xlabel("epochs spent")
        ax.grid(alpha=0.3)
    first = next(iter(getattr(axes, "flat", [axes])))
    first.set_ylabel("best val mAP so far (median over seeds)")
    first.legend(loc="lower right")
    lows = [min(v for v in values if v > 0) for values in series.values() if any(values)]
    if lows:
        first.set_ylim(bottom=max(0.0, min(lows) - 0.02))
    figure.tight_layout()
    paths["png"] = str(out_dir / "search_efficiency.png")
    figure.savefig(paths["png"], dpi=110)
    plt.close(figure)
    return paths


# -------------------------------------------------------------------------------- benchmark


@BENCHMARKS.register("search")
def bench_search(options: BenchOptions) -> BenchResult:
    """Search efficiency: sampler x pruner on replayed real learning curves (target 4)."""
    setup = QUICK if options.quick else FULL
    torch.set_num_threads(options.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    env_dir = os.environ.get("REID_HPO_BENCH_SEARCH_DIR")
    work = Path(tempfile.mkdtemp(prefix="reid-hpo-bench-search-"))
    out_dir = Path(env_dir) if env_dir else (work if options.quick else DATA_DIR)
    try:
        return _run(setup, options, out_dir=out_dir, work=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(setup: SurrogateSetup, options: BenchOptions, *, out_dir: Path, work: Path) -> BenchResult:
    cache = CurveCache(out_dir / CURVES_FILE)
    spec = bench_spec(setup)
    grid = grid_configs(grid_levels(spec, setup.levels))
    if any(cache.get(params) is None for params in grid):
        fill_cache(setup, cache, prepare_data(setup, work / "data"))
    lookup = make_lookup(setup, cache)
    started = time.monotonic()
    traces: list[StudyTrace] = []
    for seed in setup.seeds:
        base = run_study(
            setup,
            lookup,
            sampler="random",
            pruner="none",
            seed=seed,
            n_trials=setup.baseline_trials,
        )
        traces.append(base)
        for sampler in setup.samplers:
            for pruner in setup.pruners:
                if (sampler, pruner) == BASELINE_STRATEGY:
                    continue
                traces.append(
                    run_study(
                        setup,
                        lookup,
                        sampler=sampler,
                        pruner=pruner,
                        seed=seed,
                        epoch_budget=base.total_epochs,
                    )
                )
                logger.info("search %s/%s seed %d done", sampler, pruner, seed)
    rows, per_seed = summarise(setup, traces)
    budget = max(info["budget_epochs"] for info in per_seed.values())
    target = _median(info["target"] for info in per_seed.values())
    series = best_so_far_series(setup, traces, budget)
    default_row = next(r for r in rows if (r["sampler"], r["pruner"]) == DEFAULT_STRATEGY)
    default_ratio = default_row["median ratio"]
    default_value = default_ratio if isinstance(default_ratio, float) else NOT_REACHED
    figures = write_figures(series, setup=setup, target=target, budget=budget, out_dir=out_dir)
    cached = sum(cache.get(p) is not None for p in grid)
    finite = [c.values[-1] for c in cache.curves.values() if c.values]
    details = {
        "environment": environment(options),
        "setup": {
            "data": setup.data,
            "training": setup.training,
            "search_space": setup.search_space,
            "levels": grid_levels(spec, setup.levels),
            "baseline_trials": setup.baseline_trials,
            "seeds": list(setup.seeds),
            "max_trials": setup.max_trials,
        },
        "grid_size": len(grid),
        "grid_cached": cached,
        "lookup": "exact when cached, else the nearest cached configuration",
        "curve_final_map": {
            "min": min(finite, default=None),
            "median": _median(finite) if finite else None,
            "max": max(finite, default=None),
        },
        "per_seed": per_seed,
        "best_so_far": series,
        "figures": figures,
        "studies_s": round(time.monotonic() - started, 1),
    }
    result = BenchResult(
        name="search",
        title=f"Search efficiency: epochs to reach the best of random-{setup.baseline_trials} "
        "(unpruned) / its epochs",
        columns=[
            "sampler",
            "pruner",
            "median ratio",
            "reached",
            "seeds <= 1/3",
            "median trials",
            "median pruned share",
        ],
        rows=rows,
        targets=[
            Target(
                f"tpe+median epochs to reach the random-{setup.baseline_trials} best / its epochs "
                f"(median over seeds; never reached counts as {NOT_REACHED})",
                default_value,
                TARGET_RATIO,
                higher_is_better=False,
            )
        ],
        summary={
            "grid configurations cached": float(cached),
            "median baseline best val mAP": target,
            "baseline epochs": float(budget),
        },
        details=details,
    )
    figure_data = {
        "x": "cumulative training epochs spent",
        "y": "best completed validation mAP so far, median over seeds",
        "target": target,
        "budget_epochs": budget,
        "best_so_far": series,
        "per_seed": per_seed,
    }
    (out_dir / "figure_data.json").write_text(json.dumps(figure_data, indent=1) + "\n")
    return result
