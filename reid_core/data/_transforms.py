"""Clip transforms: one set of random parameters for all the frames of a clip."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

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
