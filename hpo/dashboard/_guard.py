"""A WSGI guard in front of optuna-dashboard: the Host check and the per-run token.

optuna-dashboard answers any ``Host`` header and has no authentication, so a web page open in
the user's browser could reach a dashboard on 127.0.0.1 through DNS rebinding (its own host
name resolving to 127.0.0.1) and delete studies. The guard therefore:

- answers only requests whose ``Host`` names this server: an IP literal or ``localhost`` (a
  rebinding attack always comes with the attacker's own host name, never these), or a name
  given with ``--allowed-host``; anything else gets ``403``. The port is not checked, so an SSH
  tunnel or a container port mapping to another port still works;
- lets a request change anything (any method but GET, HEAD and OPTIONS: delete, rename, notes,
  tells) only when it carries the run's token: the URL the CLI prints holds it once
  (``?token=...``), and the guard turns it into a ``SameSite=Strict`` cookie that other sites'
  pages never send;
- refuses every change when read-only (the default for a bind beyond loopback).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Callable
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

TOKEN_PARAM = "token"
COOKIE_NAME = "reid_hpo_dashboard"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def new_token() -> str:
    """A fresh random token for one dashboard run."""
    return secrets.token_urlsafe(24)


def _host_name(header: str) -> str:
    """The host name of a Host header, without its port (brackets of an IPv6 literal removed)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class DashboardGuard:
    """Wraps a WSGI app with the Host check and the token (see the module docs).

    Args:
        app: The optuna-dashboard WSGI application.
        token: The run's token; mutating requests must carry it.
        allowed_hosts: Further host names to answer (``--allowed-host``).
        read_only: Refuse every mutating request, token or not.
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        token: str,
        allowed_hosts: Iterable[str] = (),
        read_only: bool = False,
    ) -> None:
        self._app = app
        self._token = token
        # A container bound to 0.0.0.0 behind a published 127.0.0.1 port is reached as
        # localhost too, so localhost is always this server.
        self._names = {"localhost"} | {n.strip().lower() for n in allowed_hosts if n.strip()}
        self.read_only = read_only

    def host_allowed(self, header: str) -> bool:
        """Whether a ``Host`` header names this server."""
        name = _host_name(header)
        return bool(name) and (_is_ip(name) or name in self._names)

    def _has_token(self, environ: dict[str, Any]) -> bool:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        sent = cookie[COOKIE_NAME].value if COOKIE_NAME in cookie else ""
        return _same_token(sent, self._token)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.host_allowed(environ.get("HTTP_HOST", "")):
            return _refuse(start_response, "this dashboard does not answer for that Host")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method not in _SAFE_METHODS:
            if self.read_only:
                return _refuse(start_response, "this dashboard is read-only")
            if not self._has_token(environ):
                return _refuse(start_response, "open the dashboard with the URL it printed")
            return self._app(environ, start_response)
        offered = parse_qs(environ.get("QUERY_STRING", "")).get(TOKEN_PARAM, [""])[0]
        if _same_token(offered, self._token):
            return self._app(environ, _with_cookie(start_response, self._token))
        return self._app(environ, start_response)


def _same_token(sent: str, token: str) -> bool:
    """Constant-time comparison that any sent text survives (non-ASCII included)."""
    raw = sent.encode("utf-8", "surrogatepass")
    return bool(raw) and hmac.compare_digest(raw, token.encode("utf-8"))


def _with_cookie(start_response: StartResponse, token: str) -> StartResponse:
    cookie = f"{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict"

    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        return start_response(status, [*headers, ("Set-Cookie", cookie)], *args)

    return start


def _refuse(start_response: StartResponse, reason: str) -> list[bytes]:
    body = f"403 Forbidden: {reason}\n".encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


__all__ = ["COOKIE_NAME", "TOKEN_PARAM", "DashboardGuard", "new_token"]
