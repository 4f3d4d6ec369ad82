"""A full integrity check of a dataset: parse it and open every frame."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from reid_core.data._frames import verify_frame
from reid_core.data.datasets import DatasetSummary
from reid_core.data.datasets import build_dataset
from reid_core.data.datasets._mars import MarsGallery

logger = logging.getLogger(__name__)


def check_dataset(
    root: str | Path,
    name: str,
    *,
    split_id: int = 0,
    mars_gallery: MarsGallery = "exclude_query",
    min_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetSummary:
    """Parse the dataset and open every frame of train, query and gallery.

    Args:
        root: the dataset root.
        name: ``"mars"``, ``"ilidsvid"`` or ``"prid"``.
        split_id: see :func:`build_dataset`.
        mars_gallery: see :func:`build_dataset`.
        min_frames: see :func:`build_dataset`.
        progress: called as ``progress(done, total)`` every 1,000 frames and at the end.

    Returns:
        The dataset's counts.

    Raises:
        DatasetNotFoundError: the root or a required file is missing.
        DatasetFormatError: a list / table is malformed, or the first missing or corrupt frame
            (named in the message).
    """
    dataset = build_dataset(
        name, root, split_id=split_id, mars_gallery=mars_gallery, min_frames=min_frames
    )
    seen: set[Path] = set()
    frames: list[Path] = []
    for subset in (dataset.train, dataset.query, dataset.gallery):
        for record in subset:
            for frame in record.frames:
                if frame not in seen:
                    seen.add(frame)
                    frames.append(frame)
    for done, frame in enumerate(frames, start=1):
        verify_frame(frame)
        if progress is not None and (done % 1000 == 0 or done == len(frames)):
            progress(done, len(frames))
    logger.info("%s at %s: %d frames verified", name, root, len(frames))
    return dataset.summary()
