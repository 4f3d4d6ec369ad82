"""The worker supervisor: one worker process per GPU, restarted when it dies abnormally.

Each child runs ``python -m hpo.cli worker NAME --child --device cuda|cpu`` in its own process
group with ``CUDA_VISIBLE_DEVICES`` set to its GPU's entry of the supervisor's own visible list
(:mod:`hpo.worker._gpus`; empty for a CPU child) and its share of the host's CPU threads
(:mod:`hpo.worker._threads`). The supervisor holds a per-host lock on each of its GPUs, so a
second supervisor claiming one is refused. The storage URL travels in ``$REID_HPO_STORAGE``
rather than on the command line, so a password never shows in ``ps``; nothing about trials
goes through the environment. Exit codes of a child: 0 = budget met or stopped cleanly, 2 =
user error (bad spec, missing dataset, a streak of identical failures), which a restart cannot
fix; anything else (75 = a sticky CUDA error or repeated out-of-memory, a crash, a kill, a
host OOM kill) is restarted, up to ``max_restarts`` times per GPU, after which the GPU is
reported and left idle. The count is of restarts in a row: a child that ran for
:data:`HEALTHY_S` (10 minutes) before dying was healthy, and its slot starts counting again
(a GPU that fails once a day is not given up after five days). Restart ``n`` waits ``n``
seconds (at most 30); a SIGTERM/SIGINT during that wait ends it without a new child.
SIGTERM/SIGINT are forwarded to every child, which hand their trials back and exit
``128 + signal number`` (143 for SIGTERM; a second signal, forwarded too, stops them at
once); the supervisor then exits with that code itself, which SLURM and Kubernetes take as
"start this worker again" (:mod:`hpo.worker._signals`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from hpo.storage import ENV_STORAGE
from hpo.storage import mask_url
from hpo.worker._faults import EXIT_RESTART
from hpo.worker._gpus import claim_gpus
from hpo.worker._gpus import parse_gpus
from hpo.worker._signals import exit_code_for
from hpo.worker._threads import thread_env

logger = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
_POLL_S = 0.5
_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0
HEALTHY_S = 600.0
"""A child that ran this long before dying resets its slot's restart count."""


@dataclass
class _Child:
    slot: str | None
    process: subprocess.Popen[bytes]
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)
    history: list[int] = field(default_factory=list)


def run_supervisor(
    study_name: str,
    storage_url: str,
    gpus: str = "all",
    *,
    max_trials: int | None = None,
    max_restarts: int = 5,
    extra_env: dict[str, str] | None = None,
    device: str | None = None,
) -> int:
    """Run one worker process per GPU until all are done; restart those that die.

    Args:
        study_name: The study.
        storage_url: The shared storage URL (handed to children through the environment).
        gpus: ``"all"``, ``"none"`` or ``"0,1"`` (see :func:`parse_gpus`).
        max_trials: Per-child trial limit (``--max-trials``), None for none.
        max_restarts: Restarts allowed per GPU slot before giving it up.
        extra_env: Extra environment variables for the children (e.g. logging settings).
        device: ``"cpu"`` runs one CPU worker whatever ``gpus`` says (also on a machine
            without a GPU, where ``gpus="all"`` is otherwise an error).

    Signals are forwarded only when this runs in the main thread.

    Returns:
        0 when every child finished cleanly, else the worst child exit code: 2 for a user
        error (it wins over the others), 143 / 130 for children stopped by a forwarded
        SIGTERM / SIGINT (``128 + N`` for one killed by signal N), 1 when a slot ran out of
        restarts and its GPU was left idle.

    Raises:
        ReidHpoError: A bad ``gpus`` value, or a GPU already used by another supervisor on
            this host (:class:`~hpo.worker.GpuBusyError`).
    """
    slots: list[str | None] = [None] if device == "cpu" else parse_gpus(gpus)
    with claim_gpus(slots):
        return _supervise(study_name, storage_url, slots, max_trials, max_restarts, extra_env)


def _supervise(
    study_name: str,
    storage_url: str,
    slots: list[str | None],
    max_trials: int | None,
    max_restarts: int,
    extra_env: dict[str, str] | None,
) -> int:
    env = {**(extra_env or {}), **thread_env(len(slots), {**os.environ, **(extra_env or {})})}
    logger.info(
        "supervising %d worker(s) on %s for study '%s' (%s)",
        len(slots),
        ", ".join("cpu" if s is None else f"GPU {s}" for s in slots),
        study_name,
        mask_url(storage_url),
    )
    stopping = False
    stop_code = 0  # 128 + the first stop signal

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping, stop_code
        stopping = True
        stop_code = stop_code or exit_code_for(signum)
        logger.warning("%s: forwarding to the workers", signal.Signals(signum).name)
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signum)

    children: list[_Child] = []
    previous = (
        {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        if threading.current_thread() is threading.main_thread()
        else {}
    )
    worst = 0
    try:
        children.extend(
            _Child(slot, _spawn(study_name, storage_url, slot, max_trials, env)) for slot in slots
        )
        running = list(children)
        while running:
            time.sleep(_POLL_S)
            for child in list(running):
                code = child.process.poll()
                if code is None:
                    continue
                child.history.append(code)
                if code in (0, EXIT_USER_ERROR) or stopping:
                    _log_exit(child, code)
                    worst = _worse(worst, code if code >= 0 else 128 - code)
                    running.remove(child)
                    continue
                if time.monotonic() - child.started >= HEALTHY_S:
                    child.restarts = 0  # it ran well for a while: count again from zero
                if child.restarts >= max_restarts:
                    logger.error(
                        "worker on %s failed %d times (exit codes %s); %s left idle: check "
                        "it (nvidia-smi, dmesg for Xid errors) before using it again",
                        _slot_name(child.slot),
                        len(child.history),
                        child.history,
                        _slot_name(child.slot),
                    )
                    worst = _worse(worst, 1)
                    running.remove(child)
                else:
                    child.restarts += 1
                    logger.warning(
                        "worker on %s %s (exit code %d); restart %d/%d",
                        _slot_name(child.slot),
                        "needs a fresh process" if code == EXIT_RESTART else "died",
                        code,
                        child.restarts,
                        max_restarts,
                    )
                    _back_off(min(_MAX_BACKOFF_S, _BACKOFF_S * child.restarts), lambda: stopping)
                    if stopping:  # signalled during the wait: no new child to miss the signal
                        worst = _worse(worst, code if code >= 0 else 128 - code)
                        running.remove(child)
                        continue
                    child.process = _spawn(study_name, storage_url, child.slot, max_trials, env)
                    child.started = time.monotonic()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for child in children:
            if child.process.poll() is None:
                child.process.terminate()
                child.process.wait()
    return _worse(worst, stop_code)


def _back_off(seconds: float, stopping: Callable[[], bool]) -> None:
    """Wait ``seconds``, in short slices, ending early once ``stopping()``."""
    deadline = time.monotonic() + seconds
    while not stopping() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(_POLL_S, left))


def _worse(worst: int, code: int) -> int:
    """The exit code that tells more: a user error (a restart cannot fix it), else the larger."""
    if EXIT_USER_ERROR in (worst, code):
        return EXIT_USER_ERROR
    return max(worst, code)


def _spawn(
    study_name: str,
    storage_url: str,
    slot: str | None,
    max_trials: int | None,
    extra_env: dict[str, str] | None,
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "hpo.cli", "worker", study_name, "--child"]
    command += ["--device", "cpu" if slot is None else "cuda"]
    if max_trials is not None:
        command += ["--max-trials", str(max_trials)]
    env = {**os.environ, **(extra_env or {}), ENV_STORAGE: storage_url}
    env["CUDA_VISIBLE_DEVICES"] = "" if slot is None else slot
    process = subprocess.Popen(command, env=env, start_new_session=True)
    logger.info("started worker pid %d on %s", process.pid, _slot_name(slot))
    return process


def _log_exit(child: _Child, code: int) -> None:
    if code == 0:
        logger.info("worker on %s finished", _slot_name(child.slot))
    else:
        logger.error("worker on %s stopped with exit code %d", _slot_name(child.slot), code)


def _slot_name(slot: str | None) -> str:
    return "cpu" if slot is None else f"GPU {slot}"
