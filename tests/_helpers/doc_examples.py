"""The command examples users read: README, deploy/README and docs/*.md code blocks, ``--help``
texts.

An example is one command line as a user would paste it: continuation lines (``\\``) joined,
the trailing ``# comment`` cut, runs of blanks outside quotes folded to one space.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEPLOY_README = ROOT / "deploy" / "README.md"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```(\w*)\s*$")
_EXAMPLES_MARK = re.compile(r"\bExamples?\b[^:\n]*:")
_HELP_COMMAND = re.compile(r"reid-hpo\s[^\n|]*(?:\n[ \t]+--[^\n|]*)*")


def strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` outside quotes at a word start)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def normalise(command: str) -> str:
    """Blank runs folded to one space, ends stripped (quoted text has no double blanks here)."""
    return " ".join(command.split())


def shell_blocks(path: Path) -> Iterator[str]:
    """Every command of the ```bash / ```sh code blocks of a Markdown file."""
    language: str | None = None
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = _FENCE.match(line.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            pending = ""
            continue
        if language not in ("bash", "sh", "shell", "console"):
            continue
        code = strip_comment(line).rstrip()
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        command = normalise(pending + code)
        pending = ""
        if command:
            yield command


def help_examples() -> Iterator[tuple[str, str]]:
    """``(command path, example)`` for each ``reid-hpo ...`` line after an ``Example:`` or
    ``Examples:`` mark in a command's help text or epilog, as ``--help`` shows them."""
    import typer

    from hpo.cli import app

    def walk(command, path: str):  # type: ignore[no-untyped-def]
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not sub.hidden:
                yield from walk(sub, f"{path} {name}")

    for path, command in walk(typer.main.get_command(app), "reid-hpo"):
        for text in (command.help or "", command.epilog or ""):
            mark = _EXAMPLES_MARK.search(text)
            if mark is None:
                continue
            for found in _HELP_COMMAND.findall(text[mark.end() :]):
                yield path, normalise(found.replace("\\\n", " "))


def documented_examples() -> dict[str, list[str]]:
    """Every documented example -> where it is documented (file, or ``--help`` of a command)."""
    found: dict[str, list[str]] = {}
    for path in (README, DEPLOY_README, *sorted(DOCS.glob("*.md"))):
        for command in shell_blocks(path):
            found.setdefault(command, []).append(str(path.relative_to(ROOT)))
    for where, command in help_examples():
        found.setdefault(command, []).append(f"{where} --help")
    return found
