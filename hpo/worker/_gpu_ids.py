"""The physical GPU behind a ``CUDA_VISIBLE_DEVICES`` entry, so that locks follow hardware.

Under SLURM or Kubernetes with device cgroups every job sees its GPU as ``0``; two workers
naming one GPU as ``1`` and ``GPU-<uuid>`` are the same card. The driver's own list
(``nvidia-smi --query-gpu=index,uuid,pci.bus_id,name``; it ignores ``CUDA_VISIBLE_DEVICES``
and shows the GPUs the process's cgroup allows) names each card by its UUID, which is the
same in every container and job step on the host.

An index entry is a position in CUDA's enumeration, which is the driver's PCI order when
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or when every GPU is the same model (CUDA's default
"fastest first" order breaks ties by PCI bus id). On a mixed-model node without that setting,
or where ``nvidia-smi`` cannot be run, an entry keeps its own text as its identity (the
lock then only tells apart GPUs named the same way) and a warning says so.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

__all__ = ["DriverGpu", "driver_gpus", "physical_ids"]

_QUERY = ["nvidia-smi", "--query-gpu=index,uuid,pci.bus_id,name", "--format=csv,noheader"]
_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DriverGpu:
    """One GPU as the driver lists it."""

    index: int
    uuid: str
    pci_bus_id: str
    name: str


def driver_gpus(run: Callable[[list[str]], str] | None = None) -> list[DriverGpu] | None:
    """The GPUs the driver shows this process, in PCI order; None when ``nvidia-smi`` fails.

    Args:
        run: Runs a command and returns its standard output (default: ``subprocess``;
            ``nvidia-smi`` is looked up on ``PATH``).
    """
    try:
        text = (run or _run)(_QUERY)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("nvidia-smi: %s", exc)
        return None
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",", 3)]
        if len(fields) == 4 and fields[0].isdigit() and fields[1].startswith("GPU-"):
            gpus.append(DriverGpu(int(fields[0]), fields[1], fields[2], fields[3]))
    return sorted(gpus, key=lambda g: g.index) or None


def physical_ids(
    entries: Sequence[str],
    environ: Mapping[str, str] | None = None,
    gpus: Sequence[DriverGpu] | None = None,
) -> list[str]:
    """The physical identity (a ``GPU-``/``MIG-`` UUID) of each visible-list entry.

    Args:
        entries: ``CUDA_VISIBLE_DEVICES`` entries (indices or UUIDs, possibly abbreviated).
        environ: The environment (``CUDA_DEVICE_ORDER``; default ``os.environ``).
        gpus: The driver's list (default :func:`driver_gpus`).

    Returns:
        One identity per entry: the full UUID where it is known, else the entry itself.

    Example:
        >>> gpu = DriverGpu(0, "GPU-8f2c-11", "00000000:3B:00.0", "NVIDIA H100")
        >>> physical_ids(["0", "GPU-8f2c"], gpus=[gpu])
        ['GPU-8f2c-11', 'GPU-8f2c-11']
    """
    env = os.environ if environ is None else environ
    listed = list((driver_gpus() or []) if gpus is None else gpus)
    in_cuda_order = (
        env.get("CUDA_DEVICE_ORDER", "").upper() == "PCI_BUS_ID"
        or len({g.name for g in listed}) <= 1
    )
    ids = []
    for entry in entries:
        identity = _identify(entry, listed, in_cuda_order)
        if identity is None:
            logger.warning(
                "GPU %s: its physical identity is unknown (%s); it is locked by this name "
                "only, so another worker naming the same GPU differently is not detected",
                entry,
                "nvidia-smi gave no list"
                if not listed
                else "mixed GPU models: set CUDA_DEVICE_ORDER=PCI_BUS_ID",
            )
        ids.append(identity or entry)
    return ids


def _identify(entry: str, listed: Sequence[DriverGpu], in_cuda_order: bool) -> str | None:
    if entry.startswith("MIG-"):
        return entry
    if entry.startswith("GPU-"):
        matches = [g.uuid for g in listed if g.uuid.lower().startswith(entry.lower())]
        return matches[0] if len(matches) == 1 else entry
    if entry.isdigit() and in_cuda_order and int(entry) < len(listed):
        return listed[int(entry)].uuid
    return None


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=True)
    return done.stdout
