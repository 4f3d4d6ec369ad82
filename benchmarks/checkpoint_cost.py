"""Size and write time of a full-size ResNet50TA_BT checkpoint with Adam state.

Usage: ``python benchmarks/checkpoint_cost.py OUT_DIR`` (BENCHMARKS.md, "Checkpoints").
"""

import sys
import time
from pathlib import Path

import torch

from reid_core import losses
from reid_core import models
from reid_core.config import LossConfig
from reid_core.config import ModelConfig
from reid_core.engine import save_checkpoint
from reid_core.engine import verify_checkpoint

torch.set_num_threads(1)
model = models.build_model_from_config(
    ModelConfig(pretrained=False), num_classes=625, input_size=(224, 112)
)
crit = losses.ReidCriterion(LossConfig(), num_classes=625, feat_dim=model.feat_dim)
opt = torch.optim.Adam(
    [p for p in model.parameters() if p.requires_grad], lr=3.5e-4, weight_decay=5e-4
)
for p in model.parameters():
    p.grad = torch.zeros_like(p)
opt.step()  # Adam state (exp_avg, exp_avg_sq) as after any step
state = {
    "model": model.state_dict(),
    "criterion": crit.state_dict(),
    "optimizer": opt.state_dict(),
    "scaler": {},
}
params = sum(p.numel() for p in model.parameters())
out = Path(sys.argv[1])
for i in range(3):
    t = time.perf_counter()
    path = save_checkpoint(out / f"epoch_{i:04d}.pt", state)
    w = time.perf_counter() - t
    t = time.perf_counter()
    verify_checkpoint(path)
    r = time.perf_counter() - t
    print(
        f"params {params / 1e6:.1f}M size {path.stat().st_size / 1e6:.0f} MB "
        f"write+fsync+hash {w:.2f} s reread+hash {r:.2f} s"
    )
    path.unlink()
