"""A CPU bfloat16 kernel of oneDNN that computes wrong gradients, refused before a run trains.

torch 2.14.1 (oneDNN v3.12.0) computes the weight gradient of a bfloat16 convolution with a
horizontal stride above 1 over an input one column wide (``jit_bf16:avx512_core_bf16``
``backward_weights``) from memory it never wrote: the kernel columns over the zero padding
get ``garbage x grad``, and NaN wherever freed memory held NaN (as the memory PyTorch fills
under deterministic algorithms does). Forward and input gradients are right; CUDA is not
affected. ``tests/reid_core/engine/test_onednn.py`` shows the kernel reading freed memory on
the pinned torch, so that the refusal is dropped when a torch upgrade fixes it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from reid_core.engine._precision import Precision
from reid_core.errors import ConfigError

__all__ = ["check_cpu_bf16_training", "strided_one_column_convolutions"]


def strided_one_column_convolutions(
    model: nn.Module, input_size: tuple[int, int], seq_len: int
) -> list[str]:
    """Names of the 2-D convolutions of ``model`` (kernel and stride wider than 1) whose input
    is one column wide for frames of ``input_size`` (``(height, width)``): one forward pass of
    a zero clip on the CPU, without gradients."""
    found: list[str] = []

    def recorder(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def record(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if args[0].shape[-1] == 1:
                found.append(name)

        return record

    hooks = [
        module.register_forward_pre_hook(recorder(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and module.stride[1] > 1 and module.kernel_size[1] > 1
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, seq_len, 3, *input_size))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return found


def check_cpu_bf16_training(
    model: nn.Module, precision: Precision, input_size: tuple[int, int], seq_len: int
) -> None:
    """Refuse CPU bfloat16 training of a model that reaches the kernel above.

    Raises:
        ConfigError: Naming the convolutions, the frame size and the ways out.
    """
    if precision.device_type != "cpu" or precision.dtype is not torch.bfloat16:
        return
    names = strided_one_column_convolutions(model, input_size, seq_len)
    if names:
        height, width = input_size
        raise ConfigError(
            f"amp=bf16 on the CPU: {', '.join(names)} get(s) an input 1 column wide with "
            f"stride 2 at {height}x{width} frames, where torch {torch.__version__}'s bfloat16 "
            "weight gradient reads memory it never wrote; use wider frames, "
            "model.last_stride 1 or amp off"
        )
