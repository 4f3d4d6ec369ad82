"""Plain per-query reference definitions of the metrics, used by the tests and the benchmarks.

These are the slow, obviously-correct formulations that the vectorised functions of
:mod:`reid_core.metrics` are checked against:

- :func:`evaluate_ranking_loop` ranks the gallery of each query with ``np.argsort`` and walks the
  queries one by one, as torchreid's ``eval_func`` and the reference code's ``evaluate`` do.
- :func:`rerank_loop` is the k-reciprocal re-ranking of Zhong et al. (CVPR 2017) as formulated in
  the widely copied ``re_ranking(probFea, galFea, k1, k2, lambda_value)`` of the bag-of-tricks
  code: a numpy loop over every sample, ``V`` held in float16 by default. With
  ``dtype=np.float32`` it is the float32 definition that :func:`reid_core.metrics.rerank` must
  reproduce.

Do not use them in training or HPO loops: at MARS size the ranking loop takes seconds and the
re-ranking loop minutes and gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reid_core.errors import EvaluationError
from reid_core.metrics._ranking import RankingResult

__all__ = ["evaluate_ranking_loop", "rerank_loop"]


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def evaluate_ranking_loop(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    *,
    ignore_pids: Iterable[int] = (),
    sort_kind: str = "stable",
) -> RankingResult:
    """CMC, mAP and mINP with one ``np.argsort`` and a Python loop over the queries.

    Same definition as :func:`reid_core.metrics.evaluate_ranking_full`: gallery entries with the
    query's pid and camera (and entries whose pid is in ``ignore_pids``) are removed from the
    query's ranking; queries without a remaining match are skipped; the CMC curve is padded with
    its last value (1.0) beyond the number of remaining gallery entries.

    Args:
        distmat: ``[num_query, num_gallery]`` distances (smaller = more similar).
        q_pids: query identities.
        g_pids: gallery identities.
        q_camids: query cameras.
        g_camids: gallery cameras.
        max_rank: length of the CMC curve.
        ignore_pids: gallery identities to drop entirely (e.g. MARS junk id -1).
        sort_kind: ``np.argsort`` kind; ``"stable"`` breaks distance ties by gallery index, as the
            vectorised version does; ``"quicksort"`` is what the reference code used.

    Returns:
        A :class:`~reid_core.metrics.RankingResult`.

    Raises:
        EvaluationError: bad shapes, NaN distances, or no query with a valid match.
    """
    dist = _to_numpy(distmat)
    q_pids, g_pids = _to_numpy(q_pids).reshape(-1), _to_numpy(g_pids).reshape(-1)
    q_camids, g_camids = _to_numpy(q_camids).reshape(-1), _to_numpy(g_camids).reshape(-1)
    if max_rank < 1:
        raise EvaluationError(f"max_rank must be >= 1, got {max_rank}")
    if dist.ndim != 2 or dist.shape != (q_pids.size, g_pids.size):
        raise EvaluationError(
            f"distmat has shape {dist.shape}, expected ({q_pids.size}, {g_pids.size})"
        )
    if q_camids.size != q_pids.size or g_camids.size != g_pids.size:
        raise EvaluationError("camera id vectors must have as many entries as the pid vectors")
    if np.isnan(dist).any():
        raise EvaluationError("distmat contains NaN")
    ignored = np.asarray(list(ignore_pids), dtype=np.int64)
    if ignored.size:
        keep = ~np.isin(g_pids, ignored)
        dist, g_pids, g_camids = dist[:, keep], g_pids[keep], g_camids[keep]

    indices = np.argsort(dist, axis=1, kind=sort_kind)
    num_query = dist.shape[0]
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    ap = np.full(num_query, np.nan, dtype=np.float64)
    inp = np.full(num_query, np.nan, dtype=np.float64)
    for q in range(num_query):
        order = indices[q]
        same_pid = g_pids[order] == q_pids[q]
        junk = same_pid & (g_camids[order] == q_camids[q])
        raw_cmc = same_pid[~junk].astype(np.float64)
        if not raw_cmc.any():
            continue
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        if cmc.size < max_rank:
            cmc = np.concatenate([cmc, np.full(max_rank - cmc.size, cmc[-1])])
        cmc_sum += cmc[:max_rank]
        num_rel = raw_cmc.sum()
        precision = raw_cmc.cumsum() / np.arange(1, raw_cmc.size + 1)
        ap[q] = (precision * raw_cmc).sum() / num_rel
        last_hit = np.flatnonzero(raw_cmc)[-1]
        inp[q] = num_rel / (last_hit + 1)
    valid = ~np.isnan(ap)
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise EvaluationError(
            f"no query has a valid match in the gallery ({num_query} queries, "
            f"{dist.shape[1]} gallery entries)"
        )
    return RankingResult(
        cmc=cmc_sum / num_valid,
        mAP=float(ap[valid].mean()),
        mINP=float(inp[valid].mean()),
        num_valid_queries=num_valid,
        ap=ap,
    )


def rerank_loop(
    q_feats: Any,
    g_feats: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    dtype: npt.DTypeLike = np.float16,
) -> np.ndarray:
    """k-reciprocal re-ranking as a per-sample numpy loop (the reference formulation).

    ``original_dist`` is the squared Euclidean distance between all query and gallery features
    (float32), each row divided by its maximum; ``V`` holds for each sample the ``exp(-d)``
    weights of its k-reciprocal set expanded with the 2/3 rule on ``round(k1 / 2)`` neighbours,
    normalised to sum 1; query expansion averages ``V`` over the ``k2`` nearest neighbours; the
    Jaccard distance is ``1 - m / (2 - m)`` with ``m = sum(min(V_q, V_g))``; the result is
    ``jaccard * (1 - lambda_value) + original_dist * lambda_value`` on the query x gallery block.

    Args:
        q_feats: ``[num_query, dim]`` query features.
        g_feats: ``[num_gallery, dim]`` gallery features.
        k1: k-reciprocal neighbourhood size.
        k2: query-expansion neighbourhood size (1 disables it).
        lambda_value: weight of the original distance.
        dtype: dtype of ``V`` and of the Jaccard accumulation; float16 as in the reference code,
            float32 for the exact definition.

    Returns:
        float32 array ``[num_query, num_gallery]``.
    """
    probe = np.asarray(_to_numpy(q_feats), dtype=np.float32)
    gallery = np.asarray(_to_numpy(g_feats), dtype=np.float32)
    query_num = probe.shape[0]
    feat = np.concatenate([probe, gallery], axis=0)
    all_num = feat.shape[0]
    sq = np.einsum("ij,ij->i", feat, feat)
    dist = feat @ feat.T
    dist *= -2
    dist += sq[:, None]
    dist += sq[None, :]
    original_dist = np.transpose(dist / np.max(dist, axis=0))
    del dist
    v = np.zeros_like(original_dist, dtype=dtype)
    initial_rank = np.argsort(original_dist).astype(np.int32)
    half = int(np.around(k1 / 2)) + 1

    for i in range(all_num):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            cand_forward = initial_rank[candidate, :half]
            cand_backward = initial_rank[cand_forward, :half]
            cand_reciprocal = cand_forward[np.where(cand_backward == candidate)[0]]
            if len(np.intersect1d(cand_reciprocal, k_reciprocal)) > 2 / 3 * len(cand_reciprocal):
                expansion = np.append(expansion, cand_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        v[i, expansion] = weight / np.sum(weight)

    original_dist = original_dist[:query_num]
    if k2 != 1:
        v_qe = np.zeros_like(v, dtype=dtype)
        for i in range(all_num):
            v_qe[i, :] = np.mean(v[initial_rank[i, :k2], :], axis=0)
        v = v_qe
        del v_qe
    del initial_rank
    inv_index = [np.where(v[:, i] != 0)[0] for i in range(all_num)]

    jaccard_dist = np.zeros_like(original_dist, dtype=dtype)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=dtype)
        non_zero = np.where(v[i, :] != 0)[0]
        images = [inv_index[ind] for ind in non_zero]
        for j in range(len(non_zero)):
            temp_min[0, images[j]] = temp_min[0, images[j]] + np.minimum(
                v[i, non_zero[j]], v[images[j], non_zero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)

    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return np.ascontiguousarray(final_dist[:, query_num:], dtype=np.float32)
