"""Profile one ``studies/demo.yaml`` trial end to end under cProfile (BENCHMARKS.md).

Run from the repository root: ``python benchmarks/data/search_efficiency/profile_demo_trial.py``.
It writes the demo's synthetic dataset and a SQLite study under ``/tmp/reid-hpo-profile``, runs
one trial through ``hpo.worker.run_worker`` exactly as ``reid-hpo demo`` does, and prints the
seconds spent in each part of the trial (also written to ``profile_demo_trial.json`` here).
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hpo.demo import DEMO_DATA
from hpo.demo import default_spec_path
from hpo.spec import load_spec
from hpo.study import create_study
from hpo.worker import run_worker
from reid_core.data import write_synthetic

Key = tuple[str, int, str]

PARTS: dict[str, Callable[[Key], bool]] = {
    "trial (run_worker)": lambda k: k[2] == "run_worker",
    "fit": lambda k: k[2] == "fit" and k[0].endswith("_trainer.py"),
    "train epochs": lambda k: k[2] == "train_one_epoch",
    "train steps": lambda k: k[2] == "_train_step",
    "backward": lambda k: k[2] == "backward" and k[0].endswith("_tensor.py"),
    "optimiser steps": lambda k: k[2] == "step" and k[0].endswith("grad_scaler.py"),
    "evaluation": lambda k: k[2] == "evaluate" and k[0].endswith("_evaluation.py"),
    "dataset __getitem__ (train + eval)": lambda k: (
        k[2] == "__getitem__" and k[0].endswith("_loaders.py")
    ),
    "frame decoding": lambda k: k[2] == "load_frame",
    "checkpoints": lambda k: k[2] == "_save" and k[0].endswith("_trainer.py"),
    "gc after the trial": lambda k: k[2] == "release_memory",
    "storage (optuna RDBStorage calls)": lambda k: (
        k[0].endswith("optuna/storages/_rdb/storage.py") and not k[2].startswith("_")
    ),
    "model forward (train + eval)": lambda k: k[2] == "forward" and k[0].endswith("_video.py"),
}


def main() -> None:
    """Run and profile one demo trial; print and save the per-part seconds."""
    torch.set_num_threads(1)
    out = Path("/tmp/reid-hpo-profile")
    data = out / "data" / "mars"
    if not data.exists():
        write_synthetic(data, "mars", seed=0, **DEMO_DATA)
    url = f"sqlite:///{out}/profile.db"
    base = load_spec(default_spec_path())
    name = f"profile-{int(time.time())}"
    spec = base.model_copy(
        update={
            "name": name,
            "dataset": base.dataset.model_copy(update={"root": str(data)}),
            "artifacts": base.artifacts.model_copy(update={"root": str(out / "runs")}),
            "budget": base.budget.model_copy(update={"n_trials": 1}),
        }
    )
    create_study(spec, url)
    profiler = cProfile.Profile()
    profiler.enable()
    run_worker(name, url, device="cpu", max_trials=1)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = {
        part: round(sum(v[3] for k, v in stats.items() if match(k)), 2)
        for part, match in PARTS.items()
    }
    for part, seconds in parts.items():
        print(f"{part:36s} {seconds:8.2f} s")
    target = Path(__file__).with_name("profile_demo_trial.json")
    target.write_text(json.dumps(parts, indent=2) + "\n")


if __name__ == "__main__":
    main()
