"""Stopping a worker by signal, and the exit code that tells a scheduler to start another.

The first SIGTERM/SIGINT asks for a graceful stop: the trial ends after its current epoch
(checkpoint written) and is handed back. A second one stops at once: :class:`StopNow` is
raised in the main thread wherever it is (mid-batch, mid-checkpoint write: the atomic write
leaves the previous checkpoint intact); the objective catches it and hands the trial back
with its last checkpoint. Handing back is shielded (:func:`shielded`): a signal arriving
then is logged and ignored, as is every signal after the one that raised :class:`StopNow`.

Kubernetes sends one SIGTERM, then SIGKILL after ``terminationGracePeriodSeconds``; an epoch
of a full-size trial on MARS lasts longer than that. ``$REID_HPO_STOP_AFTER_S`` makes the
worker its own second signal: that many seconds after the first one, a trial still training
stops at once (unset: wait for the end of the epoch, as SLURM's second SIGTERM at the time
limit does the rest).

A worker stopped by a signal exits ``128 + signal number`` (:func:`exit_code_for`): 143 for
SIGTERM, 130 for SIGINT, as a shell reports a process killed by that signal. Schedulers read
it as "not done": SLURM's batch script requeues the task, Kubernetes replaces the pod
(``podFailurePolicy`` ignores these codes), the supervisor does not restart a child it
stopped itself.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hpo.errors import ReidHpoError

logger = logging.getLogger(__name__)

__all__ = [
    "ENV_STOP_AFTER",
    "STOP_SIGNALS",
    "SignalStop",
    "StopNow",
    "exit_code_for",
    "shielded",
    "stop_after_s",
    "stopped_at_once",
]

ENV_STOP_AFTER = "REID_HPO_STOP_AFTER_S"

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_shield_depth = 0


class StopNow(BaseException):
    """A second stop signal: training ends at once (a BaseException, so that no ``except
    Exception`` in the trainer or a callback swallows it)."""


def stopped_at_once(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`StopNow` or was raised while one was handled: code that
    cleans up on the way out may raise its own error over it (torch.save's zip writer, stopped
    mid-checkpoint, raises ``RuntimeError: ... unexpected pos``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StopNow):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def exit_code_for(signum: int) -> int:
    """The exit code of a worker stopped by ``signum``: ``128 + signum``.

    Example:
        >>> exit_code_for(signal.SIGTERM), exit_code_for(signal.SIGINT)
        (143, 130)
    """
    return 128 + int(signum)


def stop_after_s() -> float | None:
    """``$REID_HPO_STOP_AFTER_S``: seconds from the first stop signal to a stop at once; None
    when unset.

    Raises:
        ReidHpoError: It is set but not a number >= 0.
    """
    raw = os.environ.get(ENV_STOP_AFTER, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ReidHpoError(f"${ENV_STOP_AFTER}={raw!r} must be a number of seconds >= 0")
    return value


@contextmanager
def shielded() -> Iterator[None]:
    """A block that a second stop signal does not interrupt (e.g. handing a trial back)."""
    global _shield_depth
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1


class SignalStop:
    """SIGTERM/SIGINT handling of one worker: the first sets ``event``, a second raises
    :class:`StopNow` once (outside :func:`shielded` blocks).

    Args:
        event: Set by the first signal; the worker loop and the objective watch it.
        stop_after_s: Seconds after the first signal at which this process sends itself the
            second one (None: never).

    Attributes:
        signum: The first signal received, None while none came.
    """

    def __init__(self, event: threading.Event, stop_after_s: float | None = None) -> None:
        self.event = event
        self.signum: int | None = None
        self._stop_after_s = stop_after_s
        self._timer: threading.Timer | None = None
        self._raised = False

    def handle(self, signum: int, frame: Any) -> None:
        """The signal handler (main thread only, as Python runs handlers there)."""
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            self.event.set()
            logger.warning(
                "%s: stopping after the current epoch; the trial will be handed back "
                "(send it again to stop at once%s)",
                name,
                "" if self._stop_after_s is None else f"; at once in {self._stop_after_s:g} s",
            )
            if self._stop_after_s is not None:
                self._timer = threading.Timer(self._stop_after_s, os.kill, (os.getpid(), signum))
                self._timer.daemon = True
                self._timer.start()
            return
        if self._raised or _shield_depth:
            logger.warning("%s: already stopping", name)
            return
        self._raised = True
        logger.warning("second %s: stopping at once; handing the trial back", name)
        raise StopNow(name)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Install :meth:`handle` for the stop signals while the block runs (main thread only;
        elsewhere only ``event`` stops the worker)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for sig, old in previous.items():
                signal.signal(sig, old)
