"""Workers: the loop that takes trials until the study's budget is met, the objective that
trains one trial, the pruning adapter, the exact budget and the per-GPU supervisor.

``run_worker(name, url)`` is one worker process; ``run_supervisor`` runs one per GPU.
"""

from __future__ import annotations

from hpo.worker._budget import Decision
from hpo.worker._budget import TrialCounts
from hpo.worker._budget import decide
from hpo.worker._budget import study_started_at
from hpo.worker._faults import EXIT_RESTART
from hpo.worker._faults import DeviceRestartRequired
from hpo.worker._faults import FlappingGuard
from hpo.worker._faults import WorkerError
from hpo.worker._gpus import GpuBusyError
from hpo.worker._gpus import claim_gpus
from hpo.worker._gpus import parse_gpus
from hpo.worker._gpus import visible_gpus
from hpo.worker._loop import WorkerResult
from hpo.worker._loop import run_worker
from hpo.worker._objective import FATAL_ERRORS
from hpo.worker._objective import OBJECTIVE_METRICS
from hpo.worker._objective import StudyTimeoutError
from hpo.worker._objective import TrialInterrupted
from hpo.worker._objective import TrialObjective
from hpo.worker._objective import TrialResult
from hpo.worker._objective import fail_reason
from hpo.worker._objective import make_objective
from hpo.worker._objective import run_trial
from hpo.worker._pruning import OptunaPruningCallback
from hpo.worker._signals import ENV_STOP_AFTER
from hpo.worker._signals import STOP_SIGNALS
from hpo.worker._signals import StopNow
from hpo.worker._signals import exit_code_for
from hpo.worker._supervisor import run_supervisor

__all__ = [
    "ENV_STOP_AFTER",
    "EXIT_RESTART",
    "FATAL_ERRORS",
    "OBJECTIVE_METRICS",
    "STOP_SIGNALS",
    "Decision",
    "DeviceRestartRequired",
    "FlappingGuard",
    "GpuBusyError",
    "OptunaPruningCallback",
    "StopNow",
    "StudyTimeoutError",
    "TrialCounts",
    "TrialInterrupted",
    "TrialObjective",
    "TrialResult",
    "WorkerError",
    "WorkerResult",
    "claim_gpus",
    "decide",
    "exit_code_for",
    "fail_reason",
    "make_objective",
    "parse_gpus",
    "run_supervisor",
    "run_trial",
    "run_worker",
    "study_started_at",
    "visible_gpus",
]
