"""Torch datasets and data loaders over tracklet records (train: P x K clips; test: all clips)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset
from torch.utils.data import Sampler

from reid_core.config import DataConfig
from reid_core.data._frames import FrameCache
from reid_core.data._frames import decode_resized
from reid_core.data._samplers import RandomIdentitySampler
from reid_core.data._samplers import sample_test_clips
from reid_core.data._samplers import sample_train_clip
from reid_core.data._transforms import ClipAugment
from reid_core.data._transforms import build_test_transform
from reid_core.data._transforms import erasing_style
from reid_core.data._transforms import normalize_clips
from reid_core.data.records import Tracklet
from reid_core.errors import DatasetFormatError

logger = logging.getLogger(__name__)

#: Per-worker budget of the resized-frame cache (``DataConfig.cache_frames``).
CACHE_BYTES = 512 * 2**20

TrainItem = tuple[Any, int, int]


class TrackletDataset(Dataset[TrainItem]):
    """Loads clips of tracklet records.

    Training mode (``max_clips`` unused): the key is ``(index, seed)`` (``index`` alone means
    ``seed = index``) and the item is one random ``seq_len``-frame window, transformed with
    parameters drawn from ``seed``, so the result does not depend on the worker that loads
    it. Test mode: the key is an index and the item holds every clip of the tracklet
    (:func:`sample_test_clips`), shape ``[N_clips, T, 3, H, W]``.

    Items are ``(transform(clip), pid, camid)``. Every frame is decoded and resized to ``size``
    (antialiased bilinear on ``uint8``) before the transform sees the clip, so a transform that
    starts with ``v2.Resize(size)`` gets it as a no-op.

    Args:
        records: the tracklets.
        seq_len: frames per clip (T).
        transform: maps a ``uint8`` clip ``[T, 3, H, W]`` to the item's clips (a float tensor
            of the same layout, or ``(uint8 clip, erase box)`` from :class:`ClipAugment`).
        train: training or test mode.
        size: (height, width) every frame is resized to.
        max_clips: test mode cap on clips per tracklet (None: no cap).
        test_clips: which clips the cap keeps, ``"first"`` or ``"spaced"``
            (:func:`sample_test_clips`).
        cache_frames: keep resized frames in a bounded per-process cache (a hit skips decoding
            and resizing).
    """

    def __init__(
        self,
        records: Sequence[Tracklet],
        *,
        seq_len: int,
        transform: Any,
        train: bool,
        size: tuple[int, int],
        max_clips: int | None = None,
        test_clips: str = "first",
        cache_frames: bool = False,
    ) -> None:
        self.records = tuple(records)
        self.seq_len = seq_len
        self.transform = transform
        self.train = train
        self.size = size
        self.max_clips = max_clips
        self.test_clips = test_clips
        self._read = partial(decode_resized, size=tuple(size))
        self._cache = FrameCache(CACHE_BYTES, load=self._read) if cache_frames else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> TrainItem:
        index, seed = key if isinstance(key, tuple) else (key, key)
        record = self.records[index]
        if not record.frames:
            raise DatasetFormatError(f"empty tracklet (pid {record.pid}, camera {record.camid})")
        if self.train:
            rng = np.random.default_rng(seed)
            frames = self._load(
                [record.frames[i] for i in sample_train_clip(len(record.frames), self.seq_len, rng)]
            )
            if isinstance(self.transform, ClipAugment):
                generator = torch.Generator().manual_seed(seed)
                return self.transform(frames, generator), record.pid, record.camid
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self.transform(frames), record.pid, record.camid
        clips = sample_test_clips(
            len(record.frames), self.seq_len, self.max_clips, mode=self.test_clips
        )
        needed = sorted({i for clip in clips for i in clip})
        stack = self.transform(self._load([record.frames[i] for i in needed]))
        position = {frame: p for p, frame in enumerate(needed)}
        order = torch.tensor([[position[i] for i in clip] for clip in clips])
        return stack[order], record.pid, record.camid

    def _load(self, paths: Sequence[Any]) -> torch.Tensor:
        read = self._cache.load if self._cache is not None else self._read
        return torch.stack([read(p) for p in paths])


class _SeededIndices(Sampler[tuple[int, int]]):
    """Pairs each index of a P x K sampler with a per-draw seed derived from (seed, epoch)."""

    def __init__(self, base: RandomIdentitySampler) -> None:
        self.base = base

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the next iteration (forwarded to the identity sampler)."""
        self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.base.seed, self.base.epoch, 1])
        for index in self.base:
            yield index, int(rng.integers(2**63 - 1))

    def __len__(self) -> int:
        return len(self.base)


class _ReidDataLoader(DataLoader):
    """A DataLoader whose worker-side ``DatasetFormatError`` keeps its one-line message.

    ``finish`` (optional) maps each collated batch in the main process, e.g. the once-per-batch
    ``uint8`` -> normalised ``float32`` step of the training loader.
    """

    def __init__(
        self, *args: Any, finish: Callable[[Any], Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.finish = finish

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        try:
            for batch in super().__iter__():
                yield batch if self.finish is None else self.finish(batch)
        except DatasetFormatError as exc:
            raise DatasetFormatError(_worker_message(str(exc))) from None


def _finish_train_batch(
    batch: Any, fill: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``((uint8 clips, erase boxes), pids, camids)`` -> ``(float clips, pids, camids)``."""
    (clips, boxes), pids, camids = batch
    return normalize_clips(clips, boxes, fill), pids, camids


def _worker_message(text: str) -> str:
    """``"Caught DatasetFormatError in DataLoader worker ..."`` -> the original message."""
    if not text.startswith("Caught "):
        return text
    marker = "DatasetFormatError: "
    lines = [line for line in text.splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1] if lines else text.splitlines()[0]


def _init_worker(worker_id: int) -> None:
    torch.set_num_threads(1)


def _single(batch: list[TrainItem]) -> TrainItem:
    return batch[0]


def build_train_loader(
    records: Sequence[Tracklet],
    cfg: DataConfig,
    *,
    seed: int,
    epoch: int = 0,
    finish_on_host: bool = True,
    pin_memory: bool = False,
) -> DataLoader:
    """Training loader of P x K batches of random clips.

    Yields ``(clips[B, T, 3, H, W] float32, pids[B] int64, camids[B] int64)`` with
    ``B = cfg.batch_size``. The batches and every clip's frames and augmentation depend only on
    ``(seed, epoch)``, not on ``cfg.num_workers``. Workers decode, resize (or hit the resized-frame
    cache), flip, pad and crop on ``uint8`` and draw the erased boxes (:class:`ClipAugment`)
    and send ``uint8`` batches; conversion, normalisation and random erasing run once per
    batch in the iterating process (:func:`normalize_clips`). Call
    ``loader.sampler.set_epoch(e)`` before each epoch (or build the loader with
    ``epoch=e``). With ``finish_on_host=False`` the batches stay ``((uint8 clips, erase
    boxes[B, T, 2, 4]), pids, camids)`` for the caller to finish on its device (the trainer
    does, and reads the erased-frame labels from the boxes:
    :func:`~reid_core.data.erased_frames`).

    Args:
        records: training tracklets, pids ``0..N-1``.
        cfg: ``seq_len``, ``height``, ``width``, ``batch_size``, ``num_instances``,
            ``epoch_sampling``, ``random_erasing``, ``labelled_erasing``, ``erasing_style``,
            ``pad``, ``translation``, ``augment_scope``, ``num_workers`` and
            ``cache_frames`` are used.
        seed: base seed of the sampler and of the clip augmentation.
        epoch: the first epoch.
        finish_on_host: Convert and normalise in the iterating process (see above).
        pin_memory: Pin the batches in page-locked memory, for a CUDA consumer; the pinning
            thread uses the current CUDA device, so select it first
            (:func:`reid_core.engine.select_device`). Never on a CPU run: pinning creates a
            CUDA context.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``num_instances`` or there are fewer
            ids than a batch needs.
    """
    sampler = RandomIdentitySampler(
        [t.pid for t in records],
        cfg.batch_size,
        cfg.num_instances,
        seed,
        epoch_sampling=cfg.epoch_sampling,
    )
    sampler.set_epoch(epoch)
    dataset = TrackletDataset(
        records,
        seq_len=cfg.seq_len,
        transform=ClipAugment(
            cfg.height,
            cfg.width,
            random_erasing=cfg.random_erasing,
            labelled_erasing=cfg.labelled_erasing,
            pad=cfg.pad,
            translation=cfg.translation,
            scope=cfg.augment_scope,
            style=cfg.erasing_style,
        ),
        train=True,
        size=(cfg.height, cfg.width),
        cache_frames=cfg.cache_frames,
    )
    return _ReidDataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=_SeededIndices(sampler),
        drop_last=True,
        num_workers=cfg.num_workers,
        worker_init_fn=_init_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=cfg.num_workers > 0,
        pin_memory=pin_memory,
        finish=partial(_finish_train_batch, fill=erasing_style(cfg.erasing_style).fill)
        if finish_on_host
        else None,
    )


def build_test_loader(
    records: Sequence[Tracklet],
    cfg: DataConfig,
    *,
    pin_memory: bool = False,
    finish_on_host: bool = True,
) -> DataLoader:
    """Test loader: one tracklet per item, in ``records`` order.

    Items are ``(clips[N_clips, T, 3, H, W] float32, pid: int, camid: int)``: every
    consecutive ``cfg.seq_len``-frame clip, at most ``cfg.test_max_clips``: the first ones or
    evenly spaced ones (``cfg.test_clips``). With ``finish_on_host=False`` the clips stay
    ``uint8`` (a quarter of the bytes) for the consumer to normalise on its device
    (:func:`reid_core.engine.extract_features` does).
    The caller chunks the clips by ``cfg.test_batch_size`` and averages their features.
    ``pin_memory`` as for :func:`build_train_loader`.
    """
    dataset = TrackletDataset(
        records,
        seq_len=cfg.seq_len,
        transform=build_test_transform(cfg.height, cfg.width, normalize=finish_on_host),
        train=False,
        size=(cfg.height, cfg.width),
        max_clips=cfg.test_max_clips,
        test_clips=cfg.test_clips,
        cache_frames=cfg.cache_frames,
    )
    return _ReidDataLoader(
        dataset,
        batch_size=1,
        shuffle=False,
        collate_fn=_single,
        num_workers=cfg.num_workers,
        worker_init_fn=_init_worker,
        pin_memory=pin_memory,
    )
