"""Identity (P x K) batch sampling and the frame-index strategies for train and test clips."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Sampler

from reid_core.errors import ConfigError


class RandomIdentitySampler(Sampler[int]):
    """P x K sampling: each batch holds ``P = batch_size // num_instances`` ids, K records each.

    Every id's records are shuffled and cut into groups of K (an id with fewer than K records
    is topped up by drawing its records again); groups of P random ids are then emitted until
    fewer than P ids have groups left, so consecutive ``batch_size`` indices always form one
    P x K batch. The order depends only on ``(seed, epoch)``: call :meth:`set_epoch` before each
    epoch. The sampler owns its generator and never touches global random state.

    Args:
        pids: the identity label of every record, in dataset order.
        batch_size: P * K.
        num_instances: K, records per identity in a batch.
        seed: base seed.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``num_instances``, or there are fewer
            than P identities.

    Example:
        >>> s = RandomIdentitySampler([0, 0, 1, 1, 2, 2], batch_size=4, num_instances=2, seed=0)
        >>> len(list(s)) % 4
        0
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ConfigError(
                f"batch_size={batch_size} must be a positive multiple of "
                f"num_instances={num_instances}"
            )
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.seed = seed
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


def sample_test_clips(num_frames: int, seq_len: int, max_clips: int | None) -> list[list[int]]:
    """Every consecutive, non-overlapping ``seq_len``-frame clip of a tracklet.

    The last, shorter clip is padded by repeating its own frames cyclically. When there are
    more than ``max_clips`` clips, ``max_clips`` evenly spaced ones are kept (first and last
    included).

    Example:
        >>> sample_test_clips(7, 3, None)
        [[0, 1, 2], [3, 4, 5], [6, 6, 6]]
    """
    if num_frames < 1 or seq_len < 1:
        raise ConfigError(f"num_frames={num_frames} and seq_len={seq_len} must be >= 1")
    if max_clips is not None and max_clips < 1:
        raise ConfigError(f"test_max_clips={max_clips} must be >= 1")
    clips = []
    for start in range(0, num_frames, seq_len):
        window = list(range(start, min(start + seq_len, num_frames)))
        clips.append([window[i % len(window)] for i in range(seq_len)])
    if max_clips is not None and len(clips) > max_clips:
        keep = np.linspace(0, len(clips) - 1, max_clips).round().astype(int)
        clips = [clips[i] for i in keep.tolist()]
    return clips
