"""gpus_hidden: a CPU command hides the GPUs while it runs and leaves the environment as it was."""

from __future__ import annotations

import os

import pytest

from reid_core.engine import gpus_hidden


@pytest.mark.parametrize("listed", [None, "0,1"], ids=["unset", "set"])
def test_a_cpu_run_hides_the_gpus_and_restores_the_environment(
    listed: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if listed is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    before = dict(os.environ)
    with gpus_hidden("cpu"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert dict(os.environ) == before


def test_the_environment_is_restored_when_the_run_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(RuntimeError, match="trial failed"), gpus_hidden("cpu"):
        raise RuntimeError("trial failed")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:1"])
def test_another_device_sees_the_gpus(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with gpus_hidden(device):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
