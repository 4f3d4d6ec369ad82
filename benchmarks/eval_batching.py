"""Side by side: the demo's validation pass, one forward per tracklet vs packed clip batches.

Run from the repository root: ``python benchmarks/eval_batching.py`` (about 30 s). Prints the
per-evaluation times of both (median of 3 after one warm-up each, alternating in one process,
one torch thread) and the mAP of each, which must be equal.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import reid_core.engine._evaluation as evaluation
from hpo.demo import DEMO_DATA
from hpo.spec import load_spec
from hpo.spec import to_train_config
from reid_core.data import write_synthetic
from reid_core.engine import Trainer


@torch.inference_mode()
def per_tracklet_features(model, loader, *, device, chunk=32, amp=False):
    """The previous extract_features: one forward pass (or more) per tracklet."""
    was_training = model.training
    model.eval()
    feats, pids, camids = [], [], []
    for clips, pid, camid in loader:
        clips = clips.squeeze(0) if clips.dim() == 6 else clips
        parts = [
            model(clips[s : s + chunk].to(device)).bn_features.float()
            for s in range(0, clips.shape[0], chunk)
        ]
        feats.append(torch.cat(parts).mean(0).cpu())
        pids.append(int(pid))
        camids.append(int(camid))
    model.train(was_training)
    return torch.stack(feats), np.asarray(pids), np.asarray(camids)


def main() -> None:
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp())
    write_synthetic(root / "data", "mars", seed=0, **DEMO_DATA)
    spec = load_spec(Path("studies/demo.yaml"))
    dataset = spec.dataset.model_copy(update={"root": str(root / "data")})
    spec = spec.model_copy(update={"dataset": dataset})
    trainer = Trainer(to_train_config(spec, {}, trial_number=0, output_dir=str(root / "run")))
    packed = evaluation.extract_features
    times: dict[str, list[float]] = {"per tracklet": [], "packed": []}
    maps: dict[str, float] = {}
    for _ in range(4):
        for name, extract in (("per tracklet", per_tracklet_features), ("packed", packed)):
            evaluation.extract_features = extract
            start = time.perf_counter()
            maps[name] = trainer.evaluate().metrics["mAP"]
            times[name].append(time.perf_counter() - start)
    evaluation.extract_features = packed
    old, new = (statistics.median(times[k][1:]) for k in ("per tracklet", "packed"))
    print(f"per tracklet {old:.3f} s, packed {new:.3f} s, {old / new:.2f}x; mAP {maps}")


if __name__ == "__main__":
    main()
