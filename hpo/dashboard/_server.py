"""Serve optuna-dashboard on the study storage.

optuna-dashboard has no authentication and no read-only mode of its own: whoever reaches it can
delete studies (and their artifacts). It is therefore bound to 127.0.0.1 unless asked otherwise,
put behind :class:`~hpo.dashboard.DashboardGuard` (Host check, per-run token, read-only beyond
loopback), and a non-loopback address comes with a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
NO_AUTH_WARNING = (
    "WARNING: optuna-dashboard has no authentication; anyone who can reach {host}:{port} can "
    "read every study in this storage (and, with --read-write, edit and delete them with the "
    "printed URL). Bind to 127.0.0.1 or put it behind an authenticating reverse proxy."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_WILDCARD = ("0.0.0.0", "::", "")


def dashboard_url(host: str, port: int) -> str:
    """The address to open in a browser; wildcard binds show this machine's host name."""
    shown = socket.gethostname() if host in _WILDCARD else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/dashboard/"


def build_app(storage_url: str, *, artifact_dir: Path | None = None) -> Any:
    """The optuna-dashboard WSGI application on ``storage_url``.

    The storage is opened through :func:`hpo.storage.open_storage` (so ``postgresql://`` URLs
    use psycopg2 and the schema exists even for a new SQLite file), without heartbeats.

    Args:
        storage_url: Any URL accepted by :func:`hpo.storage.open_storage`.
        artifact_dir: Folder of a ``FileSystemArtifactStore`` to list and download artifacts.

    Returns:
        A WSGI application.

    Raises:
        StorageError: The storage cannot be opened (the message shows the masked URL).
    """
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    from hpo.storage import open_storage

    storage = open_storage(storage_url)
    store = FileSystemArtifactStore(str(artifact_dir)) if artifact_dir is not None else None
    if artifact_dir is not None:
        Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return optuna_dashboard.wsgi(storage, artifact_store=store)


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


_TOKEN_IN_LINE = re.compile(r"([?&]token=)[^&\s]*")


def without_token(line: str) -> str:
    """A request line with the value of its ``token`` query parameter replaced by ``***``.

    Example:
        >>> without_token('"GET /dashboard/?token=abc&x=1 HTTP/1.1" 200')
        '"GET /dashboard/?token=***&x=1 HTTP/1.1" 200'
    """
    return _TOKEN_IN_LINE.sub(r"\g<1>***", line)


class _LoggingHandler(WSGIRequestHandler):
    """Request lines go to our logger at DEBUG instead of raw stderr, token masked."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), without_token(format % args))


class _ThreadedServer6(_ThreadedServer):
    address_family = socket.AF_INET6


def bind(app: Any, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> WSGIServer:
    """A threaded wsgiref server bound to ``host:port`` (IPv6 for an IPv6 literal such as
    ``::1``), not yet serving: bind first, print the URL after.

    Raises:
        OSError: The address is in use or cannot be bound.
    """
    server_class = _ThreadedServer6 if ":" in host else _ThreadedServer
    return make_server(host, port, app, server_class=server_class, handler_class=_LoggingHandler)


def serve(httpd: WSGIServer) -> None:
    """Serve with a server from :func:`bind` until interrupted, then close it."""
    with httpd:
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            logger.info("dashboard stopped")


def guard_names(host: str, allowed_hosts: Sequence[str]) -> list[str]:
    """The Host names the guard accepts: ``allowed_hosts``, plus this machine's host name
    when bound to every interface (the name :func:`dashboard_url` prints then)."""
    if host in _WILDCARD:
        return [*allowed_hosts, socket.gethostname()]
    return list(allowed_hosts)


def startup_lines(
    storage_url: str, host: str, port: int, *, token: str | None = None, read_only: bool = False
) -> list[str]:
    """What the CLI prints on start: the masked storage, the URL (with the run's token when
    changes are allowed), whether it is read-only, and the warning if exposed."""
    from hpo.storage import mask_url

    url = dashboard_url(host, port)
    if token is not None and not read_only:
        url += f"?token={token}"
    lines = [
        f"optuna-dashboard on {mask_url(storage_url)}",
        f"Open {url}  (Ctrl-C to stop)",
    ]
    if read_only:
        lines.append("Read-only: deleting, renaming and editing studies is refused.")
    if not is_loopback(host):
        lines.insert(0, NO_AUTH_WARNING.format(host=host, port=port))
    return lines


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "NO_AUTH_WARNING",
    "bind",
    "build_app",
    "dashboard_url",
    "guard_names",
    "is_loopback",
    "serve",
    "startup_lines",
]
