"""Studies on a storage: lifecycle, read-only views, export, the one-off test evaluation.

:mod:`hpo.study.records` owns every stored attribute name, the reader of the stored spec and
the best-trial rule; everything else here builds on it.
"""

from __future__ import annotations

from hpo.study._export import export_trials
from hpo.study._final_eval import CHECKPOINT_ATTRS
from hpo.study._final_eval import TestEvaluator
from hpo.study._final_eval import evaluate_best_on_test
from hpo.study._final_eval import reid_core_evaluator
from hpo.study._final_eval import trial_checkpoint
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import create_study
from hpo.study._lifecycle import delete_study
from hpo.study._lifecycle import load_study
from hpo.study._preflight import check_spec_can_run
from hpo.study._preflight import check_study_can_run
from hpo.study._queries import BestTrial
from hpo.study._queries import RunningTrial
from hpo.study._queries import StudyInfo
from hpo.study._queries import StudyStatus
from hpo.study._queries import TrialSummary
from hpo.study._queries import best_trial_of
from hpo.study._queries import list_studies
from hpo.study._queries import state_counts
from hpo.study._queries import study_status
from hpo.study.records import StudyAttr
from hpo.study.records import TrialAttr
from hpo.study.records import spec_of

__all__ = [
    "CHECKPOINT_ATTRS",
    "BestTrial",
    "RunningTrial",
    "StorageLike",
    "StudyAttr",
    "StudyInfo",
    "StudyStatus",
    "TestEvaluator",
    "TrialAttr",
    "TrialSummary",
    "best_trial_of",
    "check_spec_can_run",
    "check_study_can_run",
    "create_study",
    "delete_study",
    "evaluate_best_on_test",
    "export_trials",
    "list_studies",
    "load_study",
    "reid_core_evaluator",
    "spec_of",
    "state_counts",
    "study_status",
    "trial_checkpoint",
]
