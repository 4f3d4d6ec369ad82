"""Small statistics for the search benchmark: ranks, Spearman, ICC, Wilson, bootstrap."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from collections.abc import Sequence


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation (NaN when either side is constant)."""
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 40, 30])
        0.8
    """
    return pearson(ranks(x), ranks(y))


def icc1(groups: Sequence[Sequence[float]]) -> float:
    """One-way random-effects intraclass correlation ICC(1) of equally sized groups (here: a
    configuration's runs over training seeds): the share of variance between groups."""
    k, n = len(groups[0]), len(groups)
    grand = statistics.fmean(v for g in groups for v in g)
    msb = k * sum((statistics.fmean(g) - grand) ** 2 for g in groups) / (n - 1)
    msw = sum((v - statistics.fmean(g)) ** 2 for g in groups for v in g) / (n * (k - 1))
    return (msb - msw) / (msb + (k - 1) * msw)


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion.

    Example:
        >>> [round(v, 3) for v in wilson(7, 10)]
        [0.397, 0.892]
    """
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap(
    n: int, statistic: Callable[[list[int]], float], *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of ``statistic(indices)`` over resamples of ``range(n)`` with
    replacement (NaN values dropped)."""
    rng = random.Random(seed)
    values = sorted(
        v
        for v in (statistic([rng.randrange(n) for _ in range(n)]) for _ in range(resamples))
        if not math.isnan(v)
    )
    if not values:
        return (math.nan, math.nan)
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]
