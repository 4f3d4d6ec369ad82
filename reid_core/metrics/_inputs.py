"""Input checks and conversions shared by the metrics (numpy arrays or torch tensors)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reid_core.errors import EvaluationError


def as_tensor(value: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a tensor (zero-copy for CPU numpy arrays), optionally moved to ``device``.

    Raises:
        EvaluationError: ``value`` is neither a tensor nor convertible to a numpy array.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{name} must be a numpy array or a tensor: {exc}") from None
        if array.dtype == object:
            raise EvaluationError(f"{name} must be numeric, got an object array")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device is not None and tensor.device != device:
        tensor = tensor.to(device)
    return tensor


def as_float(tensor: torch.Tensor) -> torch.Tensor:
    """Float32/float64 tensors unchanged; other float types to float32, integers to float64."""
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    if tensor.is_floating_point():
        return tensor.float()
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise EvaluationError(f"expected a real-valued matrix, got dtype {tensor.dtype}")
    return tensor.double()


def as_labels(value: Any, name: str, length: int, device: torch.device) -> torch.Tensor:
    """A 1-D int64 label vector of ``length`` entries on ``device``.

    Raises:
        EvaluationError: wrong shape or non-integer labels.
    """
    tensor = as_tensor(value, name, device).reshape(-1)
    if tensor.numel() != length:
        raise EvaluationError(f"{name} has {tensor.numel()} entries, expected {length}")
    if tensor.is_floating_point():
        if not bool(torch.equal(tensor, tensor.round())):
            raise EvaluationError(f"{name} must hold integer ids, got non-integer values")
    elif tensor.dtype == torch.bool or tensor.is_complex():
        raise EvaluationError(f"{name} must hold integer ids, got dtype {tensor.dtype}")
    return tensor.long()
