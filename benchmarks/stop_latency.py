"""Time from SIGTERM to a handed-back trial, at full model size (ResNet50TA_BT, full-map).

A real ``reid-hpo worker`` process trains the full-size model at the recipe's 224x112 frames
(the full-map attention's size depends on them: a 920 MB checkpoint with Adam state) on an
8-id synthetic MARS, so that an epoch takes a minute on a CPU, and is stopped three ways after
its first checkpoint:

- one SIGTERM (graceful): the epoch in flight ends, its checkpoint is written, the trial is
  handed back;
- two SIGTERMs 0.2 s apart (SLURM at its time limit): stop at once, hand back with the last
  checkpoint;
- one SIGTERM with ``REID_HPO_STOP_AFTER_S=2`` (Kubernetes: one signal, then SIGKILL).

For each: seconds from the first signal to the WAITING copy in the storage (the trial is handed
back) and to the process exit, and the exit code. Each stop resumes the same trial.

Usage: ``python benchmarks/stop_latency.py OUT_DIR [STORAGE_URL]`` (default: SQLite in
OUT_DIR). BENCHMARKS.md, "Preemption".
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml

from hpo.spec import StudySpec
from hpo.study import create_study
from reid_core.data import write_synthetic

out = Path(sys.argv[1]).resolve()
out.mkdir(parents=True, exist_ok=True)
url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{out / 'stop.db'}"
data = write_synthetic(out / "mars", "mars", ids=8, cameras=2, tracklets=4, frames=6, seed=0)
spec = {
    "name": "stop-latency",
    "dataset": {"name": "mars", "root": str(data), "split_id": 0},
    "validation": {"sampling": "random", "fraction": 0.5, "distractor_fraction": 0.25},
    "model": {"arch": "ta_bt", "backbone": "resnet50", "pretrained": False},
    "training": {
        "epochs": 50,
        "eval_every": 1,
        "height": 224,
        "width": 112,
        "seq_len": 2,
        "batch_size": 4,
        "num_instances": 2,
        "warmup_epochs": 0,
        "num_workers": 0,
        "test_max_clips": 2,
        "test_batch_size": 8,
    },
    "search_space": {"sigma": {"type": "float", "low": 0.1, "high": 1.0}},
    "budget": {"n_trials": 1},
    "artifacts": {"root": str(out / "runs")},
    "heartbeat": {"interval": 5},
}
(out / "spec.yaml").write_text(yaml.safe_dump(spec))
create_study(StudySpec.model_validate(spec), url)


def trials() -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name="stop-latency", storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def wait(predicate, what: str, timeout: float = 1800) -> float:
    begin = time.monotonic()
    while not predicate():
        if time.monotonic() - begin > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - begin


results = []
last_epoch = -1
for label, signals, extra in [
    ("one SIGTERM (graceful)", 1, {}),
    ("two SIGTERMs 0.2 s apart", 2, {}),
    ("one SIGTERM, REID_HPO_STOP_AFTER_S=2", 1, {"REID_HPO_STOP_AFTER_S": "2"}),
]:
    env = {**os.environ, "REID_HPO_STORAGE": url, "OMP_NUM_THREADS": "1", **extra}
    log = (out / "worker.log").open("a")
    worker = subprocess.Popen(
        [sys.executable, "-m", "hpo.cli", "worker", "stop-latency", "--child"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def running_checkpointed(pid: int = worker.pid, after: int = last_epoch) -> bool:
        """This worker's trial has written a checkpoint of its own (past the inherited one)."""
        return any(
            t.state.name == "RUNNING"
            and t.user_attrs.get("worker", "").endswith(f":{pid}")
            and t.user_attrs.get("last_checkpoint_epoch", -1) > after
            for t in trials()
        )

    wait(running_checkpointed, "a checkpoint of the running trial")
    time.sleep(1.0)  # into the next epoch
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    if signals == 2:
        time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
    wait(lambda: any(t.state.name == "WAITING" for t in trials()), "the handed-back trial")
    handed_back = time.monotonic() - sent
    code = worker.wait(timeout=1800)
    last_epoch = max(t.user_attrs.get("last_checkpoint_epoch", -1) for t in trials())
    exited = time.monotonic() - sent
    checkpoint = max((out / "runs").rglob("epoch_*.pt"), key=lambda p: p.stat().st_mtime)
    row = {
        "stop": label,
        "seconds_to_handed_back": round(handed_back, 2),
        "seconds_to_exit": round(exited, 2),
        "exit_code": code,
        "checkpoint_mb": round(checkpoint.stat().st_size / 1e6),
    }
    print(row, flush=True)
    results.append(row)

(out / "stop_latency.json").write_text(
    json.dumps({"load_average": os.getloadavg(), "results": results}, indent=2) + "\n"
)
