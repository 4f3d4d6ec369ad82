"""Clip transforms: training augmentation (per frame or per clip) and the test transform."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def build_test_transform(height: int, width: int, *, normalize: bool = True) -> v2.Transform:
    """Test transform of a ``uint8`` clip ``[T, 3, H, W]``: resize and ImageNet normalisation
    (``normalize=False``: resize only, ``uint8`` kept for the consumer's device to finish)."""
    resize = v2.Resize((height, width), antialias=True)
    if not normalize:
        return v2.Compose([resize])
    return v2.Compose(
        [resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


@dataclass(frozen=True)
class ErasingStyle:
    """How a random-erasing box is drawn and filled (``DataConfig.erasing_style``).

    Attributes:
        area: Range of the box's area as a fraction of the frame's, drawn uniformly.
        ratio: Range of the aspect ratio h / w.
        log_ratio: Draw the ratio log-uniformly (torchvision) rather than uniformly.
        attempts: Draws of (area, ratio) until a box fits inside the frame; none fits: no box.
        fill: Per-channel value written into the normalised frame inside the box.
    """

    area: tuple[float, float]
    ratio: tuple[float, float]
    log_ratio: bool
    attempts: int
    fill: tuple[float, float, float]


#: ``"reference"``: the reference's ``RandomErasing2``/``RandomErasing3`` (tools/transforms2.py:
#: sl 0.02, sh 0.4, r1 0.3, 100 attempts, the ImageNet mean values written after
#: normalisation); ``"torchvision"``: ``v2.RandomErasing(value=0)``'s defaults.
ERASING_STYLES: dict[str, ErasingStyle] = {
    "reference": ErasingStyle((0.02, 0.4), (0.3, 1 / 0.3), False, 100, IMAGENET_MEAN),
    "torchvision": ErasingStyle((0.02, 0.33), (0.3, 3.3), True, 10, (0.0, 0.0, 0.0)),
}


def erasing_style(name: str) -> ErasingStyle:
    """The :class:`ErasingStyle` called ``name``.

    Raises:
        ConfigError: Unknown name.
    """
    try:
        return ERASING_STYLES[name]
    except KeyError:
        raise ConfigError(
            f"erasing_style={name!r}; expected one of {', '.join(ERASING_STYLES)}"
        ) from None


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
    Two random erasings are drawn per frame, with the box distribution of ``style``
    (:data:`ERASING_STYLES`): the plain one with probability ``random_erasing``, then the
    labelled one with probability ``labelled_erasing`` (the reference's Attn-CL loader erases
    a second time and labels the frames this second erasing hit). They are applied after
    normalisation, on the whole batch, by :func:`normalize_clips` or on the training device.
    Randomness comes from ``generator`` (torch's global one when None); the dataset passes one
    seeded per clip, which avoids ``torch.manual_seed`` (slow: it records a stack trace per
    lazily seeded device).

    Returns ``(clip uint8 [T, 3, height, width], boxes int64 [T, 2, 4])`` with ``boxes[t, k] =
    (top, left, h, w)`` of frame t's plain (k = 0) and labelled (k = 1) erased area, ``h = w =
    0`` when nothing is erased (:func:`erased_frames` reads the labels back).

    Example:
        >>> clip, boxes = ClipAugment(32, 16)(torch.zeros(4, 3, 40, 20, dtype=torch.uint8))
        >>> clip.shape, clip.dtype, boxes.shape
        (torch.Size([4, 3, 32, 16]), torch.uint8, torch.Size([4, 2, 4]))
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        random_erasing: float = 0.5,
        labelled_erasing: float = 0.0,
        pad: int = 10,
        translation: str = "reference",
        scope: str = "frame",
        style: str = "reference",
    ) -> None:
        if translation not in ("reference", "pad_crop"):
            raise ConfigError(f"translation={translation!r}; expected 'reference' or 'pad_crop'")
        if scope not in ("frame", "clip"):
            raise ConfigError(f"augment_scope={scope!r}; expected 'frame' or 'clip'")
        self.size = (height, width)
        self.erasing = (random_erasing, labelled_erasing)
        self.pad = pad
        self.translation = translation
        self.scope = scope
        self.style = erasing_style(style)

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.size
        if tuple(clip.shape[-2:]) != self.size:
            clip = tvf.resize(clip, [h, w], antialias=True)
        if self.scope == "clip":
            boxes = self._erase_boxes(generator)
            return self._geometry(clip, generator), boxes.expand(len(clip), 2, 4).clone()
        frames = []
        boxes = []
        for frame in clip.unbind(0):
            frames.append(self._geometry(frame, generator))
            boxes.append(self._erase_boxes(generator))
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

    def _erase_boxes(self, g: torch.Generator | None) -> torch.Tensor:
        """The plain and the labelled box of one frame (or clip), ``[2, 4]``."""
        return torch.stack([self._erase_box(p, g) for p in self.erasing])

    def _erase_box(self, probability: float, g: torch.Generator | None) -> torch.Tensor:
        if probability <= 0 or float(torch.rand(1, generator=g)) >= probability:
            return torch.zeros(4, dtype=torch.int64)
        return draw_erase_box(self.style, self.size, g)


def draw_erase_box(
    style: ErasingStyle, size: tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random-erasing box ``(top, left, h, w)`` int64 in a frame of ``size`` (H, W).

    Up to ``style.attempts`` draws of an area fraction and an aspect ratio; the first box
    with ``h < H`` and ``w < W`` is placed uniformly (both ends included); none fits: the
    empty box ``(0, 0, 0, 0)``. The erasing probability is the caller's.

    Example:
        >>> box = draw_erase_box(ERASING_STYLES["reference"], (224, 112))
        >>> bool(0 < box[2] * box[3] <= 0.4 * 224 * 112)
        True
    """
    h, w = size
    ratio = [math.log(r) for r in style.ratio] if style.log_ratio else style.ratio
    for _ in range(style.attempts):
        area = h * w * float(torch.empty(1).uniform_(*style.area, generator=generator))
        aspect = float(torch.empty(1).uniform_(*ratio, generator=generator))
        aspect = math.exp(aspect) if style.log_ratio else aspect
        eh = round(math.sqrt(area * aspect))
        ew = round(math.sqrt(area / aspect))
        if eh < h and ew < w:
            i = int(torch.randint(0, h - eh + 1, (1,), generator=generator))
            j = int(torch.randint(0, w - ew + 1, (1,), generator=generator))
            return torch.tensor([i, j, eh, ew], dtype=torch.int64)
    return torch.zeros(4, dtype=torch.int64)


def erase_boxes(
    clips: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Normalised clips ``[B, T, 3, H, W]`` with ``fill`` (per channel) inside the boxes.

    ``boxes`` holds ``(top, left, h, w)``: ``[B, T, K, 4]`` (K boxes per frame, as
    :class:`ClipAugment` draws them), ``[B, T, 4]`` (one per frame) or ``[B, 4]`` (one per
    clip, in every frame); ``h = w = 0`` erases nothing. Vectorised, on the clips' device.
    """
    if boxes.dim() == 2:
        boxes = boxes[:, None, None]
    elif boxes.dim() == 3:
        boxes = boxes[:, :, None]
    height, width = clips.shape[-2:]
    rows = torch.arange(height, device=clips.device).view(height, 1)
    cols = torch.arange(width, device=clips.device).view(1, width)
    top, left, h, w = (boxes[..., k, None, None] for k in range(4))
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    inside = inside.any(dim=2, keepdim=True)  # [B, T, 1, H, W]: any of the frame's boxes
    values = torch.as_tensor(fill, dtype=clips.dtype, device=clips.device).view(3, 1, 1)
    return torch.where(inside, values, clips)


def erased_frames(boxes: torch.Tensor) -> torch.Tensor:
    """The labelled erasing's 0/1 label of every frame, ``[B, T]`` float32 on the boxes' device.

    ``boxes`` is ``[B, T, 2, 4]`` as :class:`ClipAugment` draws them; a frame is labelled 1
    when its labelled box (slot 1) is not empty.

    Example:
        >>> boxes = torch.zeros(1, 2, 2, 4, dtype=torch.int64)
        >>> boxes[0, 1, 1] = torch.tensor([0, 0, 3, 2])
        >>> erased_frames(boxes)
        tensor([[0., 1.]])
    """
    if boxes.dim() != 4 or boxes.shape[2] != 2:
        raise ValueError(f"expected boxes [B, T, 2, 4], got shape {tuple(boxes.shape)}")
    return (boxes[..., 1, 2] * boxes[..., 1, 3] > 0).to(torch.float32)


def normalize_clips(
    clips: torch.Tensor,
    boxes: torch.Tensor | None = None,
    fill: Sequence[float] = ERASING_STYLES["reference"].fill,
) -> torch.Tensor:
    """``uint8`` clips ``[B, T, 3, H, W]`` -> ImageNet-normalised ``float32``, boxes erased.

    One vectorised pass per batch (convert, scale, shift), then :func:`erase_boxes` writes
    ``fill`` inside ``boxes`` (from :class:`ClipAugment`; ``[B, T, K, 4]``, ``[B, T, 4]`` or
    ``[B, 4]``). Matches ``ToDtype(float32, scale=True)`` + ``Normalize`` to float rounding
    (about 1e-6).

    Example:
        >>> normalize_clips(torch.zeros(2, 4, 3, 8, 4, dtype=torch.uint8)).dtype
        torch.float32
    """
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    out = clips.to(torch.float32)
    out.mul_(1.0 / (255.0 * std)).sub_(mean / std)
    return out if boxes is None else erase_boxes(out, boxes, fill)
