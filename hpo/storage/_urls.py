"""Storage URLs: resolution (``--storage``, ``$REID_HPO_STORAGE``, local SQLite), the
``postgresql://`` -> psycopg2 mapping, and password masking.

Plain ``postgresql://`` (and ``postgres://``) URLs are mapped to the psycopg2 driver that
reid-hpo ships, because SQLAlchemy 2.1 would otherwise pick psycopg 3. Every URL that reaches a
log line, an exception or the terminal goes through :func:`mask_url` first.
"""

from __future__ import annotations

import os

from hpo.url_secrets import mask_url

ENV_STORAGE = "REID_HPO_STORAGE"
DEFAULT_STORAGE_URL = "sqlite:///reid_hpo.db"

_PG_PREFIXES = ("postgresql://", "postgres://")
_PG_DRIVER_PREFIX = "postgresql+psycopg2://"


def resolve_storage_url(cli_value: str | None) -> str:
    """The storage URL to use: ``--storage``, else ``$REID_HPO_STORAGE``, else local SQLite.

    Args:
        cli_value: The ``--storage`` option (``None`` or empty when not given).

    Returns:
        The URL, normalised with :func:`normalise_url`.

    Example:
        >>> resolve_storage_url("postgres://u@h/db")
        'postgresql+psycopg2://u@h/db'
    """
    for candidate in (cli_value, os.environ.get(ENV_STORAGE)):
        if candidate and candidate.strip():
            return normalise_url(candidate.strip())
    return DEFAULT_STORAGE_URL


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to ``postgresql+psycopg2://``; else unchanged.

    Example:
        >>> normalise_url("postgresql://alice:s3cret@db:5432/reid")
        'postgresql+psycopg2://alice:s3cret@db:5432/reid'
    """
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return _PG_DRIVER_PREFIX + url[len(prefix) :]
    return url


def is_postgres(url: str) -> bool:
    """Whether the (normalised) URL points at PostgreSQL."""
    return normalise_url(url).startswith("postgresql")


__all__ = [
    "DEFAULT_STORAGE_URL",
    "ENV_STORAGE",
    "is_postgres",
    "mask_url",
    "normalise_url",
    "resolve_storage_url",
]
