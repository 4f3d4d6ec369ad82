"""Pick a process's torch device before anything touches CUDA.

The DataLoader pins batches on the *current* CUDA device (``pin_memory_device`` is deprecated:
torch uses the current accelerator index), and CUDA creates a context wherever a call lands
first; without ``torch.cuda.set_device`` a run on ``cuda:1`` would put a context and pinned
buffers on GPU 0, which another worker may hold. A CPU device leaves CUDA untouched.
"""

from __future__ import annotations

import os

import torch

from reid_core.config import resolve_device

__all__ = ["keep_off_gpus", "select_device"]


def keep_off_gpus(device: str) -> None:
    """For a process that runs on the CPU: hide every GPU from it before CUDA starts.

    torch itself touches CUDA wherever a GPU is visible, even for CPU tensors (each
    optimizer step asks the current CUDA stream whether it is capturing a graph), which
    creates a CUDA context on GPU 0. A command given ``--device cpu`` calls this first; a
    library call never does (it would change the whole process). No effect once CUDA has
    started or for another device.
    """
    if device == "cpu" and not torch.cuda.is_initialized():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def select_device(device: str) -> torch.device:
    """Resolve ``device`` and, for CUDA, make it this process's current device.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (GPU 0 of the visible list), ``"cuda:1"``, ...

    Returns:
        The device, with its index for CUDA.

    Raises:
        ConfigError: ``device`` names a CUDA device this machine does not have.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    chosen = torch.device(resolve_device(device))
    if chosen.type != "cuda":
        return chosen
    chosen = torch.device("cuda", 0 if chosen.index is None else chosen.index)
    torch.cuda.set_device(chosen)
    return chosen
