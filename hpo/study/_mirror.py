"""Attempt folders mirrored to the object store (``artifacts.kind: s3``), with a local cache.

Each host trains in its own ``artifacts.root`` (the cache: the working copy). After every
checkpoint the attempt folder is pushed: the new checkpoint before its checksum file (so a
reader never finds a checksum without its checkpoint), then ``metrics.jsonl``,
``attempt.json``, the configuration and the TensorBoard event files; the checkpoints the
trainer rotated out locally are then deleted from the store. A retry on any host fetches its
predecessor's ``attempt.json``, ``metrics.jsonl`` and newest checkpoint into its own cache and
takes it over exactly as on a shared file system (same record check, same checksum check).

:class:`ArtifactMirror` with no store is the shared-file-system case: fetch and push do
nothing, drop removes the local checkpoints only.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.study._artifacts import drop_checkpoints
from hpo.study._artifacts import stored_path
from hpo.study._artifacts import study_dir
from hpo.study._object_store import ObjectStore
from hpo.study._object_store import ObjectStoreError
from hpo.study._object_store import open_store

if TYPE_CHECKING:
    from hpo.spec import ArtifactsSpec

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^(epoch_\d{4,}|last)\.pt(\.sha256)?$")
_EPOCH_FILE = re.compile(r"^epoch_(\d{4,})\.pt$")
_LOGS = ("attempt.json", "metrics.jsonl")  # what a retry needs besides the checkpoint


def is_checkpoint_file(name: str) -> bool:
    """Whether a file name is a checkpoint or its checksum (``epoch_0007.pt[.sha256]``,
    ``last.pt[.sha256]``)."""
    return _CHECKPOINT.match(name) is not None


@dataclass(frozen=True)
class ArtifactMirror:
    """The local artifacts ``root`` and, for ``kind: s3``, the ``store`` that mirrors it."""

    root: Path
    store: ObjectStore | None = None

    def push(self, folder: Path) -> None:
        """Upload an attempt folder's files that the store lacks or holds at another size
        (checkpoints) or at all (the small files), then delete the checkpoints it no longer
        has. A failure is logged, not raised: training goes on and the next push retries."""
        if self.store is None or not folder.is_dir():
            return
        rel = stored_path(self.root, folder)
        try:
            remote = {o.rel: o.size for o in self.store.list(rel)}
            local = _files_to_push(folder)
            for path in local:
                key = f"{rel}/{path.relative_to(folder).as_posix()}"
                if path.suffix != ".pt" or remote.get(key) != path.stat().st_size:
                    self.store.upload(path, key)
            names = {f"{rel}/{p.relative_to(folder).as_posix()}" for p in local}
            self.store.delete(
                k for k in remote if is_checkpoint_file(k.rsplit("/", 1)[-1]) and k not in names
            )
        except (ObjectStoreError, OSError) as exc:
            logger.warning("artifacts of %s not pushed to the object store: %s", rel, exc)

    def fetch(self, folder: Path) -> str | None:
        """Bring a predecessor attempt's record, metrics and newest checkpoint into the local
        cache when this host does not hold a checkpoint of it already.

        Returns:
            Why nothing could be fetched (None when the files are here or came).
        """
        if self.store is None or _has_checkpoint(folder):
            return None
        rel = stored_path(self.root, folder)
        try:
            names = {o.rel.removeprefix(f"{rel}/") for o in self.store.list(rel)}
            epochs = sorted(
                (int(m.group(1)), n)
                for n in names
                if (m := _EPOCH_FILE.match(n)) and f"{n}.sha256" in names
            )
            if not epochs:
                return f"the object store holds no checkpoint of {rel}"
            newest = epochs[-1][1]
            for name in (*(n for n in _LOGS if n in names), newest, f"{newest}.sha256"):
                self.store.download(f"{rel}/{name}", folder / name)
        except (ObjectStoreError, OSError) as exc:
            return f"cannot fetch {rel} from the object store: {exc}"
        return None

    def adopt(self, previous: Path, name: str, folder: Path) -> None:
        """Give ``folder`` in the store its own copy of the checkpoint ``name`` (and checksum)
        of the attempt folder ``previous`` by a server-side copy, so that pushing ``folder``
        uploads nothing large."""
        if self.store is None:
            return
        source, target = stored_path(self.root, previous), stored_path(self.root, folder)
        try:
            for file in (name, f"{name}.sha256"):
                self.store.copy(f"{source}/{file}", f"{target}/{file}")
        except ObjectStoreError as exc:
            logger.warning("%s (the push uploads it instead)", exc)

    def fetch_checkpoint(self, path: Path) -> None:
        """Bring one checkpoint file and its checksum into this host's cache when absent (a
        missing object leaves it absent: the caller says so)."""
        if self.store is None or path.exists():
            return
        rel = stored_path(self.root, path)
        try:
            for name in (f"{rel}.sha256", rel):
                self.store.download(name, self.root / name)
        except ObjectStoreError as exc:
            logger.warning("%s", exc)
            path.unlink(missing_ok=True)

    def drop(self, folder: Path, *, keep: Path | None = None) -> int:
        """Remove an attempt's checkpoints (but ``keep``) here and in the store.

        Returns:
            The bytes freed on this machine.
        """
        freed = drop_checkpoints(folder, keep=keep)
        if self.store is not None:
            rel = stored_path(self.root, folder)
            kept = {keep.name, f"{keep.name}.sha256"} if keep is not None else set()
            try:
                self.store.delete(
                    o.rel
                    for o in self.store.list(rel)
                    if is_checkpoint_file(name := o.rel.rsplit("/", 1)[-1]) and name not in kept
                )
            except ObjectStoreError as exc:
                logger.warning("checkpoints of %s not removed from the object store: %s", rel, exc)
        return freed

    def stored_checkpoints(self, study_uuid: str) -> dict[str, list[str]]:
        """The study's checkpoint objects by attempt folder (relative to the root): one
        listing of the study's prefix (empty without a store)."""
        if self.store is None:
            return {}
        found: dict[str, list[str]] = defaultdict(list)
        for o in self.store.list(study_uuid):
            folder, _, name = o.rel.rpartition("/")
            if is_checkpoint_file(name):
                found[folder].append(name)
        return dict(found)

    def remove_study(self, study_uuid: str) -> int:
        """Delete every object of the study (its prefix only) and this host's cache of it.

        Returns:
            How many objects were deleted.

        Raises:
            ObjectStoreError: The store cannot be reached or refused.
        """
        if self.store is None:
            return 0
        count = self.store.delete_folder(study_uuid)
        shutil.rmtree(study_dir(self.root, study_uuid), ignore_errors=True)
        logger.info("removed %d objects of study %s from %s", count, study_uuid, self.store.url)
        return count


def _files_to_push(folder: Path) -> list[Path]:
    """The folder's files in upload order: checkpoints, their checksums, then the rest;
    ``last.pt`` (a pointer), temporary and hidden files stay local."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not p.name.startswith("last.pt")
        and not p.is_symlink()
    ]
    return sorted(
        files, key=lambda p: (0 if p.suffix == ".pt" else 1 if p.suffix == ".sha256" else 2, str(p))
    )


def _has_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and any(_EPOCH_FILE.match(p.name) for p in folder.iterdir())


def mirror_of(artifacts: ArtifactsSpec, root: str | Path | None = None) -> ArtifactMirror:
    """The mirror of an ``artifacts:`` setting (``root``: this host's, when not the spec's)."""
    return ArtifactMirror(Path(root if root is not None else artifacts.root), open_store(artifacts))


__all__ = ["ArtifactMirror", "is_checkpoint_file", "mirror_of"]
