"""Clip transforms: one set of random parameters for all the frames of a clip."""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_train_transform(
    height: int, width: int, *, random_erasing: float = 0.5, pad: int = 10
) -> v2.Transform:
    """Training augmentation of a ``uint8`` clip ``[T, 3, H, W]`` -> normalised ``float32``.

    Resize to (height, width), horizontal flip, pad ``pad`` + random crop back to size,
    ImageNet normalisation, random erasing with probability ``random_erasing``. The clip is
    transformed as one tensor, so every frame gets the same flip, crop and erased box.

    Example:
        >>> t = build_train_transform(32, 16)
        >>> t(torch.zeros(4, 3, 40, 20, dtype=torch.uint8)).shape
        torch.Size([4, 3, 32, 16])
    """
    steps: list[v2.Transform] = [
        v2.Resize((height, width), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.Pad(pad),
        v2.RandomCrop((height, width)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose(steps)


def build_test_transform(height: int, width: int) -> v2.Transform:
    """Test transform of a ``uint8`` clip ``[T, 3, H, W]``: resize and ImageNet normalisation."""
    return v2.Compose(
        [
            v2.Resize((height, width), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class ClipAugment:
    """Training geometry of a ``uint8`` clip, kept ``uint8``; the erased box is only drawn.

    The fast counterpart of :func:`build_train_transform` for the loader's workers: resize to
    (height, width) (skipped when the frames already have that size, e.g. cached resized
    frames), horizontal flip, pad ``pad`` with zeros + random crop back to size, done as tensor
    slicing on ``uint8``. Random erasing is drawn here (same distribution as
    ``v2.RandomErasing(p=random_erasing, value=0)``) but applied after normalisation, on the
    whole batch, by :func:`normalize_clips`. Randomness comes from ``generator`` (torch's global
    one when None); the dataset passes one seeded per clip, which avoids ``torch.manual_seed``
    (slow: it records a stack trace per lazily seeded device). Every frame of a clip gets the
    same parameters.

    Returns ``(clip uint8 [T, 3, height, width], box int64 [4])`` with ``box = (top, left, h,
    w)`` of the erased area, ``h = w = 0`` when nothing is erased.

    Example:
        >>> clip, box = ClipAugment(32, 16)(torch.zeros(4, 3, 40, 20, dtype=torch.uint8))
        >>> clip.shape, clip.dtype, box.shape
        (torch.Size([4, 3, 32, 16]), torch.uint8, torch.Size([4]))
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        random_erasing: float = 0.5,
        pad: int = 10,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
    ) -> None:
        self.size = (height, width)
        self.random_erasing = random_erasing
        self.pad = pad
        self.scale = scale
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.size
        g = generator
        if tuple(clip.shape[-2:]) != self.size:
            clip = tvf.resize(clip, [h, w], antialias=True)
        if float(torch.rand(1, generator=g)) < 0.5:
            clip = clip.flip(-1)
        top = int(torch.randint(0, 2 * self.pad + 1, (1,), generator=g)) - self.pad
        left = int(torch.randint(0, 2 * self.pad + 1, (1,), generator=g)) - self.pad
        out = torch.zeros_like(clip)
        y0, y1 = max(0, top), min(h, h + top)
        x0, x1 = max(0, left), min(w, w + left)
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = clip[..., y0:y1, x0:x1]
        return out, self._erase_box(g)

    def _erase_box(self, g: torch.Generator | None) -> torch.Tensor:
        h, w = self.size
        if self.random_erasing <= 0 or float(torch.rand(1, generator=g)) >= self.random_erasing:
            return torch.zeros(4, dtype=torch.int64)
        for _ in range(10):
            area = h * w * float(torch.empty(1).uniform_(*self.scale, generator=g))
            aspect = math.exp(float(torch.empty(1).uniform_(*self.log_ratio, generator=g)))
            eh = round(math.sqrt(area * aspect))
            ew = round(math.sqrt(area / aspect))
            if eh < h and ew < w:
                i = int(torch.randint(0, h - eh + 1, (1,), generator=g))
                j = int(torch.randint(0, w - ew + 1, (1,), generator=g))
                return torch.tensor([i, j, eh, ew], dtype=torch.int64)
        return torch.zeros(4, dtype=torch.int64)


def normalize_clips(clips: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
    """``uint8`` clips ``[B, T, 3, H, W]`` -> ImageNet-normalised ``float32``, boxes erased.

    One vectorised pass per batch (convert, scale, shift); ``boxes[b] = (top, left, h, w)``
    (from :class:`ClipAugment`) is set to 0 in every frame of clip ``b``. Matches
    ``ToDtype(float32, scale=True)`` + ``Normalize`` to float rounding (about 1e-6).

    Example:
        >>> normalize_clips(torch.zeros(2, 4, 3, 8, 4, dtype=torch.uint8)).dtype
        torch.float32
    """
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    out = clips.to(torch.float32)
    out.mul_(1.0 / (255.0 * std)).sub_(mean / std)
    if boxes is not None:
        for b, (i, j, eh, ew) in enumerate(boxes.tolist()):
            if eh > 0 and ew > 0:
                out[b, ..., i : i + eh, j : j + ew] = 0.0
    return out
