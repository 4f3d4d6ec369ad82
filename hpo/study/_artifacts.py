"""Where a study's files live: folders named by identities that cannot collide.

A study's artifacts are under ``<artifacts.root>/<study uuid>/``; a trial's under
``trial_<n>/`` there (``n``: the number of the trial's first attempt, which its retries
inherit), and each attempt writes only its own ``run_<k>/``, named by the attempt's Optuna trial
number (a retry is a new trial): ``trial_7/run_7`` is trial 7's first run, ``trial_7/run_12``
its retry as trial 12. Optuna numbers are unique in a study, so no two attempts share a folder,
also racing retries on different hosts of an object store. (Folders of earlier versions are
named ``attempt_<k>``; their stored paths still resolve.) The free-form study name never
reaches the file system, so a renamed or re-created study, or two storages with the same study
name, share nothing.

Each attempt folder holds ``attempt.json``: the study uuid, the trial, the attempt and the hash
of its training configuration. A retry resumes from a predecessor's checkpoint only when that
record matches its own; it then takes the checkpoint over into its own folder (a hard link, or
a copy across file systems), removes the predecessor's checkpoint files and never reads that
folder again, so a predecessor that comes back to life cannot change what the retry resumed
from.

Retention: a running attempt keeps its newest checkpoints (the trainer's two); a pruned or
failed attempt drops its checkpoint files when it ends (a handed-back or stale one keeps them
until its retry has taken them over); the rest is :mod:`hpo.study._retention`. Paths are
recorded relative to the artifacts root (:func:`stored_path`), which is also how the object
store names them (:mod:`hpo.study._mirror`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.errors import ReidHpoError
from reid_core.config import TrainConfig

logger = logging.getLogger(__name__)

IDENTITY_FILE = "attempt.json"
_UUID_RE = re.compile(r"^[0-9a-f]{32}$")
# TrainConfig fields that may differ between attempts of one trial without changing what it
# learns: where it writes, which device and how many loader processes it uses.
_LOCAL_FIELDS = ("output_dir", "device", "data.num_workers")


class ArtifactPathError(ReidHpoError):
    """An artifact path would leave the artifacts root, or a study identity is malformed."""


@dataclass(frozen=True)
class AttemptIdentity:
    """What an attempt folder records about its owner (``attempt.json``)."""

    study_uuid: str
    trial: int
    attempt: int
    config_hash: str

    def same_run(self, other: AttemptIdentity) -> bool:
        """Whether ``other`` trains the same trial of the same study with the same config."""
        return (self.study_uuid, self.trial, self.config_hash) == (
            other.study_uuid,
            other.trial,
            other.config_hash,
        )


def _inside(root: Path, path: Path) -> Path:
    resolved_root, resolved = root.resolve(), path.resolve()
    if not resolved.is_relative_to(resolved_root):
        raise ArtifactPathError(f"artifact path {path} is outside the artifacts root {root}")
    return path


def study_dir(root: str | Path, study_uuid: str) -> Path:
    """``<root>/<study uuid>``, checked to be a uuid and to stay under ``root``.

    Raises:
        ArtifactPathError: ``study_uuid`` is not 32 lower-case hex digits.
    """
    if not _UUID_RE.match(study_uuid):
        raise ArtifactPathError(f"study uuid {study_uuid!r} is not 32 hex digits")
    return _inside(Path(root), Path(root) / study_uuid)


def attempt_dir(root: str | Path, study_uuid: str, *, trial: int, attempt: int) -> Path:
    """The folder one attempt of a trial writes (see the module docs)."""
    if trial < 0 or attempt < 0:
        raise ArtifactPathError(f"trial {trial} / attempt {attempt} must be >= 0")
    base = study_dir(root, study_uuid)
    return _inside(Path(root), base / f"trial_{trial}" / f"run_{attempt}")


def config_hash(cfg: TrainConfig) -> str:
    """SHA-256 of a training configuration, without the fields an attempt may change."""
    data: dict[str, Any] = cfg.to_dict()
    for dotted in _LOCAL_FIELDS:
        *parents, leaf = dotted.split(".")
        section = data
        for part in parents:
            section = section.get(part, {})
        section.pop(leaf, None)
    canonical = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_json_file(path: Path, data: dict[str, Any]) -> None:
    """Create ``path``'s folder and write ``data`` there as JSON, atomically (a temporary file
    renamed; torch-free, so that light commands stay light)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_identity(folder: Path, identity: AttemptIdentity) -> None:
    """Create ``folder`` and write its ``attempt.json`` atomically."""
    write_json_file(folder / IDENTITY_FILE, asdict(identity))


def read_identity(folder: Path) -> AttemptIdentity | None:
    """The identity recorded in ``folder``, or None when it is missing or unreadable."""
    try:
        raw = json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
        return AttemptIdentity(
            study_uuid=str(raw["study_uuid"]),
            trial=int(raw["trial"]),
            attempt=int(raw["attempt"]),
            config_hash=str(raw["config_hash"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def take_over(checkpoint: Path, folder: Path) -> Path:
    """Give ``folder`` its own copy of a predecessor's checkpoint (and checksum sidecar), under
    the same name and with ``last.pt`` naming it, so that it is resumable from ``folder`` alone
    (a retry of this retry finds it there).

    A hard link costs no space and survives the predecessor's folder being pruned or
    rewritten; across file systems the file is copied.

    Returns:
        The path of the checkpoint inside ``folder``.
    """
    from reid_core.engine import CheckpointManager  # torch: only workers take over
    from reid_core.engine import checksum_path

    folder.mkdir(parents=True, exist_ok=True)
    for source in (checkpoint, checksum_path(checkpoint)):
        target = folder / source.name
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    taken = folder / checkpoint.name
    manager = CheckpointManager(folder)
    if taken != manager.last:
        manager.point_last_to(taken)
    return taken


def stored_path(root: str | Path, path: str | Path) -> str:
    """``path`` as recorded in the study: relative to the artifacts root when it lies under it,
    so that every machine (and working directory) resolves it against its own root."""
    try:
        return str(Path(path).relative_to(Path(root)))
    except ValueError:
        return str(path)


def resolve_stored(root: str | Path, value: str) -> Path:
    """The path a stored value names on this machine (see :func:`stored_path`)."""
    path = Path(value)
    return path if path.is_absolute() else Path(root) / path


def drop_checkpoints(folder: Path, *, keep: Path | None = None) -> int:
    """Remove the checkpoint files of a finished attempt (its logs and ``attempt.json`` stay).

    Args:
        folder: The attempt folder.
        keep: A checkpoint of ``folder`` to keep, with its checksum and a ``last.pt`` naming it.

    Returns:
        The bytes freed.
    """
    from reid_core.engine import CheckpointManager  # torch: only workers apply retention

    return CheckpointManager(folder).remove_all(keep=keep)


def owned_attempt(root: str | Path, study_uuid: object, folder: Path) -> bool:
    """Whether ``folder`` resolves under ``<root>/<study_uuid>`` and its ``attempt.json``
    names that study: the only folders retention may empty."""
    if not isinstance(study_uuid, str):
        return False
    try:
        inside = folder.resolve().is_relative_to(study_dir(root, study_uuid).resolve())
    except (ArtifactPathError, OSError):
        return False
    identity = read_identity(folder) if inside else None
    return identity is not None and identity.study_uuid == study_uuid


@dataclass(frozen=True)
class RemovedArtifacts:
    """What :func:`remove_study_artifacts` did."""

    folder: Path
    removed: bool
    error: str | None = None
    """Why the folder could not be removed completely (None when it was, or was not there)."""


def remove_study_artifacts(
    root: str | Path, study_uuid: str, *, attempts: int = 5, pause_s: float = 1.0
) -> RemovedArtifacts:
    """Delete a study's artifact folder when this machine sees it.

    A worker still training when its study is deleted writes until the end of its epoch, so a
    removal that races with it is tried again a few times.

    Returns:
        The folder, whether it was removed (False: not there, e.g. on another machine, or
        still not empty after the last attempt, with the reason in ``error``).
    """
    folder = study_dir(root, study_uuid)
    if not folder.exists():
        return RemovedArtifacts(folder, removed=False)
    error = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause_s)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass  # its last files vanished under us (a worker's own cleanup): removed all the same
        except OSError as exc:
            error = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        if not folder.exists():
            logger.info("removed the study's artifacts %s", folder)
            return RemovedArtifacts(folder, removed=True)
    return RemovedArtifacts(folder, removed=False, error=error)


__all__ = [
    "IDENTITY_FILE",
    "ArtifactPathError",
    "AttemptIdentity",
    "RemovedArtifacts",
    "attempt_dir",
    "config_hash",
    "drop_checkpoints",
    "owned_attempt",
    "read_identity",
    "remove_study_artifacts",
    "resolve_stored",
    "stored_path",
    "study_dir",
    "take_over",
    "write_identity",
]
