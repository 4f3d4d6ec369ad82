"""release_memory: a run's clean-up never raises over the run's own error, never starts CUDA."""

from __future__ import annotations

import logging

import pytest
import torch

from reid_core.engine import release_memory


def test_a_sticky_cuda_error_on_release_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def sticky() -> None:  # what CUDA answers every call after such an error
        raise torch.AcceleratorError("CUDA error: unspecified launch failure")

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", sticky)
    with caplog.at_level(logging.WARNING, logger="reid_core.engine._memory"):
        release_memory()
    assert "cannot release the GPU memory cache: CUDA error" in caplog.text


def test_a_process_without_cuda_is_not_made_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    release_memory()
    assert calls == []
