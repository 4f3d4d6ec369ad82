"""Studies on a storage: lifecycle, read-only views, export, the one-off test evaluation.

:mod:`hpo.study.records` owns every stored attribute name, the reader of the stored spec and
the best-trial rule; everything else here builds on it.
"""

from __future__ import annotations

from hpo.study._accounting import REFERENCE_TRIALS
from hpo.study._accounting import ComputeAccount
from hpo.study._accounting import TrialCompute
from hpo.study._accounting import compute_account
from hpo.study._accounting import trial_compute
from hpo.study._artifacts import IDENTITY_FILE
from hpo.study._artifacts import ArtifactPathError
from hpo.study._artifacts import AttemptIdentity
from hpo.study._artifacts import attempt_dir
from hpo.study._artifacts import config_hash
from hpo.study._artifacts import drop_checkpoints
from hpo.study._artifacts import read_identity
from hpo.study._artifacts import resolve_stored
from hpo.study._artifacts import stored_path
from hpo.study._artifacts import study_dir
from hpo.study._artifacts import take_over
from hpo.study._artifacts import write_identity
from hpo.study._export import export_trials
from hpo.study._final_eval import CHECKPOINT_ATTRS
from hpo.study._final_eval import TestEvaluator
from hpo.study._final_eval import evaluate_best_on_test
from hpo.study._final_eval import reid_core_evaluator
from hpo.study._final_eval import trial_checkpoint
from hpo.study._lifecycle import DeletedStudy
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import create_study
from hpo.study._lifecycle import delete_study
from hpo.study._lifecycle import ensure_study_uuid
from hpo.study._lifecycle import load_study
from hpo.study._lifecycle import reading
from hpo.study._marker import MARKER_NAME
from hpo.study._marker import ArtifactsNotSharedError
from hpo.study._marker import StudyCopiedError
from hpo.study._marker import check_marker
from hpo.study._marker import ensure_marker
from hpo.study._marker import identity_of
from hpo.study._mirror import ArtifactMirror
from hpo.study._mirror import mirror_of
from hpo.study._notes import refresh_results_note
from hpo.study._object_store import ObjectStore
from hpo.study._object_store import ObjectStoreError
from hpo.study._object_store import open_store
from hpo.study._plan import StudyPlan
from hpo.study._plan import build_plan
from hpo.study._plan import first_prune_epoch
from hpo.study._plan import measure_costs
from hpo.study._preflight import check_spec_can_run
from hpo.study._preflight import check_spec_fits_its_dataset
from hpo.study._preflight import check_study_can_run
from hpo.study._queries import BestTrial
from hpo.study._queries import RungCount
from hpo.study._queries import RunningTrial
from hpo.study._queries import StudyInfo
from hpo.study._queries import StudyStatus
from hpo.study._queries import TrialSummary
from hpo.study._queries import best_trial_of
from hpo.study._queries import finished_epochs
from hpo.study._queries import list_studies
from hpo.study._queries import rung_counts
from hpo.study._queries import state_counts
from hpo.study._queries import study_status
from hpo.study._rekey import Rekeyed
from hpo.study._rekey import rekey_study
from hpo.study._retention import apply_retention
from hpo.study._retrain import PLAIN_TRAINING_EPOCHS
from hpo.study._retrain import PLAIN_TRAINING_ERASING
from hpo.study._retrain import RetrainError
from hpo.study._retrain import RetrainOptions
from hpo.study._retrain import refuse_if_retrained
from hpo.study._retrain import retrain_trial
from hpo.study._retrain_lease import RetrainLeaseError
from hpo.study._tensorboard import logdir_spec
from hpo.study._tensorboard import tensorboard_runs
from hpo.study._tensorboard import trial_events_dir
from hpo.study.records import StudyAttr
from hpo.study.records import TrialAttr
from hpo.study.records import spec_of

__all__ = [
    "CHECKPOINT_ATTRS",
    "IDENTITY_FILE",
    "MARKER_NAME",
    "PLAIN_TRAINING_EPOCHS",
    "PLAIN_TRAINING_ERASING",
    "REFERENCE_TRIALS",
    "ArtifactMirror",
    "ArtifactPathError",
    "ArtifactsNotSharedError",
    "AttemptIdentity",
    "BestTrial",
    "ComputeAccount",
    "DeletedStudy",
    "ObjectStore",
    "ObjectStoreError",
    "Rekeyed",
    "RetrainError",
    "RetrainLeaseError",
    "RetrainOptions",
    "RungCount",
    "RunningTrial",
    "StorageLike",
    "StudyAttr",
    "StudyCopiedError",
    "StudyInfo",
    "StudyPlan",
    "StudyStatus",
    "TestEvaluator",
    "TrialAttr",
    "TrialCompute",
    "TrialSummary",
    "apply_retention",
    "attempt_dir",
    "best_trial_of",
    "build_plan",
    "check_marker",
    "check_spec_can_run",
    "check_spec_fits_its_dataset",
    "check_study_can_run",
    "compute_account",
    "config_hash",
    "create_study",
    "delete_study",
    "drop_checkpoints",
    "ensure_marker",
    "ensure_study_uuid",
    "evaluate_best_on_test",
    "export_trials",
    "finished_epochs",
    "first_prune_epoch",
    "identity_of",
    "list_studies",
    "load_study",
    "logdir_spec",
    "measure_costs",
    "mirror_of",
    "open_store",
    "read_identity",
    "reading",
    "refresh_results_note",
    "refuse_if_retrained",
    "reid_core_evaluator",
    "rekey_study",
    "resolve_stored",
    "retrain_trial",
    "rung_counts",
    "spec_of",
    "state_counts",
    "stored_path",
    "study_dir",
    "study_status",
    "take_over",
    "tensorboard_runs",
    "trial_checkpoint",
    "trial_compute",
    "trial_events_dir",
    "write_identity",
]
