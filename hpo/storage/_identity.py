"""Which database a storage URL opens: an identity that differs between a database and its copy.

A copied database (``pg_dump``/restore, ``CREATE DATABASE ... TEMPLATE``, a copied SQLite file)
keeps every study's uuid; the identity tells the copy from the original without the
password-bearing URL. PostgreSQL: the cluster's ``system_identifier`` (``pg_control_system()``)
and the database name; SQLite: the resolved file path and its inode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from sqlalchemy.pool import NullPool

from hpo.storage._urls import mask_url


@dataclass(frozen=True)
class StorageIdentity:
    """``key`` is compared; ``display`` names the storage in messages (never a password)."""

    key: str
    display: str


def storage_identity(url: str) -> StorageIdentity:
    """The identity of the database that ``url`` opens (public SQLAlchemy API only).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The database cannot be queried.
        OSError: The SQLite file cannot be examined.
    """
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").resolve()
        inode = os.stat(path).st_ino
        return StorageIdentity(f"sqlite:{path}:{inode}", f"SQLite file {path} (inode {inode})")
    if parsed.get_backend_name() == "postgresql":
        return _postgres_identity(url, parsed)
    return StorageIdentity(f"url:{mask_url(url)}", mask_url(url))


def _postgres_identity(url: str, parsed: sqlalchemy.engine.URL) -> StorageIdentity:
    """A role that may not call ``pg_control_system()`` gets ``host:port`` as the server."""
    server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            database = conn.execute(sqlalchemy.text("SELECT current_database()")).scalar_one()
        try:
            with engine.connect() as conn:
                system = str(
                    conn.execute(
                        sqlalchemy.text("SELECT system_identifier FROM pg_control_system()")
                    ).scalar_one()
                )
        except sqlalchemy.exc.ProgrammingError:
            system = server
    finally:
        engine.dispose()
    where = f"{server}/{database}"
    return StorageIdentity(
        f"postgresql:{system}:{database}", f"PostgreSQL {where} (system {system})"
    )


__all__ = ["StorageIdentity", "storage_identity"]
