"""How many test clips go through the model at once: the configured number on a CPU, sized
from the free memory on a CUDA device.

An inference forward of the faithful model (ResNet50 TA_BT, full-map attention, float32)
peaks at about 208 bytes per input frame pixel: measured with the CPU allocator's profiler,
19.9 MiB for one 4-frame 224x112 clip, 39.8 MiB for two. :data:`BYTES_PER_FRAME_PIXEL`
takes about 2.5x that, for the cuDNN workspace and the caching allocator's rounding. A CUDA
chunk fills :data:`FREE_MEMORY_FRACTION` of the free memory at that bound, at most
:data:`MAX_CHUNK` clips (the pinned host staging of a chunk grows with it, and a larger
chunk no longer shortens the pass). At 224x112, T=4 a clip is bounded at 51 MB: 40 GiB free
gives the maximum, 4 GiB free 41 clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["BYTES_PER_FRAME_PIXEL", "FREE_MEMORY_FRACTION", "MAX_CHUNK", "evaluation_chunk"]

BYTES_PER_FRAME_PIXEL = 512
FREE_MEMORY_FRACTION = 0.5
MAX_CHUNK = 256


def evaluation_chunk(configured: int, device: torch.device, clip_shape: Sequence[int]) -> int:
    """Clips per forward pass of feature extraction on ``device``.

    Args:
        configured: The configured number (``data.test_batch_size``): used as is off CUDA.
        device: Where the model runs.
        clip_shape: One clip's shape, ``(T, 3, H, W)``.

    Returns:
        On CUDA: ``FREE_MEMORY_FRACTION`` of the free memory over the per-clip bound, between
        1 and :data:`MAX_CHUNK`; elsewhere ``configured``.

    Example:
        >>> evaluation_chunk(32, torch.device("cpu"), (4, 3, 224, 112))
        32
    """
    if device.type != "cuda":
        return configured
    free, _total = torch.cuda.mem_get_info(device)
    frames, _channels, height, width = clip_shape
    per_clip = BYTES_PER_FRAME_PIXEL * frames * height * width
    return max(1, min(MAX_CHUNK, int(free * FREE_MEMORY_FRACTION) // per_clip))
