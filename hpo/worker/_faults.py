"""How a worker reacts to failing trials: sticky CUDA errors and streaks of the same failure.

- A *sticky* CUDA error (illegal address, device-side assert, launch failure, uncorrectable
  ECC, ...) corrupts the process's CUDA context: every later CUDA call fails. The trial is
  recorded FAIL (``fail_reason="cuda_error"``) and the worker process exits with
  :data:`EXIT_RESTART`, which the supervisor answers with a fresh process on the same GPU (up
  to ``max_restarts`` times, then the GPU is reported and left idle).
- :class:`FlappingGuard` trips on ``max_failures`` *consecutive* failed trials of the same
  kind (their ``fail_reason``), however long each took: a worker whose GPU keeps running out
  of memory, or whose data cannot be read, stops instead of failing the whole study. Repeated
  out-of-memory exits with :data:`EXIT_RESTART` (a fresh process gets a clean allocator);
  any other kind stops the worker as a setup error (exit 2). A finished, pruned or
  non-finite-loss trial (an outcome of its hyperparameters, proof that the setup trains)
  ends the streak; a handed-back (interrupted) trial is neutral.
"""

from __future__ import annotations

from hpo.errors import ReidHpoError

__all__ = [
    "CUDA_ERROR",
    "EXIT_RESTART",
    "DeviceRestartRequired",
    "FlappingGuard",
    "WorkerError",
    "is_sticky_cuda_error",
]

EXIT_RESTART = 75
"""Exit code of a worker process that only a fresh process can cure (EX_TEMPFAIL); never 2."""

CUDA_ERROR = "cuda_error"
"""``fail_reason`` of a trial ended by a sticky CUDA error."""

FLAP_FAILURES = 3

#: Failure kinds that are outcomes of the hyperparameters, not of the worker's setup.
_TRIAL_OUTCOMES = frozenset({"nonfinite_loss"})
_NEUTRAL = frozenset({"interrupted"})
#: Failure kinds that a fresh process may cure.
_RESTARTABLE = frozenset({"oom", CUDA_ERROR})

# cudaError_t codes after which the context is unusable (CUDA runtime API, "sticky" errors).
_STICKY_CODES = frozenset({214, 220, 700, 702, 710, 714, 715, 716, 717, 718, 719, 999})
_STICKY_PHRASES = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "uncorrectable ecc error",
    "misaligned address",
    "illegal instruction",
    "launch timed out",
    "hardware stack error",
    "invalid program counter",
    "uncorrectable nvlink error",
    "cuda error: unknown error",
)


class WorkerError(ReidHpoError):
    """A worker stopped because its setup looks broken (e.g. trials keep failing at once)."""


class DeviceRestartRequired(Exception):
    """This process's GPU state is unusable or exhausted: exit with :data:`EXIT_RESTART`."""

    exit_code = EXIT_RESTART


def is_sticky_cuda_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA error that leaves the process's CUDA context unusable.

    Example:
        >>> is_sticky_cuda_error(RuntimeError("CUDA error: device-side assert triggered"))
        True
        >>> is_sticky_cuda_error(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
        False
    """
    code = getattr(exc, "error_code", None)
    if isinstance(code, int) and code in _STICKY_CODES:
        return True
    text = str(exc).lower()
    return ("cuda" in text or "cublas" in text or "cudnn" in text) and any(
        phrase in text for phrase in _STICKY_PHRASES
    )


class FlappingGuard:
    """Trips on ``max_failures`` consecutive failed trials with the same ``fail_reason``.

    Args:
        max_failures: Length of the streak that trips the guard.
    """

    def __init__(self, max_failures: int = FLAP_FAILURES) -> None:
        self.max_failures = max_failures
        self.kind: str | None = None
        self.count = 0

    def record(self, reason: str | None, *, failed: bool) -> bool:
        """Record how a trial ended; True when the guard trips.

        Args:
            reason: The trial's ``fail_reason`` (None for a trial that did not fail).
            failed: Whether the trial is FAIL.
        """
        if failed and reason in _NEUTRAL:
            return False
        if not failed or reason in _TRIAL_OUTCOMES:
            self.kind, self.count = None, 0
            return False
        if reason == self.kind:
            self.count += 1
        else:
            self.kind, self.count = reason, 1
        return self.count >= self.max_failures

    def error(self, study_name: str) -> Exception:
        """The exception that stops the worker once the guard tripped."""
        message = (
            f"{self.count} trials in a row failed with {self.kind}; stopping this worker: "
            f"check the data, device and spec of study '{study_name}'"
        )
        if self.kind in _RESTARTABLE:
            return DeviceRestartRequired(message)
        return WorkerError(message)
