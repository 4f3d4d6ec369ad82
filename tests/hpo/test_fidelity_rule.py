"""The pure successive-halving arithmetic: ladder, compressed schedules, brackets, promotion."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys

import pytest

from hpo.search import Schedule
from hpo.search import _fidelity
from hpo.search import brackets
from hpo.search import next_bracket
from hpo.search import promotions
from hpo.search import rung_epochs
from hpo.search import scale_schedule


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(_fidelity).failed == 0


def test_module_imports_neither_torch_nor_optuna() -> None:
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('f', "
        f"{_fidelity.__file__!r}); m = importlib.util.module_from_spec(spec); "
        "sys.modules['f'] = m; spec.loader.exec_module(m); "
        "print(sorted(n for n in ('torch', 'optuna') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("epochs", "eta", "kwargs", "ladder"),
    [
        (121, 3, {"n_rungs": 3}, (13, 40, 121)),
        (121, 3, {"min_epochs": 13}, (13, 40, 121)),
        (121, 3, {"min_epochs": 14}, (40, 121)),
        (24, 3, {"min_epochs": 3}, (3, 8, 24)),
        (6, 2, {"n_rungs": 3}, (2, 3, 6)),
        (10, 4, {"n_rungs": 1}, (10,)),
    ],
)
def test_ladder(epochs: int, eta: int, kwargs: dict[str, int], ladder: tuple[int, ...]) -> None:
    assert rung_epochs(epochs, eta, **kwargs) == ladder


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((6, 3), {"n_rungs": 4}, "do not fit"),
        ((6, 1), {"n_rungs": 2}, "eta=1"),
        ((6, 3), {}, "exactly one"),
        ((6, 3), {"n_rungs": 2, "min_epochs": 1}, "exactly one"),
        ((6, 3), {"min_epochs": 7}, "min_epochs=7"),
        ((6, 3), {"n_rungs": 0}, "n_rungs=0"),
    ],
)
def test_ladder_refuses(args: tuple[int, int], kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rung_epochs(*args, **kwargs)


def test_schedule_scaling_rounds_half_up_and_keeps_milestones_apart() -> None:
    full = Schedule(epochs=24, warmup_epochs=2, milestones=(8, 14), eval_every=2)
    assert scale_schedule(full, 24) is full
    # 8 * 8 / 24 = 2.67 -> 3; 14 * 8 / 24 = 4.67 -> 5; warm-up 0.67 -> 1; eval 0.67 -> 1.
    assert scale_schedule(full, 8) == Schedule(8, 1, (3, 5), 1)
    # 8 * 3 / 24 = 1.0 -> 1; 14 * 3 / 24 = 1.75 -> 2; warm-up 0.25 -> 0.
    assert scale_schedule(full, 3) == Schedule(3, 0, (1, 2), 1)
    # An exact half rounds up: 12 * 5 / 24 = 2.5 -> 3.
    assert scale_schedule(Schedule(24, 0, (12,), 1), 5).milestones == (3,)
    # Milestones that would merge are kept one epoch apart; those at or past the end are dropped.
    assert scale_schedule(Schedule(100, 0, (40, 41, 90), 1), 10).milestones == (4, 5, 9)
    assert scale_schedule(Schedule(100, 0, (40, 95), 1), 2).milestones == (1,)
    assert scale_schedule(Schedule(6, 1, (4,), 1), 1) == Schedule(1, 0, (), 1)
    for bad in (0, 25):
        with pytest.raises(ValueError, match="rung epochs"):
            scale_schedule(full, bad)


def test_hyperband_shares_follow_li_et_al() -> None:
    plan = brackets("hyperband", 4, 2)
    # s = 3, 2, 1, 0: ceil(4 * 2**s / (s + 1)) = 8, 6, 4, 4.
    assert [(b.bottom, b.share) for b in plan] == [(0, 8), (1, 6), (2, 4), (3, 4)]
    started = [0] * len(plan)
    for _ in range(3 * sum(b.share for b in plan)):
        started[next_bracket(started, plan)] += 1
    assert started == [24, 18, 12, 12]
    with pytest.raises(ValueError, match="3 counts for 4"):
        next_bracket([0, 0, 0], plan)


def test_promotion_is_asynchronous_and_happens_once() -> None:
    seen: dict[str, float] = {}
    promoted: list[str] = []
    arrivals = [("a", 0.3), ("b", 0.9), ("c", 0.1), ("d", 0.5), ("e", 0.2), ("f", 0.8)]
    decisions = []
    for key, value in arrivals:
        seen[key] = value
        now = promotions(seen, promoted, 3)
        promoted += now
        decisions.append(now)
    # No promotion before eta results; then the best is promoted at once, and the second best
    # only once six results make the top third two configurations.
    assert decisions == [[], [], ["b"], [], [], ["f"]]
    assert promotions(seen, promoted, 3) == []


def test_promotion_direction_nan_and_ties() -> None:
    assert promotions({"a": 1.0, "b": 2.0}, [], 2, direction="minimize") == ["a"]
    assert promotions({"a": math.nan, "b": 0.0}, [], 2) == ["b"]
    assert promotions({"late": 1.0, "early": 1.0}, [], 2) == ["late"]
    assert promotions({1: 0.5, 2: 0.4}, [], 3) == []
