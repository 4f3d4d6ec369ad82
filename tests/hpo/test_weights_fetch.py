"""`reid-hpo weights fetch`: checksum, atomic write, idempotence, offline, via a local server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import hpo.weights._fetch as fetch_module
from hpo.cli import app
from hpo.errors import ReidHpoError
from hpo.weights import ENV_BASE_URL
from hpo.weights import fetch_weights
from hpo.weights import weights_file_name
from tests._helpers.net import free_port

CONTENT = b"imagenet weights stand-in " * 1000
NAME = f"resnet50-{hashlib.sha256(CONTENT).hexdigest()[:8]}.pth"


class _Server:
    """http.server on 127.0.0.1 serving a folder, counting the GET requests."""

    def __init__(self, folder: Path) -> None:
        self.gets = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.gets += 1
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Server, Path]]:
    """A local server holding a weights file whose name carries its own hash prefix; the
    resnet50 weights are that file (the real one is not reachable from here)."""
    folder = tmp_path / "www" / "models"
    folder.mkdir(parents=True)
    (folder / NAME).write_bytes(CONTENT)
    monkeypatch.setattr(
        fetch_module, "weights_file_name", lambda _b: (f"https://example.invalid/{NAME}", NAME)
    )
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    server = _Server(tmp_path / "www")
    yield server, folder
    server.httpd.shutdown()


def test_torchvision_file_name_and_url() -> None:
    assert weights_file_name("resnet50") == (
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        "resnet50-0676ba61.pth",
    )


def test_download_lands_in_the_hub_cache_checked_and_once(
    served: tuple[_Server, Path], tmp_path: Path
) -> None:
    server, _ = served
    result = CliRunner().invoke(app, ["weights", "fetch", "--base-url", server.url])
    target = tmp_path / "hub" / "checkpoints" / NAME
    assert result.exit_code == 0, result.output
    assert result.output == f"{target}: downloaded, sha256 {hashlib.sha256(CONTENT).hexdigest()}\n"
    assert target.read_bytes() == CONTENT
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == [NAME]  # no partial file left
    again = CliRunner().invoke(app, ["weights", "fetch", "--base-url", server.url])
    assert again.exit_code == 0 and ": already present, sha256 " in again.output
    assert server.gets == 1  # idempotent: the second call downloads nothing


def test_a_corrupt_download_is_refused_and_nothing_written(
    served: tuple[_Server, Path], tmp_path: Path
) -> None:
    server, folder = served
    (folder / NAME).write_bytes(CONTENT[:-1] + b"!")
    dest = tmp_path / "dest"
    result = CliRunner().invoke(
        app, ["weights", "fetch", "--dest", str(dest), "--base-url", server.url]
    )
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: checksum mismatch for {server.url}/{NAME}: SHA-256 ")
    assert len(result.output.splitlines()) == 1
    assert list(dest.iterdir()) == []


def test_a_wrong_cached_file_is_replaced(
    served: tuple[_Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    monkeypatch.setenv(ENV_BASE_URL, server.url)  # the mirror from the environment
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / NAME).write_bytes(b"half a file")
    result = fetch_weights(dest=dest)
    assert result.downloaded and (dest / NAME).read_bytes() == CONTENT


def test_a_server_error_is_one_line(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, folder = served
    (folder / NAME).unlink()
    with pytest.raises(ReidHpoError, match=r"cannot download .*: HTTP 404"):
        fetch_weights(dest=tmp_path / "dest", base_url=server.url)


def test_offline_names_the_url_and_the_manual_copy(tmp_path: Path) -> None:
    """No server answers (as download.pytorch.org from this machine): exit 2, one line."""
    base = f"http://127.0.0.1:{free_port()}/models"
    dest = tmp_path / "dest"
    result = CliRunner().invoke(app, ["weights", "fetch", "--dest", str(dest), "--base-url", base])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: cannot download {base}/resnet50-0676ba61.pth (")
    assert lines[0].endswith(
        "on a machine with network access download that file, check that its sha256sum "
        f"starts with 0676ba61 and copy it to {dest / 'resnet50-0676ba61.pth'}"
    )
    assert not dest.exists()  # nothing created
