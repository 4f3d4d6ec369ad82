"""The dashboard answers only its owner: Host check (DNS rebinding), per-run token for changes,
read-only beyond loopback. Real HTTP requests against a running ``reid-hpo dashboard``."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo.dashboard import DashboardGuard
from tests._helpers.fake_study import make_study
from tests._helpers.net import free_port
from tests._helpers.waits import scaled


def _request(
    port: int, method: str, path: str, *, host: str | None = None, cookie: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class _Dashboard:
    def __init__(self, port: int, proc: subprocess.Popen[str], url_line: str) -> None:
        self.port, self.proc, self.url_line = port, proc, url_line

    @property
    def token(self) -> str | None:
        found = re.search(r"\?token=([\w-]+)", self.url_line)
        return found.group(1) if found else None

    def study_ids(self) -> list[int]:
        status, _, body = _request(self.port, "GET", "/api/studies")
        assert status == 200
        return [s["study_id"] for s in json.loads(body)["study_summaries"]]


def _start(tmp_path: Path, *extra: str) -> _Dashboard:
    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    make_study(storage, name="first")
    make_study(storage, name="second")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REID_HPO_STORAGE"}
    command = [str(Path(sys.executable).parent / "reid-hpo"), "dashboard", "--storage", storage]
    proc = subprocess.Popen(
        [*command, "--port", str(port), *extra],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(2 if not extra else 3)]
    url_line = next(line for line in lines if line.startswith("Open "))
    deadline = time.monotonic() + scaled(60)
    while True:
        try:
            _request(port, "GET", "/api/studies")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    return _Dashboard(port, proc, url_line)


def _stop(dashboard: _Dashboard) -> None:
    dashboard.proc.terminate()
    try:
        dashboard.proc.wait(timeout=scaled(10))
    except subprocess.TimeoutExpired:
        dashboard.proc.kill()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Dashboard]:
    served = _start(tmp_path_factory.mktemp("guarded"))
    try:
        yield served
    finally:
        _stop(served)


def test_a_foreign_host_header_is_refused_even_for_reading(dashboard: _Dashboard) -> None:
    # What a DNS-rebinding page sends: its own host name, resolved to 127.0.0.1.
    port = dashboard.port
    for host in (f"evil.example.com:{port}", "evil.example.com", f"attacker.localhost:{port}"):
        status, _, body = _request(port, "GET", "/api/studies", host=host)
        assert status == 403, host
        assert b"does not answer for that Host" in body
    assert _request(port, "GET", "/api/studies", host=f"localhost:{port}")[0] == 200
    # An SSH tunnel or a container port mapping shows another port: still this server.
    assert _request(port, "GET", "/api/studies", host="localhost:9000")[0] == 200


def test_the_rebinding_delete_of_the_issue_is_refused(dashboard: _Dashboard) -> None:
    first, _ = dashboard.study_ids()
    port = dashboard.port
    status, _, _ = _request(
        port, "DELETE", f"/api/studies/{first}", host=f"evil.example.com:{port}"
    )
    assert status == 403
    assert first in dashboard.study_ids()


def test_changes_need_the_token_of_the_printed_url(dashboard: _Dashboard) -> None:
    first, second = dashboard.study_ids()
    token = dashboard.token
    assert token, dashboard.url_line
    assert _request(dashboard.port, "DELETE", f"/api/studies/{second}")[0] == 403
    assert (
        _request(
            dashboard.port, "DELETE", f"/api/studies/{second}", cookie="reid_hpo_dashboard=guess"
        )[0]
        == 403
    )
    # Opening the printed URL hands the browser the token as a same-site cookie.
    status, headers, _ = _request(dashboard.port, "GET", f"/dashboard/?token={token}")
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "HttpOnly" in cookie
    pair = cookie.split(";", 1)[0]
    assert _request(dashboard.port, "DELETE", f"/api/studies/{second}", cookie=pair)[0] == 204
    assert dashboard.study_ids() == [first]


def test_a_non_ascii_token_is_refused_not_a_server_error(dashboard: _Dashboard) -> None:
    first, *_ = dashboard.study_ids()
    cookie = "reid_hpo_dashboard=\u00e9t\u00e9".encode().decode("latin-1")
    assert _request(dashboard.port, "DELETE", f"/api/studies/{first}", cookie=cookie)[0] == 403
    assert _request(dashboard.port, "GET", "/dashboard/?token=%C3%A9t%C3%A9")[0] == 200
    assert first in dashboard.study_ids()


def test_a_read_only_dashboard_refuses_changes_and_prints_no_token(tmp_path: Path) -> None:
    served = _start(tmp_path, "--read-only")
    try:
        assert served.token is None
        (first, _) = served.study_ids()
        status, _, body = _request(served.port, "DELETE", f"/api/studies/{first}")
        assert (status, b"read-only" in body) == (403, True)
        assert first in served.study_ids()
    finally:
        _stop(served)


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("127.0.0.1:8080", (), True),
        ("localhost:8080", (), True),  # also a container behind a published 127.0.0.1 port
        ("[::1]:8080", (), True),
        ("10.0.0.5:8080", (), True),
        ("gpu-node-1:8080", (), False),
        ("gpu-node-1:8080", ("gpu-node-1",), True),
        ("127.0.0.1:9090", (), True),  # a tunnel's local port
        ("evil.localhost:8080", (), False),
        ("", (), False),
    ],
)
def test_host_rule(host: str, allowed: tuple[str, ...], expected: bool) -> None:
    guard = DashboardGuard(lambda environ, start: [], token="t", allowed_hosts=allowed)
    assert guard.host_allowed(host) is expected


def test_the_access_log_never_holds_the_token(caplog: pytest.LogCaptureFixture) -> None:
    from hpo.dashboard import _server

    handler = object.__new__(_server._LoggingHandler)
    handler.client_address = ("127.0.0.1", 5000)
    caplog.set_level(logging.DEBUG, logger=_server.__name__)
    handler.log_message('"%s" %s %s', "GET /dashboard/?token=s3cr3tT0k&x=1 HTTP/1.1", "200", "-")
    assert "token=***&x=1" in caplog.text and "s3cr3tT0k" not in caplog.text


@pytest.mark.parametrize("host", ["::1", "0.0.0.0"])
def test_the_printed_url_is_served_and_accepted_by_the_guard(host: str, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    make_study(storage, name="first")
    port = free_port()
    command = [str(Path(sys.executable).parent / "reid-hpo"), "dashboard", "--storage", storage]
    proc = subprocess.Popen(
        [*command, "--host", host, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("Open "):
            line = proc.stdout.readline()
            assert line, "the dashboard ended before printing its URL"
        printed = re.search(r"http://(\[[^\]]+\]|[^/:]+):(\d+)/", line)
        assert printed and int(printed.group(2)) == port, line
        address = "::1" if host == "::1" else "127.0.0.1"
        deadline = time.monotonic() + scaled(60)
        while True:
            conn = http.client.HTTPConnection(address, port, timeout=10)
            try:
                conn.request("GET", "/api/studies", headers={"Host": f"{printed.group(1)}:{port}"})
                status = conn.getresponse().status
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.25)
            finally:
                conn.close()
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(10))
