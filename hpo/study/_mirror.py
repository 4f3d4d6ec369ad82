"""Attempt folders mirrored to the object store (``artifacts.kind: s3``), with a local cache.

Each host trains in its own ``artifacts.root`` (the cache: the working copy). After every
checkpoint the attempt folder is pushed: ``metrics.jsonl`` and ``attempt.json`` first (so
a checkpoint in the store never lacks its epoch's log line, as on disk), then the new
checkpoint before its checksum file (so a reader never finds a checksum without its
checkpoint), then the configuration and the TensorBoard event files; the checkpoints the
trainer rotated out locally are then deleted from the store. A retry on any host fetches its
predecessor's ``attempt.json``, ``metrics.jsonl`` and newest checkpoint into its own cache and
takes it over exactly as on a shared file system (same record check, same checksum check).
A retrain folder (:mod:`hpo.study._retrain`) is pushed the same way and restored into a
host's cache before it resumes.

:class:`ArtifactMirror` with no store is the shared-file-system case: fetch and push do
nothing, drop removes the local checkpoints only.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
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
_LAST = "last.pt"  # the trainer's pointer at its newest checkpoint (a symbolic link)


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
        """:meth:`sync`, with a failure logged, not raised: training goes on and the next push
        retries."""
        if self.store is None or not folder.is_dir():
            return
        try:
            self.sync(folder)
        except (ObjectStoreError, OSError) as exc:
            rel = stored_path(self.root, folder)
            logger.warning("artifacts of %s not pushed to the object store: %s", rel, exc)

    def sync(self, folder: Path) -> None:
        """Upload a folder's files that the store lacks or holds at another size or under
        another checksum (checkpoints) or at all (the small files), then delete the checkpoints
        it no longer has (a no-op without a store).

        Raises:
            ObjectStoreError: The store cannot be reached or refused.
            OSError: A local file cannot be read.
        """
        if self.store is None or not folder.is_dir():
            return
        rel = stored_path(self.root, folder)
        remote = {o.rel: o.size for o in self.store.list(rel)}
        local = _files_to_push(folder)
        for path in local:
            key = f"{rel}/{path.relative_to(folder).as_posix()}"
            if path.suffix != ".pt" or not self._holds(key, path, remote):
                self.store.upload(path, key)
        names = {f"{rel}/{p.relative_to(folder).as_posix()}" for p in local}
        self.store.delete(
            k for k in remote if is_checkpoint_file(k.rsplit("/", 1)[-1]) and k not in names
        )

    def _holds(self, key: str, path: Path, remote: dict[str, int]) -> bool:
        """Whether the store's object ``key`` is the local checkpoint ``path``: same size and
        same checksum file. A same-sized object under no or another checksum (one a host killed
        mid-push left, before another host redid that epoch) is not, and is uploaded over."""
        if self.store is None or remote.get(key) != path.stat().st_size:
            return False
        sidecar = path.with_name(f"{path.name}.sha256")
        return sidecar.is_file() and self.store.get_bytes(f"{key}.sha256") == sidecar.read_bytes()

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
            names = _names(self.store, rel)
            newest = _newest_checkpoint(names)
            if newest is None:
                return f"the object store holds no checkpoint of {rel}"
            _download(self.store, rel, folder, [*(n for n in _LOGS if n in names), newest])
        except (ObjectStoreError, OSError) as exc:
            return f"cannot fetch {rel} from the object store: {exc}"
        return None

    def restore(self, folder: Path, records: tuple[str, ...]) -> None:
        """Bring the named small files of a folder and its newest checkpoint (with checksum),
        whichever the store holds, into this host's cache, unless this host holds a checkpoint
        of it as new as the store's (a no-op without a store): a host whose cache kept an older
        copy resumes from the newer one another host pushed since.

        Raises:
            ObjectStoreError: The store cannot be reached or refused.
            OSError: The cache cannot be written.
        """
        if self.store is None:
            return
        rel = stored_path(self.root, folder)
        names = _names(self.store, rel)
        newest = _newest_checkpoint(names)
        mine = _newest_checkpoint(_local_names(folder))
        here = _newest_epoch([mine] if mine else [])
        theirs = _newest_epoch([newest] if newest else [])
        if here is not None and (theirs is None or theirs <= here):
            return
        wanted = [n for n in records if n in names] + ([newest] if newest else [])
        _download(self.store, rel, folder, wanted)
        if here is not None:  # ``last.pt`` points at this host's older checkpoint
            (folder / _LAST).unlink(missing_ok=True)

    def clear(self, folder: Path) -> int:
        """Delete every object of a folder from the store; returns how many (0 without one).

        Raises:
            ObjectStoreError: The store cannot be reached or refused.
        """
        return 0 if self.store is None else self.store.delete_folder(stored_path(self.root, folder))

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
    """The folder's files in upload order: the logs, checkpoints, their checksums, then the
    rest; ``last.pt`` (a pointer), temporary and hidden files stay local."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not p.name.startswith("last.pt")
        and not p.is_symlink()
    ]
    return sorted(files, key=lambda p: (_push_rank(p), str(p)))


def _push_rank(path: Path) -> int:
    """A file's place in the upload order of :func:`_files_to_push`."""
    if path.name in _LOGS:
        return 0
    return {".pt": 1, ".sha256": 2}.get(path.suffix, 3)


def _names(store: ObjectStore, rel: str) -> set[str]:
    """The names of the objects under the folder ``rel``, relative to it."""
    return {o.rel.removeprefix(f"{rel}/") for o in store.list(rel)}


def _download(store: ObjectStore, rel: str, folder: Path, names: list[str]) -> None:
    """Download ``names`` of the folder ``rel`` into ``folder``; a checkpoint's checksum right
    after it."""
    for name in names:
        for file in (name, f"{name}.sha256") if _EPOCH_FILE.match(name) else (name,):
            store.download(f"{rel}/{file}", folder / file)


def _newest_checkpoint(names: set[str]) -> str | None:
    """The newest ``epoch_XXXX.pt`` among ``names`` that has its checksum beside it."""
    epochs = sorted(
        (int(m.group(1)), n)
        for n in names
        if (m := _EPOCH_FILE.match(n)) and f"{n}.sha256" in names
    )
    return epochs[-1][1] if epochs else None


def _newest_epoch(names: Iterable[str]) -> int | None:
    """The highest epoch among the ``epoch_XXXX.pt`` file names (None: there is none)."""
    return max((int(m.group(1)) for n in names if (m := _EPOCH_FILE.match(n))), default=None)


def _local_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint with its checksum (a download cut between the
    two leaves a checkpoint alone, which does not count: the next fetch completes it)."""
    return _newest_checkpoint(_local_names(folder)) is not None


def mirror_of(artifacts: ArtifactsSpec, root: str | Path | None = None) -> ArtifactMirror:
    """The mirror of an ``artifacts:`` setting (``root``: this host's, when not the spec's)."""
    return ArtifactMirror(Path(root if root is not None else artifacts.root), open_store(artifacts))


__all__ = ["ArtifactMirror", "is_checkpoint_file", "mirror_of"]
