"""Post-hoc replay of pruner variants on the cached search-efficiency curves (BENCHMARKS.md).

Chosen after seeing seeds 0-4, so never adopted; kept to reproduce the numbers quoted there.
Each variant is a spec with explicit pruner options, run through ``hpo.bench._search.run_study``.

Run: .venv/bin/python benchmarks/data/search_efficiency/prune_variants.py
"""

import optuna

from hpo.bench._search import BASELINE_STRATEGY
from hpo.bench._search import CURVES_FILE
from hpo.bench._search import DATA_DIR
from hpo.bench._search import FULL
from hpo.bench._search import CurveCache
from hpo.bench._search import Strategy
from hpo.bench._search import make_lookup
from hpo.bench._search import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
cache = CurveCache(DATA_DIR / CURVES_FILE)
lookup = make_lookup(FULL, cache)
variants = {
    "median_w2": (("n_startup_trials", 5), ("n_warmup_steps", 2)),
    "median_w3": (("n_startup_trials", 5), ("n_warmup_steps", 3)),
    "patient_median": (("n_startup_trials", 5), ("n_warmup_steps", 2), ("patience", 1)),
}
res = {}
for seed in FULL.seeds:
    base = run_study(
        FULL, lookup, strategy=BASELINE_STRATEGY, seed=seed, n_trials=FULL.baseline_trials
    )
    target = max(v for v in base.values if v is not None)
    budget = base.total_epochs
    for name, options in variants.items():
        strategy = Strategy("tpe", "median", options)
        tr = run_study(FULL, lookup, strategy=strategy, seed=seed, epoch_budget=budget)
        e = tr.epochs_to_reach(target)
        res.setdefault(name, []).append(None if e is None else e / budget)
    print(seed, target, budget, {k: v[-1] for k, v in res.items()}, flush=True)
print(res)
