from __future__ import annotations

from typer.testing import CliRunner

from hpo.cli import app


def test_root_help_lists_the_tool() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "reid-hpo" in result.output
