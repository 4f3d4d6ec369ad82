"""optuna-dashboard on the study storage, guarded: loopback by default, a Host check against
DNS rebinding, a per-run token for changes, read-only when exposed beyond loopback."""

from __future__ import annotations

from hpo.dashboard._guard import COOKIE_NAME
from hpo.dashboard._guard import TOKEN_PARAM
from hpo.dashboard._guard import DashboardGuard
from hpo.dashboard._guard import new_token
from hpo.dashboard._server import DEFAULT_HOST
from hpo.dashboard._server import DEFAULT_PORT
from hpo.dashboard._server import NO_AUTH_WARNING
from hpo.dashboard._server import bind
from hpo.dashboard._server import build_app
from hpo.dashboard._server import dashboard_url
from hpo.dashboard._server import guard_names
from hpo.dashboard._server import is_loopback
from hpo.dashboard._server import serve
from hpo.dashboard._server import startup_lines

__all__ = [
    "COOKIE_NAME",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "NO_AUTH_WARNING",
    "TOKEN_PARAM",
    "DashboardGuard",
    "bind",
    "build_app",
    "dashboard_url",
    "guard_names",
    "is_loopback",
    "new_token",
    "serve",
    "startup_lines",
]
