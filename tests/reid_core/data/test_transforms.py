from __future__ import annotations

import torch

from reid_core.data import build_test_transform
from reid_core.data import build_train_transform


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
