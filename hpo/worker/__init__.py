"""Workers: the loop that takes trials until the study's budget is met, the objective that
trains one trial, the pruning adapter, the exact budget and the per-GPU supervisor.

``run_worker(name, url)`` is one worker process; ``run_supervisor`` runs one per GPU.
"""

from __future__ import annotations

from hpo.worker._budget import Decision
from hpo.worker._budget import TrialCounts
from hpo.worker._budget import decide
from hpo.worker._budget import study_started_at
from hpo.worker._loop import FlappingGuard
from hpo.worker._loop import WorkerError
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
from hpo.worker._supervisor import parse_gpus
from hpo.worker._supervisor import run_supervisor

__all__ = [
    "FATAL_ERRORS",
    "OBJECTIVE_METRICS",
    "Decision",
    "FlappingGuard",
    "OptunaPruningCallback",
    "StudyTimeoutError",
    "TrialCounts",
    "TrialInterrupted",
    "TrialObjective",
    "TrialResult",
    "WorkerError",
    "WorkerResult",
    "decide",
    "fail_reason",
    "make_objective",
    "parse_gpus",
    "run_supervisor",
    "run_trial",
    "run_worker",
    "study_started_at",
]
