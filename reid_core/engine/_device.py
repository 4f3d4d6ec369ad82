"""Pick a process's torch device before anything touches CUDA.

The DataLoader pins batches on the *current* CUDA device (``pin_memory_device`` is deprecated:
torch uses the current accelerator index), and CUDA creates a context wherever a call lands
first; without ``torch.cuda.set_device`` a run on ``cuda:1`` would put a context and pinned
buffers on GPU 0, which another worker may hold. A CPU device leaves CUDA untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from reid_core.config import resolve_device

__all__ = ["gpus_hidden", "select_device"]

_VISIBLE = "CUDA_VISIBLE_DEVICES"


@contextlib.contextmanager
def gpus_hidden(device: str) -> Iterator[None]:
    """While a command runs on the CPU: hide every GPU from this process before CUDA starts.

    torch itself touches CUDA wherever a GPU is visible, even for CPU tensors (each
    optimizer step asks the current CUDA stream whether it is capturing a graph), which
    creates a CUDA context on GPU 0. A command given ``--device cpu`` runs inside this;
    ``CUDA_VISIBLE_DEVICES`` is empty within it (data-loading processes started there inherit
    that) and as it was on exit, so that a caller in the same process (a test, a notebook)
    keeps its environment. CUDA reads the variable once, when it starts: a process whose CUDA
    started hidden keeps no GPU. No effect once CUDA has started or for another device.

    Args:
        device: The command's ``--device`` value.

    Example:
        >>> with gpus_hidden("cpu"):
        ...     os.environ["CUDA_VISIBLE_DEVICES"]
        ''
    """
    if device != "cpu" or torch.cuda.is_initialized():
        yield
        return
    before = os.environ.get(_VISIBLE)
    os.environ[_VISIBLE] = ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_VISIBLE, None)
        else:
            os.environ[_VISIBLE] = before


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
