"""A real S3-compatible server for tests: moto's standalone server (``moto[server]``) as its
own process on a free port, not an in-process mock.

Each test gets a fresh bucket. When the server cannot start (``moto[server]`` missing) the test
is skipped locally but *fails* under ``CI=true``, like the PostgreSQL tests.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._helpers.net import free_port
from tests._helpers.waits import scaled

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "reid-hpo-test",
    "AWS_SECRET_ACCESS_KEY": "reid-hpo-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What the test processes give boto3 through the environment (moto accepts any)."""


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint URL."""

    endpoint: str

    def client(self) -> Any:
        """A boto3 S3 client of the server (one per server: making one costs CPU)."""
        return _client(self.endpoint)

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name."""
        name = f"reid-hpo-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key of ``bucket`` under ``prefix``, sorted."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@functools.cache
def _client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def s3_server(log: Path) -> Iterator[S3Server]:
    """Start ``python -m moto.server`` on a free port; stop it afterwards."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        _unavailable("moto[server] is not installed: `pip install -e '.[dev]'`")
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + scaled(30)
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    _unavailable(f"the S3 server did not start: {log.read_text()[-500:]}")
                time.sleep(0.2)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=scaled(10))
