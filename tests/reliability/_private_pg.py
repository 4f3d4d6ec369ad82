"""A private PostgreSQL 15 server for tests that stop, start or authenticate against a server.

The machine's shared server is used by other tests at the same time, so it must never be
stopped; these tests run their own cluster in a temporary directory instead, owned by the
``postgres`` OS user, listening on 127.0.0.1 at a free port with password (SCRAM) auth on TCP.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from tests._helpers.waits import scaled

PG_BIN = Path(os.environ.get("REID_HPO_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """One throw-away cluster: ``start()``, ``stop()``, ``database()``, ``destroy()``.

    Attributes:
        password: The superuser's password (SCRAM over TCP; the socket is trust-only).
        port: The TCP port on 127.0.0.1.
    """

    def __init__(self) -> None:
        self.password = f"pw-{secrets.token_hex(8)}"
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="reid_hpo_pg_"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        account = pwd.getpwnam(OS_USER)
        os.chown(self.dir, account.pw_uid, account.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, account.pw_uid, account.pw_gid)
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
        )
        pwfile.unlink()

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", OS_USER, "--", *command],
            capture_output=True,
            text=True,
            timeout=scaled(120),
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop the server at once (``-m fast``: clients are disconnected)."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, down_s: float) -> float:
        """Stop, stay down ``down_s`` seconds, start; returns the measured outage in seconds."""
        begin = time.monotonic()
        self.stop()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - begin

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """A ``postgresql+psycopg2://`` URL with the (given or real) password."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg2://postgres:{secret}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create an empty database and return its URL (with the password)."""
        name = f"reid_hpo_rel_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.password,
            dbname="postgres",
            connect_timeout=10,
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server (if running) and delete its files."""
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_binaries_available() -> bool:
    """Whether initdb/pg_ctl and the postgres OS user exist on this machine."""
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return False
    return (PG_BIN / "initdb").is_file() and shutil.which("runuser") is not None
