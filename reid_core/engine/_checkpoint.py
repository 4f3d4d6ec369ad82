"""Checkpoints: atomic, checksummed, self-describing, rotated; everything needed to resume.

A checkpoint is a standard ``torch.save`` file (``epoch_0007.pt``) with a ``sha256sum``-style
sidecar (``epoch_0007.pt.sha256``) that :func:`load_checkpoint` verifies, so a truncated or
corrupt file is refused instead of silently resuming from garbage. :class:`CheckpointManager`
keeps the last few and points ``last.pt`` at the newest one.

Epochs are 1-based, as a person counts them: ``epoch_0007.pt`` holds the state after the
seventh epoch and its ``epoch`` entry is 7 (format 2). Checkpoints of format 1 (written before
that change) count from 0, in their names and their ``epoch`` entries;
:func:`load_checkpoint` reads them as format 2, so they still load and resume correctly.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import subprocess
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import IO
from typing import Any

import torch

import reid_core
from reid_core.engine._io import sha256_file
from reid_core.errors import CheckpointError
from reid_core.files import atomic_write
from reid_core.files import atomic_write_text

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2
"""Format 2: 1-based ``epoch`` and ``best_epoch``; format 1 counted them from 0."""
_FORMATS = (1, CHECKPOINT_FORMAT)
LAST_NAME = "last.pt"
_EPOCH_RE = re.compile(r"^epoch_(\d{4,})\.pt$")


@functools.cache
def code_version() -> dict[str, Any]:
    """Version of the code that writes a checkpoint: package version and git commit if any.

    Returns:
        ``{"reid_core": "0.1.0", "git_commit": "<sha>" | None, "git_dirty": bool | None}``.
    """
    repo = Path(reid_core.__file__).resolve().parent.parent
    commit: str | None = None
    dirty: bool | None = None
    try:
        commit = _git(repo, "rev-parse", "HEAD")
        dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        logger.debug("no git commit available for %s", repo)
    return {"reid_core": reid_core.__version__, "git_commit": commit, "git_dirty": dirty}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def checksum_path(path: Path) -> Path:
    """The sidecar file holding the SHA-256 of checkpoint ``path``."""
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` to ``path`` plus its SHA-256 sidecar.

    The payload gets ``format``, ``code_version`` and ``created`` entries. The file is written
    to a temporary name, fsynced and renamed; the sidecar follows the same way, so a crash
    leaves either the previous checkpoint or a file that fails verification. The SHA-256 is
    computed from the bytes as they are written (no second read of a file of ~0.9 GB).

    Args:
        path: Destination ``.pt`` file.
        state: Tensors, state dicts and plain Python values (no custom classes, so that the
            file loads with ``torch.load(weights_only=True)``).

    Returns:
        ``path``.
    """
    path = Path(path)
    payload = {
        **state,
        "format": CHECKPOINT_FORMAT,
        "code_version": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    digest = hashlib.sha256()

    def write(handle: IO[bytes]) -> None:
        torch.save(payload, _HashingWriter(handle, digest))

    atomic_write(path, write)
    atomic_write_text(checksum_path(path), f"{digest.hexdigest()}  {path.name}\n")
    return path


class _HashingWriter:
    """A write-only file object that feeds every byte written through it to a digest."""

    def __init__(self, handle: IO[bytes], digest: Any) -> None:
        self._handle = handle
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()


def resolve_checkpoint(path: Path) -> Path:
    """The checkpoint file that ``path`` names: itself, or ``last.pt`` inside a directory.

    Raises:
        CheckpointError: If there is no such file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LAST_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def verify_checkpoint(path: Path) -> Path:
    """Check a checkpoint against its SHA-256 sidecar; returns the verified file.

    Raises:
        CheckpointError: If the file, or its sidecar, is missing or the digests differ.
    """
    real = resolve_checkpoint(path).resolve()
    sidecar = checksum_path(real)
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint {real} has no checksum file {sidecar.name}")
    try:
        expected = sidecar.read_bytes().decode("ascii").split(maxsplit=1)
    except (UnicodeDecodeError, OSError):
        raise CheckpointError(
            f"checkpoint {real} has an unreadable checksum file {sidecar.name} (not a SHA-256 line)"
        ) from None
    if not expected or sha256_file(real) != expected[0]:
        raise CheckpointError(f"checkpoint {real} fails its SHA-256 check (truncated or corrupt)")
    return real


def find_resumable_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint of a run directory that passes its checksum, for resuming.

    Tries every ``epoch_XXXX.pt`` from the newest epoch down, then ``last.pt`` (a copy where
    the file system has no symbolic links); a file that is truncated, corrupt or without its
    sidecar is skipped with a warning. ``last.pt`` is not trusted first: a run killed after
    an epoch's checkpoint and checksum were written, before ``last.pt`` moved, resumes from
    that epoch, not the one before. (A later epoch never belongs to an abandoned run: a run
    resumed from an earlier epoch drops those at once, :meth:`CheckpointManager.drop_after`.)
    A run whose checkpoints are all unusable restarts from scratch (``None``) instead of
    failing.

    Args:
        directory: The run directory (``output_dir`` of a training run).

    Returns:
        The verified checkpoint file, or ``None`` when there is none.

    Example:
        >>> find_resumable_checkpoint(Path("runs/study/trial_3"))  # doctest: +SKIP
        PosixPath('runs/study/trial_3/attempt_1/epoch_0009.pt')
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    epochs = sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if (m := _EPOCH_RE.match(p.name))
    )
    candidates = [path for _, path in reversed(epochs)] + [directory / LAST_NAME]
    seen: set[Path] = set()
    for candidate in candidates:
        if not candidate.exists() or candidate.resolve() in seen:
            continue
        seen.add(candidate.resolve())
        try:
            return verify_checkpoint(candidate)
        except CheckpointError as exc:
            logger.warning("not resuming from %s: %s", candidate.name, exc)
    return None


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify and load a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: A checkpoint file, ``last.pt``, or a run directory holding ``last.pt``.
        map_location: Where tensors are loaded.

    Returns:
        The stored dict (``epoch``: the 1-based epoch it ends, ``model``, ``config``,
        ``metrics``, ...); a format-1 checkpoint's 0-based epochs are returned 1-based.

    Raises:
        CheckpointError: If the file is missing, truncated, corrupt, or of an unknown format.
    """
    real = verify_checkpoint(path)
    try:
        state = torch.load(real, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling / zip error means the file is unusable
        raise CheckpointError(f"cannot read checkpoint {real}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") not in _FORMATS:
        raise CheckpointError(
            f"{real} is not a reid-hpo checkpoint of format {' or '.join(map(str, _FORMATS))}"
        )
    problem = _shape_problem(state)
    if problem is not None:
        raise CheckpointError(f"checkpoint {real} is malformed: {problem}")
    return _upgraded(state)


def _upgraded(state: dict[str, Any]) -> dict[str, Any]:
    """A format-1 checkpoint (0-based ``epoch`` and ``best_epoch``) as format 2 (1-based)."""
    if state["format"] == CHECKPOINT_FORMAT:
        return state
    for key in ("epoch", "best_epoch"):
        if isinstance(state.get(key), int):
            state[key] += 1
    state["format"] = CHECKPOINT_FORMAT
    return state


def _shape_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with the types of a loaded checkpoint's entries, or None."""
    epoch = state.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        return f"epoch is {epoch!r}, not an epoch number"
    model = state.get("model", {})
    if not isinstance(model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        return "model is not a state dict of named tensors"
    for key in ("config", "metrics"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            return f"{key} is a {type(state[key]).__name__}, not a mapping"
    return None


class CheckpointManager:
    """Writes ``epoch_XXXX.pt`` files (``XXXX``: the 1-based epoch) in one directory, keeps
    the newest ``keep`` of them and points ``last.pt`` (a relative symlink, or a copy where
    links are unsupported) at the newest.

    Args:
        directory: Where the checkpoints live (created on first save).
        keep: How many epoch checkpoints to keep (>= 1).
    """

    def __init__(self, directory: Path, *, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1")
        self.directory = Path(directory)
        self.keep = keep

    def path_for(self, epoch: int) -> Path:
        """File name of the checkpoint of a 1-based epoch."""
        return self.directory / f"epoch_{epoch:04d}.pt"

    @property
    def last(self) -> Path:
        """Path of the ``last.pt`` pointer."""
        return self.directory / LAST_NAME

    def latest(self) -> Path | None:
        """The checkpoint ``last.pt`` points at, or ``None`` when nothing was saved yet."""
        return self.last if self.last.exists() else None

    def save(self, state: dict[str, Any], *, epoch: int) -> Path:
        """Save the checkpoint of ``epoch`` (1-based), move ``last.pt`` to it and prune older
        ones.

        Checkpoints of later epochs (left by an abandoned run that this one resumed before)
        are removed too.

        Returns:
            The new ``epoch_XXXX.pt`` path.
        """
        path = save_checkpoint(self.path_for(epoch), state)
        self.point_last_to(path)
        self._prune(epoch)
        return path

    def point_last_to(self, path: Path) -> None:
        """Atomically make ``last.pt`` name the checkpoint ``path`` of this directory."""
        tmp = self.directory / f".{LAST_NAME}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.symlink(path.name, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
            shutil.copyfile(checksum_path(path), checksum_path(self.last))
        os.replace(tmp, self.last)

    def drop_after(self, epoch: int) -> None:
        """Remove the checkpoints of epochs after ``epoch`` (1-based): an abandoned run's,
        when this run resumes from an earlier epoch, so that none is ever resumed from; a
        ``last.pt`` naming one of them goes too."""
        dropped = {
            p.name
            for p in self.directory.glob("epoch_*.pt")
            if (m := _EPOCH_RE.match(p.name)) and int(m.group(1)) > epoch
        }
        if self.last.is_symlink() and os.readlink(self.last) in dropped:
            self.last.unlink()
        for name in sorted(dropped):
            checksum_path(self.directory / name).unlink(missing_ok=True)
            (self.directory / name).unlink(missing_ok=True)

    def _prune(self, current: int) -> None:
        epochs = sorted(
            int(m.group(1)) for p in self.directory.iterdir() if (m := _EPOCH_RE.match(p.name))
        )
        kept = [e for e in epochs if e <= current][-self.keep :]
        for epoch in epochs:
            if epoch not in kept:  # checksum first: a kill between leaves a checkpoint
                old = self.path_for(epoch)  # alone, which is never resumed and goes next time
                checksum_path(old).unlink(missing_ok=True)
                old.unlink(missing_ok=True)

    def remove_all(self, *, keep: Path | None = None) -> int:
        """Remove every checkpoint of the directory (epoch files, ``last.pt`` and their
        checksums) except ``keep`` and a ``last.pt`` naming it; other files stay.

        Returns:
            The bytes freed.
        """
        if not self.directory.is_dir():
            return 0
        kept: set[str] = set()
        if keep is not None:
            kept = {keep.name, checksum_path(keep).name}
            if self.last.is_symlink() and os.readlink(self.last) == keep.name:
                kept |= {LAST_NAME, checksum_path(self.last).name}
        checkpoints = {LAST_NAME} | {
            p.name for p in self.directory.iterdir() if _EPOCH_RE.match(p.name)
        }
        freed = 0
        sidecars = {checksum_path(Path(n)).name for n in checkpoints}
        # checksums first: a kill between leaves checkpoints alone, found and removed next time
        for name in [*sorted(sidecars), *sorted(checkpoints)]:
            path = self.directory / name
            if name not in kept and (path.exists() or path.is_symlink()):
                freed += path.lstat().st_size
                path.unlink()
        return freed
