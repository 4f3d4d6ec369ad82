"""``reid-hpo dashboard``: loopback by default, warns when exposed, serves and renders a study."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.dashboard import dashboard_url
from hpo.dashboard import is_loopback
from hpo.dashboard import startup_lines
from tests._helpers.browser import dump_dom
from tests._helpers.fake_study import make_study
from tests._helpers.net import free_port
from tests._helpers.net import get_json
from tests._helpers.waits import scaled

PG_URL_WITH_PASSWORD = "postgresql+psycopg2://bob:hunter2@db.example:5432/reid"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("gpu-node-a", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_startup_lines_on_loopback_have_no_warning_and_mask_the_password() -> None:
    lines = startup_lines(PG_URL_WITH_PASSWORD, "127.0.0.1", 8080)
    assert not any("WARNING" in line for line in lines)
    assert "http://127.0.0.1:8080/dashboard/" in "\n".join(lines)
    assert "hunter2" not in "\n".join(lines)
    assert "bob:***@db.example" in "\n".join(lines)


def test_startup_lines_warn_that_an_exposed_dashboard_has_no_authentication() -> None:
    lines = startup_lines(PG_URL_WITH_PASSWORD, "0.0.0.0", 9000)
    assert lines[0].startswith("WARNING")
    assert "no authentication" in lines[0]
    assert "hunter2" not in "\n".join(lines)


def test_dashboard_url_brackets_ipv6_hosts() -> None:
    assert dashboard_url("::1", 8080) == "http://[::1]:8080/dashboard/"


def test_dashboard_cli_refuses_an_unreachable_storage_with_a_masked_url() -> None:
    url = "postgresql://bob:hunter2@127.0.0.1:1/reid"
    result = CliRunner().invoke(app, ["dashboard", "--storage", url, "--port", "1"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot open storage")
    assert "hunter2" not in result.output


def test_dashboard_cli_reports_a_busy_port(sqlite_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            app, ["dashboard", "--storage", sqlite_url, "--port", str(port)]
        )
    assert result.exit_code == 2
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.output


@pytest.fixture(scope="module")
def served_study(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A ``reid-hpo dashboard`` subprocess on a SQLite study, answering its API.

    Yields (base URL, process); shared by the module's tests and terminated at the end.
    """
    tmp_path = tmp_path_factory.mktemp("dashboard")
    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    make_study(storage, name="dashboard-study")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REID_HPO_STORAGE"}
    command = [str(Path(sys.executable).parent / "reid-hpo"), "dashboard"]
    proc = subprocess.Popen(
        [*command, "--storage", storage, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        get_json(f"{base}/api/studies", timeout_s=60)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=scaled(10))


def test_dashboard_serves_the_study_over_its_api(
    served_study: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = served_study
    summaries = get_json(f"{base}/api/studies", timeout_s=5)
    assert proc.poll() is None
    names = [s["study_name"] for s in summaries["study_summaries"]]  # type: ignore[index]
    assert names == ["dashboard-study"]


def test_dashboard_page_shows_the_study_in_chromium(
    served_study: tuple[str, subprocess.Popen[str]],
) -> None:
    base, _ = served_study
    dom = dump_dom(f"{base}/dashboard", virtual_time_ms=10_000)
    assert "dashboard-study" in dom


def test_dashboard_prints_where_to_open_it(
    served_study: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = served_study
    assert proc.stdout is not None
    # Both lines are printed before the server starts, so they are already in the pipe.
    output = proc.stdout.readline() + proc.stdout.readline()
    assert f"Open {base}/dashboard/" in output
    assert "WARNING" not in output
