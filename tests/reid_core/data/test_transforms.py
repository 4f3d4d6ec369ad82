from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from reid_core.data import IMAGENET_MEAN
from reid_core.data import IMAGENET_STD
from reid_core.data import build_test_transform
from reid_core.data import build_train_transform
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
        assert boxes.shape == (4, 4) and boxes.dtype == torch.int64


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
        assert boxes.tolist() == [[0, 0, 0, 0]] * 2


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
    out = normalize_clips(clips, torch.tensor([[1, 1, 2, 2], [0, 0, 0, 0]]))
    assert (out[0, :, :, 1:3, 1:3] == 0).all()
    assert (out[0, :, :, 0] != 0).all() and (out[1] != 0).all()


def test_normalize_clips_erases_per_frame_boxes_only_in_their_frame() -> None:
    clips = torch.full((1, 2, 3, 8, 4), 255, dtype=torch.uint8)
    out = normalize_clips(clips, torch.tensor([[[1, 1, 2, 2], [0, 0, 0, 0]]]))
    assert (out[0, 0, :, 1:3, 1:3] == 0).all() and (out[0, 1] != 0).all()
