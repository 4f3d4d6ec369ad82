"""A real PgBouncer process (Debian's ``pgbouncer`` package) in front of a PostgreSQL server.

Run as the ``postgres`` OS user (PgBouncer refuses root) from a temporary directory, listening
on 127.0.0.1 at a free port, every database name passed through to the server. Missing
binary: skipped locally, a failure under ``CI=true`` (``make pgbouncer`` installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests._helpers.net import free_port
from tests._helpers.waits import scaled

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
OS_USER = "postgres"


def require_pgbouncer() -> None:
    """Skip (locally) or fail (CI) when the pgbouncer binary is missing."""
    if Path(PGBOUNCER).is_file():
        return
    message = "pgbouncer is not installed (make pgbouncer)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class PgBouncer:
    """``start()`` / ``stop()``; clients connect to ``127.0.0.1:port`` with the server's user.

    Args:
        server_port: The PostgreSQL server's TCP port on 127.0.0.1.
        password: The user's password (SCRAM between every hop), None for a trust server.
        pool_mode: ``transaction`` or ``session``.
        pool_size: Server connections per database/user pair (``default_pool_size``).
        user: The database user.
    """

    def __init__(
        self,
        server_port: int,
        *,
        password: str | None = None,
        pool_mode: str = "transaction",
        pool_size: int = 4,
        user: str = "postgres",
    ) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="reid_hpo_pgbouncer_"))
        self.log = self.dir / "pgbouncer.log"
        self._process: subprocess.Popen[bytes] | None = None
        (self.dir / "userlist.txt").write_text(f'"{user}" "{password or ""}"\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = {'scram-sha-256' if password else 'trust'}\n"
            f"auth_file = {self.dir / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 1000\nmax_db_connections = 0\n"
            f"logfile = {self.log}\n"
        )
        account = pwd.getpwnam(OS_USER)
        for path in (self.dir, *self.dir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)

    def start(self) -> None:
        """Start PgBouncer and wait until it accepts TCP connections."""
        self._process = subprocess.Popen(
            ["runuser", "-u", OS_USER, "--", PGBOUNCER, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start listening in time")

    def url(self, database: str, password: str | None = None, user: str = "postgres") -> str:
        """A ``postgresql+psycopg2://`` URL of ``database`` through PgBouncer."""
        secret = f":{password}" if password else ""
        return f"postgresql+psycopg2://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop PgBouncer (SIGTERM to runuser is passed on) and delete its files."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["PgBouncer", "require_pgbouncer"]
