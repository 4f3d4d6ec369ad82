"""FairTurns: a thread asking for a turn gets it before a busy thread's next one."""

from __future__ import annotations

import threading

from hpo.storage._turns import FairTurns
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until


def test_a_waiting_thread_goes_before_the_busy_threads_next_turn() -> None:
    turns = FairTurns()
    order: list[str] = []
    asked = threading.Event()

    def other() -> None:
        asked.set()
        with turns:
            order.append("other")

    with turns:
        thread = threading.Thread(target=other)
        thread.start()
        asked.wait(scaled(5))
        # The other thread now waits for this turn to end (queued, not merely started: a
        # fixed sleep here lost the race to a thread scheduled late on a loaded machine).
        wait_until(lambda: len(turns._waiting) == 1, 5, "the other thread's turn", step=0.01)
    for _ in range(50):  # a busy loop: turn after turn, as a worker's writes
        with turns:
            order.append("busy")
    thread.join(scaled(5))
    assert order[0] == "other", order[:5]


def test_turns_are_reentrant() -> None:
    turns = FairTurns()
    with turns, turns:
        pass
    with turns:  # released: a new turn is granted at once
        pass
