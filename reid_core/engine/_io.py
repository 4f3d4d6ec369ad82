"""JSON results written atomically, and file digests (atomic writes: :mod:`reid_core.files`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from reid_core.files import atomic_write_text


def write_json_atomic(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON (e.g. ``results.json``)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: Path, *, block_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()
