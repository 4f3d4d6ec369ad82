"""``reid-hpo bench``: registry, table, JSON output, errors (in-process CliRunner)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.bench import BENCHMARKS
from hpo.bench import BenchOptions
from hpo.bench import BenchResult
from hpo.bench import Target
from hpo.bench import _registry
from hpo.bench import load_benchmarks
from hpo.cli import app


@pytest.fixture()
def fake_benchmark() -> Iterator[str]:
    """A registered benchmark that measures nothing (removed again afterwards)."""
    name = "fake-for-test"

    @BENCHMARKS.register(name)
    def _fake(options: BenchOptions) -> BenchResult:
        """A fake benchmark."""
        return BenchResult(
            name=name,
            title="fake",
            columns=["case", "seconds"],
            rows=[{"case": "a", "seconds": 0.5 if options.quick else 5.0}],
            targets=[Target("fast enough", 2.0, 1.0)],
        )

    yield name
    BENCHMARKS._items.pop(name)


def test_metrics_benchmarks_are_registered() -> None:
    assert {"ranking", "rerank", "scaling"} <= set(load_benchmarks().names())


def test_list_shows_the_benchmarks() -> None:
    result = CliRunner().invoke(app, ["bench", "--list"])
    assert result.exit_code == 0, result.output
    assert "ranking" in result.output
    assert "rerank" in result.output


def test_runs_a_registered_benchmark_and_writes_json(fake_benchmark: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", fake_benchmark, "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / f"{fake_benchmark}.json").read_text())
    assert data["rows"] == [{"case": "a", "seconds": 0.5}]
    assert data["targets"][0]["met"] is True
    assert "fast enough" in result.output


def test_unknown_benchmark_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown benchmark 'nope'" in result.output
    assert not list(tmp_path.iterdir())


def test_quick_ranking_benchmark_matches_the_loop(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "ranking", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "ranking.json").read_text())
    assert [row["gallery"] for row in data["rows"]] == ["excl. queries", "incl. queries"]
    for row in data["rows"]:
        assert row["map_diff"] <= 1e-6
        assert row["max_cmc_diff"] <= 1e-6
        assert row["ours_s"] > 0
    assert data["details"]["quick"] is True
    assert data["details"]["cpu_model"]  # figures depend on the CPU: it is recorded
    assert data["details"]["load_average_1min"] >= 0


def test_cpu_model_names_the_cpu_and_its_matrix_extensions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
        "flags\t\t: fpu avx2 avx512f amx_bf16\n\nprocessor\t: 1\nmodel name\t: other\n"
    )
    real_path = _registry.Path
    monkeypatch.setattr(
        _registry, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p)
    )
    assert _registry.cpu_model() == "Intel(R) Xeon(R) Platinum 8481C (avx2, avx512f, amx_bf16)"
