"""Post-hoc replay of pruner variants on the cached search-efficiency curves (BENCHMARKS.md).

Run: .venv/bin/python benchmarks/data/search_efficiency/prune_variants.py
"""

import optuna

import hpo.bench._search as S
from hpo.bench._search import CURVES_FILE
from hpo.bench._search import DATA_DIR
from hpo.bench._search import FULL
from hpo.bench._search import CurveCache
from hpo.bench._search import make_lookup
from hpo.bench._search import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
cache = CurveCache(DATA_DIR / CURVES_FILE)
lookup = make_lookup(FULL, cache)
variants = {
    "median_w2": lambda spec: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "median_w3": lambda spec: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
    "patient_median": lambda spec: optuna.pruners.PatientPruner(
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2), patience=1
    ),
}
orig = S.build_pruner
res = {}
for seed in FULL.seeds:
    base = run_study(
        FULL, lookup, sampler="random", pruner="none", seed=seed, n_trials=FULL.baseline_trials
    )
    target = max(v for v in base.values if v is not None)
    budget = base.total_epochs
    for name, fn in variants.items():
        S.build_pruner = fn
        tr = run_study(FULL, lookup, sampler="tpe", pruner="median", seed=seed, epoch_budget=budget)
        S.build_pruner = orig
        e = tr.epochs_to_reach(target)
        res.setdefault(name, []).append(None if e is None else e / budget)
    print(seed, target, budget, {k: v[-1] for k, v in res.items()}, flush=True)
print(res)
