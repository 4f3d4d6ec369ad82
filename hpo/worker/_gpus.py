"""Which GPU each worker process gets, and a per-host lock so that no two supervisors share one.

A child's ``CUDA_VISIBLE_DEVICES`` is the entry of the *parent's* visible-device list, never
its slot number: under SLURM without device cgroups the parent sees e.g. ``5``, a user may
have set ``4,5,6,7``, Kubernetes and MIG give UUIDs (``GPU-...``, ``MIG-...``). ``--gpus 0,1``
names positions in that list, as ``cuda:0`` and ``cuda:1`` would in the parent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from hpo.errors import ReidHpoError
from hpo.worker._gpu_ids import physical_ids

logger = logging.getLogger(__name__)

__all__ = ["ENV_LOCK_DIR", "GpuBusyError", "claim_gpus", "parse_gpus", "visible_gpus"]

ENV_LOCK_DIR = "REID_HPO_LOCK_DIR"
"""Directory of the per-GPU lock files (default: ``<tmp>/reid-hpo-gpu-locks``)."""


class GpuBusyError(ReidHpoError):
    """Another reid-hpo supervisor on this host already uses one of the requested GPUs."""


def visible_gpus(
    environ: Mapping[str, str] | None = None, count: Callable[[], int] | None = None
) -> list[str]:
    """This process's visible GPUs, as ``CUDA_VISIBLE_DEVICES`` entries for its children.

    Args:
        environ: The environment (default ``os.environ``).
        count: How many CUDA devices this process sees (default: torch's count, which
            honours ``CUDA_VISIBLE_DEVICES`` and does not create a CUDA context).

    Returns:
        ``["0", "1", ...]`` when ``CUDA_VISIBLE_DEVICES`` is unset, else its entries (indices,
        ``GPU-<uuid>`` or ``MIG-<uuid>``) up to the number CUDA really sees (CUDA stops at the
        first entry it cannot use).

    Example:
        >>> visible_gpus({"CUDA_VISIBLE_DEVICES": "4,5"}, count=lambda: 2)
        ['4', '5']
    """
    env = os.environ if environ is None else environ
    seen = (count or _cuda_device_count)()
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(seen)]
    entries = [e.strip() for e in listed.split(",")]
    if "" in entries:
        entries = entries[: entries.index("")]
    return entries[:seen]


def parse_gpus(gpus: str, *, visible: Sequence[str] | None = None) -> list[str | None]:
    """The worker slots for a ``--gpus`` value: one ``CUDA_VISIBLE_DEVICES`` entry per child,
    None for a CPU child.

    Args:
        gpus: ``"all"`` (every visible GPU), ``"none"`` (one CPU child) or comma-separated
            positions in the visible list such as ``"0,1"``.
        visible: The visible GPUs (default :func:`visible_gpus`).

    Returns:
        One entry per child process.

    Raises:
        ReidHpoError: A malformed value, a position no visible GPU has, or ``all`` on a
            machine without a GPU (``--device cpu`` asks for a CPU worker instead).

    Example:
        >>> parse_gpus("1", visible=["GPU-aa", "GPU-bb"])
        ['GPU-bb']
    """
    value = gpus.strip().lower()
    if value == "none":
        return [None]
    parts = [p.strip() for p in value.split(",")]
    if value != "all" and (
        not all(p.isdigit() for p in parts) or len(set(map(int, parts))) != len(parts)
    ):
        raise ReidHpoError(
            f"--gpus {gpus!r}: expected 'all', 'none' or distinct GPU indices such as '0,1'"
        )
    devices = list(visible_gpus() if visible is None else visible)
    if value == "all":
        if devices:
            return list(devices)
        raise ReidHpoError(
            "--gpus all: no CUDA device is visible on this machine; add --device cpu "
            "(or use --gpus none) to run a CPU worker"
        )
    missing = [p for p in parts if int(p) >= len(devices)]
    if missing:
        raise ReidHpoError(
            f"--gpus {gpus!r}: GPU {', '.join(missing)} not visible ({len(devices)} CUDA "
            f"device(s){_listing(devices)})"
        )
    return [devices[int(p)] for p in parts]


@contextlib.contextmanager
def claim_gpus(gpus: Sequence[str | None], lock_dir: Path | None = None) -> Iterator[None]:
    """Hold an exclusive per-host lock on each GPU for the duration of the block.

    The locks are ``flock`` locks on ``<lock_dir>/gpu-<uuid>.lock``, one per physical GPU
    (:mod:`hpo.worker._gpu_ids` maps each entry to the driver's UUID), released by the kernel
    when the holder dies: two supervisors naming one GPU as ``1`` and ``GPU-...``, or SLURM
    job steps that each see a different GPU as ``0``, are told apart correctly. Containers
    see only their own lock directory unless ``$REID_HPO_LOCK_DIR`` is a shared host path.

    Args:
        gpus: The slots of :func:`parse_gpus` (None entries, CPU children, need no lock).
        lock_dir: Where the lock files live (default ``$REID_HPO_LOCK_DIR`` or
            ``<tmp>/reid-hpo-gpu-locks``).

    Raises:
        GpuBusyError: A GPU is already held (names it and the holder's pid).
    """
    directory = Path(lock_dir or os.environ.get(ENV_LOCK_DIR) or _default_lock_dir())
    if any(gpu is not None for gpu in gpus):
        _make_shared_dir(directory)
    entries = [gpu for gpu in gpus if gpu is not None]
    held: list[int] = []
    try:
        for gpu, identity in zip(entries, physical_ids(entries) if entries else [], strict=True):
            held.append(_lock(directory, gpu, identity))
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing the descriptor releases its flock


def _lock(directory: Path, gpu: str, identity: str) -> int:
    path = directory / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', identity)}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # created by another user: locking needs no write access
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        named = gpu if identity == gpu else f"{gpu} ({identity})"
        raise GpuBusyError(
            f"GPU {named} is already used by another reid-hpo worker on this host"
            f"{f' (pid {holder})' if holder else ''}; choose other GPUs with --gpus"
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def _make_shared_dir(directory: Path) -> None:
    """Create the lock directory usable by every user (sticky, world-writable, like /tmp)."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        directory.chmod(0o1777)


def _default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "reid-hpo-gpu-locks"


def _listing(devices: Sequence[str]) -> str:
    return f": {', '.join(devices)}" if devices else ""


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
