"""CPU bfloat16 training and memory the kernels never wrote (the bf16 test's NaN, issue 24).

A CPU kernel that reads memory it never wrote gives results that depend on what earlier code
freed there: right in a fresh process (the operating system hands out zeroed pages), wrong or
NaN late in a long one such as the test suite. These tests fill freed memory on purpose.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from reid_core.config import ModelConfig
from reid_core.engine import Trainer
from reid_core.engine._onednn import strided_one_column_convolutions
from reid_core.errors import ConfigError
from reid_core.models import build_model_from_config
from tests.reid_core.engine.conftest import TinyConfig

_FILLS = (0.0, 1e4, float("nan"))


def _fill_freed_memory(value: float) -> None:
    """Allocate blocks of every size from 64 B to 16 MB holding ``value``, then free them."""
    blocks = [torch.full((1 << k,), value) for k in range(4, 23) for _ in range(6)]
    del blocks


def _strided_conv_weight_grad(fill: float) -> torch.Tensor:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
    frames = torch.randn(2, 64, 4, 1)  # one column wide
    _fill_freed_memory(fill)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(frames)
    out.float().sum().backward()
    assert conv.weight.grad is not None
    return conv.weight.grad.float()


def test_the_refused_kernel_reads_freed_memory_on_the_pinned_torch() -> None:
    """Why the refusal exists. When a torch upgrade makes this fail, the kernel no longer reads
    freed memory: remove reid_core/engine/_onednn.py's refusal and this test."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
    frames = torch.randn(2, 64, 4, 1)
    conv(frames).sum().backward()  # float32: the kernel columns over the padding get 0
    assert conv.weight.grad is not None and conv.weight.grad[..., [0, 2]].abs().max() == 0
    for _attempt in range(3):  # whether the kernel's buffer lands in freed memory may vary
        three, minus_three, nan = (_strided_conv_weight_grad(f) for f in (3.0, -3.0, math.nan))
        if not torch.equal(three, minus_three) and not torch.isfinite(nan).all():
            break  # the result follows what was freed: 3.0, -3.0, NaN
    else:
        pytest.fail("the kernel no longer reads freed memory: drop the refusal")
    assert torch.equal(three[..., 1], minus_three[..., 1])  # the middle column is right


def _tiny_model_grads(fill: float, last_stride: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model_from_config(
        ModelConfig(arch="ta_bt", backbone="resnet10", last_stride=last_stride, pretrained=False),
        num_classes=4,
        input_size=(32, 16),
    )
    clips = torch.randn(8, 2, 3, 32, 16)
    _fill_freed_memory(fill)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(clips)
    sum(t.float().sum() for t in output if t is not None and t.requires_grad).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_the_engine_tests_model_trains_the_same_whatever_freed_memory_holds() -> None:
    """The model of the engine tests (resnet10 TA_BT, 32x16 frames, last stride 1) has no
    such convolution: its bf16 gradients are bit-identical after zeros, 1e4 or NaN were freed."""
    reference, *others = (_tiny_model_grads(fill, last_stride=1) for fill in _FILLS)
    for name, grad in reference.items():
        assert torch.isfinite(grad).all(), name
        for fill, other in zip(_FILLS[1:], others, strict=True):
            assert torch.equal(other[name], grad), (name, fill)


def test_strided_one_column_convolutions_are_found_by_name() -> None:
    def found(last_stride: int, size: tuple[int, int]) -> list[str]:
        cfg = ModelConfig(arch="ta_bt", backbone="resnet10", last_stride=last_stride)
        model = build_model_from_config(
            replace(cfg, pretrained=False), num_classes=4, input_size=size
        )
        return strided_one_column_convolutions(model, size, 2)

    assert found(1, (32, 16)) == []
    assert found(2, (32, 16)) == ["backbone.layer4.0.conv1"]
    assert found(2, (64, 64)) == []


def test_cpu_bf16_training_that_reaches_the_kernel_is_refused_in_one_line(
    tiny_cfg: TinyConfig,
) -> None:
    strided = ModelConfig(arch="ta_bt", backbone="resnet10", last_stride=2, pretrained=False)
    with pytest.raises(ConfigError) as refused:
        Trainer(tiny_cfg(amp="bf16", model=strided))
    message = str(refused.value)
    assert "\n" not in message
    assert "backbone.layer4.0.conv1" in message and "32x16 frames" in message
    assert "last_stride 1" in message and "amp off" in message
    Trainer(tiny_cfg(model=strided))  # float32 computes it right: accepted
