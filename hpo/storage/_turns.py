"""Turns on a storage's one connection, in arrival order, so that no thread starves another.

A worker's loop and Optuna's heartbeat thread share a single pooled connection. SQLAlchemy's
pool wakes a waiting thread when the connection is returned, but the thread that returned it
usually takes it again first: a loop writing to the storage for a while (end-of-epoch reports,
user attrs) kept the heartbeat thread out for its whole length (12 s measured), long enough
for other workers to fail the trial as stale. Each storage operation therefore waits for its
turn: first come, first served, re-entrant for nested operations.
"""

from __future__ import annotations

import collections
import threading
from types import TracebackType


class FairTurns:
    """A re-entrant lock granted in the order threads asked for it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: collections.deque[int] = collections.deque()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            self._waiting.append(me)
            while self._owner is not None or self._waiting[0] != me:
                self._cond.wait()
            self._waiting.popleft()
            self._owner, self._depth = me, 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


__all__ = ["FairTurns"]
