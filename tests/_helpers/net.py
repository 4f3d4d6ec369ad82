"""Local servers in tests: a free port, and JSON from a server that is still starting."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from tests._helpers.waits import scaled


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, *, timeout_s: float) -> Any:
    """GET ``url`` until the server answers (it may still be starting) or ``scaled(timeout_s)``
    pass."""
    deadline = time.monotonic() + scaled(timeout_s)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
