"""Crash-safe file writes, and the one rule for a file a user names for output (``--out``).

A write goes to a temporary file in the target's folder, is fsynced, then ``os.replace``-d
over the target: readers see the old file or the complete new one, never a part. A path a
user names is written only when it is missing or a regular file; a symbolic link is written
through to the regular file it points to; a directory, device node, FIFO or socket is refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from reid_core.errors import OutputFileError


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


def output_file_target(path: str | Path, *, what: str = "the output") -> Path:
    """The regular file that writing ``path`` for a user replaces (the one rule for output files).

    A missing path or a regular file is itself; a symbolic link is written through to the
    regular file it points to (like a shell redirection); anything else is refused.

    Args:
        path: The path the user named.
        what: What is written, for the message (``"the report"``).

    Raises:
        OutputFileError: ``path`` is empty, a directory, a device node, a FIFO, a socket, a
            link to any of those or to nothing, or lies under something that is not a folder.
    """
    text = str(path)
    if not text or text.endswith(os.sep):
        raise OutputFileError(f"cannot write {what} to {text!r}: it names a directory")
    target = Path(text)
    try:
        info = target.lstat()
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise OutputFileError(f"cannot write {what} to {text}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        resolved = Path(os.path.realpath(target))
        try:
            info = resolved.stat()
        except OSError:
            raise OutputFileError(
                f"cannot write {what} to {text}: a symbolic link to {resolved}, which does "
                "not exist (name the file itself)"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise OutputFileError(
                f"cannot write {what} to {text}: a symbolic link to {resolved}, which is "
                f"{_kind(info)}, not a regular file"
            )
        return resolved
    if not stat.S_ISREG(info.st_mode):
        raise OutputFileError(
            f"cannot write {what} to {text}: it is {_kind(info)}, not a regular file"
        )
    return target


def write_output_file(path: str | Path, data: str | bytes, *, what: str = "the output") -> Path:
    """Write a file a user named (``--out``), by the rule of :func:`output_file_target`.

    The target is replaced atomically; its folder is created if needed.

    Returns:
        The file written (the link's target when ``path`` is a symbolic link).

    Raises:
        OutputFileError: The path is refused, or the file cannot be written (the reason).
    """
    target = output_file_target(path, what=what)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        atomic_write(target, lambda handle: handle.write(payload))
    except OSError as exc:
        raise OutputFileError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None
    return target


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


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


__all__ = ["atomic_write", "atomic_write_text", "output_file_target", "write_output_file"]
