"""Clip transforms: training augmentation (per frame or per clip) and the test transform."""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvf

from reid_core.errors import ConfigError

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
    """Training geometry of a ``uint8`` clip, kept ``uint8``; the erased boxes are only drawn.

    The loader workers' augmentation: resize to (height, width) (skipped when the frames
    already have that size, e.g. cached resized frames), horizontal flip, then a translation:

    - ``translation="reference"``: pad ``pad`` with zeros, then the reference's random 2-D
      translation: with probability 1/2 resize the padded frame to (height, width), else
      resize it to (round(1.125 height), round(1.125 width)) and crop (height, width) at a
      uniformly drawn offset (antialiased bilinear on ``uint8``).
    - ``translation="pad_crop"``: pad ``pad`` with zeros + random crop back to size, done as
      tensor slicing.

    ``scope="frame"`` draws flip, translation and erasing for every frame (the reference's
    transforms run frame by frame); ``scope="clip"`` draws them once for the whole clip.
    Random erasing is drawn here (same distribution as ``v2.RandomErasing(p=random_erasing,
    value=0)``) but applied after normalisation, on the whole batch, by
    :func:`normalize_clips`. Randomness comes from ``generator`` (torch's global one when
    None); the dataset passes one seeded per clip, which avoids ``torch.manual_seed`` (slow: it
    records a stack trace per lazily seeded device).

    Returns ``(clip uint8 [T, 3, height, width], boxes int64 [T, 4])`` with ``boxes[t] = (top,
    left, h, w)`` of frame t's erased area, ``h = w = 0`` when nothing is erased.

    Example:
        >>> clip, boxes = ClipAugment(32, 16)(torch.zeros(4, 3, 40, 20, dtype=torch.uint8))
        >>> clip.shape, clip.dtype, boxes.shape
        (torch.Size([4, 3, 32, 16]), torch.uint8, torch.Size([4, 4]))
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        random_erasing: float = 0.5,
        pad: int = 10,
        translation: str = "reference",
        scope: str = "frame",
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
    ) -> None:
        if translation not in ("reference", "pad_crop"):
            raise ConfigError(f"translation={translation!r}; expected 'reference' or 'pad_crop'")
        if scope not in ("frame", "clip"):
            raise ConfigError(f"augment_scope={scope!r}; expected 'frame' or 'clip'")
        self.size = (height, width)
        self.random_erasing = random_erasing
        self.pad = pad
        self.translation = translation
        self.scope = scope
        self.scale = scale
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.size
        if tuple(clip.shape[-2:]) != self.size:
            clip = tvf.resize(clip, [h, w], antialias=True)
        if self.scope == "clip":
            box = self._erase_box(generator)
            return self._geometry(clip, generator), box.expand(len(clip), 4).clone()
        frames = []
        boxes = []
        for frame in clip.unbind(0):
            frames.append(self._geometry(frame, generator))
            boxes.append(self._erase_box(generator))
        return torch.stack(frames), torch.stack(boxes)

    def _geometry(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """Flip + translation of ``x`` (``[..., 3, h, w]``) with one draw of parameters."""
        if float(torch.rand(1, generator=g)) < 0.5:
            x = x.flip(-1)
        if self.translation == "reference":
            return self._reference_translation(x, g)
        return self._pad_crop(x, g)

    def _pad_crop(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        h, w = self.size
        top = int(torch.randint(0, 2 * self.pad + 1, (1,), generator=g)) - self.pad
        left = int(torch.randint(0, 2 * self.pad + 1, (1,), generator=g)) - self.pad
        out = torch.zeros_like(x)
        y0, y1 = max(0, top), min(h, h + top)
        x0, x1 = max(0, left), min(w, w + left)
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = x[..., y0:y1, x0:x1]
        return out

    def _reference_translation(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        h, w = self.size
        p = self.pad
        if p:
            x = torch.nn.functional.pad(x, (p, p, p, p))
        if float(torch.rand(1, generator=g)) < 0.5:
            return tvf.resize(x, [h, w], antialias=True)
        big_h, big_w = round(h * 1.125), round(w * 1.125)
        x = tvf.resize(x, [big_h, big_w], antialias=True)
        top = round(float(torch.rand(1, generator=g)) * (big_h - h))
        left = round(float(torch.rand(1, generator=g)) * (big_w - w))
        return x[..., top : top + h, left : left + w].contiguous()

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

    One vectorised pass per batch (convert, scale, shift); ``boxes[b, t] = (top, left, h, w)``
    (from :class:`ClipAugment`) is set to 0 in frame ``t`` of clip ``b`` (a ``[B, 4]`` box
    applies to every frame of its clip). Matches
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
        if boxes.dim() == 2:
            boxes = boxes[:, None].expand(-1, clips.shape[1], -1)
        for b, t in (boxes[..., 2] * boxes[..., 3] > 0).nonzero().tolist():
            i, j, eh, ew = boxes[b, t].tolist()
            out[b, t, ..., i : i + eh, j : j + ew] = 0.0
    return out
