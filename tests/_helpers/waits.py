"""The tests' waits for progress, and how much longer they may take on a loaded machine.

A wait for progress (a worker's checkpoint, a server answering, a subprocess ending) should
never fail a correct program only because other processes share its CPUs. Every such bound
in tests/ goes through :func:`scaled`: the base seconds times :func:`slow_factor`, capped
below the per-test ``timeout`` of pyproject.toml (600 s) so that a wait that does run out
fails with its own message rather than pytest-timeout's. Bounds that are the promise under
test (``FAIL within grace + X s``) are not scaled this way; their tests say why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ENV = "REID_TEST_SLOW_FACTOR"
CEILING_S = 540.0  # below pyproject's per-test timeout of 600 s


def slow_factor() -> float:
    """``$REID_TEST_SLOW_FACTOR`` when set, else the 1-minute load average per CPU core; at
    least 1. Read at each call: the load changes while the suite runs."""
    override = os.environ.get(ENV)
    if override:
        return max(1.0, float(override))
    cores = os.cpu_count() or 1
    return max(1.0, os.getloadavg()[0] / cores)


def scaled(seconds: float) -> float:
    """``seconds`` times :func:`slow_factor`, at most :data:`CEILING_S` (a base above the
    ceiling is kept as it is)."""
    return max(seconds, min(seconds * slow_factor(), CEILING_S))


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.2
) -> float:
    """Poll ``predicate``; returns the seconds it took, fails the test after ``scaled(timeout)``."""
    limit = scaled(timeout)
    begin = time.monotonic()
    while time.monotonic() - begin < limit:
        if predicate():
            return time.monotonic() - begin
        time.sleep(step)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
