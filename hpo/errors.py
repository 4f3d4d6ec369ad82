"""Errors a user of ``reid-hpo`` can cause: bad specs, study names, storage URLs.

Every class derives from :class:`reid_core.errors.ReidError`, so the CLI turns each one into a
single ``Error: ...`` line and exit code 2. Messages never contain a database password: code
that mentions a storage URL passes it through :func:`hpo.storage.mask_url` first.
"""

from __future__ import annotations

from reid_core.errors import ReidError


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(text).split())


class ReidHpoError(ReidError):
    """Base class of the user-caused errors of the ``hpo`` package."""


class SpecError(ReidHpoError):
    """A study spec is invalid; names the file, the field path and the reason.

    Args:
        field: Dotted path of the offending field (``"search_space.sigma.low"``). When
            ``reason`` is omitted this single argument is the whole message.
        reason: What is wrong and what was expected.
        file: The spec file (or other source, e.g. ``"study 'x'"``) the field came from.

    Example:
        >>> str(SpecError("sampler.name", "unknown sampler 'tpee'", file="s.yaml"))
        "s.yaml: sampler.name: unknown sampler 'tpee'"
    """

    def __init__(self, field: str, reason: str | None = None, *, file: str | None = None) -> None:
        if reason is None:
            field, reason = "", field
        self.field = field
        self.reason = reason
        self.file = file
        super().__init__(": ".join(part for part in (file, field, reason) if part))


class StudyExistsError(ReidHpoError):
    """A study of that name already exists (or exists with a different spec)."""


class StudyNotFoundError(ReidHpoError):
    """No study of that name in the storage; the message lists the available names."""


class StudyDeletedError(StudyNotFoundError):
    """The study was deleted (by another client) while this command was using it."""


class NoCompletedTrialError(ReidHpoError):
    """The study has no COMPLETE trial yet, so there is no best trial to show."""


class StorageError(ReidHpoError):
    """The storage cannot be used: unreachable server, bad URL scheme, failed authentication."""


__all__ = [
    "NoCompletedTrialError",
    "ReidHpoError",
    "SpecError",
    "StorageError",
    "StudyDeletedError",
    "StudyExistsError",
    "StudyNotFoundError",
    "one_line",
]
