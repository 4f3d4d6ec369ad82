"""rerank against the float32 per-sample loop definition (reference.rerank_loop)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_core.errors import EvaluationError
from reid_core.metrics import _rerank
from reid_core.metrics import rerank
from reid_core.metrics.reference import rerank_loop


def _features(seed: int, num_query: int = 15, num_gallery: int = 60, dim: int = 16):
    """Clustered features (a few identities), like real re-ID embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    ids = rng.integers(0, 8, num_query + num_gallery)
    feats = (centres[ids] + 0.7 * rng.normal(size=(ids.size, dim))).astype(np.float32)
    return feats[:num_query], feats[num_query:]


def _assert_matches_definition(ours: np.ndarray, definition: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == definition.shape
    np.testing.assert_allclose(ours, definition, atol=1e-4, rtol=0)
    # Same ranking: every pair of gallery entries that the definition separates by more than
    # the tolerance is in the same order.
    def_gap = definition[:, :, None] - definition[:, None, :]
    our_gap = ours[:, :, None] - ours[:, None, :]
    separated = np.abs(def_gap) > 1e-4
    assert separated.any()
    np.testing.assert_array_equal(np.sign(our_gap[separated]), np.sign(def_gap[separated]))


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value"),
    [(20, 6, 0.3), (5, 3, 0.3), (7, 1, 0.3), (10, 4, 0.0), (3, 2, 1.0)],
)
def test_matches_the_float32_loop(k1: int, k2: int, lambda_value: float) -> None:
    q, g = _features(0)
    ours = rerank(q, g, k1=k1, k2=k2, lambda_value=lambda_value)
    _assert_matches_definition(ours, rerank_loop(q, g, k1, k2, lambda_value, dtype=np.float32))


def test_matches_with_small_blocks_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several distance blocks, topk / 2/3-rule / Jaccard chunks: same result as one block.
    monkeypatch.setattr(_rerank, "_DIST_BLOCK", 16)
    monkeypatch.setattr(_rerank, "_CHUNK_ELEMENTS", 500)
    q, g = _features(1, num_query=25, num_gallery=70)
    _assert_matches_definition(rerank(q, g), rerank_loop(q, g, dtype=np.float32))


def test_fewer_samples_than_k1_matches_the_loop() -> None:
    q, g = _features(2, num_query=3, num_gallery=8)
    _assert_matches_definition(
        rerank(q, g, k1=20, k2=30), rerank_loop(q, g, 20, 30, dtype=np.float32)
    )


def test_float16_reference_loop_is_close_to_the_definition() -> None:
    q, g = _features(3)
    half = rerank_loop(q, g, dtype=np.float16)
    np.testing.assert_allclose(half, rerank_loop(q, g, dtype=np.float32), atol=2e-3)


def test_tensor_inputs_give_a_tensor_on_their_device() -> None:
    q, g = _features(4)
    out = rerank(torch.from_numpy(q), torch.from_numpy(g))
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32
    assert out.device == torch.device("cpu")
    np.testing.assert_allclose(out.numpy(), rerank(q, g), atol=1e-6)


def test_numpy_inputs_give_a_numpy_array() -> None:
    q, g = _features(5)
    out = rerank(q.astype(np.float64), g.astype(np.float64))
    assert isinstance(out, np.ndarray)
    assert out.shape == (15, 60)


def test_result_is_in_unit_interval() -> None:
    q, g = _features(6)
    out = rerank(q, g)
    assert out.min() >= 0.0
    assert out.max() <= 1.0 + 1e-6


def test_mismatched_feature_width_raises() -> None:
    with pytest.raises(EvaluationError, match="dim"):
        rerank(np.zeros((2, 4)), np.zeros((3, 5)))


def test_bad_parameters_raise() -> None:
    q, g = _features(7)
    with pytest.raises(EvaluationError, match="k1 and k2"):
        rerank(q, g, k1=0)
    with pytest.raises(EvaluationError, match="lambda_value"):
        rerank(q, g, lambda_value=1.5)


def test_non_finite_features_raise() -> None:
    q, g = _features(8)
    q[0, 0] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        rerank(q, g)
