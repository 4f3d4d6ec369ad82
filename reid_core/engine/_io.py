"""Crash-safe file writes: a temporary file in the target directory, fsync, then os.replace."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO
from typing import Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically: readers see the old file or the complete new one, never a part.

    Args:
        path: Destination file; its directory is created if needed.
        write: Called with a binary file object open on a temporary file in the same directory.

    Raises:
        OSError: The file cannot be written (disk full, file too large, read-only location),
            also when ``write`` reported it as another exception; the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        cause = _os_error_behind(exc)
        if cause is not None and cause is not exc:
            # e.g. torch.save reports a full disk as a RuntimeError raised over the OSError
            raise OSError(cause.errno, cause.strerror, str(path)) from exc
        raise
    _fsync_dir(path.parent)


def _os_error_behind(exc: BaseException) -> OSError | None:
    """The OSError (disk full, file too large, read-only) that ``exc`` is or was raised over."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Persist a rename; a no-op where directories cannot be opened (e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
