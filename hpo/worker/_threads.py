"""CPU threads per worker process: the host's share, not one thread per core each.

torch sizes its intra-op pool from ``OMP_NUM_THREADS``, else from the core count; eight
workers on one host would each start a thread per core and fight over them. The supervisor
splits the CPUs this process may use (its affinity mask, capped by a cgroup CPU quota as
Docker ``--cpus``, Kubernetes limits and SLURM set) evenly between its children.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["THREAD_VARIABLES", "available_cpus", "thread_env"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Set in each child's environment (unless the user already set ``OMP_NUM_THREADS``)."""


def available_cpus(
    cgroup_root: Path = Path("/sys/fs/cgroup"), own_cgroup: Path = Path("/proc/self/cgroup")
) -> int:
    """CPUs this process may use: its affinity mask, capped by the CPU quota of its own cgroup
    or of any cgroup above it (v2, else v1).

    Under systemd, SLURM or Kubernetes without a cgroup namespace the quota sits on the
    process's cgroup (``/proc/self/cgroup``), not on the root of the mount.

    Args:
        cgroup_root: Where the cgroup filesystem is mounted (tests pass a fake tree).
        own_cgroup: This process's cgroup membership file (tests pass a fake one).

    Returns:
        At least 1.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    v2_path, v1_path = _own_paths(own_cgroup)
    quotas = [q for f in _folders(cgroup_root, v2_path) if (q := _v2_quota(f)) is not None]
    if not quotas:
        for name in ("cpu", "cpu,cpuacct"):
            folders = _folders(cgroup_root / name, v1_path)
            quotas += [q for f in folders if (q := _v1_quota(f)) is not None]
    quota = min(quotas) if quotas else None
    if quota is not None:
        cpus = min(cpus or 1, quota)
    return max(1, cpus or 1)


def _own_paths(own_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup v2 path and v1 ``cpu`` path (``/`` where unknown)."""
    v2 = v1 = "/"
    try:
        lines = own_cgroup.read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            v2 = parts[2]
        elif "cpu" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def _folders(base: Path, path: str) -> list[Path]:
    """``base/path`` and each folder above it, up to ``base``."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> int | None:
    """``ceil(quota / period)`` from ``cpu.max``; None without a limit."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> int | None:
    """``ceil(cfs_quota_us / cfs_period_us)``; None without a limit."""
    try:
        quota_us = int((folder / "cpu.cfs_quota_us").read_text())
        period_us = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 else None


def thread_env(
    children: int, environ: Mapping[str, str], cpus: int | None = None
) -> dict[str, str]:
    """The thread settings of one of ``children`` worker processes.

    Args:
        children: How many worker processes share the host.
        environ: The supervisor's environment; an ``OMP_NUM_THREADS`` there is the user's
            choice and is kept.
        cpus: CPUs to share (default :func:`available_cpus`).

    Returns:
        Variables to add to the child's environment (empty when the user set them).

    Example:
        >>> thread_env(4, {}, cpus=16)
        {'OMP_NUM_THREADS': '4', 'MKL_NUM_THREADS': '4'}
    """
    if "OMP_NUM_THREADS" in environ:
        return {}
    share = max(1, (cpus if cpus is not None else available_cpus()) // max(1, children))
    return {name: str(share) for name in THREAD_VARIABLES}
