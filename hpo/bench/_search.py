"""``search``: search efficiency of sampler x pruner on a tabular surrogate of real training runs.

Issue 5, target 4: our default sampler + pruner (what a spec that names neither, or names them
with no options, builds: :data:`DEFAULT_STRATEGY`) should reach the best validation mAP of an
unpruned 60-trial random search with at most a third of the random search's training epochs.

The surrogate problem (see BENCHMARKS.md, "Search efficiency"):

1. **Curves from the real code path.** The search space is the demo study's seven parameters
   (``sigma``, ``alpha``, ``l``, ``margin``, ``beta``, ``gamma``, ``weight_decay``, demo
   ranges). Each parameter is discretised into a few levels, the centres of equal-width bins of
   its range (in log space for log ranges). Every configuration of that grid is trained ONCE by
   the real objective (:func:`hpo.worker.make_objective`: spec -> TrainConfig -> the
   ``reid_core`` trainer -> :class:`hpo.worker.OptunaPruningCallback`) on a synthetic
   MARS-layout dataset (:func:`reid_core.data.write_synthetic`), evaluated after every epoch;
   its validation-mAP curve is cached on disk (JSON lines, keyed by the parameters).
2. **Studies replay the curves.** Each strategy x seed is a real Optuna study made by the
   product's :func:`hpo.study.create_study` from a spec (in-memory storage; so sampler and
   pruner come from :func:`hpo.search.build_sampler` / :func:`hpo.search.build_pruner` with
   the spec defaults), sampling with :func:`hpo.search.suggest` on the continuous demo
   ranges. Its objective maps the
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
4. **Select, then confirm.** The pre-registered :data:`CANDIDATES` are ranked on the selection
   seeds (:func:`select_candidate`); the selected one counts only if it also meets the target on
   the held-out seeds (``SurrogateSetup.heldout_seeds``), which are reported separately.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import math
import os
import re
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
from hpo.demo import default_spec_path
from hpo.search import suggest
from hpo.spec import FloatParam
from hpo.spec import PrunerSpec
from hpo.spec import SamplerSpec
from hpo.spec import StudySpec
from hpo.spec import load_spec
from hpo.spec import parse_spec
from hpo.study import create_study
from hpo.worker import OptunaPruningCallback
from hpo.worker import make_objective
from reid_core.data import write_synthetic
from reid_core.engine import EpochReport
from reid_core.errors import ConfigError

logger = logging.getLogger(__name__)

SAMPLERS: tuple[str, ...] = ("tpe", "random", "gp", "cmaes")
PRUNERS: tuple[str, ...] = ("median", "hyperband", "sha", "none")
TARGET_RATIO = 1 / 3


@dataclass(frozen=True)
class Strategy:
    """A sampler and a pruner with explicit pruner options (none: the spec defaults).

    Attributes:
        sampler: Sampler name (``sampler.name`` of the spec).
        pruner: Pruner name (``pruner.name``).
        pruner_options: ``pruner.options`` as sorted ``(key, value)`` pairs.
    """

    sampler: str
    pruner: str
    pruner_options: tuple[tuple[str, int], ...] = ()

    @property
    def label(self) -> str:
        """``sampler/pruner``, plus ``+key=value`` for each explicit pruner option."""
        extra = "".join(f"+{key}={value}" for key, value in self.pruner_options)
        return f"{self.sampler}/{self.pruner}{extra}"


#: What a spec builds when it names no sampler and no pruner: the product default.
DEFAULT_STRATEGY = Strategy(SamplerSpec().name, PrunerSpec().name)
BASELINE_STRATEGY = Strategy("random", "none")
#: The candidates for the default, pre-registered in BENCHMARKS.md before they were run.
CANDIDATES: tuple[Strategy, ...] = (
    Strategy("tpe", "median", (("patience", 0),)),
    Strategy("tpe", "median", (("patience", 1),)),
    Strategy("gp", "median", (("patience", 0),)),
    Strategy("gp", "median", (("patience", 1),)),
)
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
        seeds: Selection seeds; each seed runs every strategy once.
        max_trials: Cap on the trials of one strategy (pruned trials are cheap).
        samplers: Samplers compared (each with every pruner, no options).
        pruners: Pruners compared.
        heldout_seeds: Seeds that only confirm the candidate selected on ``seeds``.
        candidates: The pre-registered candidates for the default.
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
    heldout_seeds: tuple[int, ...] = ()
    candidates: tuple[Strategy, ...] = ()

    @property
    def epochs(self) -> int:
        """Epochs of one full (unpruned) trial."""
        return int(self.training["epochs"])

    @property
    def seed_sets(self) -> dict[str, tuple[int, ...]]:
        """``{"selection": seeds, "held-out": heldout_seeds}`` (non-empty sets only)."""
        sets = {"selection": self.seeds, "held-out": self.heldout_seeds}
        return {name: seeds for name, seeds in sets.items() if seeds}

    def strategies(self) -> list[Strategy]:
        """Every sampler x pruner with no options, then the candidates not already listed."""
        grid = [Strategy(s, p) for s in self.samplers for p in self.pruners]
        return grid + [c for c in self.candidates if c not in grid]


def _demo_search_space() -> dict[str, dict[str, Any]]:
    """The search space of ``studies/demo.yaml``: the one definition the demo and this bench
    share (the recorded curves are keyed by configuration, so a changed space trains the
    configurations it lacks instead of replaying stale ones)."""
    spec = load_spec(default_spec_path())
    return {name: param.model_dump() for name, param in spec.search_space.items()}


_DEMO_SPACE = _demo_search_space()

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
    # The recipe the recorded curves were trained with (before the faithful defaults of
    # issue 15): every tracklet once per epoch, pad + crop per clip, clips spaced over a tracklet.
    "epoch_sampling": "per_tracklet",
    "translation": "pad_crop",
    "augment_scope": "clip",
    "test_clips": "spaced",
}

FULL = SurrogateSetup(
    data={"ids": 64, "cameras": 4, "tracklets": 4, "frames": 8, "height": 32, "width": 16},
    training=_TRAINING,
    search_space=_DEMO_SPACE,
    levels={name: 3 if name == "weight_decay" else 2 for name in _DEMO_SPACE},
    baseline_trials=60,
    seeds=(0, 1, 2, 3, 4),
    max_trials=150,
    heldout_seeds=tuple(range(5, 15)),
    candidates=CANDIDATES,
)
"""The recorded run: 192 configurations x 6 epochs, 60-trial baseline, seeds 0-4 to select and
5-14 to confirm."""

QUICK = SurrogateSetup(
    data={"ids": 24, "cameras": 3, "tracklets": 3, "frames": 6, "height": 32, "width": 16},
    training={**_TRAINING, "epochs": 4, "milestones": [2], "test_max_clips": 2},
    search_space={"weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e3, "log": True}},
    levels={"weight_decay": 3},
    baseline_trials=8,
    seeds=(0,),
    max_trials=24,
    samplers=("tpe", "random"),
    heldout_seeds=(1,),
    candidates=(Strategy("tpe", "median", (("patience", 1),)),),
)
"""Seconds-sized run for tests: one parameter on 3 levels (the top one, weight decay ~30, too
strong to learn); the LR drops after epoch 0, so the default pruners may compare from epoch
index 1."""


# --------------------------------------------------------------------------- spec and grid


def bench_spec(
    setup: SurrogateSetup,
    *,
    data_root: str | Path = "unused",
    strategy: Strategy = BASELINE_STRATEGY,
    seed: int = 0,
    artifacts_root: str | Path = "unused",
) -> StudySpec:
    """The study spec of the surrogate: demo-like model and recipe, the setup's search space.

    The sampler takes no options and the pruner only the strategy's explicit ones, so the rest
    is what a real study with this spec builds.
    """
    sampler, pruner = strategy.sampler, strategy.pruner
    return parse_spec(
        {
            "name": re.sub(r"[^A-Za-z0-9._-]", "-", f"bench-search-{strategy.label}-{seed}"),
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
            "pruner": {"name": pruner, "options": dict(strategy.pruner_options)},
            "budget": {"n_trials": setup.baseline_trials},
            "artifacts": {"root": str(artifacts_root)},
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
        strategy: Sampler, pruner and explicit pruner options.
        seed: Sampler seed.
        epochs: Epochs each trial spent, in trial order.
        values: Each trial's value (None unless it completed).
        states: Each trial's final state name.
        fallbacks: Trials whose configuration was not cached and was replaced by the nearest
            cached one.
    """

    strategy: Strategy
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
    strategy: Strategy,
    seed: int,
    epoch_budget: int | None = None,
    n_trials: int | None = None,
) -> StudyTrace:
    """Run one in-memory study of ``strategy`` on the replayed curves.

    The study is made by :func:`hpo.study.create_study` from :func:`bench_spec`, so its
    sampler and pruner are exactly what a real study with that spec gets. It stops after
    ``n_trials`` trials, or once it has spent ``epoch_budget`` epochs, or at
    ``setup.max_trials``.
    """
    trace = StudyTrace(strategy=strategy, seed=seed)
    # create_study writes the study's marker under the artifacts root: a throwaway folder,
    # never the caller's working directory.
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="reid-hpo-bench-") as root:
        warnings.simplefilter("ignore")
        spec = bench_spec(setup, strategy=strategy, seed=seed, artifacts_root=root)
        levels = grid_levels(spec, setup.levels)
        study = create_study(spec, optuna.storages.InMemoryStorage())
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


def _ratio_cell(ratios: list[float]) -> float | str:
    median = _median(ratios)
    return median if median < NOT_REACHED else "not reached"


def summarise(
    setup: SurrogateSetup, traces: list[StudyTrace]
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, dict[str, list[float]]]]:
    """One row per strategy, the per-seed measurements, and every ratio by strategy and set.

    For each seed the target is the best value of the baseline (random, no pruning,
    ``setup.baseline_trials`` trials) and the budget its total epochs; a strategy's ratio is
    the epochs it needed to complete a trial at least that good over the budget
    (:data:`NOT_REACHED` when it never did). Rows give medians per seed set.
    """
    by_key = {(t.strategy, t.seed): t for t in traces}
    per_seed: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, list[float]]] = {}
    rows: list[dict[str, Any]] = []
    for set_name, seeds in setup.seed_sets.items():
        for seed in seeds:
            base = by_key[(BASELINE_STRATEGY, seed)]
            completed = [v for v in base.values if v is not None]
            per_seed[str(seed)] = {
                "set": set_name,
                "target": max(completed) if completed else 0.0,
                "budget_epochs": base.total_epochs,
                "strategies": {},
            }
    for strategy in setup.strategies():
        row: dict[str, Any] = {"strategy": strategy.label}
        trials, pruned, reached = [], [], 0
        for set_name, seeds in setup.seed_sets.items():
            set_ratios = ratios.setdefault(strategy.label, {}).setdefault(set_name, [])
            for seed in seeds:
                trace, info = by_key[(strategy, seed)], per_seed[str(seed)]
                epochs = trace.epochs_to_reach(info["target"])
                reached += epochs is not None
                set_ratios.append(NOT_REACHED if epochs is None else epochs / info["budget_epochs"])
                trials.append(len(trace.epochs))
                pruned.append(trace.states.count("PRUNED") / max(1, len(trace.states)))
                info["strategies"][strategy.label] = {
                    "epochs_to_reach": epochs,
                    "ratio": None if epochs is None else round(set_ratios[-1], 4),
                    "best": max((v for v in trace.values if v is not None), default=None),
                    "trials": len(trace.epochs),
                    "epochs_spent": trace.total_epochs,
                    "pruned": trace.states.count("PRUNED"),
                    "failed": trace.states.count("FAIL"),
                    "fallbacks": trace.fallbacks,
                }
            row[f"median ratio ({set_name})"] = _ratio_cell(set_ratios)
            row[f"seeds <= 1/3 ({set_name})"] = sum(r <= TARGET_RATIO for r in set_ratios)
        row["reached"] = f"{reached}/{len(trials)}"
        row["median trials"] = _median(trials)
        row["median pruned share"] = round(_median(pruned), 3)
        rows.append(row)
    return rows, per_seed, ratios


def select_candidate(candidates: Iterable[Strategy], ratios: dict[str, list[float]]) -> Strategy:
    """The pre-registered selection rule: the smallest median ratio; ties go to more seeds with
    ratio <= 1/3, then to the earlier candidate.

    Args:
        candidates: The candidates, in their registered order.
        ratios: Each candidate's per-seed ratios on the selection seeds, by label.

    Returns:
        The selected candidate.
    """

    def rank(item: tuple[int, Strategy]) -> tuple[float, int, int]:
        index, candidate = item
        values = ratios[candidate.label]
        return _median(values), -sum(r <= TARGET_RATIO for r in values), index

    return min(enumerate(candidates), key=rank)[1]


def best_so_far_series(
    setup: SurrogateSetup, traces: list[StudyTrace], budget: int
) -> dict[str, dict[str, list[float]]]:
    """Per seed set and strategy: the median over its seeds of the best-so-far value at every
    epoch count 0..``budget``."""
    series: dict[str, dict[str, list[float]]] = {}
    for set_name, seeds in setup.seed_sets.items():
        for strategy in setup.strategies():
            per_seed = []
            for trace in traces:
                if trace.strategy != strategy or trace.seed not in seeds:
                    continue
                steps = trace.best_so_far()
                row, best, i = [], 0.0, 0
                for epoch in range(budget + 1):
                    while i < len(steps) and steps[i][0] <= epoch:
                        best = steps[i][1]
                        i += 1
                    row.append(best)
                per_seed.append(row)
            series.setdefault(set_name, {})[strategy.label] = [
                round(_median(column), 5) for column in zip(*per_seed, strict=True)
            ]
    return series


# ---------------------------------------------------------------------------------- figures


def _panels(setup: SurrogateSetup) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(title, [(line name, strategy label), ...])`` of each figure column."""
    panels = [
        (f"pruner: {pruner}", [(s, Strategy(s, pruner).label) for s in setup.samplers])
        for pruner in setup.pruners
    ]
    if setup.candidates:
        panels.append(("pre-registered candidates", [(c.label, c.label) for c in setup.candidates]))
    return panels


_COLOURS = ("#1f77b4", "#7f7f7f", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e")
_SAMPLER_COLOURS = {
    "tpe": _COLOURS[0],
    "random": _COLOURS[1],
    "gp": _COLOURS[2],
    "cmaes": _COLOURS[3],
}


def _colour(name: str, index: int) -> str:
    return _SAMPLER_COLOURS.get(name, _COLOURS[index % len(_COLOURS)])


def write_figures(
    series: dict[str, dict[str, list[float]]],
    *,
    setup: SurrogateSetup,
    targets: dict[str, float],
    budget: int,
    out_dir: Path,
) -> dict[str, str]:
    """Best-so-far validation mAP vs epochs spent: one row of panels per seed set, one panel
    per pruner (a line per sampler) plus one for the candidates; HTML and PNG.

    Returns:
        ``{"html": path, "png": path}`` (PNG only when matplotlib is installed: the ``bench``
        extra).
    """
    from plotly.subplots import make_subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = list(range(budget + 1))
    panels = _panels(setup)
    sets = list(series)
    fig = make_subplots(
        rows=len(sets),
        cols=len(panels),
        shared_yaxes=True,
        subplot_titles=[f"{title} (seeds: {name})" for name in sets for title, _ in panels],
    )
    shown: set[str] = set()
    for row, set_name in enumerate(sets, start=1):
        for col, (_, lines) in enumerate(panels, start=1):
            for index, (name, label) in enumerate(lines):
                fig.add_scatter(
                    x=epochs,
                    y=series[set_name][label],
                    mode="lines",
                    line={"color": _colour(name, index), "shape": "hv"},
                    name=name,
                    legendgroup=name,
                    showlegend=name not in shown,
                    row=row,
                    col=col,
                )
                shown.add(name)
            fig.add_hline(
                y=targets[set_name], line={"dash": "dot", "color": "black"}, row=row, col=col
            )
            fig.add_vline(
                x=budget * TARGET_RATIO, line={"dash": "dash", "color": "black"}, row=row, col=col
            )
            fig.update_xaxes(title_text="epochs spent", row=row, col=col)
        fig.update_yaxes(title_text=f"best val mAP so far ({set_name})", row=row, col=1)
    fig.update_layout(
        title="Search efficiency on the tabular surrogate, median over seeds (dotted: random-60 "
        "best; dashed: 1/3 of its epochs)",
        width=300 * len(panels) + 200,
        height=380 * len(sets) + 80,
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
    figure, axes = plt.subplots(
        len(sets),
        len(panels),
        figsize=(3.6 * len(panels), 3.6 * len(sets)),
        sharey=True,
        squeeze=False,
    )
    values = [v for by_label in series.values() for row in by_label.values() for v in row if v > 0]
    for row, set_name in enumerate(sets):
        for col, (title, lines) in enumerate(panels):
            ax = axes[row][col]
            for index, (name, label) in enumerate(lines):
                ax.step(
                    epochs,
                    series[set_name][label],
                    where="post",
                    label=name,
                    color=_colour(name, index),
                )
            ax.axhline(targets[set_name], linestyle=":", color="black", linewidth=1)
            ax.axvline(budget * TARGET_RATIO, linestyle="--", color="black", linewidth=1)
            ax.set_title(f"{title}\nseeds: {set_name}", fontsize=9)
            ax.set_xlabel("epochs spent")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("best val mAP so far (median)")
            if row == 0 and col in (0, len(panels) - 1):
                ax.legend(loc="lower right", fontsize=7)
    if values:
        axes[0][0].set_ylim(bottom=max(0.0, min(values) - 0.02))
    figure.tight_layout()
    paths["png"] = str(out_dir / "search_efficiency.png")
    figure.savefig(paths["png"], dpi=100)
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
    for seed in (*setup.seeds, *setup.heldout_seeds):
        base = run_study(
            setup, lookup, strategy=BASELINE_STRATEGY, seed=seed, n_trials=setup.baseline_trials
        )
        traces.append(base)
        for strategy in setup.strategies():
            if strategy == BASELINE_STRATEGY:
                continue
            traces.append(
                run_study(
                    setup, lookup, strategy=strategy, seed=seed, epoch_budget=base.total_epochs
                )
            )
            logger.info("search %s seed %d done", strategy.label, seed)
    rows, per_seed, ratios = summarise(setup, traces)
    budget = max(info["budget_epochs"] for info in per_seed.values())
    targets = {
        name: _median(per_seed[str(seed)]["target"] for seed in seeds)
        for name, seeds in setup.seed_sets.items()
    }
    series = best_so_far_series(setup, traces, budget)
    verdict = _verdict(setup, traces, ratios)
    figures = write_figures(series, setup=setup, targets=targets, budget=budget, out_dir=out_dir)
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
            "seeds": {name: list(seeds) for name, seeds in setup.seed_sets.items()},
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
        "default": verdict["default"],
        "candidates": verdict,
        "ratios": ratios,
        "per_seed": per_seed,
        "best_so_far": series,
        "figures": figures,
        "studies_s": round(time.monotonic() - started, 1),
    }
    result = BenchResult(
        name="search",
        title=f"Search efficiency: epochs to reach the best of random-{setup.baseline_trials} "
        f"(unpruned) / its epochs; default: {DEFAULT_STRATEGY.label} with the spec defaults",
        columns=list(rows[0]),
        rows=rows,
        targets=[
            Target(
                f"default {DEFAULT_STRATEGY.label}: epochs to reach the random-"
                f"{setup.baseline_trials} best / its epochs, median over the {name} seeds "
                f"{list(setup.seed_sets[name])} (never reached counts as {NOT_REACHED})",
                _median(ratios[DEFAULT_STRATEGY.label][name]),
                TARGET_RATIO,
                higher_is_better=False,
            )
            for name in sorted(setup.seed_sets, key=lambda n: n != "held-out")
        ],
        summary={
            "grid configurations cached": float(cached),
            **{f"median baseline best val mAP ({n})": t for n, t in targets.items()},
            "baseline epochs": float(budget),
        },
        details=details,
    )
    figure_data = {
        "x": "cumulative training epochs spent",
        "y": "best completed validation mAP so far, median over the seeds of each set",
        "targets": targets,
        "budget_epochs": budget,
        "candidates": verdict,
        "best_so_far": series,
        "per_seed": per_seed,
    }
    (out_dir / "figure_data.json").write_text(json.dumps(figure_data, indent=1) + "\n")
    return result


def _verdict(
    setup: SurrogateSetup, traces: list[StudyTrace], ratios: dict[str, dict[str, list[float]]]
) -> dict[str, Any]:
    """The candidate selected on the selection seeds, whether the held-out seeds confirm it,
    and whether the default strategy ran exactly the same trials as it."""
    out: dict[str, Any] = {"default": DEFAULT_STRATEGY.label}
    if not setup.candidates:
        return out
    chosen = select_candidate(setup.candidates, {k: v["selection"] for k, v in ratios.items()})
    out.update(
        {
            "candidates": [c.label for c in setup.candidates],
            "rule": "smallest median ratio on the selection seeds; ties: more seeds <= 1/3, then "
            "the earlier candidate; confirmed if its held-out median ratio <= 1/3",
            "selected": chosen.label,
            "selected_median_ratio": {
                name: _median(values) for name, values in ratios[chosen.label].items()
            },
        }
    )
    if "held-out" in setup.seed_sets:
        out["confirmed"] = out["selected_median_ratio"]["held-out"] <= TARGET_RATIO

    def runs(strategy: Strategy) -> list[tuple[int, list[int], list[float | None]]]:
        return [(t.seed, t.epochs, t.values) for t in traces if t.strategy == strategy]

    out["default_ran_the_same_trials_as_selected"] = runs(DEFAULT_STRATEGY) == runs(chosen)
    return out
