"""evaluate_ranking / evaluate_ranking_full against the per-query loop definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_core.errors import EvaluationError
from reid_core.metrics import RankingResult
from reid_core.metrics import _ranking
from reid_core.metrics import _ranking_cpu
from reid_core.metrics import evaluate_ranking
from reid_core.metrics import evaluate_ranking_full
from reid_core.metrics.reference import evaluate_ranking_loop


def _case(seed: int, num_query: int = 40, num_gallery: int = 150, ties: bool = False):
    """Random distances with same-camera junk and queries whose id is absent from the gallery."""
    rng = np.random.default_rng(seed)
    num_ids = 12
    g_pids = rng.integers(0, num_ids, num_gallery)
    g_cams = rng.integers(0, 3, num_gallery)
    q_pids = rng.integers(0, num_ids + 4, num_query)  # ids >= num_ids have no match at all
    q_cams = rng.integers(0, 3, num_query)
    dist = rng.random((num_query, num_gallery)).astype(np.float32)
    if ties:
        dist = np.round(dist * 8) / 8
    return dist, q_pids, g_pids, q_cams, g_cams


def _assert_same(ours: RankingResult, loop: RankingResult) -> None:
    np.testing.assert_allclose(ours.cmc, loop.cmc, atol=1e-12)
    assert ours.mAP == pytest.approx(loop.mAP, abs=1e-12)
    assert ours.mINP == pytest.approx(loop.mINP, abs=1e-12)
    assert ours.num_valid_queries == loop.num_valid_queries
    np.testing.assert_array_equal(np.isnan(ours.ap), np.isnan(loop.ap))
    np.testing.assert_allclose(ours.ap, loop.ap, atol=1e-12)


@pytest.fixture(params=["numpy-kernels", "torch-kernels"])
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CPU path with numpy kernels and with the torch kernels used on GPUs."""
    monkeypatch.setattr(_ranking, "_NUMPY_ON_CPU", request.param == "numpy-kernels")


@pytest.fixture(params=["compact", "sorted"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force sorting only the entries before the last positive, or whole rows."""
    fraction = 1.0 if request.param == "compact" else 0.0
    monkeypatch.setattr(_ranking, "_COMPACT_FRACTION", fraction)
    monkeypatch.setattr(_ranking_cpu, "COMPACT_FRACTION", fraction)


@pytest.mark.usefixtures("kernels", "strategy")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_loop_on_random_data(seed: int) -> None:
    case = _case(seed)
    _assert_same(evaluate_ranking_full(*case), evaluate_ranking_loop(*case))


@pytest.mark.usefixtures("kernels", "strategy")
def test_ties_are_broken_by_gallery_index_like_a_stable_argsort() -> None:
    case = _case(3, ties=True)
    _assert_same(evaluate_ranking_full(*case), evaluate_ranking_loop(*case))


def test_float64_matrix_matches_the_loop() -> None:
    dist, *labels = _case(4)
    dist64 = dist.astype(np.float64) + np.random.default_rng(0).random(dist.shape) * 1e-9
    _assert_same(evaluate_ranking_full(dist64, *labels), evaluate_ranking_loop(dist64, *labels))


def test_torch_and_numpy_inputs_give_the_same_result() -> None:
    dist, q_pids, g_pids, q_cams, g_cams = _case(5)
    cmc_np, map_np = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams)
    tensors = [torch.from_numpy(x) for x in (dist, q_pids, g_pids, q_cams, g_cams)]
    cmc_t, map_t = evaluate_ranking(*tensors)
    np.testing.assert_array_equal(cmc_np, cmc_t)
    assert map_np == map_t


def test_cmc_has_max_rank_entries_in_unit_interval_and_is_monotone() -> None:
    cmc, mAP = evaluate_ranking(*_case(6), max_rank=20)
    assert cmc.shape == (20,)
    assert np.all((cmc >= 0) & (cmc <= 1))
    assert np.all(np.diff(cmc) >= 0)
    assert 0.0 <= mAP <= 1.0


def test_max_rank_beyond_gallery_pads_with_the_last_value() -> None:
    # 10 gallery entries, max_rank 25: ranks 11..25 repeat rank 10, which is 1.0.
    case = _case(7, num_query=6, num_gallery=10)
    cmc, _ = evaluate_ranking(*case, max_rank=25)
    assert cmc.shape == (25,)
    assert cmc[-1] == 1.0
    np.testing.assert_array_equal(cmc[10:], np.ones(15))
    np.testing.assert_allclose(cmc, evaluate_ranking_loop(*case, max_rank=25).cmc)


def test_same_id_same_camera_entries_are_ignored() -> None:
    # The nearest entry is the same id in the same camera: junk, so the true match is rank 1.
    dist = np.array([[0.1, 0.2, 0.3]])
    cmc, mAP = evaluate_ranking(dist, [7], [7, 7, 8], [0], [0, 1, 1], max_rank=3)
    assert cmc.tolist() == [1.0, 1.0, 1.0]
    assert mAP == 1.0


def test_queries_without_a_valid_match_are_skipped() -> None:
    dist = np.array([[0.1, 0.2], [0.5, 0.1]])
    result = evaluate_ranking_full(dist, [1, 2], [1, 3], [0, 0], [1, 1], max_rank=2)
    assert result.num_valid_queries == 1
    assert np.isnan(result.ap[1])
    assert result.mAP == 1.0


def test_average_precision_of_a_known_ranking() -> None:
    # Ranking: match, non-match, match -> AP = (1/1 + 2/3) / 2.
    dist = np.array([[0.1, 0.2, 0.3]])
    result = evaluate_ranking_full(dist, [1], [1, 2, 1], [0], [1, 1, 1], max_rank=3)
    assert result.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert result.mINP == pytest.approx(2 / 3)
    assert result.cmc.tolist() == [1.0, 1.0, 1.0]


def test_ignore_pids_removes_those_gallery_entries() -> None:
    dist = np.array([[0.2, 0.1, 0.3]])
    result = evaluate_ranking_full(dist, [1], [1, -1, 2], [0], [1, 1, 1], ignore_pids=[-1])
    assert result.cmc[0] == 1.0


def test_no_valid_query_raises() -> None:
    with pytest.raises(EvaluationError, match="no query has a valid match"):
        evaluate_ranking(np.zeros((2, 3)), [1, 2], [3, 3, 3], [0, 0], [1, 1, 1])


def test_nan_distance_raises() -> None:
    dist, *labels = _case(8)
    dist[3, 5] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate_ranking(dist, *labels)


def test_mismatched_label_length_raises() -> None:
    dist, q_pids, g_pids, q_cams, g_cams = _case(9)
    with pytest.raises(EvaluationError, match="g_pids has"):
        evaluate_ranking(dist, q_pids, g_pids[:-1], q_cams, g_cams)


def test_max_rank_below_one_raises() -> None:
    with pytest.raises(EvaluationError, match="max_rank"):
        evaluate_ranking(*_case(10), max_rank=0)


@pytest.mark.parametrize("ties", [False, True])
def test_cpu_path_mixing_selected_and_sorted_chunks_matches_the_loop(
    ties: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two-row chunks: with this fraction, 3 of the 15 chunks select their entries before the
    # second-to-last positive and the other 12 sort their rows.
    monkeypatch.setattr(_ranking_cpu, "_CHUNK_ELEMENTS", 300)
    monkeypatch.setattr(_ranking_cpu, "COMPACT_FRACTION", 0.5)
    case = _case(11, num_query=30, num_gallery=150, ties=ties)
    _assert_same(evaluate_ranking_full(*case), evaluate_ranking_loop(*case))


def test_tie_with_the_last_positive_is_broken_by_gallery_index() -> None:
    # The last true match (index 3) ties with a non-match before it (index 1) and one after it.
    dist = np.array([[0.1, 0.5, 0.2, 0.5, 0.5]], dtype=np.float32)
    labels = ([1], [1, 2, 1, 1, 3], [0], [1, 1, 1, 1, 1])
    _assert_same(evaluate_ranking_full(dist, *labels), evaluate_ranking_loop(dist, *labels))
    assert evaluate_ranking_full(dist, *labels).mINP == pytest.approx(3 / 4)


def test_nan_in_a_row_without_a_valid_match_raises() -> None:
    dist, q_pids, g_pids, q_cams, g_cams = _case(12)
    q_pids[0] = 99  # no match anywhere: its row is never ranked
    dist[0, 7] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams)
