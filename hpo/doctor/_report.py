"""One doctor check's outcome and its line: ``PASS|FAIL|SKIP name: detail``."""

from __future__ import annotations

import enum
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass

from hpo.errors import one_line

__all__ = ["EXIT_FAILED", "Check", "Status", "exit_code", "guarded"]

EXIT_FAILED = 1
"""Exit code of ``reid-hpo doctor`` when a check FAILs (2 stays a user error: a bad option)."""


class Status(enum.StrEnum):
    """How a check ended."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """A check's status, name and one-line detail."""

    status: Status
    name: str
    detail: str

    def line(self) -> str:
        """``PASS name: detail`` (the detail folded to one line)."""
        return f"{self.status} {self.name}: {one_line(self.detail)}"


def guarded(name: str, check: Callable[[], Check]) -> Check:
    """Run ``check``; an unexpected exception becomes its FAIL line, not a traceback."""
    try:
        return check()
    except Exception as exc:
        text = str(exc).strip().splitlines()
        return Check(Status.FAIL, name, f"{type(exc).__name__}: {text[0] if text else ''}")


def exit_code(checks: Iterable[Check]) -> int:
    """:data:`EXIT_FAILED` when any check FAILed, else 0 (SKIPs do not fail)."""
    return EXIT_FAILED if any(c.status is Status.FAIL for c in checks) else 0
