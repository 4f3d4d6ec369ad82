from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hpo.cli import app

runner = CliRunner()


def test_synth_then_check_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "prid"
    synth = runner.invoke(
        app,
        [
            "data",
            "synth",
            str(out),
            "--layout",
            "prid",
            "--ids",
            "4",
            "--height",
            "32",
            "--width",
            "16",
            "--seed",
            "1",
        ],
    )
    assert synth.exit_code == 0, synth.output
    assert (out / "prid_2011" / "multi_shot" / "cam_a").is_dir()
    check = runner.invoke(app, ["data", "check", str(out), "--dataset", "prid", "--split-id", "2"])
    assert check.exit_code == 0, check.output
    assert "gallery" in check.output
    assert "OK" in check.output


def test_check_of_a_missing_root_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(tmp_path / "nope"), "--dataset", "mars"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: mars:")
    assert "nope" in result.output
    assert "Traceback" not in result.output


def test_check_names_a_corrupt_frame(tmp_path: Path) -> None:
    out = tmp_path / "ilids"
    runner.invoke(
        app, ["data", "synth", str(out), "--layout", "ilidsvid", "--ids", "4", "--frames", "3"]
    )
    bad = sorted(out.rglob("*.png"))[-1]
    bad.write_bytes(b"\x89PNG broken")
    result = runner.invoke(app, ["data", "check", str(out), "--dataset", "ilidsvid"])
    assert result.exit_code == 2
    assert bad.name in result.output


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), "--layout", "duke"])
    assert result.exit_code != 0
    assert not (tmp_path / "x").exists()


def test_help_shows_an_example() -> None:
    result = runner.invoke(app, ["data", "synth", "--help"])
    assert result.exit_code == 0
    assert "reid-hpo data synth" in result.output
