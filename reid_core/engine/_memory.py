"""Free a finished run's memory, host and device, so that the next run in the process starts
clean (a worker trains many trials in one process)."""

from __future__ import annotations

import gc
import logging

import torch

__all__ = ["release_memory"]

logger = logging.getLogger(__name__)


def release_memory() -> None:
    """Collect garbage and, once CUDA has started, empty torch's CUDA memory cache.

    After a sticky CUDA error ``empty_cache`` raises that error again; it is logged here
    instead, so that the caller's own exception (the run's failure) is the one that
    propagates. A process that never started CUDA is not made to start it.

    Example:
        >>> release_memory()
    """
    gc.collect()
    if torch.cuda.is_initialized():
        try:
            torch.cuda.empty_cache()
        except RuntimeError as exc:  # torch.AcceleratorError is a RuntimeError
            logger.warning("cannot release the GPU memory cache: %s", exc)
