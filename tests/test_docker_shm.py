"""Every documented ``docker run`` gives the container enough /dev/shm for DataLoader workers.

Docker's default /dev/shm is 64 MB; the training loader's worker processes pass batches
through it, and at the recipe's batch size a worker dies with a bus error.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["Dockerfile", "README.md", "BENCHMARKS.md", "RELIABILITY.md"]


def _docker_runs(text: str) -> list[str]:
    """Each ``docker run`` command, its continuation lines (``\\``) joined, comment marks cut."""
    lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
    commands, current = [], ""
    for line in lines:
        if current or "docker run" in line:
            current += " " + line.rstrip("\\").strip()
            if not line.rstrip().endswith("\\"):
                commands.append(current.strip())
                current = ""
    return [c for c in commands if "docker run" in c]


def test_the_joiner_sees_continued_commands() -> None:
    text = "#   docker run --rm \\\n#       --shm-size=8g img worker x\n"
    assert _docker_runs(text) == ["docker run --rm --shm-size=8g img worker x"]


def test_every_documented_docker_run_sets_the_shm_size() -> None:
    paths = [REPO / name for name in DOCUMENTS] + sorted((REPO / "deploy").rglob("*"))
    runs = {
        f"{path.relative_to(REPO)}: {command}"
        for path in paths
        if path.is_file()
        for command in _docker_runs(path.read_text(encoding="utf-8", errors="replace"))
    }
    assert any(r.startswith("Dockerfile:") for r in runs)  # the image's own example is checked
    missing = sorted(r for r in runs if "--shm-size" not in r and "--ipc=host" not in r)
    assert not missing, missing
