"""MARS (Zheng et al., ECCV 2016): 1,261 ids, 6 cameras, 8,298 train / 1,980 query tracklets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.io

from reid_core.data._frames import sort_frame_names
from reid_core.data.datasets._base import DATASETS
from reid_core.data.datasets._base import VideoDataset
from reid_core.data.datasets._base import drop_short
from reid_core.data.datasets._base import relabel
from reid_core.data.records import FrameList
from reid_core.data.records import ReidSplit
from reid_core.data.records import Tracklet
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError

MarsGallery = Literal["exclude_query", "official"]

_NAME = re.compile(r"^(?P<pid>\d\d-1|\d{4})C(?P<cam>\d+)T(?P<track>\d+)F(?P<frame>\d+)\.\w+$")
_INDEX_FILES = (
    "train_name.txt",
    "test_name.txt",
    "tracks_train_info.mat",
    "tracks_test_info.mat",
    "query_IDX.mat",
)
_NAMES = re.compile(r"(?:(?:\d\d-1|\d{4})C\d+T\d+F\d+\.\w+(?:\n|\Z))*", re.ASCII)


@DATASETS.register("mars")
class Mars(VideoDataset):
    """MARS in its public layout.

    Junk tracklets (pid -1, folder ``00-1``) are dropped from query and gallery; distractors
    (pid 0) stay in the gallery as negatives. Two gallery conventions:

    - ``"exclude_query"``: every test tracklet except the queries (9,330 on MARS; torchreid's).
    - ``"official"``: the queries are kept in the gallery (11,310), their same-camera matches
      being ignored at evaluation as usual.

    Args:
        root: folder holding ``bbox_train/``, ``bbox_test/`` and ``info/``.
        mars_gallery: the gallery convention above.
        min_frames: drop tracklets shorter than this (None keeps all).

    Example:
        >>> ds = Mars("data/mars")  # doctest: +SKIP
        >>> ds.summary().query.tracklets  # doctest: +SKIP
        1980
    """

    name = "mars"
    layout = (
        "bbox_train/<pid4>/<pid4>C<cam>T<tracklet4>F<frame3>.jpg, bbox_test/..., "
        "info/{train_name.txt,test_name.txt,tracks_train_info.mat,tracks_test_info.mat,"
        "query_IDX.mat}"
    )

    def __init__(
        self,
        root: str | Path,
        *,
        mars_gallery: MarsGallery = "exclude_query",
        min_frames: int | None = None,
    ) -> None:
        super().__init__(root)
        if mars_gallery not in ("exclude_query", "official"):
            raise ConfigError(
                f"mars_gallery={mars_gallery!r}; expected 'exclude_query' or 'official'"
            )
        self.mars_gallery = mars_gallery
        self.min_frames = min_frames

    def index_files(self) -> list[Path]:
        """The files the parse reads (their changes invalidate a cached parse)."""
        info = self.root / "info"
        return [info / name for name in _INDEX_FILES]

    def _parse(self) -> ReidSplit:
        info = self.root / "info"
        train_names = self._names(self._require(info / "train_name.txt", "train frame list"))
        test_names = self._names(self._require(info / "test_name.txt", "test frame list"))
        track_train = self._matrix(
            self._require(info / "tracks_train_info.mat", "train tracklet table"),
            "track_train_info",
            columns=4,
        )
        track_test = self._matrix(
            self._require(info / "tracks_test_info.mat", "test tracklet table"),
            "track_test_info",
            columns=4,
        )
        query_path = self._require(info / "query_IDX.mat", "query row indices")
        query_idx = self._matrix(query_path, "query_IDX", columns=None).reshape(-1) - 1
        bad = np.flatnonzero((query_idx < 0) | (query_idx >= len(track_test)))
        if bad.size:
            raise DatasetFormatError(
                f"{query_path}: entry {bad[0] + 1} = {query_idx[bad[0]] + 1} is outside the "
                f"{len(track_test)} rows of tracks_test_info.mat (expected 1-based row numbers)"
            )

        train = self._tracklets(train_names, track_train, info / "tracks_train_info.mat", "train")
        test = self._tracklets(test_names, track_test, info / "tracks_test_info.mat", "test")
        query_rows = set(query_idx.tolist())
        query = [t for i in sorted(query_rows) if (t := test[i]) is not None]
        if self.mars_gallery == "official":
            gallery = [t for t in test if t is not None]
        else:
            gallery = [t for i, t in enumerate(test) if t is not None and i not in query_rows]
        train_records = [t for t in train if t is not None]
        return ReidSplit(
            train=relabel(drop_short(train_records, self.min_frames)),
            query=drop_short(query, self.min_frames),
            gallery=drop_short(gallery, self.min_frames),
        )

    @staticmethod
    def _names(path: Path) -> list[str]:
        try:
            text = path.read_text(encoding="ascii")
        except (UnicodeDecodeError, OSError) as exc:
            raise DatasetFormatError(f"{path}: cannot read the frame list ({exc})") from None
        names = text.split()
        if not _NAMES.fullmatch("\n".join(names)):  # one C-level pass over 1.19 M names
            bad = next(n for n in names if _NAME.match(n) is None)
            raise DatasetFormatError(
                f"{path.name}: {bad!r} is not <pid4>C<cam>T<tracklet>F<frame>.jpg"
            )
        return names

    @staticmethod
    def _matrix(path: Path, key: str, columns: int | None) -> np.ndarray:
        try:
            raw = scipy.io.loadmat(str(path))
        except Exception as exc:  # scipy raises several unrelated types on bad files
            raise DatasetFormatError(f"{path}: not a readable .mat file ({exc})") from None
        if key not in raw:
            found = sorted(k for k in raw if not k.startswith("__"))
            raise DatasetFormatError(f"{path}: no variable {key!r} (found {found})")
        matrix = np.asarray(raw[key])
        if not np.issubdtype(matrix.dtype, np.number) or not np.all(np.isfinite(matrix)):
            raise DatasetFormatError(f"{path}: {key!r} must hold finite numbers")
        if np.any(matrix != np.round(matrix)):
            raise DatasetFormatError(f"{path}: {key!r} must hold integers")
        matrix = matrix.astype(np.int64)
        if columns is not None and (matrix.ndim != 2 or matrix.shape[1] != columns):
            raise DatasetFormatError(
                f"{path}: {key!r} has shape {matrix.shape}; expected (N, {columns}) rows of "
                "start, end, pid, camid"
            )
        return matrix

    def _tracklets(
        self, names: list[str], table: np.ndarray, table_path: Path, subset: str
    ) -> list[Tracklet | None]:
        """One entry per table row; ``None`` for junk (pid -1) rows.

        The names are already checked against the MARS pattern (:meth:`_names`); per row,
        every name must carry the row's pid and camera, and the frames are kept in frame
        number order (the release's order when its names are sorted, re-sorted otherwise).
        """
        folder = self.root / f"bbox_{subset}"
        out: list[Tracklet | None] = []
        n_names = len(names)
        for row, (start, end, pid, camid) in enumerate(table.tolist(), start=1):
            if not 1 <= start <= end <= n_names:
                raise DatasetFormatError(
                    f"{table_path}: row {row} spans frames {start}..{end}; expected "
                    f"1 <= start <= end <= {n_names} (lines of {subset}_name.txt)"
                )
            if camid < 1:
                raise DatasetFormatError(
                    f"{table_path}: row {row} has camid {camid}; expected >= 1"
                )
            if pid == -1:
                out.append(None)
                continue
            pid_folder = f"{pid:04d}"
            prefix = f"{pid_folder}C{camid}T"
            frames = names[start - 1 : end]
            if not all(name.startswith(prefix) for name in frames):
                other = next(name for name in frames if not name.startswith(prefix))
                raise DatasetFormatError(
                    f"{table_path}: row {row} (pid {pid}, camera {camid}) covers frame "
                    f"{other!r} of another person or camera"
                )
            if frames != sorted(frames) or len({len(name) for name in frames}) > 1:
                frames = sort_frame_names(frames, folder / pid_folder)
            out.append(Tracklet(FrameList(folder / pid_folder, frames), int(pid), int(camid) - 1))
        return out
