"""Each process selects its device first; a CPU run on a GPU host never initialises CUDA.

No GPU here. The fixture makes torch report a GPU unless ``CUDA_VISIBLE_DEVICES`` hides it
(as CUDA does before it starts); a CPU command that touched CUDA anyway would initialise it,
which on this machine raises (no driver) and on a GPU host leaves
``torch.cuda.is_initialized()`` True with a context on GPU 0.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from hpo.cli import app
from reid_core import data as reid_data
from reid_core.engine import select_device
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import write_spec


@pytest.fixture()
def gpu_host(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """torch sees a GPU unless hidden; returns the ``pin_memory`` of every loader built."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(
        torch.cuda, "is_available", lambda: os.environ["CUDA_VISIBLE_DEVICES"] != ""
    )
    pinned: list[bool] = []
    for name in ("build_train_loader", "build_test_loader"):
        build = getattr(reid_data, name)

        def recording(*args: Any, _build: Any = build, **kwargs: Any) -> Any:
            loader = _build(*args, **kwargs)
            pinned.append(loader.pin_memory)
            return loader

        monkeypatch.setattr(reid_data, name, recording)
    return pinned


def test_cpu_commands_never_initialise_cuda(
    gpu_host: list[bool], tmp_path: Path, sqlite_url: str
) -> None:
    root = make_dataset(tmp_path / "mars")
    runner = CliRunner()
    tiny = ["--backbone", "resnet10", "--no-pretrained", "--attention", "pooled"]
    tiny += ["--height", "32", "--width", "16", "--seq-len", "2", "--batch-size", "4"]
    tiny += ["--num-instances", "2", "--epochs", "1", "--num-workers", "0"]
    run = tmp_path / "run"
    args = ["train", "--dataset", "mars", "--root", str(root), *tiny, "--output", str(run)]
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    # Hidden while the command ran (the fixture's torch saw no GPU), as before afterwards.
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    result = runner.invoke(app, ["evaluate", str(run / "last.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    spec = spec_dict(name="cpu", data_root=root, artifacts=tmp_path / "runs", epochs=1)
    assert (
        runner.invoke(
            app,
            [
                "study",
                "create",
                str(write_spec(tmp_path / "s.yaml", spec)),
                "--storage",
                sqlite_url,
            ],
        ).exit_code
        == 0
    )
    worker = ["worker", "cpu", "--child", "--device", "cpu", "--max-trials", "1"]
    result = runner.invoke(app, [*worker, "--storage", sqlite_url])
    assert result.exit_code == 0 and "1 complete" in result.output, result.output
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert not torch.cuda.is_initialized()
    assert gpu_host and not any(gpu_host)  # train, validation and test loaders: none pinned


def test_a_cuda_device_is_made_current_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert select_device("cuda") == torch.device("cuda", 0)
    assert select_device("cpu") == torch.device("cpu")
    assert current == [torch.device("cuda", 1), torch.device("cuda", 0)]
