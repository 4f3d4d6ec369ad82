"""``reid-hpo bench storage`` (quick): several worker processes, no duplicate or lost trial."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpo.bench._storage import ENV_PG_ADMIN_URL
from hpo.bench._storage import StorageBenchConfig
from hpo.cli import app
from tests._helpers.postgres import PG_HOST
from tests._helpers.postgres import PG_PORT
from tests._helpers.postgres import PG_USER
from tests._helpers.postgres import require_postgres

SPACE = {
    "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
    "n": optuna.distributions.IntDistribution(1, 8),
    "c": optuna.distributions.CategoricalDistribution(["a", "b"]),
}


@pytest.mark.postgres
@pytest.mark.slow
def test_bench_storage_quick_writes_json_without_duplicates_or_losses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postgres()
    monkeypatch.setenv(ENV_PG_ADMIN_URL, f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres")
    result = CliRunner().invoke(app, ["bench", "storage", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "storage.json").read_text())
    scenarios = data["details"]["scenarios"]
    expected = StorageBenchConfig.quick().scenarios()
    assert [(s["backend"], s["storage"]) for s in scenarios] == [
        (e.backend, e.storage) for e in expected
    ]
    for s in scenarios:
        integrity = s["integrity"]
        assert integrity["ok"], integrity
        assert integrity["duplicate_numbers"] == 0 and integrity["lost_trials"] == 0
        assert integrity["stored"] == integrity["complete"] == sum(integrity["per_worker"])
        assert integrity["stored"] == s["trials"]
        assert {"p50", "p95"} <= set(s["ask_ms"]) and s["trials_per_s"] > 0
        assert [b["first"] for b in s["bands"]] == list(range(0, s["trials"], 50))
    assert {t["description"] for t in data["targets"] if t["met"]} >= {
        "duplicated + lost + wrong trials (all runs)"
    }
