"""Identity (P x K) batch sampling and the frame-index strategies for train and test clips."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Literal

import numpy as np
from torch.utils.data import Sampler

from reid_core.errors import ConfigError

EpochSampling = Literal["per_id", "per_tracklet"]


class RandomIdentitySampler(Sampler[int]):
    """P x K sampling: each batch holds ``P = batch_size // num_instances`` ids, K records each.

    Two definitions of an epoch (``epoch_sampling``):

    - ``"per_id"`` (the reference's sampler): every id once, in random order, with K of its
      records (drawn without replacement, or with replacement when it has fewer than K); the
      ids * K indices are cut into batches and an incomplete last batch is dropped, so an epoch
      is ``floor(ids * K / batch_size)`` batches (78 on MARS's 625 training ids).
    - ``"per_tracklet"``: every id's records are shuffled and cut into groups of K (an id with
      fewer than K records is topped up by drawing its records again); groups of P random ids
      are then emitted until fewer than P ids have groups left, so about every record is seen
      once per epoch (about 3x the batches of ``"per_id"`` on MARS).

    Consecutive ``batch_size`` indices always form one P x K batch. The order depends only on
    ``(seed, epoch)``: call :meth:`set_epoch` before each epoch. The sampler owns its generator
    and never touches global random state.

    Args:
        pids: the identity label of every record, in dataset order.
        batch_size: P * K.
        num_instances: K, records per identity in a batch.
        seed: base seed.
        epoch_sampling: ``"per_id"`` or ``"per_tracklet"`` (above).

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``num_instances``, there are fewer
            than P identities, or ``epoch_sampling`` is unknown.

    Example:
        >>> s = RandomIdentitySampler([0, 0, 1, 1, 2, 2], batch_size=4, num_instances=2, seed=0)
        >>> len(list(s)) % 4
        0
    """

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int,
        num_instances: int,
        seed: int,
        *,
        epoch_sampling: EpochSampling = "per_id",
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ConfigError(
                f"batch_size={batch_size} must be a positive multiple of "
                f"num_instances={num_instances}"
            )
        if epoch_sampling not in ("per_id", "per_tracklet"):
            raise ConfigError(
                f"epoch_sampling={epoch_sampling!r}; expected 'per_id' or 'per_tracklet'"
            )
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.seed = seed
        self.epoch_sampling = epoch_sampling
        self.epoch = 0
        index: defaultdict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            index[int(pid)].append(i)
        self._index = {pid: np.array(idxs) for pid, idxs in sorted(index.items())}
        if len(self._index) < self.num_pids_per_batch:
            raise ConfigError(
                f"{len(self._index)} identities cannot fill batches of P={self.num_pids_per_batch} "
                f"ids (batch_size={batch_size} / num_instances={num_instances})"
            )
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (deterministic) order the next iteration yields."""
        self.epoch = epoch

    def _batches(self, rng: np.random.Generator) -> list[list[int]]:
        if self.epoch_sampling == "per_id":
            return self._batches_per_id(rng)
        return self._batches_per_tracklet(rng)

    def _batches_per_id(self, rng: np.random.Generator) -> list[list[int]]:
        k = self.num_instances
        pids = list(self._index)
        flat: list[int] = []
        for i in rng.permutation(len(pids)).tolist():
            idxs = self._index[pids[i]]
            flat += rng.choice(idxs, size=k, replace=len(idxs) < k).tolist()
        usable = len(flat) - len(flat) % self.batch_size
        return [flat[j : j + self.batch_size] for j in range(0, usable, self.batch_size)]

    def _batches_per_tracklet(self, rng: np.random.Generator) -> list[list[int]]:
        k = self.num_instances
        groups: dict[int, list[list[int]]] = {}
        for pid, idxs in self._index.items():
            if len(idxs) < k:
                idxs = np.concatenate([idxs, rng.choice(idxs, size=k - len(idxs))])
            idxs = rng.permutation(idxs)
            usable = len(idxs) - len(idxs) % k
            groups[pid] = [idxs[j : j + k].tolist() for j in range(0, usable, k)]
        batches = []
        while len(groups) >= self.num_pids_per_batch:
            chosen = rng.choice(list(groups), size=self.num_pids_per_batch, replace=False)
            batch: list[int] = []
            for pid in chosen.tolist():
                batch += groups[pid].pop()
                if not groups[pid]:
                    del groups[pid]
            batches.append(batch)
        return batches

    def batches(self) -> list[list[int]]:
        """The P x K batches of the current epoch (the same list on every call)."""
        if self._cache is None or self._cache[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            self._cache = (self.epoch, self._batches(rng))
        return self._cache[1]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return len(self.batches()) * self.batch_size


def sample_train_clip(num_frames: int, seq_len: int, rng: np.random.Generator) -> list[int]:
    """Indices of a random window of ``seq_len`` consecutive frames.

    A tracklet shorter than ``seq_len`` is padded by repeating its frames cyclically
    (``[0, 1, 2, 0]`` for 3 frames and T=4).

    Example:
        >>> sample_train_clip(3, 4, np.random.default_rng(0))
        [0, 1, 2, 0]
    """
    if num_frames < 1 or seq_len < 1:
        raise ConfigError(f"num_frames={num_frames} and seq_len={seq_len} must be >= 1")
    if num_frames <= seq_len:
        return [i % num_frames for i in range(seq_len)]
    start = int(rng.integers(0, num_frames - seq_len + 1))
    return list(range(start, start + seq_len))


def sample_test_clips(
    num_frames: int, seq_len: int, max_clips: int | None, *, mode: str = "first"
) -> list[list[int]]:
    """Consecutive, non-overlapping ``seq_len``-frame clips of a tracklet, from its first frame.

    The last, shorter clip is padded by repeating its own frames cyclically. When there are
    more than ``max_clips`` clips, ``mode`` says which are kept: ``"first"``, the first
    ``max_clips`` (the reference: the rest of a long tracklet is unused), or ``"spaced"``,
    ``max_clips`` evenly spaced ones over the whole tracklet (first and last included).

    Example:
        >>> sample_test_clips(7, 3, None)
        [[0, 1, 2], [3, 4, 5], [6, 6, 6]]
        >>> sample_test_clips(9, 2, 2), sample_test_clips(9, 2, 2, mode="spaced")
        ([[0, 1], [2, 3]], [[0, 1], [8, 8]])
    """
    if num_frames < 1 or seq_len < 1:
        raise ConfigError(f"num_frames={num_frames} and seq_len={seq_len} must be >= 1")
    if max_clips is not None and max_clips < 1:
        raise ConfigError(f"test_max_clips={max_clips} must be >= 1")
    if mode not in ("first", "spaced"):
        raise ConfigError(f"test_clips={mode!r}; expected 'first' or 'spaced'")
    starts = list(range(0, num_frames, seq_len))
    if max_clips is not None and len(starts) > max_clips:
        if mode == "first":
            starts = starts[:max_clips]
        else:
            keep = np.linspace(0, len(starts) - 1, max_clips).round().astype(int)
            starts = [starts[i] for i in keep.tolist()]
    clips = []
    for start in starts:
        window = list(range(start, min(start + seq_len, num_frames)))
        clips.append([window[i % len(window)] for i in range(seq_len)])
    return clips
