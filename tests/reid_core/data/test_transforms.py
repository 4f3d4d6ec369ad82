from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp
from torchvision.transforms import v2

from reid_core.data import ERASING_STYLES
from reid_core.data import IMAGENET_MEAN
from reid_core.data import IMAGENET_STD
from reid_core.data import build_test_transform
from reid_core.data import build_train_transform
from reid_core.data import draw_erase_box
from reid_core.data import erased_frames
from reid_core.data._transforms import ClipAugment
from reid_core.data._transforms import normalize_clips


def _clip() -> torch.Tensor:
    frame = torch.randint(0, 256, (3, 40, 20), dtype=torch.uint8, generator=torch.Generator())
    return frame.unsqueeze(0).repeat(4, 1, 1, 1)


def test_train_transform_shape_and_dtype() -> None:
    out = build_train_transform(32, 16)(_clip())
    assert out.shape == (4, 3, 32, 16)
    assert out.dtype == torch.float32


def test_all_frames_of_a_clip_get_the_same_random_parameters() -> None:
    transform = build_train_transform(32, 16, random_erasing=1.0)
    for seed in range(5):
        torch.manual_seed(seed)
        out = transform(_clip())  # four identical frames in, four identical frames out
        assert torch.equal(out[0], out[3])


def test_test_transform_is_deterministic_and_normalised() -> None:
    clip = torch.full((2, 3, 40, 20), 124, dtype=torch.uint8)
    out = build_test_transform(32, 16)(clip)
    assert out.shape == (2, 3, 32, 16)
    assert torch.equal(out, build_test_transform(32, 16)(clip))
    assert out[:, 0].abs().max() < 0.02  # 124/255 is about the ImageNet red mean


def test_clip_augment_keeps_uint8_and_resizes_to_the_target_size() -> None:
    for scope in ("frame", "clip"):
        clip, boxes = ClipAugment(32, 16, scope=scope)(_clip(), torch.Generator().manual_seed(0))
        assert clip.shape == (4, 3, 32, 16) and clip.dtype == torch.uint8
        assert boxes.shape == (4, 2, 4) and boxes.dtype == torch.int64


@pytest.mark.parametrize("translation", ["reference", "pad_crop"])
def test_clip_scope_gives_every_frame_of_a_clip_the_same_geometry(translation: str) -> None:
    augment = ClipAugment(32, 16, random_erasing=1.0, scope="clip", translation=translation)
    for seed in range(5):
        clip, boxes = augment(_clip(), torch.Generator().manual_seed(seed))
        assert torch.equal(clip[0], clip[3]) and torch.equal(boxes[0], boxes[3])


@pytest.mark.parametrize("translation", ["reference", "pad_crop"])
def test_frame_scope_draws_flip_translation_and_erasing_per_frame(translation: str) -> None:
    # The reference applies its transforms frame by frame: identical frames come out different.
    frame = torch.randint(0, 256, (1, 3, 32, 16), dtype=torch.uint8)
    augment = ClipAugment(32, 16, random_erasing=1.0, translation=translation)
    assert augment.scope == "frame"  # the default
    differs = boxes_differ = 0
    for seed in range(5):
        clip, boxes = augment(frame.expand(8, -1, -1, -1), torch.Generator().manual_seed(seed))
        differs += any(not torch.equal(clip[0], clip[t]) for t in range(1, 8))
        boxes_differ += any(not torch.equal(boxes[0], boxes[t]) for t in range(1, 8))
    assert differs == 5 and boxes_differ == 5


def test_reference_translation_is_a_resize_or_a_1125_zoom_crop_of_the_padded_frame() -> None:
    frame = torch.randint(0, 256, (1, 3, 32, 16), dtype=torch.uint8)
    padded = v2.functional.pad(frame, [4])
    plain = v2.functional.resize(padded, [32, 16], antialias=True)
    zoomed = v2.functional.resize(padded, [36, 18], antialias=True)  # round(1.125 x)
    crops = [zoomed[..., i : i + 32, j : j + 16] for i in range(5) for j in range(3)]
    kinds = set()
    augment = ClipAugment(32, 16, pad=4, random_erasing=0.0, translation="reference")
    for seed in range(40):
        out, _ = augment(frame, torch.Generator().manual_seed(seed))
        out = out.flip(-1) if not any(torch.equal(out, c) for c in [plain, *crops]) else out
        if torch.equal(out, plain):
            kinds.add("resize")
        else:
            assert any(torch.equal(out, c) for c in crops)
            kinds.add("zoom_crop")
    assert kinds == {"resize", "zoom_crop"}


def test_clip_augment_is_deterministic_per_generator_seed() -> None:
    augment = ClipAugment(32, 16)
    a = augment(_clip(), torch.Generator().manual_seed(7))
    b = augment(_clip(), torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_clip_augment_without_padding_only_flips() -> None:
    clip = torch.randint(0, 256, (2, 3, 32, 16), dtype=torch.uint8)
    augment = ClipAugment(32, 16, pad=0, random_erasing=0.0, translation="pad_crop", scope="clip")
    for seed in range(6):
        out, boxes = augment(clip, torch.Generator().manual_seed(seed))
        assert torch.equal(out, clip) or torch.equal(out, clip.flip(-1))
        assert boxes.tolist() == [[[0, 0, 0, 0]] * 2] * 2


def test_clip_augment_crop_is_a_zero_padded_shift_of_the_clip() -> None:
    clip = torch.full((1, 3, 32, 16), 200, dtype=torch.uint8)
    out, _ = ClipAugment(32, 16, pad=10, random_erasing=0.0, translation="pad_crop")(clip)
    padded = v2.functional.pad(clip, [10])
    windows = [padded[..., i : i + 32, j : j + 16] for i in range(21) for j in range(21)]
    assert any(torch.equal(out, w) for w in windows)


def test_normalize_clips_matches_to_dtype_and_normalize() -> None:
    clips = torch.randint(0, 256, (2, 4, 3, 8, 4), dtype=torch.uint8)
    reference = v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    expected = torch.stack([reference(c) for c in clips])
    assert torch.allclose(normalize_clips(clips), expected, atol=1e-5)


def test_normalize_clips_erases_each_clips_box_in_every_frame() -> None:
    clips = torch.full((2, 4, 3, 8, 4), 255, dtype=torch.uint8)
    out = normalize_clips(clips, torch.tensor([[1, 1, 2, 2], [0, 0, 0, 0]]), fill=(0, 0, 0))
    assert (out[0, :, :, 1:3, 1:3] == 0).all()
    assert (out[0, :, :, 0] != 0).all() and (out[1] != 0).all()


def test_normalize_clips_erases_per_frame_boxes_only_in_their_frame() -> None:
    clips = torch.full((1, 2, 3, 8, 4), 255, dtype=torch.uint8)
    out = normalize_clips(clips, torch.tensor([[[1, 1, 2, 2], [0, 0, 0, 0]]]), fill=(0, 0, 0))
    assert (out[0, 0, :, 1:3, 1:3] == 0).all() and (out[0, 1] != 0).all()


# ------------------------------------------------------------------ random erasing's parameters


def _reference_random_erasing_box(
    height: int, width: int, rng: random.Random
) -> tuple[int, int, int, int] | None:
    """The reference's RandomErasing2/3 box draw (tools/transforms2.py), with its constants:
    sl=0.02, sh=0.4, r1=0.3, 100 attempts, positions by inclusive randint."""
    for _attempt in range(100):
        area = height * width
        target_area = rng.uniform(0.02, 0.4) * area
        aspect_ratio = rng.uniform(0.3, 1 / 0.3)
        h = round(math.sqrt(target_area * aspect_ratio))
        w = round(math.sqrt(target_area / aspect_ratio))
        if w < width and h < height:
            x1 = rng.randint(0, height - h)
            y1 = rng.randint(0, width - w)
            return x1, y1, h, w
    return None


def _box_statistics(boxes: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    top, left, h, w = boxes.T.astype(float)
    return {
        "area": h * w / (height * width),
        "aspect": h / w,
        "top": top / np.maximum(height - h, 1),
        "left": left / np.maximum(width - w, 1),
    }


@pytest.mark.parametrize("size", [(224, 112), (32, 16)])
def test_reference_erasing_boxes_follow_the_reference_distribution(size: tuple[int, int]) -> None:
    # Same distribution as the reference's own draw (two-sample Kolmogorov-Smirnov on area,
    # aspect ratio and position), and the torchvision style is told apart by the same test.
    n = 3000
    rng = random.Random(0)
    expected = _box_statistics(
        np.array([_reference_random_erasing_box(*size, rng) for _ in range(n)]), *size
    )
    generator = torch.Generator().manual_seed(0)

    def ours(style: str) -> dict[str, np.ndarray]:
        draws = [draw_erase_box(ERASING_STYLES[style], size, generator) for _ in range(n)]
        return _box_statistics(torch.stack(draws).numpy(), *size)

    reference, torchvision = ours("reference"), ours("torchvision")
    for name in ("area", "aspect", "top", "left"):
        assert ks_2samp(reference[name], expected[name]).pvalue > 1e-3, name
    assert ks_2samp(torchvision["area"], expected["area"]).pvalue < 1e-6
    assert ks_2samp(torchvision["aspect"], expected["aspect"]).pvalue < 1e-6
    assert reference["area"].max() <= 0.4 + 2 / min(size)  # sh = 0.4, up to rounding


def test_erasing_styles_carry_the_reference_and_torchvision_constants() -> None:
    reference, torchvision = ERASING_STYLES["reference"], ERASING_STYLES["torchvision"]
    assert (reference.area, reference.log_ratio, reference.attempts) == ((0.02, 0.4), False, 100)
    assert reference.ratio == pytest.approx((0.3, 1 / 0.3))
    assert reference.fill == (0.485, 0.456, 0.406)  # RandomErasing2(mean=[0.485, ...])
    defaults = v2.RandomErasing()
    assert torchvision.area == defaults.scale and torchvision.ratio == defaults.ratio
    assert (torchvision.log_ratio, torchvision.attempts, torchvision.fill) == (True, 10, (0, 0, 0))


def test_reference_fill_writes_the_mean_values_into_the_normalised_frame() -> None:
    # The reference erases after Normalize: the box holds 0.485 / 0.456 / 0.406 themselves.
    clips = torch.randint(0, 256, (1, 2, 3, 8, 4), dtype=torch.uint8)
    out = normalize_clips(clips, torch.tensor([[[[2, 1, 3, 2], [0, 0, 0, 0]]] * 2]))
    for channel, value in enumerate((0.485, 0.456, 0.406)):
        assert (out[0, :, channel, 2:5, 1:3] == value).all()
    assert torch.equal(out[0, :, :, :2], normalize_clips(clips)[0, :, :, :2])


def test_labelled_erasing_is_drawn_after_the_plain_one_and_labels_its_frames() -> None:
    clip = torch.randint(0, 256, (8, 3, 32, 16), dtype=torch.uint8)
    only_labelled = ClipAugment(32, 16, random_erasing=0.0, labelled_erasing=1.0)
    _, boxes = only_labelled(clip, torch.Generator().manual_seed(0))
    assert (boxes[:, 0] == 0).all() and (boxes[:, 1, 2] * boxes[:, 1, 3] > 0).all()
    assert erased_frames(boxes[None]).tolist() == [[1.0] * 8]
    both = ClipAugment(32, 16, random_erasing=0.5, labelled_erasing=0.5)
    labels = []
    plain = []
    for seed in range(20):
        _, boxes = both(clip, torch.Generator().manual_seed(seed))
        labels += erased_frames(boxes[None])[0].tolist()
        plain += (boxes[:, 0, 2] > 0).tolist()
    # per frame, about half of each, drawn independently: some plain-erased frames unlabelled
    assert 0.3 < sum(labels) / len(labels) < 0.7 and 0.3 < sum(plain) / len(plain) < 0.7
    assert any(p and not lab for p, lab in zip(plain, labels, strict=True))
    one_per_clip = ClipAugment(32, 16, labelled_erasing=0.5, scope="clip")
    for seed in range(5):
        _, boxes = one_per_clip(clip, torch.Generator().manual_seed(seed))
        assert len(set(erased_frames(boxes[None])[0].tolist())) == 1


def test_both_boxes_of_a_frame_are_erased() -> None:
    clips = torch.full((1, 1, 3, 8, 4), 255, dtype=torch.uint8)
    boxes = torch.tensor([[[[0, 0, 2, 2], [5, 2, 2, 2]]]])
    out = normalize_clips(clips, boxes, fill=(0, 0, 0))
    assert (out[0, 0, :, 0:2, 0:2] == 0).all() and (out[0, 0, :, 5:7, 2:4] == 0).all()
    assert (out[0, 0, :, 3] != 0).all()
    assert erased_frames(boxes).tolist() == [[1.0]]
