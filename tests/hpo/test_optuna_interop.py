"""Optuna's own CLI reads the studies reid-hpo writes (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hpo.storage import close_storage
from hpo.storage import open_storage
from tests._helpers.fake_study import make_study
from tests._helpers.waits import scaled

STUDY = "interop-study"
OPTUNA = str(Path(sys.executable).parent / "optuna")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def written_url(request: pytest.FixtureRequest) -> str:
    """URL of a storage holding the fake study, written through ``hpo.storage.open_storage``."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    storage = open_storage(url)
    make_study(storage, name=STUDY)
    close_storage(storage)
    return url


def _optuna_json(*args: str) -> Any:
    result = subprocess.run(
        [OPTUNA, *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_optuna_studies_lists_our_study(written_url: str) -> None:
    studies = _optuna_json("studies", "--storage", written_url)
    assert [(s["name"], s["n_trials"]) for s in studies] == [(STUDY, 6)]
    assert json.loads(studies[0]["user_attrs"]["spec"])["objective"]["metric"] == "map"


def test_optuna_trials_shows_states_and_user_attrs(written_url: str) -> None:
    trials = _optuna_json("trials", "--study-name", STUDY, "--storage", written_url)
    states = [t["state"] for t in trials]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE", "FAIL", "PRUNED", "COMPLETE"]
    assert trials[3]["user_attrs"]["fail_reason"] == "nonfinite_loss"
    assert {t["user_attrs"]["worker"] for t in trials} == {"gpu-node-a:101", "gpu-node-b:202"}


def test_optuna_best_trial_is_ours(written_url: str) -> None:
    best = _optuna_json("best-trial", "--study-name", STUDY, "--storage", written_url)
    assert best["number"] == 2
    assert best["value"] == pytest.approx(0.6)
    assert len(best["user_attrs"]["cmc"]) == 20
    assert set(best["params"]) == {"sigma", "margin"}
