from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reid_core.data import RandomIdentitySampler
from reid_core.data import sample_test_clips
from reid_core.data import sample_train_clip
from reid_core.errors import ConfigError

# 6 ids with 1..6 records each.
PIDS = [pid for pid in range(6) for _ in range(pid + 1)]


def _batches(sampler: RandomIdentitySampler) -> list[list[int]]:
    order = list(sampler)
    size = sampler.batch_size
    assert len(order) == len(sampler)
    assert len(order) % size == 0
    return [order[i : i + size] for i in range(0, len(order), size)]


@pytest.mark.parametrize("epoch_sampling", ["per_id", "per_tracklet"])
def test_every_batch_is_p_ids_times_k_instances(epoch_sampling: str) -> None:
    sampler = RandomIdentitySampler(
        PIDS, batch_size=6, num_instances=2, seed=0, epoch_sampling=epoch_sampling
    )
    batches = _batches(sampler)
    assert batches
    for batch in batches:
        counts = Counter(PIDS[i] for i in batch)
        assert len(counts) == 3
        assert set(counts.values()) == {2}


def test_order_depends_only_on_seed_and_epoch() -> None:
    a = RandomIdentitySampler(PIDS, 4, 2, seed=1)
    b = RandomIdentitySampler(PIDS, 4, 2, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(RandomIdentitySampler(PIDS, 4, 2, seed=2)) != first


def test_global_random_state_is_untouched() -> None:
    np.random.seed(0)
    expected = np.random.rand()
    np.random.seed(0)
    list(RandomIdentitySampler(PIDS, 4, 2, seed=0))
    assert np.random.rand() == expected


def test_batch_size_not_multiple_of_k_names_both_numbers() -> None:
    with pytest.raises(ConfigError, match=r"batch_size=10.*num_instances=4"):
        RandomIdentitySampler(PIDS, batch_size=10, num_instances=4, seed=0)


def test_too_few_ids_for_a_batch_is_refused() -> None:
    with pytest.raises(ConfigError, match="P=8"):
        RandomIdentitySampler(PIDS, batch_size=32, num_instances=4, seed=0)


def test_train_clip_is_a_window_of_consecutive_frames() -> None:
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        clip = sample_train_clip(10, 4, rng)
        assert clip == list(range(clip[0], clip[0] + 4))
        starts.add(clip[0])
    assert starts == set(range(7))  # every window 0..6, the last one included


def test_short_train_tracklet_is_padded_by_repetition() -> None:
    assert sample_train_clip(3, 8, np.random.default_rng(0)) == [0, 1, 2, 0, 1, 2, 0, 1]


def test_test_clips_cover_the_tracklet_with_a_padded_tail() -> None:
    assert sample_test_clips(10, 4, None) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    assert sample_test_clips(2, 4, None) == [[0, 1, 0, 1]]


def test_test_clips_are_capped_evenly_in_spaced_mode() -> None:
    clips = sample_test_clips(100, 4, max_clips=5, mode="spaced")
    assert [c[0] for c in clips] == [0, 24, 48, 72, 96]


def test_test_clips_default_to_the_first_consecutive_clips_as_the_reference() -> None:
    # The reference: consecutive 4-frame clips from the first frame, at most 41; the rest of a
    # long tracklet is unused.
    clips = sample_test_clips(400, 4, max_clips=41)
    assert len(clips) == 41 and clips[0] == [0, 1, 2, 3] and clips[-1] == [160, 161, 162, 163]


def test_unknown_test_clip_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="test_clips='middle'"):
        sample_test_clips(10, 4, 2, mode="middle")


def test_per_id_epoch_visits_every_id_once_with_k_records() -> None:
    # The reference's sampler: ids * K indices per epoch, incomplete last batch dropped.
    pids = [pid for pid in range(10) for _ in range(1 + 3 * (pid % 4))]
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=4, seed=0)
    assert sampler.epoch_sampling == "per_id"  # the default
    batches = _batches(sampler)
    assert len(batches) == 10 * 4 // 8
    seen = Counter(pids[i] for batch in batches for i in batch)
    assert set(seen.values()) == {4} and len(seen) == 10


def test_per_tracklet_epoch_uses_every_record_about_once() -> None:
    pids = [pid for pid in range(10) for _ in range(12)]
    per_id = RandomIdentitySampler(pids, 8, 4, seed=0)
    per_tracklet = RandomIdentitySampler(pids, 8, 4, seed=0, epoch_sampling="per_tracklet")
    assert len(_batches(per_id)) == 5
    assert len(_batches(per_tracklet)) == 15
    assert len({i for batch in _batches(per_tracklet) for i in batch}) == 120


def test_unknown_epoch_sampling_is_refused() -> None:
    with pytest.raises(ConfigError, match="epoch_sampling='all'"):
        RandomIdentitySampler(PIDS, 4, 2, seed=0, epoch_sampling="all")  # type: ignore[arg-type]
