"""Every file reid-hpo writes for a user (``study report --out``, ``study export --out``) obeys
one rule (:func:`reid_core.files.write_output_file`): a missing path or a regular file is
replaced atomically, a symbolic link is written through to the regular file it points to, and
anything else (directory, device node, FIFO, a link to one of those or to nothing, a name
longer than the file system allows) is refused in one ``Error:`` line with exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from tests._helpers.fake_study import make_study

COMMANDS = {
    "report": ["study", "report", "r", "--out"],
    "export": ["study", "export", "r", "--format", "json", "--out"],
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    storage = f"sqlite:///{tmp_path_factory.mktemp('db') / 'study.db'}"
    make_study(storage, name="r")
    return storage


def _run(command: str, out: str, url: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*COMMANDS[command], out, "--storage", url])
    return result.exit_code, result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_symlink_is_written_through_to_its_regular_file(
    command: str, url: str, tmp_path: Path
) -> None:
    target = tmp_path / "real" / "file.txt"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    code, output = _run(command, str(link), url)
    assert code == 0, output
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() != "old" and "r" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]  # no temporary file left


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "kind",
    ["character device", "fifo", "directory", "link to a device", "dangling link", "long name"],
)
def test_what_is_not_a_regular_file_is_refused_in_one_line(
    command: str, kind: str, url: str, tmp_path: Path
) -> None:
    path = tmp_path / "out"
    if kind == "character device":
        path = Path(os.devnull)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "link to a device":
        path.symlink_to(os.devnull)
    elif kind == "dangling link":
        path.symlink_to(tmp_path / "nowhere")
    else:
        path = tmp_path / ("x" * 300)
    before = os.lstat(path) if kind != "long name" else None
    code, output = _run(command, str(path), url)
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: cannot write"), output
    assert "Traceback" not in output
    if before is not None:  # nothing was replaced
        after = os.lstat(path)
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
