"""GPU slots of the supervisor: the parent's visible list, per-host GPU locks, thread shares.

No GPU is needed: the device count is mocked and the children are captured at ``Popen``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.errors import ReidHpoError
from hpo.worker import GpuBusyError
from hpo.worker import claim_gpus
from hpo.worker import parse_gpus
from hpo.worker import run_supervisor
from hpo.worker import visible_gpus
from hpo.worker._gpu_ids import DriverGpu
from hpo.worker._gpu_ids import driver_gpus
from hpo.worker._gpu_ids import physical_ids
from hpo.worker._threads import available_cpus
from hpo.worker._threads import thread_env
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import REPO_ROOT

# ------------------------------------------------------------------------ visible devices


@pytest.mark.parametrize(
    ("listed", "count", "expected"),
    [
        (None, 3, ["0", "1", "2"]),  # nothing preset: every device
        ("5", 1, ["5"]),  # SLURM without device cgroups
        ("4,5,6,7", 4, ["4", "5", "6", "7"]),
        ("GPU-8f2c,GPU-91ab", 2, ["GPU-8f2c", "GPU-91ab"]),  # Kubernetes, UUIDs
        ("MIG-1b2d-0000-3333", 1, ["MIG-1b2d-0000-3333"]),  # a MIG instance
        ("2, 3", 2, ["2", "3"]),
        ("6,7,99", 2, ["6", "7"]),  # CUDA stops at the first device it cannot use
        ("", 0, []),  # set but empty: no GPU
    ],
)
def test_visible_gpus_follow_the_parents_list(
    listed: str | None, count: int, expected: list[str]
) -> None:
    env = {} if listed is None else {"CUDA_VISIBLE_DEVICES": listed}
    assert visible_gpus(env, count=lambda: count) == expected


def test_gpu_positions_map_onto_the_visible_entries() -> None:
    visible = ["4", "5", "6", "7"]
    assert parse_gpus("all", visible=visible) == visible
    assert parse_gpus("1,3", visible=visible) == ["5", "7"]  # not "1" and "3"
    assert parse_gpus("0", visible=["GPU-aa", "GPU-bb"]) == ["GPU-aa"]
    with pytest.raises(ReidHpoError, match=r"GPU 4 not visible \(4 CUDA device\(s\): 4, 5, 6, 7\)"):
        parse_gpus("4", visible=visible)


def test_gpus_all_without_a_gpu_is_an_error_not_a_silent_cpu_worker() -> None:
    with pytest.raises(ReidHpoError, match="no CUDA device is visible on this machine"):
        parse_gpus("all", visible=[])


# ------------------------------------------------------------------- children's settings


class _Exited:
    """Stands in for a child process that exits 0 at once."""

    pid = 4242

    def poll(self) -> int:
        return 0


@pytest.fixture()
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Captures the command and environment of each child the supervisor starts."""
    calls: list[dict[str, Any]] = []

    def popen(command: list[str], *, env: dict[str, str], **kwargs: Any) -> _Exited:
        calls.append({"command": command, "env": env})
        return _Exited()

    monkeypatch.setattr("hpo.worker._supervisor.subprocess.Popen", popen)
    monkeypatch.setattr("hpo.worker._gpu_ids._run", _no_smi)  # Popen above is everyone's
    monkeypatch.setattr("hpo.worker._supervisor._POLL_S", 0.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return calls


def test_children_get_the_parents_gpu_entries_and_a_thread_share(
    spawned: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.setenv("REID_HPO_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr("hpo.worker._gpus._cuda_device_count", lambda: 4)
    monkeypatch.setattr("hpo.worker._threads.available_cpus", lambda: 16)
    assert run_supervisor("s", "sqlite:///x.db", "1,2") == 0
    assert [c["env"]["CUDA_VISIBLE_DEVICES"] for c in spawned] == ["5", "6"]
    assert all(c["command"][-2:] == ["--device", "cuda"] for c in spawned)
    assert {c["env"]["OMP_NUM_THREADS"] for c in spawned} == {"8"}  # 16 CPUs / 2 workers


def test_device_cpu_runs_one_cpu_worker_where_no_gpu_is_visible(
    spawned: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hpo.worker._gpus._cuda_device_count", lambda: 0)
    assert run_supervisor("s", "sqlite:///x.db", "all", device="cpu") == 0
    assert [(c["env"]["CUDA_VISIBLE_DEVICES"], c["command"][-1]) for c in spawned] == [("", "cpu")]


def test_worker_gpus_all_on_a_machine_without_gpu_is_one_line_exit_2(sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["worker", "w", "--gpus", "all", "--storage", sqlite_url])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        "Error: --gpus all: no CUDA device is visible on this machine; add --device cpu "
        "(or use --gpus none) to run a CPU worker"
    ]


def test_worker_device_cpu_passes_through_to_the_supervisor(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str | None]] = []
    monkeypatch.setattr("hpo.study.check_study_can_run", lambda name, url: None)
    monkeypatch.setattr(
        "hpo.worker.run_supervisor",
        lambda name, url, gpus, **kwargs: calls.append((gpus, kwargs["device"])) or 0,
    )
    args = ["worker", "w", "--gpus", "all", "--device", "cpu", "--storage", sqlite_url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [("all", "cpu")]


class _Died:
    """Stands in for a child process that has exited with ``code``."""

    pid = 4243

    def __init__(self, code: int) -> None:
        self.code = code

    def poll(self) -> int:
        return self.code

    def send_signal(self, signum: int) -> None:
        pass


def _dying_children(
    monkeypatch: pytest.MonkeyPatch, codes: list[int], on_spawn: Any = None
) -> list[_Died]:
    """Children that exit with ``codes`` in turn; returns those started so far."""
    started: list[_Died] = []
    pending = iter(codes)

    def popen(command: list[str], **kwargs: Any) -> _Died:
        started.append(_Died(next(pending)))
        if on_spawn is not None:
            on_spawn(len(started))
        return started[-1]

    monkeypatch.setattr("hpo.worker._supervisor.subprocess.Popen", popen)
    monkeypatch.setattr("hpo.worker._supervisor._POLL_S", 0.01)
    monkeypatch.setattr("hpo.worker._supervisor._BACKOFF_S", 0.0)
    return started


def test_the_restart_count_resets_after_a_healthy_run(monkeypatch: pytest.MonkeyPatch) -> None:
    started = _dying_children(monkeypatch, [1, 1, 1, 0])
    monkeypatch.setattr("hpo.worker._supervisor.HEALTHY_S", 0.0)  # every run counts healthy
    assert run_supervisor("s", "sqlite:///x.db", "none", max_restarts=1) == 0
    assert len(started) == 4
    started = _dying_children(monkeypatch, [1, 1, 1, 0])
    monkeypatch.setattr("hpo.worker._supervisor.HEALTHY_S", 3600.0)  # quick deaths in a row
    assert run_supervisor("s", "sqlite:///x.db", "none", max_restarts=1) == 1
    assert len(started) == 2  # given up after one restart


def test_sigterm_during_the_restart_back_off_starts_no_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def signal_once_started(count: int) -> None:  # the supervisor's handler is in place
        if count == 1:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    started = _dying_children(monkeypatch, [1, 0], signal_once_started)
    monkeypatch.setattr("hpo.worker._supervisor._BACKOFF_S", 60.0)
    begin = time.monotonic()
    # Stopped by the signal: 128 + SIGTERM, so a scheduler requeues it (not 1, "gave up").
    assert run_supervisor("s", "sqlite:///x.db", "none", max_restarts=3) == 128 + signal.SIGTERM
    assert len(started) == 1 and time.monotonic() - begin < 30


# ------------------------------------------------------------------------------ GPU locks


def test_a_second_supervisor_on_the_same_gpu_is_refused(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hpo.worker import claim_gpus\n"
            f"with claim_gpus(['GPU-aa', '5'], lock_dir={str(locks)!r}):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = rf"GPU 5 is already used .* \(pid {holder.pid}\)"
        with pytest.raises(GpuBusyError, match=busy), claim_gpus(["4", "5"], lock_dir=locks):
            pass
        with claim_gpus(["4", "6", None], lock_dir=locks):  # other GPUs are free
            pass
    finally:
        holder.kill()
        holder.wait()
    wait_until(lambda: _claimable(locks), 10, "the lock released by the dead holder")


def _claimable(locks: Path) -> bool:
    try:
        with claim_gpus(["5"], lock_dir=locks):
            return True
    except GpuBusyError:
        return False


def test_supervisor_refuses_a_gpu_held_by_another(
    spawned: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa,GPU-bb")
    monkeypatch.setenv("REID_HPO_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr("hpo.worker._gpus._cuda_device_count", lambda: 2)
    busy = pytest.raises(GpuBusyError, match="GPU GPU-bb is already used")
    with claim_gpus(["GPU-bb"]), busy:
        run_supervisor("s", "sqlite:///x.db", "all")
    assert spawned == []  # nothing started


_CLAIM = """
import sys, time, types
from pathlib import Path
package = types.ModuleType("hpo.worker")  # the lock module alone: torch takes long to import
package.__path__ = [str(Path("hpo", "worker").resolve())]
sys.modules["hpo.worker"] = package
from hpo.worker._gpus import GpuBusyError, claim_gpus
locks, marker, entry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if sys.argv[4] == "hold":
    with claim_gpus([entry], lock_dir=locks):
        marker.write_text("held")
        sys.stdin.read()
else:
    while not marker.exists():
        time.sleep(0.05)
    try:
        with claim_gpus([entry], lock_dir=locks):
            print("ran")
    except GpuBusyError as exc:
        print(exc)
"""


def _claimer(tmp_path: Path, name: str, uuids: list[str], entry: str, role: str) -> Any:
    """A real process whose driver (a fake ``nvidia-smi`` on PATH) lists ``uuids``."""
    bin_dir = tmp_path / name
    bin_dir.mkdir()
    rows = "".join(
        f"{i}, {u}, 00000000:{0x18 + i:02X}:00.0, NVIDIA H100 80GB HBM3\\n"
        for i, u in enumerate(uuids)
    )
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nprintf '{rows}'\n")
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CUDA_DEVICE_ORDER", None)
    args = [str(tmp_path / "locks"), str(tmp_path / "held"), entry, role]
    return subprocess.Popen(
        [sys.executable, "-c", _CLAIM, *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_locks_follow_the_physical_gpu_not_its_visible_index(tmp_path: Path) -> None:
    """SLURM/k8s: each job sees its own GPU as "0"; a host-wide view names it "1"."""
    holder = _claimer(tmp_path, "job1", ["GPU-aa11"], "0", "hold")
    same = _claimer(tmp_path, "host", ["GPU-zz99", "GPU-aa11"], "1", "try")
    other = _claimer(tmp_path, "job2", ["GPU-cc33"], "0", "try")
    try:
        same_out, _ = same.communicate(timeout=scaled(120))
        other_out, _ = other.communicate(timeout=scaled(120))
    finally:
        holder.communicate(input="", timeout=scaled(120))
    assert holder.returncode == 0
    assert same_out.strip() == (
        f"GPU 1 (GPU-aa11) is already used by another reid-hpo worker on this host "
        f"(pid {holder.pid}); choose other GPUs with --gpus"
    )
    assert other_out.strip() == "ran"  # a different GPU, also called "0"
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [
        "gpu-GPU-aa11.lock",
        "gpu-GPU-cc33.lock",
    ]


def test_entries_map_onto_the_drivers_uuids() -> None:
    def gpu(index: int, uuid: str, name: str = "NVIDIA A100") -> DriverGpu:
        return DriverGpu(index, uuid, f"0000:{index:02X}:00.0", name)

    same = [gpu(0, "GPU-aa11"), gpu(1, "GPU-bb22")]
    assert physical_ids(["1", "GPU-aa", "MIG-x1"], {}, same) == ["GPU-bb22", "GPU-aa11", "MIG-x1"]
    mixed = [gpu(0, "GPU-aa11", "NVIDIA A100"), gpu(1, "GPU-bb22", "Tesla V100")]
    assert physical_ids(["1"], {}, mixed) == ["1"]  # CUDA's fastest-first order is unknown
    assert physical_ids(["1"], {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, mixed) == ["GPU-bb22"]
    assert physical_ids(["0"], {}, []) == ["0"]  # no nvidia-smi: the entry's own name
    listing = "0, GPU-aa11, 00000000:18:00.0, NVIDIA H100 80GB HBM3, rev 1\n"
    assert driver_gpus(lambda command: listing) == [
        DriverGpu(0, "GPU-aa11", "00000000:18:00.0", "NVIDIA H100 80GB HBM3, rev 1")
    ]
    assert driver_gpus(_no_smi) is None


def _no_smi(command: list[str]) -> str:
    raise FileNotFoundError(command[0])


# -------------------------------------------------------------------------------- threads


def test_cgroup_quota_caps_the_cpus(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("250000 100000\n")
    assert available_cpus(v2) == min(3, available_cpus(tmp_path / "none"))
    (v2 / "cpu.max").write_text("max 100000\n")
    assert available_cpus(v2) == available_cpus(tmp_path / "none")
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path / "v1") == 1


def test_the_quota_of_the_processs_own_cgroup_counts(tmp_path: Path) -> None:
    """systemd / SLURM / Kubernetes without a cgroup namespace: the limit is on the process's
    cgroup (or one above it), not on the root of the mount."""
    own = tmp_path / "self-cgroup"
    root = tmp_path / "fs"
    pod = root / "kubepods" / "pod1"
    (pod / "ctr").mkdir(parents=True)
    (pod / "ctr" / "cpu.max").write_text("200000 100000\n")
    own.write_text("0::/kubepods/pod1/ctr\n")
    unlimited = available_cpus(tmp_path / "none", own)
    assert available_cpus(root, own) == min(2, unlimited)
    (pod / "cpu.max").write_text("100000 100000\n")  # a tighter limit above it
    assert available_cpus(root, own) == 1
    job = root / "cpu,cpuacct" / "slurm" / "job7"
    job.mkdir(parents=True)
    (job / "cpu.cfs_quota_us").write_text("100000\n")
    (job / "cpu.cfs_period_us").write_text("100000\n")
    own.write_text("12:memory:/slurm/job7\n5:cpu,cpuacct:/slurm/job7\n")  # v1
    assert available_cpus(root, own) == 1


def test_thread_share_and_the_users_own_setting() -> None:
    assert thread_env(8, {}, cpus=64)["OMP_NUM_THREADS"] == "8"
    assert thread_env(8, {}, cpus=4)["OMP_NUM_THREADS"] == "1"
    assert thread_env(2, {"OMP_NUM_THREADS": "3"}, cpus=64) == {}


def test_a_child_process_runs_with_its_thread_share() -> None:
    env = {**thread_env(4, {}, cpus=8), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "2"
