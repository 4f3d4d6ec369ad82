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


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 or v1 CPU quota.

    Args:
        cgroup_root: Where the cgroup filesystem is mounted (tests pass a fake tree).

    Returns:
        At least 1.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus or 1, quota)
    return max(1, cpus or 1)


def _cgroup_quota(root: Path) -> int | None:
    """``ceil(quota / period)`` from ``cpu.max`` (v2) or ``cpu.cfs_*_us`` (v1); None if none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        try:
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 else None
    return None


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
