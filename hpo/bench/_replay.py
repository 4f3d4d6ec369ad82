"""Replay of search strategies on the surrogate-v2 cache (issue 20).

The cache (:mod:`hpo.bench._surrogate`) holds, for every configuration of a Sobol design and
every training seed, the full 24-epoch validation curve, the 3- and 8-epoch compressed runs'
validation mAP, and each run's test mAP. A strategy proposes configurations; each proposal is
snapped to the nearest design point (range-normalised, log where log) and served by one training
seed's runs, drawn by the replay seed (a real rerun would differ by seed noise too). Strategies see
validation mAP only; their incumbent's **true quality** is the configuration's full-schedule test
mAP averaged over the training seeds.

Epochs are the budget: a full trial costs 24, a pruned trial the epochs it ran, a rung of a
compressed ladder its own schedule's epochs (the compressed schedules share no prefix with the
longer ones: a promoted configuration retrains).

The promotion rule of compressed successive halving / Hyperband is the product's own
(:func:`hpo.search.promotions`, :func:`hpo.search.next_bracket`), so the
benchmark measures what the service does.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import optuna

from hpo.search import brackets
from hpo.search import next_bracket
from hpo.search import promotions
from hpo.search import rung_epochs
from hpo.search import suggest
from hpo.spec import FloatParam
from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.worker import OptunaPruningCallback
from reid_core.engine import EpochReport

FULL = 24
ETA = 3
LADDER = rung_epochs(FULL, ETA, min_epochs=3)  # (3, 8, 24)
BASE_TRIALS = 60
BUDGET = BASE_TRIALS * FULL


@dataclass(frozen=True)
class Table:
    """The cache as lookup tables.

    Attributes:
        params: Each configuration's parameters (design order).
        seeds: The training seeds every configuration has.
        val: ``(config, seed) -> {1-based epoch: validation mAP}`` of the full run.
        rung: ``(config, seed, epochs) -> validation mAP`` at the end of each schedule (the
            full one included); NaN for a failed run.
        test: ``(config, seed, epochs) -> test mAP`` (NaN for a failed run).
        quality: Per configuration, the full-schedule test mAP averaged over ``seeds``.
    """

    params: list[dict[str, float]]
    seeds: tuple[int, ...]
    val: dict[tuple[int, int], dict[int, float]]
    rung: dict[tuple[int, int, int], float]
    test: dict[tuple[int, int, int], float]
    quality: list[float]


def build_table(shards: list[dict[str, Any]], seeds: tuple[int, ...]) -> Table:
    """A :class:`Table` of the configurations that have a shard for every seed in ``seeds``."""
    by_config: dict[int, dict[int, dict[str, Any]]] = {}
    for shard in shards:
        by_config.setdefault(shard["config_index"], {})[shard["seed"]] = shard
    complete = [c for c in sorted(by_config) if all(s in by_config[c] for s in seeds)]
    params, val, rung, test, quality = [], {}, {}, {}, []
    for new, index in enumerate(complete):
        params.append(by_config[index][seeds[0]]["params"])
        for seed in seeds:
            runs = by_config[index][seed]["runs"]
            val[(new, seed)] = {int(k): v for k, v in runs[str(FULL)]["val"].items()}
            for epochs_text, run in runs.items():
                epochs = int(epochs_text)
                ok = run["state"] == "COMPLETE"
                rung[(new, seed, epochs)] = run["val"][epochs_text] if ok else math.nan
                test[(new, seed, epochs)] = run["test"] if ok else math.nan
        tests = [test[(new, s, FULL)] for s in seeds]
        quality.append(sum(0.0 if math.isnan(t) else t for t in tests) / len(seeds))
    return Table(params, tuple(seeds), val, rung, test, quality)


def snapper(table: Table, space: dict[str, FloatParam]) -> Callable[[dict[str, float]], int]:
    """``params -> index`` of the nearest design configuration (range-normalised, log where
    log)."""

    def unit(name: str, value: float) -> float:
        p = space[name]
        if p.log:
            return (math.log(value) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
        return (value - p.low) / (p.high - p.low)

    points = [[unit(n, c[n]) for n in space] for c in table.params]

    def snap(params: dict[str, float]) -> int:
        x = [unit(n, params[n]) for n in space]
        return min(
            range(len(points)),
            key=lambda i: sum((a - b) ** 2 for a, b in zip(points[i], x, strict=True)),
        )

    return snap


@dataclass
class Trace:
    """What one replayed search did: after each unit of work, the epochs spent so far and the
    incumbent (the configuration it would hand back), or None before it has one."""

    label: str
    seed: int
    steps: list[tuple[int, int | None]] = field(default_factory=list)

    def incumbent_at(self, epochs: int) -> int | None:
        """The incumbent once ``epochs`` epochs had been spent (the last step within them)."""
        current = None
        for spent, incumbent in self.steps:
            if spent > epochs:
                break
            current = incumbent
        return current

    def quality_at(self, table: Table, epochs: int) -> float:
        """True quality of the incumbent at ``epochs`` (0.0 before any)."""
        incumbent = self.incumbent_at(epochs)
        return 0.0 if incumbent is None else table.quality[incumbent]


class _Incumbent:
    """Best validation value per rung; the incumbent is the best at the highest rung reached."""

    def __init__(self) -> None:
        self.best: dict[int, tuple[float, int]] = {}

    def add(self, epochs: int, value: float, config: int) -> None:
        if math.isnan(value):
            return
        if epochs not in self.best or value > self.best[epochs][0]:
            self.best[epochs] = (value, config)

    def get(self) -> int | None:
        return self.best[max(self.best)][1] if self.best else None


def _seed_picker(table: Table, seed: int) -> Callable[[], int]:
    rng = random.Random(10_007 * seed + 1)
    return lambda: rng.choice(table.seeds)


def _study(spec: StudySpec, sampler: str, pruner: str, seed: int) -> optuna.Study:
    study_spec = spec.model_copy(
        update={
            "sampler": spec.sampler.model_copy(update={"name": sampler, "seed": seed}),
            "pruner": spec.pruner.model_copy(update={"name": pruner, "options": {}}),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_study(study_spec, optuna.storages.InMemoryStorage())


def replay_optuna(
    table: Table, spec: StudySpec, *, sampler: str, pruner: str, seed: int, label: str
) -> Trace:
    """An Optuna study (the product's sampler and pruner for ``spec``) over full trials, each
    replaying a cached validation curve through the real pruning adapter, until the budget."""
    study = _study(spec, sampler, pruner, seed)
    snap = snapper(table, dict(spec.search_space))
    pick_seed = _seed_picker(table, seed)
    trace, incumbent, spent = Trace(label, seed), _Incumbent(), 0
    while spent < BUDGET:
        trial = study.ask()
        config = snap(suggest(trial, spec))
        curve = table.val[(config, pick_seed())]
        callback = OptunaPruningCallback(trial, "mAP")
        ran, pruned = 0, False
        for epoch in range(1, FULL + 1):
            ran = epoch
            if epoch not in curve:
                continue
            report = EpochReport(epoch - 1, {"total": 0.0}, 0.0, {"mAP": curve[epoch]})
            try:
                callback.on_epoch_end(report)
            except optuna.TrialPruned:
                pruned = True
                break
        spent += ran
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif math.isnan(curve.get(FULL, math.nan)):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, curve[FULL])
            incumbent.add(FULL, curve[FULL], config)
        trace.steps.append((spent, incumbent.get()))
    return trace


class _Proposer:
    """New configurations for a rung ladder from one Optuna study, as the service does: the
    sampler (``random``: ASHA's random proposals; ``tpe``) sees every completed rung result,
    compressed or full, as one objective; a promoted configuration is an enqueued trial with
    its original parameters."""

    def __init__(self, spec: StudySpec, sampler: str, seed: int, table: Table) -> None:
        self._spec = spec
        self._study = _study(spec, sampler, "none", seed)
        self._snap = snapper(table, dict(spec.search_space))

    def ask(self) -> tuple[int, dict[str, float], optuna.Trial]:
        """A new configuration: (design index, sampled parameters, its trial)."""
        trial = self._study.ask()
        params = suggest(trial, self._spec)
        return self._snap(params), params, trial

    def tell(self, trial: optuna.Trial, value: float) -> None:
        """Report a rung result (NaN: a failed run)."""
        if math.isnan(value):
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, value)

    def tell_promoted(self, params: dict[str, float], value: float) -> None:
        """Report the result of a promoted configuration (an enqueued trial)."""
        self._study.enqueue_trial(params)
        trial = self._study.ask()
        suggest(trial, self._spec)
        self.tell(trial, value)


def replay_ladder(
    table: Table,
    spec: StudySpec,
    *,
    kind: str,
    sampler: str,
    seed: int,
    label: str,
    ladder: tuple[int, ...] = LADDER,
) -> Trace:
    """Compressed successive halving (``kind="sha"``) or Hyperband over ``ladder`` (epochs of
    each rung, the full schedule last), one worker: promote first (highest rung first) by the
    product's rule, else start a new configuration in the next bracket; until the budget."""
    plan = brackets(kind, len(ladder), ETA)  # type: ignore[arg-type]
    proposer = _Proposer(spec, sampler, seed, table)
    pick_seed = _seed_picker(table, seed)
    # results[(bracket, rung)] = {run id: val}; runs[run id] = (config, training seed, params)
    results: dict[tuple[int, int], dict[int, float]] = {}
    promoted: dict[tuple[int, int], list[int]] = {}
    runs: list[tuple[int, int, dict[str, float]]] = []
    started = [0] * len(plan)
    trace, incumbent, spent = Trace(label, seed), _Incumbent(), 0

    def run(run_id: int, bracket: int, rung: int) -> float:
        config, training_seed, _ = runs[run_id]
        epochs = ladder[rung]
        value = table.rung[(config, training_seed, epochs)]
        results.setdefault((bracket, rung), {})[run_id] = value
        incumbent.add(epochs, value, config)
        return value

    while spent < BUDGET:
        job = None
        for rung in range(len(ladder) - 2, -1, -1):
            for b in range(len(plan)):
                ready = promotions(results.get((b, rung), {}), promoted.get((b, rung), []), ETA)
                if ready:
                    job = (b, rung, ready[0])
                    break
            if job:
                break
        if job:
            b, rung, run_id = job
            promoted.setdefault((b, rung), []).append(run_id)
            proposer.tell_promoted(runs[run_id][2], run(run_id, b, rung + 1))
            spent += ladder[rung + 1]
        else:
            b = next_bracket(started, plan)
            started[b] += 1
            bottom = plan[b].bottom
            config, params, trial = proposer.ask()
            runs.append((config, pick_seed(), params))
            proposer.tell(trial, run(len(runs) - 1, b, bottom))
            spent += ladder[bottom]
        trace.steps.append((spent, incumbent.get()))
    return trace


def replay_brief(
    table: Table, spec: StudySpec, *, epochs: int, n: int, keep: int, seed: int, label: str
) -> Trace:
    """Train briefly, keep the top K: ``n`` random configurations on the ``epochs`` compressed
    schedule, then the best ``keep`` of them (by that validation mAP) on the full schedule."""
    proposer = _Proposer(spec, "random", seed, table)
    pick_seed = _seed_picker(table, seed)
    trace, incumbent, spent = Trace(label, seed), _Incumbent(), 0
    brief: list[tuple[float, int, int]] = []
    for order in range(n):
        config, _, trial = proposer.ask()
        training_seed = pick_seed()
        value = table.rung[(config, training_seed, epochs)]
        proposer.tell(trial, value)
        brief.append((-math.inf if math.isnan(value) else value, -order, config))
        incumbent.add(epochs, value, config)
        spent += epochs
        trace.steps.append((spent, incumbent.get()))
    for _, _, config in sorted(brief, reverse=True)[:keep]:
        value = table.rung[(config, pick_seed(), FULL)]
        incumbent.add(FULL, value, config)
        spent += FULL
        trace.steps.append((spent, incumbent.get()))
    return trace
