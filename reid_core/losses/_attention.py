"""The attention loss of the paper's Attn-CL model: no attention for erased frames."""

from __future__ import annotations

from torch import Tensor


def attention_loss(scores: Tensor, erased: Tensor) -> Tensor:
    """``mean_b sum_t scores[b, t] * erased[b, t]``, as the reference's ``train_attn``.

    Args:
        scores: ``[B, T]`` raw temporal-attention scores (after the ReLU, before the
            softmax; :attr:`reid_core.models.ReidOutput.attention_scores`).
        erased: ``[B, T]`` 0/1 labels of the frames the labelled erasing hit
            (:func:`reid_core.data.erased_frames`).

    Returns:
        A scalar; 0 when no frame was erased, and never negative (the scores are >= 0).

    Raises:
        ValueError: The shapes differ.

    Example:
        >>> import torch
        >>> attention_loss(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0, 1], [1, 1]]))
        tensor(4.5000)
    """
    if scores.shape != erased.shape:
        raise ValueError(
            f"attention scores {tuple(scores.shape)} and erased labels {tuple(erased.shape)} differ"
        )
    return (scores * erased.to(scores.dtype)).sum(dim=1).mean()
