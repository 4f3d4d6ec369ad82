"""The precision policy: which autocast dtype a run uses on its device, and whether it scales.

``amp`` (:class:`~reid_core.config.TrainConfig`) is resolved once per run against the device:

====== ============================== ========================== ===================
amp    CUDA GPU with bfloat16          CUDA GPU without bfloat16  CPU
====== ============================== ========================== ===================
auto   bf16 autocast, no scaler        fp16 autocast + scaler     float32
bf16   bf16 autocast, no scaler        ConfigError                bf16 CPU autocast
fp16   fp16 autocast + scaler          fp16 autocast + scaler     ConfigError
off    float32                         float32                    float32
====== ============================== ========================== ===================

Losses always run in float32 (the trainer casts the model outputs); validation and test
features are extracted under the same policy as training.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from reid_core.config import normalize_amp
from reid_core.errors import ConfigError

logger = logging.getLogger(__name__)

_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class Precision:
    """A resolved precision policy.

    Attributes:
        requested: The ``amp`` setting it was resolved from.
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: The autocast dtype, or None for plain float32.
    """

    requested: str
    device_type: str
    dtype: torch.dtype | None

    @property
    def name(self) -> str:
        """``"bf16"``, ``"fp16"`` or ``"fp32"``."""
        return "fp32" if self.dtype is None else _NAMES[self.dtype]

    @property
    def uses_scaler(self) -> bool:
        """float16 needs a gradient scaler (its range underflows small gradients)."""
        return self.dtype is torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context of a forward pass (a no-op context for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only when the policy needs one."""
        return torch.amp.GradScaler(self.device_type, enabled=self.uses_scaler)


def resolve_precision(amp: object, device: torch.device | str, *, strict: bool = True) -> Precision:
    """Resolve an ``amp`` setting (``auto|fp16|bf16|off``, or a legacy bool) for ``device``.

    Args:
        amp: The setting.
        device: The run's device.
        strict: Refuse a setting the device cannot run; when False (inference of a checkpoint
            trained elsewhere) fall back to float32 with a warning.

    Returns:
        The policy (see the module table).

    Raises:
        ConfigError: A setting the device cannot run (fp16 on a CPU, bf16 on a GPU without
            it), when ``strict``.

    Example:
        >>> resolve_precision("auto", "cpu").name, resolve_precision("bf16", "cpu").name
        ('fp32', 'bf16')
    """
    try:
        return _resolve(normalize_amp(amp), torch.device(device))
    except ConfigError as exc:
        if strict:
            raise
        logger.warning("%s; using float32", exc)
        return Precision(str(amp), torch.device(device).type, None)


def _resolve(mode: str, device: torch.device) -> Precision:
    device_type = device.type
    if mode == "off":
        return Precision(mode, device_type, None)
    if device_type == "cuda":
        bf16 = _cuda_has_bf16(device)
        if mode == "bf16" and not bf16:
            raise ConfigError("amp=bf16: this GPU has no bfloat16 support; use amp=fp16 or auto")
        if mode == "fp16" or (mode == "auto" and not bf16):
            return Precision(mode, device_type, torch.float16)
        return Precision(mode, device_type, torch.bfloat16)
    if mode == "auto":
        return Precision(mode, device_type, None)
    if mode == "fp16":
        raise ConfigError(f"amp=fp16 needs a CUDA device (the run is on {device_type})")
    return Precision(mode, device_type, torch.bfloat16)


def _cuda_has_bf16(device: torch.device) -> bool:
    """Native bfloat16 (compute capability 8.0+: A100, H100, L4, RTX 30xx and later)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, _minor = torch.cuda.get_device_capability(index)
    return major >= 8
