"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), vectorised in torch.

Same definition as :func:`reid_core.metrics.reference.rerank_loop` (the widely copied numpy
``re_ranking`` of the bag-of-tricks code) in float32, computed without per-sample Python loops:

1. squared Euclidean distances between all ``N = num_query + num_gallery`` samples, computed
   block by block on one triangle and mirrored, each row divided by its maximum;
2. the ``max(k1 + 1, k2)`` nearest neighbours of every sample with ``topk``;
3. k-reciprocal sets and their expansion with the 2/3 rule, as boolean tensors over the
   ``[N, k1 + 1, round(k1 / 2) + 1]`` neighbour-of-neighbour table;
4. ``V`` (``exp(-d)`` weights, rows normalised) and its query expansion as a sparse
   (row, column, value) list, since each row has only a few dozen non-zeros;
5. the Jaccard overlap ``sum(min(V_q, V_g))`` of each query with each gallery sample by walking
   the non-zeros of ``V_q`` column by column (an inverted index), chunked over queries.

Everything runs on the features' device. Peak memory is the ``N x N`` float32 distance matrix
plus the ``num_query x num_gallery`` result and bounded chunks (about 0.7 GB at MARS size:
1,980 queries + 9,330 gallery tracklets).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import torch

from reid_core.errors import EvaluationError
from reid_core.metrics._inputs import as_tensor

logger = logging.getLogger(__name__)

# Square blocks of the distance matrix computed with one matrix product.
_DIST_BLOCK = 2048
# Elements of the temporaries of one chunk (topk rows, 2/3-rule table, Jaccard scatter).
_CHUNK_ELEMENTS = 1 << 23


def rerank(
    q_feats: Any,
    g_feats: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> Any:
    """Re-rank a query x gallery ranking with k-reciprocal encoding (Zhong et al., CVPR 2017).

    The distance is ``jaccard * (1 - lambda_value) + original * lambda_value`` where ``original``
    is the squared Euclidean distance divided by its row maximum over all query and gallery
    samples and ``jaccard`` the Jaccard distance of the k-reciprocal, query-expanded neighbour
    encodings; exactly the definition of the reference ``re_ranking(probFea, galFea, k1, k2,
    lambda_value)``, computed in float32 (the reference holds ``V`` in float16). Neighbours at
    exactly equal distances may be ordered differently than by the reference's ``argsort``.

    Args:
        q_feats: ``[num_query, dim]`` query features, numpy array or tensor (CPU or CUDA).
        g_feats: ``[num_gallery, dim]`` gallery features, same kind.
        k1: k-reciprocal neighbourhood size (>= 1).
        k2: query-expansion neighbourhood size (>= 1; 1 disables query expansion).
        lambda_value: weight of the original distance, in [0, 1].

    Returns:
        ``[num_query, num_gallery]`` float32 distances: a numpy array when both inputs are
        numpy arrays, otherwise a tensor on the features' device.

    Raises:
        EvaluationError: features that are not 2-D, empty, of different widths or not finite,
            or parameters out of range.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> rerank(rng.normal(size=(3, 8)), rng.normal(size=(10, 8)), k1=4, k2=2).shape
        (3, 10)
    """
    both_numpy = not isinstance(q_feats, torch.Tensor) and not isinstance(g_feats, torch.Tensor)
    query = as_tensor(q_feats, "q_feats")
    gallery = as_tensor(g_feats, "g_feats", query.device)
    _check(query, gallery, k1, k2, lambda_value)
    feats = torch.cat([query.float(), gallery.float()])
    num_query = query.shape[0]
    final = _rerank(feats, num_query, k1, k2, lambda_value)
    return final.cpu().numpy() if both_numpy else final


def _check(query: torch.Tensor, gallery: torch.Tensor, k1: int, k2: int, lam: float) -> None:
    for name, feats in (("q_feats", query), ("g_feats", gallery)):
        if feats.dim() != 2 or feats.shape[0] == 0:
            raise EvaluationError(
                f"{name} must be a non-empty 2-D [n, dim] array, got {tuple(feats.shape)}"
            )
    if query.shape[1] != gallery.shape[1]:
        raise EvaluationError(
            f"q_feats has dim {query.shape[1]} but g_feats has dim {gallery.shape[1]}"
        )
    if k1 < 1 or k2 < 1:
        raise EvaluationError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lam <= 1.0:
        raise EvaluationError(f"lambda_value must be in [0, 1], got {lam}")
    if not (bool(torch.isfinite(query).all()) and bool(torch.isfinite(gallery).all())):
        raise EvaluationError("features contain NaN or infinite values")


def _rerank(feats: torch.Tensor, num_query: int, k1: int, k2: int, lam: float) -> torch.Tensor:
    n = feats.shape[0]
    dist, row_max = _sq_distances(feats)
    k_fwd = min(k1 + 1, n)
    k_half = min(round(k1 / 2) + 1, n)
    k_qe = min(k2, n)
    # Dividing a row by its (positive) maximum does not change its order, so the neighbours
    # come from the raw distances and only the entries that are used get normalised.
    neighbours = _nearest(dist, max(k_fwd, k_qe))

    rows, cols = _expanded_reciprocal_sets(neighbours, k_fwd, k_half)
    weight = torch.exp(-(dist[rows, cols] / row_max[rows]))
    row_sum = torch.zeros(n, dtype=weight.dtype, device=weight.device).index_add_(0, rows, weight)
    values = weight / row_sum[rows]
    if k2 != 1:
        rows, cols, values = _query_expansion(rows, cols, values, neighbours[:, :k_qe], n)

    final = dist[:num_query, num_query:] / row_max[:num_query, None]
    del dist
    _add_jaccard(final, rows, cols, values, num_query, lam)
    return final


def _sq_distances(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``N x N`` squared Euclidean distances and their row maxima (clamped above zero).

    Only blocks on and above the diagonal are multiplied; the others are their transposes, so
    the matrix is exactly symmetric and its row maxima equal the reference's column maxima.
    """
    n = feats.shape[0]
    sq = (feats * feats).sum(1)
    dist = torch.empty(n, n, dtype=torch.float32, device=feats.device)
    row_max = torch.full((n,), torch.finfo(torch.float32).tiny, device=feats.device)
    for i0 in range(0, n, _DIST_BLOCK):
        i1 = min(i0 + _DIST_BLOCK, n)
        for j0 in range(i0, n, _DIST_BLOCK):
            j1 = min(j0 + _DIST_BLOCK, n)
            block = feats[i0:i1] @ feats[j0:j1].T
            block.mul_(-2).add_(sq[i0:i1, None]).add_(sq[None, j0:j1])
            dist[i0:i1, j0:j1] = block
            torch.maximum(row_max[i0:i1], block.amax(1), out=row_max[i0:i1])
            if j0 != i0:
                dist[j0:j1, i0:i1] = block.T
                torch.maximum(row_max[j0:j1], block.amax(0), out=row_max[j0:j1])
    return dist, row_max


def _nearest(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest entries of every row, nearest first."""
    n = dist.shape[0]
    out = torch.empty(n, k, dtype=torch.long, device=dist.device)
    step = max(1, _CHUNK_ELEMENTS // n)
    for r0 in range(0, n, step):
        r1 = min(r0 + step, n)
        out[r0:r1] = torch.topk(dist[r0:r1], k, dim=1, largest=False, sorted=True).indices
    return out


def _reciprocal_mask(neighbours: torch.Tensor, k: int) -> torch.Tensor:
    """``mask[i, t]``: is ``i`` among the ``k`` nearest neighbours of its ``t``-th neighbour."""
    n = neighbours.shape[0]
    near = neighbours[:, :k]
    mask = torch.empty(n, k, dtype=torch.bool, device=near.device)
    step = max(1, _CHUNK_ELEMENTS // (k * k))
    for r0 in range(0, n, step):
        r1 = min(r0 + step, n)
        own = torch.arange(r0, r1, device=near.device)
        mask[r0:r1] = (near[near[r0:r1]] == own[:, None, None]).any(-1)
    return mask


def _expanded_reciprocal_sets(
    neighbours: torch.Tensor, k_fwd: int, k_half: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) pairs of every sample's expanded k-reciprocal set, sorted and unique.

    A k-reciprocal neighbour ``c`` of ``i`` adds its own ``round(k1 / 2)``-reciprocal set when
    more than 2/3 of that set lies in ``i``'s k-reciprocal set.
    """
    n = neighbours.shape[0]
    device = neighbours.device
    forward = neighbours[:, :k_fwd]
    half = neighbours[:, :k_half]
    recip = _reciprocal_mask(neighbours, k_fwd)
    half_recip = _reciprocal_mask(neighbours, k_half)

    keys = []
    step = max(1, _CHUNK_ELEMENTS // (k_fwd * k_half * k_fwd))
    for r0 in range(0, n, step):
        r1 = min(r0 + step, n)
        own_set, own_mask = forward[r0:r1], recip[r0:r1]
        cand_sets, cand_mask = half[own_set], half_recip[own_set]
        member = (cand_sets[..., None] == own_set[:, None, None, :]) & own_mask[:, None, None, :]
        overlap = (member.any(-1) & cand_mask).sum(-1).double()
        size = cand_mask.sum(-1).double()
        accept = own_mask & (overlap > (2 / 3) * size)
        row_ids = torch.arange(r0, r1, device=device)
        keys.append(row_ids[:, None].expand_as(own_set)[own_mask] * n + own_set[own_mask])
        added = accept[..., None] & cand_mask
        added_rows = row_ids[:, None, None].expand_as(cand_sets)[added]
        keys.append(added_rows * n + cand_sets[added])
    unique = torch.unique(torch.cat(keys))
    return unique // n, unique % n


def _query_expansion(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    qe_neighbours: torch.Tensor,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse rows of ``V_qe[i] = mean(V[j] for j in the k2 nearest neighbours of i)``."""
    device = rows.device
    row_len = torch.bincount(rows, minlength=n)
    row_start = torch.cumsum(row_len, 0) - row_len
    k = qe_neighbours.shape[1]
    src_rows = qe_neighbours.reshape(-1)
    counts = row_len[src_rows]
    dst = torch.repeat_interleave(torch.arange(n, device=device).repeat_interleave(k), counts)
    offsets = torch.cumsum(counts, 0) - counts
    within = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(
        offsets, counts
    )
    src = torch.repeat_interleave(row_start[src_rows], counts) + within
    keys, inverse = torch.unique(dst * n + cols[src], return_inverse=True)
    summed = torch.zeros(keys.numel(), dtype=values.dtype, device=device)
    summed.index_add_(0, inverse, values[src])
    return keys // n, keys % n, summed / k


def _add_jaccard(
    final: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    num_query: int,
    lam: float,
) -> None:
    """``final = jaccard * (1 - lam) + final * lam`` for the query x gallery block, in place.

    ``rows``, ``cols``, ``values`` are the non-zeros of ``V`` sorted by row. The overlap
    ``sum_k min(V[q, k], V[g, k])`` only involves columns ``k`` where both are non-zero: the
    gallery non-zeros are grouped by column (an inverted index) and every (query non-zero,
    gallery non-zero) pair sharing a column is scattered into a dense block of queries.
    """
    device = final.device
    num_gallery = final.shape[1]
    n = num_query + num_gallery
    in_gallery = rows >= num_query
    g_cols = cols[in_gallery]
    by_col = torch.argsort(g_cols, stable=True)
    g_rows = rows[in_gallery][by_col] - num_query
    g_vals = values[in_gallery][by_col]
    col_len = torch.bincount(g_cols, minlength=n)
    col_start = torch.cumsum(col_len, 0) - col_len

    num_q_entries = int((~in_gallery).sum())
    q_rows, q_cols, q_vals = rows[:num_q_entries], cols[:num_q_entries], values[:num_q_entries]
    pairs = col_len[q_cols]
    pairs_per_query = torch.zeros(num_query, dtype=torch.long, device=device)
    pairs_per_query.index_add_(0, q_rows, pairs)
    entry_start = torch.searchsorted(q_rows, torch.arange(num_query + 1, device=device))
    for q0, q1 in itertools.pairwise(_chunk_bounds(pairs_per_query, num_gallery)):
        e0, e1 = int(entry_start[q0]), int(entry_start[q1])
        counts = pairs[e0:e1]
        offsets = torch.cumsum(counts, 0) - counts
        src = torch.arange(int(counts.sum()), device=device)
        src += torch.repeat_interleave(col_start[q_cols[e0:e1]] - offsets, counts)
        target = torch.repeat_interleave((q_rows[e0:e1] - q0) * num_gallery, counts)
        target += g_rows[src]
        contrib = torch.minimum(torch.repeat_interleave(q_vals[e0:e1], counts), g_vals[src])
        overlap = torch.zeros((q1 - q0) * num_gallery, dtype=final.dtype, device=device)
        overlap.index_add_(0, target, contrib)
        overlap = overlap.view(q1 - q0, num_gallery)
        # jaccard = 1 - m / (2 - m), computed in place in the overlap buffer.
        jaccard = overlap.div_(overlap.neg().add_(2)).neg_().add_(1)
        final[q0:q1].mul_(lam).add_(jaccard, alpha=1 - lam)


def _chunk_bounds(pairs_per_query: torch.Tensor, num_gallery: int) -> list[int]:
    """Query boundaries so that each chunk's pair list and dense block stay bounded."""
    cost = pairs_per_query.cpu().numpy() + num_gallery
    bounds = [0]
    total = 0
    for q, c in enumerate(cost):
        if total and total + c > _CHUNK_ELEMENTS:
            bounds.append(q)
            total = 0
        total += int(c)
    bounds.append(len(cost))
    return bounds
