"""The suite's waits for progress stretch with the machine's load (tests/_helpers/waits.py),
and never past the per-test timeout of pyproject.toml."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from tests._helpers import waits
from tests._helpers.waits import CEILING_S
from tests._helpers.waits import scaled
from tests._helpers.waits import slow_factor
from tests._helpers.waits import wait_until

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_factor_is_the_load_per_core_and_never_below_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(waits.ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 1.0, 1.0))
    assert slow_factor() == 3.5
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 1.0, 1.0))
    assert slow_factor() == 1.0


def test_the_environment_overrides_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 1.0, 1.0))
    monkeypatch.setenv(waits.ENV, "2")
    assert slow_factor() == 2.0 and scaled(60) == 120.0
    monkeypatch.setenv(waits.ENV, "0.1")  # never shorter than the base
    assert scaled(60) == 60.0


def test_scaled_waits_stop_below_the_per_test_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    per_test = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]["timeout"]
    assert int(per_test) > CEILING_S
    monkeypatch.setenv(waits.ENV, "100")
    assert scaled(180) == CEILING_S
    assert scaled(600) == 600  # a base already above the ceiling is kept


def test_wait_until_fails_after_the_scaled_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(waits.ENV, "3")
    calls: list[int] = []
    assert wait_until(lambda: calls.append(1) or len(calls) > 2, 1, "x", step=0.01) >= 0
    with pytest.raises(AssertionError, match=r"timed out after 0 s waiting for nothing"):
        wait_until(lambda: False, 0.1, "nothing", step=0.01)
    with pytest.raises(AssertionError, match=r"timed out after 3 s waiting for nothing"):
        wait_until(lambda: False, 1, "nothing", step=0.05)
