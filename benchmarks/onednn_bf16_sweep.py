"""Which CPU bfloat16 convolutions compute gradients from memory they never wrote.

Each convolution's gradients are computed in float32 and, after blocks holding 1e4 were
allocated and freed, under CPU bf16 autocast; a relative error above 0.1 in the weight or input
gradient counts as wrong. Prints the wrong ones and the count (BENCHMARKS.md, "What changes
numerically"). Run: ``python benchmarks/onednn_bf16_sweep.py`` (about a minute on one core).
"""

from __future__ import annotations

import itertools

import torch


def _gradients(shape: tuple[int, ...], fill: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    in_ch, out_ch, kernel, stride, height, width = shape
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False)
    frames = torch.randn(2, in_ch, height, width, requires_grad=True)
    if fill is not None:
        blocks = [torch.full((1 << k,), fill) for k in range(4, 23) for _ in range(4)]
        del blocks
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fill is not None):
        out = conv(frames)
    out.float().sum().backward()
    assert conv.weight.grad is not None and frames.grad is not None
    return conv.weight.grad.float(), frames.grad.float()


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / (want.abs().max() + 1e-6))


def main() -> None:
    """Sweep the shapes and print the wrong ones."""
    torch.set_num_threads(1)
    sizes = [1, 2, 3, 4, 8]
    shapes = [
        (i, o, k, 2, h, w)
        for i, o, k, h, w in itertools.product(
            [3, 64, 128], [64, 128], [1, 3, 7], sizes, [*sizes, 16]
        )
    ]
    wrong = []
    for shape in shapes:
        weight, inputs = _gradients(shape, None)
        weight_bf16, inputs_bf16 = _gradients(shape, 1e4)
        errors = (_relative_error(weight_bf16, weight), _relative_error(inputs_bf16, inputs))
        if max(errors) > 0.1:
            wrong.append(shape)
            in_ch, out_ch, kernel, stride, height, width = shape
            print(
                f"wrong: {in_ch} -> {out_ch} channels, kernel {kernel}, stride {stride}, "
                f"input {height}x{width}: relative error weight {errors[0]:.3g}, "
                f"input {errors[1]:.3g}"
            )
    print(f"{len(wrong)} of {len(shapes)} convolutions wrong")


if __name__ == "__main__":
    main()
