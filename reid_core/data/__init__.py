"""Video re-ID data: dataset readers, a synthetic writer, validation carving, sampling, loading.

Example:
    >>> from reid_core.data import build_dataset, write_synthetic
    >>> root = write_synthetic("/tmp/mars_tiny", "mars", ids=8)  # doctest: +SKIP
    >>> ds = build_dataset("mars", root)  # doctest: +SKIP
    >>> ds.summary().train.ids  # doctest: +SKIP
    4
"""

from __future__ import annotations

from reid_core.data._check import check_dataset
from reid_core.data._frames import frame_number
from reid_core.data._frames import sort_frames
from reid_core.data._guided import GUIDED_PRESETS
from reid_core.data._guided import PAPER_GUIDED_IDS
from reid_core.data._guided import guided_preset
from reid_core.data._loaders import TrackletDataset
from reid_core.data._loaders import build_test_loader
from reid_core.data._loaders import build_train_loader
from reid_core.data._metadata import MarsSize
from reid_core.data._metadata import write_mars_metadata
from reid_core.data._samplers import RandomIdentitySampler
from reid_core.data._samplers import sample_test_clips
from reid_core.data._samplers import sample_train_clip
from reid_core.data._synthetic import LAYOUTS
from reid_core.data._synthetic import write_synthetic
from reid_core.data._transforms import ERASING_STYLES
from reid_core.data._transforms import IMAGENET_MEAN
from reid_core.data._transforms import IMAGENET_STD
from reid_core.data._transforms import ClipAugment
from reid_core.data._transforms import ErasingStyle
from reid_core.data._transforms import build_test_transform
from reid_core.data._transforms import build_train_transform
from reid_core.data._transforms import draw_erase_box
from reid_core.data._transforms import erase_boxes
from reid_core.data._transforms import erased_frames
from reid_core.data._transforms import erasing_style
from reid_core.data._validation import HardnessFn
from reid_core.data._validation import carve_validation
from reid_core.data._validation import colour_histogram_hardness
from reid_core.data.datasets import DATASETS
from reid_core.data.datasets import ILIDSVID
from reid_core.data.datasets import PRID2011
from reid_core.data.datasets import DatasetSummary
from reid_core.data.datasets import Mars
from reid_core.data.datasets import SubsetSummary
from reid_core.data.datasets import VideoDataset
from reid_core.data.datasets import build_dataset
from reid_core.data.records import ReidSplit
from reid_core.data.records import Tracklet

__all__ = [
    "DATASETS",
    "ERASING_STYLES",
    "GUIDED_PRESETS",
    "ILIDSVID",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYOUTS",
    "PAPER_GUIDED_IDS",
    "PRID2011",
    "ClipAugment",
    "DatasetSummary",
    "ErasingStyle",
    "HardnessFn",
    "Mars",
    "MarsSize",
    "RandomIdentitySampler",
    "ReidSplit",
    "SubsetSummary",
    "Tracklet",
    "TrackletDataset",
    "VideoDataset",
    "build_dataset",
    "build_test_loader",
    "build_test_transform",
    "build_train_loader",
    "build_train_transform",
    "carve_validation",
    "check_dataset",
    "colour_histogram_hardness",
    "draw_erase_box",
    "erase_boxes",
    "erased_frames",
    "erasing_style",
    "frame_number",
    "guided_preset",
    "sample_test_clips",
    "sample_train_clip",
    "sort_frames",
    "write_mars_metadata",
    "write_synthetic",
]
