"""``reid-hpo doctor``: a few-minute acceptance check of a GPU node or image.

Node checks (versions, driver, GPU slots, compiler, ImageNet weights, storage, artifacts
root) run once; device checks (precision, training steps without a host synchronisation,
clips/s fp32 vs bf16, GPU busy, out-of-memory handling, MARS-size ranking + re-ranking) run on
each selected GPU, or once on the CPU where no GPU is visible (the GPU-only ones SKIP).
"""

from __future__ import annotations

from hpo.doctor._device import FULL
from hpo.doctor._device import QUICK
from hpo.doctor._report import EXIT_FAILED
from hpo.doctor._report import Check
from hpo.doctor._report import Status
from hpo.doctor._report import exit_code
from hpo.doctor._run import run_doctor

__all__ = ["EXIT_FAILED", "FULL", "QUICK", "Check", "Status", "exit_code", "run_doctor"]
