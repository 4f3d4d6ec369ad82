"""Training batches finished on the training device: ``uint8`` in, normalised ``float32`` out.

The train loader sends pinned ``uint8`` clips and their erase boxes; copying those is a
quarter of the bytes of a float32 batch and, from pinned memory, truly asynchronous. The
conversion, ImageNet normalisation and random erasing then run on the device, vectorised
(no per-clip Python loop, no host synchronisation). Same arithmetic, in the same order, as
:func:`reid_core.data._transforms.normalize_clips` on the host.
"""

from __future__ import annotations

import functools

import torch

from reid_core.data import IMAGENET_MEAN
from reid_core.data import IMAGENET_STD


def finish_on_device(
    clips: torch.Tensor, boxes: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """``uint8`` clips ``[B, T, 3, H, W]`` + erase boxes ``[B, T, 4]`` (or ``[B, 4]``: one
    per clip) -> float32 on ``device``.

    Args:
        clips: The collated ``uint8`` clips (pinned when the loader pins).
        boxes: ``(top, left, h, w)`` per frame (or per clip) from
            :class:`reid_core.data.ClipAugment`'s draw; ``h = w = 0`` erases nothing.
        device: Where the batch goes.

    Returns:
        Normalised clips with frame ``t`` of clip ``b`` zeroed inside ``boxes[b, t]``.

    Example:
        >>> x = finish_on_device(torch.zeros(2, 1, 3, 4, 4, dtype=torch.uint8),
        ...                      torch.tensor([[0, 0, 2, 2], [0, 0, 0, 0]]), torch.device("cpu"))
        >>> x[0, 0, 0, :2, :2].abs().sum().item(), x.dtype
        (0.0, torch.float32)
    """
    clips = clips.to(device, non_blocking=True)
    boxes = boxes.to(device, non_blocking=True)
    scale, shift = _constants(device)
    out = clips.to(torch.float32)
    out.mul_(scale).sub_(shift)
    height, width = out.shape[-2:]
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    if boxes.dim() == 2:  # one box per clip -> the same box in every frame
        boxes = boxes[:, None]
    top, left, h, w = (boxes[..., k, None, None] for k in range(4))
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    return out.masked_fill_(inside.unsqueeze(2), 0.0)


@functools.cache
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 / (255 std)`` and ``mean / std`` on ``device``, made once (no copy per step)."""
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (mean / std).to(device)
