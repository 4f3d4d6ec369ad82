"""A crashing trial (NaN loss, CUDA out of memory, any exception) is recorded FAIL with a
machine-readable ``fail_reason``, its model is freed, and the worker takes the next trial.

The worker runs in its own process (as in production: pytest's log capture would keep the
failure's traceback, and with it the model, alive). The fault is injected into the real
trainer's model (a forward pre-hook) of trial 0 only; trial 1 trains normally. CUDA OOM is
raised as ``torch.OutOfMemoryError``, the exact type PyTorch raises on a GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import create_study
from tests._helpers.waits import scaled
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import spec_dict

WORKER = """
import gc, json, sys, weakref
import torch
from hpo.worker import run_worker
from reid_core.engine import Trainer

fault, url = sys.argv[1], sys.argv[2]

def nan_loss(module, args):
    return (args[0] * float("nan"),)

def cuda_oom(module, args):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

def exception(module, args):
    raise RuntimeError("a bug in the model")

models, freed = [], []

def factory(cfg, *, rerank):
    if models:
        gc.collect()
        freed.append(models[0]() is None)
    trainer = Trainer(cfg, evaluate_rerank=rerank)
    if not models:
        trainer.model.register_forward_pre_hook(globals()[fault])
    models.append(weakref.ref(trainer.model))
    return trainer

result = run_worker("faulty", url, trainer_factory=factory, poll_interval_s=0.2)
print("RESULT " + json.dumps({"result": result.__dict__, "freed": freed}))
"""

FAULTS = {"nan_loss": "nonfinite_loss", "cuda_oom": "oom", "exception": "exception:RuntimeError"}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_failed_trial_is_recorded_and_the_worker_goes_on(
    fault: str, tmp_path: Path, mars_root: Path, record_property: pytest.RecordProperty
) -> None:
    raw = spec_dict(name="faulty", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=1)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_study(StudySpec.model_validate(raw), url)

    done = subprocess.run(
        [sys.executable, "-c", WORKER, fault, url],
        cwd=REPO_ROOT,
        env=child_env(url),
        capture_output=True,
        text=True,
        timeout=scaled(180),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.split("RESULT ", 1)[1])

    failed, complete = optuna.load_study(study_name="faulty", storage=url).trials
    assert failed.state is TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == FAULTS[fault]
    assert complete.state is TrialState.COMPLETE  # the worker took the next trial
    assert report["result"]["failed"] == 1 and report["result"]["complete"] == 1
    assert report["result"]["stop_reason"] == "budget"
    assert report["freed"] == [True]  # the failed trial's model was gone before the next one
    record_property("fail_reason", FAULTS[fault])
