"""Render pages in headless Chromium (Debian's ``chromium``) and return the DOM after JS ran.

Chromium is installed by ``.ci/run`` and ``make test``, never by the tests. When it is missing
the test is skipped locally but *fails* under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests._helpers.waits import scaled

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def require_chromium() -> str:
    """Path of the Chromium binary; skip (locally) or fail (CI) when there is none."""
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def dump_dom(
    url: str,
    *,
    virtual_time_ms: int = 10_000,
    timeout_s: float = 120.0,
    window_width: int | None = None,
) -> str:
    """Load ``url`` (``file://`` or ``http://``), let scripts run, and return the serialised DOM.

    ``--virtual-time-budget`` fast-forwards timers, so single-page apps finish rendering;
    ``window_width`` sets the viewport's width in CSS pixels (900 high).
    """
    binary = require_chromium()
    with tempfile.TemporaryDirectory(prefix="reid-hpo-chromium-") as profile:
        result = subprocess.run(
            [
                binary,
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={virtual_time_ms}",
                *([f"--window-size={window_width},900"] if window_width else []),
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=scaled(timeout_s),
            check=False,
        )
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(f"chromium failed on {url} (exit {result.returncode}): {result.stderr[-2000:]}")
    return result.stdout
