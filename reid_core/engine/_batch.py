"""Training batches finished on the training device: ``uint8`` in, normalised ``float32`` out.

The train loader sends pinned ``uint8`` clips and their erase boxes; copying those is a
quarter of the bytes of a float32 batch and, from pinned memory, truly asynchronous. The
conversion, ImageNet normalisation, random erasing and the erased-frame labels then come
from the device, vectorised (no per-clip Python loop, no host synchronisation). Same
arithmetic, in the same order, as :func:`reid_core.data._transforms.normalize_clips` on the
host.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from reid_core.data import ERASING_STYLES
from reid_core.data import IMAGENET_MEAN
from reid_core.data import IMAGENET_STD
from reid_core.data import erase_boxes


def finish_on_device(
    clips: torch.Tensor,
    boxes: torch.Tensor | None,
    device: torch.device,
    fill: Sequence[float] = ERASING_STYLES["reference"].fill,
) -> torch.Tensor:
    """``uint8`` clips ``[B, T, 3, H, W]`` + erase boxes -> float32 on ``device``.

    Args:
        clips: The collated ``uint8`` clips (pinned when the loader pins).
        boxes: ``(top, left, h, w)`` boxes from :class:`reid_core.data.ClipAugment`'s draw,
            ``[B, T, K, 4]`` (K per frame), ``[B, T, 4]`` or ``[B, 4]`` (one per clip);
            ``h = w = 0`` erases nothing; None (test clips) erases nothing.
        device: Where the batch goes.
        fill: Per-channel value written inside the boxes, in the normalised frame
            (the erasing style's :attr:`~reid_core.data.ErasingStyle.fill`).

    Returns:
        Normalised clips with frame ``t`` of clip ``b`` set to ``fill`` inside its boxes.

    Example:
        >>> x = finish_on_device(torch.zeros(2, 1, 3, 4, 4, dtype=torch.uint8),
        ...                      torch.tensor([[0, 0, 2, 2], [0, 0, 0, 0]]), torch.device("cpu"),
        ...                      fill=(0.0, 0.0, 0.0))
        >>> x[0, 0, 0, :2, :2].abs().sum().item(), x.dtype
        (0.0, torch.float32)
    """
    clips = clips.to(device, non_blocking=True)
    scale, shift = _constants(device)
    out = clips.to(torch.float32)
    out.mul_(scale).sub_(shift)
    if boxes is None:
        return out
    return erase_boxes(out, boxes.to(device, non_blocking=True), fill)


@functools.cache
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 / (255 std)`` and ``mean / std`` on ``device``, made once (no copy per step)."""
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (mean / std).to(device)
