"""Readers of the public video re-ID layouts: MARS, iLIDS-VID and PRID-2011."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from reid_core.data.datasets._base import DATASETS
from reid_core.data.datasets._base import DatasetSummary
from reid_core.data.datasets._base import SubsetSummary
from reid_core.data.datasets._base import VideoDataset
from reid_core.data.datasets._ilidsvid import ILIDSVID
from reid_core.data.datasets._mars import Mars
from reid_core.data.datasets._mars import MarsGallery
from reid_core.data.datasets._prid2011 import PRID2011
from reid_core.errors import ConfigError

#: Readers kept by :func:`build_dataset`, most recently used last.
_OPENED: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], VideoDataset]] = OrderedDict()
_KEEP = 4


def build_dataset(
    name: str,
    root: str | Path,
    *,
    split_id: int = 0,
    mars_gallery: MarsGallery = "exclude_query",
    min_frames: int | None = None,
    reuse: bool = True,
) -> VideoDataset:
    """Open the dataset registered as ``name`` at ``root`` (parsed lazily, once per process).

    With ``reuse`` (the default) the same reader, and so its parse, is returned again for the
    same arguments as long as the dataset's index files (:meth:`VideoDataset.index_files`)
    keep their modification time and size: a worker parses MARS's index once, not once per
    trial. The last four datasets are kept.

    Args:
        name: ``"mars"``, ``"ilidsvid"`` or ``"prid"``.
        root: the dataset's root folder.
        split_id: iLIDS-VID / PRID-2011 split (0..9); MARS has one fixed split (0).
        mars_gallery: MARS gallery convention, ``"exclude_query"`` or ``"official"``; ignored
            by the other datasets.
        min_frames: PRID-2011's per-camera eligibility threshold (None: 21); elsewhere, drop
            tracklets shorter than this (None: keep all).

    Returns:
        The reader; its ``train`` / ``query`` / ``gallery`` are parsed on first access.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: ``split_id`` is not 0 for MARS.

    Example:
        >>> ds = build_dataset("prid", "data/prid", split_id=3)  # doctest: +SKIP
        >>> ds.num_train_pids  # doctest: +SKIP
        89
    """
    cls = DATASETS.get(name)
    if cls is Mars:
        if split_id != 0:
            raise ConfigError(f"split_id={split_id}; MARS has a single fixed split (0)")
        dataset: VideoDataset = Mars(root, mars_gallery=mars_gallery, min_frames=min_frames)
    else:
        dataset = cls(root, split_id=split_id, min_frames=min_frames)  # type: ignore[call-arg]
    if not reuse:
        return dataset
    key = (name, str(dataset.root.resolve()), split_id, mars_gallery, min_frames)
    stamp = dataset.fingerprint()
    kept = _OPENED.pop(key, None)
    if kept is not None and kept[0] == stamp:
        dataset = kept[1]
    _OPENED[key] = (stamp, dataset)
    while len(_OPENED) > _KEEP:
        _OPENED.popitem(last=False)
    return dataset


__all__ = [
    "DATASETS",
    "ILIDSVID",
    "PRID2011",
    "DatasetSummary",
    "Mars",
    "SubsetSummary",
    "VideoDataset",
    "build_dataset",
]
