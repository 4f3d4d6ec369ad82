"""`reid-hpo doctor` on a CPU: its CPU subset, line format, exit codes, FAIL paths, and the
GPU-facing checks with a fake ``nvidia-smi`` (the driver's view) where no GPU exists."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner
from typer.testing import Result

import hpo.weights
from hpo.cli import app
from hpo.doctor import QUICK
from hpo.doctor import Check
from hpo.doctor import Status
from hpo.doctor import exit_code
from hpo.doctor import run_doctor
from hpo.doctor._device import _check_steps
from hpo.doctor._device import _config
from hpo.doctor._device import _Stepper
from hpo.doctor._device import gpu_utilization
from hpo.doctor._host import check_artifacts
from hpo.doctor._host import check_driver
from hpo.doctor._host import check_slots
from hpo.doctor._host import check_storage
from hpo.doctor._host import check_weights
from hpo.worker._gpu_ids import driver_gpus
from tests._helpers.specs import write_spec

LINE = re.compile(r"^(PASS|FAIL|SKIP) [a-z_]+(\[[a-z0-9:]+\])?: \S.*$")
CPU_CHECKS = [
    "versions",
    "driver",
    "slots",
    "compiler",
    "weights",
    "storage",
    "artifacts",
    "precision[cpu]",
    "train_steps[cpu]",
    "throughput[cpu]",
    "gpu_busy[cpu]",
    "oom[cpu]",
    "ranking[cpu]",
]


def _doctor(*args: str) -> Result:
    return CliRunner().invoke(app, ["doctor", "--quick", *args])


def _lines(result: Result) -> dict[str, str]:
    lines = result.output.splitlines()
    assert all(LINE.match(line) for line in lines), result.output
    return {line.split(" ", 2)[1].rstrip(":"): line for line in lines}


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache; no storage in the environment; cwd a scratch folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("REID_HPO_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture()
def no_gpu_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without nvidia-smi (an `nvidia-smi` that fails), as on a CPU node."""
    _fake_smi(tmp_path, monkeypatch, "exit 9")


def _fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{body}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # A host whose GPUs are not hidden: the driver check SKIPs where CUDA_VISIBLE_DEVICES is
    # empty, as in a shell or CI job that hides them.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _driver_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str]) -> None:
    """A fake nvidia-smi answering the GPU list, the driver version and the utilization."""
    listing = "".join(f"{r}\\n" for r in rows)
    _fake_smi(
        tmp_path,
        monkeypatch,
        'case "$*" in\n'
        "  *driver_version*) echo 535.104.05 ;;\n"
        "  *utilization*) echo 97 ;;\n"
        f"  *) printf '{listing}' ;;\n"
        "esac",
    )


def test_cpu_subset_one_line_per_check_and_exit_1_on_a_fail(hub: Path, no_gpu_driver: None) -> None:
    result = _doctor()
    lines = _lines(result)
    assert list(lines) == CPU_CHECKS
    assert result.exit_code == 1  # the weights are missing: a FAIL
    assert lines["weights"].startswith("FAIL weights: ")
    assert "reid-hpo weights fetch" in lines["weights"]
    assert lines["driver"] == "SKIP driver: no NVIDIA GPU (nvidia-smi lists none): CPU node"
    for name in ("throughput[cpu]", "gpu_busy[cpu]", "oom[cpu]"):
        assert lines[name].startswith(f"SKIP {name}: needs a CUDA device")
    assert lines["precision[cpu]"] == "PASS precision[cpu]: amp auto -> fp32 (CPU)"
    assert lines["train_steps[cpu]"].startswith("PASS train_steps[cpu]: 2 steps of resnet10")
    assert "198 queries x 933 gallery" in lines["ranking[cpu]"]


def test_all_checks_pass_with_a_spec_its_study_and_its_marker(
    hub: Path, no_gpu_driver: None, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", artifacts={"root": str(tmp_path / "runs")})
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    created = CliRunner().invoke(app, ["study", "create", str(spec), "--storage", url])
    assert created.exit_code == 0, created.output
    result = _doctor("--spec", str(spec), "--storage", url)
    lines = _lines(result)
    assert result.exit_code == 0, result.output
    assert lines["weights"] == "SKIP weights: the spec has pretrained: false"
    assert (
        lines["storage"].startswith("PASS storage: sqlite:///") and "(1 studies)" in result.output
    )
    assert lines["artifacts"].endswith("writable; marker of study 'tiny' visible")


def test_a_bad_gpu_list_is_a_user_error_exit_2(hub: Path, no_gpu_driver: None) -> None:
    result = _doctor("--gpus", "3")
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: --gpus '3': GPU 3 not visible")


def test_missing_and_corrupt_weights_fail(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_weights("resnet50").status is Status.FAIL
    content = b"weights"
    name = f"resnet50-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    monkeypatch.setattr(hpo.weights, "weights_file_name", lambda _b: ("url", name))
    hub.mkdir(parents=True)
    (hub / name).write_bytes(content)
    assert check_weights("resnet50").status is Status.PASS
    (hub / name).write_bytes(b"truncated")
    check = check_weights("resnet50")
    assert check.status is Status.FAIL and "does not start with" in check.detail


def test_storage_and_artifacts_failures_are_lines(tmp_path: Path) -> None:
    storage = check_storage(f"sqlite:///{tmp_path / 'missing.db'}")
    assert storage.status is Status.FAIL  # the doctor creates no database
    assert check_storage(None).status is Status.SKIP
    blocker = tmp_path / "file"
    blocker.write_text("")
    artifacts = check_artifacts(blocker / "runs", None, None)
    assert artifacts.status is Status.FAIL and "is not writable" in artifacts.detail
    assert check_artifacts(tmp_path / "new" / "runs", None, None).status is Status.PASS


def test_driver_listing_gpus_torch_cannot_use_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old-driver case: nvidia-smi sees GPUs, the cu130 torch build sees no device."""
    _driver_listing(tmp_path, monkeypatch, ["0, GPU-aa11, 00000000:18:00.0, Tesla V100-SXM2"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    check = check_driver(driver_gpus(), cuda_count=0)
    assert check.status is Status.FAIL
    assert check.detail.startswith("the driver (535.104.05) lists 1 GPU(s) but torch")
    assert "needs driver 580 or newer" in check.detail
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert check_driver(driver_gpus(), cuda_count=0).status is Status.SKIP  # hidden on purpose


def test_slots_map_visible_entries_to_the_drivers_uuids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _driver_listing(
        tmp_path,
        monkeypatch,
        [
            "0, GPU-aa11, 00000000:18:00.0, NVIDIA H100",
            "1, GPU-bb22, 00000000:2A:00.0, NVIDIA H100",
        ],
    )
    listed = driver_gpus()
    check = check_slots(["1", "GPU-aa"], listed)
    assert check == Check(
        Status.PASS,
        "slots",
        "slot 0 = 1 -> GPU-bb22 (00000000:2A:00.0, NVIDIA H100); "
        "slot 1 = GPU-aa -> GPU-aa11 (00000000:18:00.0, NVIDIA H100)",
    )
    twice = check_slots(["0", "GPU-aa11"], listed)
    assert twice.status is Status.FAIL and twice.detail.startswith("GPU-aa11 is named by more")
    unknown = check_slots(["0"], None)  # no nvidia-smi: the lock would go by name only
    assert unknown.status is Status.FAIL and unknown.detail.startswith("GPU 0 has no known UUID")
    assert check_slots([], listed).status is Status.SKIP


def test_visible_gpus_without_a_uuid_skip_the_device_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: Path
) -> None:
    _driver_listing(
        tmp_path,
        monkeypatch,
        ["0, GPU-aa11, 00000000:18:00.0, NVIDIA A100", "1, GPU-bb22, 00000000:2A:00.0, Tesla V100"],
    )
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setattr("hpo.worker._gpus.visible_gpus", lambda: ["0", "1"])
    checks = {c.name: c for c in run_doctor(gpus="all", size=QUICK)}
    assert checks["slots"].status is Status.FAIL  # mixed models, CUDA's order unknown
    assert checks["devices"] == Check(
        Status.SKIP, "devices", "the GPU slots are not mapped (see slots)"
    )
    assert exit_code(checks.values()) == 1


def test_a_host_synchronisation_in_the_step_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What ``torch.cuda.set_sync_debug_mode("error")`` raises on a GPU, here injected."""
    calls = []
    original = _Stepper.step

    def step(self: _Stepper) -> torch.Tensor:
        calls.append(1)
        if len(calls) > 1:  # after the warm-up step, as the debug mode is then on
            raise RuntimeError("called a synchronizing CUDA operation")
        return original(self)

    monkeypatch.setattr(_Stepper, "step", step)
    device = torch.device("cpu")
    check = _check_steps(_config(None, QUICK, device, "auto"), device, QUICK, "[cpu]")
    assert check.status is Status.FAIL
    assert (
        check.detail == "the step synchronises with the host: called a synchronizing CUDA operation"
    )


def test_gpu_utilization_reads_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _driver_listing(tmp_path, monkeypatch, [])
    assert gpu_utilization("GPU-aa11") == 97.0
    _fake_smi(tmp_path, monkeypatch, "exit 9")
    assert gpu_utilization("GPU-aa11") is None


def test_no_c_compiler_fails_the_doctor_and_the_preflight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hpo.doctor._host import check_compiler
    from hpo.study import check_spec_can_run
    from reid_core.data import write_synthetic
    from reid_core.errors import ConfigError
    from tests._helpers.specs import tiny_spec

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr("reid_core.engine._compiler.shutil.which", lambda _name: None)
    check = check_compiler()
    assert check.status is Status.FAIL and "compile: true is refused" in check.detail
    spec = tiny_spec(training={**tiny_spec().training.model_dump(), "compile": True})
    with pytest.raises(ConfigError, match="compile: true needs a C compiler"):
        check_spec_can_run(
            spec, root=str(write_synthetic(tmp_path / "mars", "mars", ids=16)), sample_frames=0
        )
