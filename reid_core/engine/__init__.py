"""Training engine: the trainer and its epoch callbacks, checkpoints, features and evaluation.

``Trainer(cfg).fit(callbacks=[...])`` trains one model; :class:`Callback` is the only hook the
HPO layer needs, and the trainer installs its own :class:`MetricsLog` (``metrics.jsonl``).
Checkpoints are atomic and checksummed and resume a run exactly.
"""

from __future__ import annotations

from reid_core.config import DataConfig
from reid_core.config import LossConfig
from reid_core.config import ModelConfig
from reid_core.config import OptimConfig
from reid_core.config import TrainConfig
from reid_core.config import ValidationConfig
from reid_core.config import resolve_device
from reid_core.engine._batch import finish_on_device
from reid_core.engine._callbacks import Callback
from reid_core.engine._callbacks import EpochReport
from reid_core.engine._callbacks import FitResult
from reid_core.engine._callbacks import StopTraining
from reid_core.engine._callbacks import TrainerView
from reid_core.engine._checkpoint import CheckpointManager
from reid_core.engine._checkpoint import checksum_path
from reid_core.engine._checkpoint import code_version
from reid_core.engine._checkpoint import find_resumable_checkpoint
from reid_core.engine._checkpoint import load_checkpoint
from reid_core.engine._checkpoint import resolve_checkpoint
from reid_core.engine._checkpoint import save_checkpoint
from reid_core.engine._checkpoint import verify_checkpoint
from reid_core.engine._chunk import evaluation_chunk
from reid_core.engine._compiler import c_compiler
from reid_core.engine._compiler import require_c_compiler
from reid_core.engine._device import gpus_hidden
from reid_core.engine._device import select_device
from reid_core.engine._evaluation import EvaluationResult
from reid_core.engine._evaluation import evaluate
from reid_core.engine._evaluation import evaluate_features
from reid_core.engine._evaluation import extract_features
from reid_core.engine._evaluation import squared_euclidean
from reid_core.engine._inference import LoadedModel
from reid_core.engine._inference import evaluate_checkpoint
from reid_core.engine._inference import load_model
from reid_core.engine._init_from import InitSource
from reid_core.engine._init_from import init_from_checkpoint
from reid_core.engine._init_from import transferable_state
from reid_core.engine._io import write_json_atomic
from reid_core.engine._memory import release_memory
from reid_core.engine._metrics_log import METRICS_LOG_NAME
from reid_core.engine._metrics_log import MetricsLog
from reid_core.engine._precision import Precision
from reid_core.engine._precision import resolve_precision
from reid_core.engine._schedule import WarmupMultiStepLR
from reid_core.engine._schedule import warmup_multistep_factor
from reid_core.engine._seed import seed_everything
from reid_core.engine._step import StepParts
from reid_core.engine._step import build_step_parts
from reid_core.engine._step import optimisation_step
from reid_core.engine._tensorboard import TENSORBOARD_DIR
from reid_core.engine._tensorboard import TensorBoardLog
from reid_core.engine._tensorboard import write_hparams
from reid_core.engine._trainer import Trainer

__all__ = [
    "METRICS_LOG_NAME",
    "TENSORBOARD_DIR",
    "Callback",
    "CheckpointManager",
    "DataConfig",
    "EpochReport",
    "EvaluationResult",
    "FitResult",
    "InitSource",
    "LoadedModel",
    "LossConfig",
    "MetricsLog",
    "ModelConfig",
    "OptimConfig",
    "Precision",
    "StepParts",
    "StopTraining",
    "TensorBoardLog",
    "TrainConfig",
    "Trainer",
    "TrainerView",
    "ValidationConfig",
    "WarmupMultiStepLR",
    "build_step_parts",
    "c_compiler",
    "checksum_path",
    "code_version",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_features",
    "evaluation_chunk",
    "extract_features",
    "find_resumable_checkpoint",
    "finish_on_device",
    "gpus_hidden",
    "init_from_checkpoint",
    "load_checkpoint",
    "load_model",
    "optimisation_step",
    "release_memory",
    "require_c_compiler",
    "resolve_checkpoint",
    "resolve_device",
    "resolve_precision",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "squared_euclidean",
    "transferable_state",
    "verify_checkpoint",
    "warmup_multistep_factor",
    "write_hparams",
    "write_json_atomic",
]
