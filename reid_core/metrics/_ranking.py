"""CMC / mAP / mINP from a query x gallery distance matrix, vectorised.

The loop formulation (:func:`reid_core.metrics.reference.evaluate_ranking_loop`) argsorts every
row and walks the queries. Here the few same-identity gallery entries of each query (positives
and same-camera junk) are handled as a ragged list, and the rank of each positive is the number
of gallery entries before it; nothing argsorts whole rows. Float32 matrices on the CPU take the
numpy path of :mod:`reid_core.metrics._ranking_cpu` (one pass over the matrix in L2-sized row
chunks); other dtypes and devices (CUDA) take the torch path below, which finds the counts with
``searchsorted`` in sorted values (chunk by chunk, on the input's device): only the entries not
farther than the query's last positive when they are few, whole rows otherwise. Distance ties
are broken by gallery index, exactly as a stable argsort would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reid_core.errors import EvaluationError
from reid_core.metrics import _ranking_cpu
from reid_core.metrics._inputs import as_float
from reid_core.metrics._inputs import as_labels
from reid_core.metrics._inputs import as_tensor

logger = logging.getLogger(__name__)

# Rows of the distance matrix sorted at once: bounds the extra memory to ~64 MB (float32).
_SORT_CHUNK_ELEMENTS = 1 << 24
# Below this fraction of entries that can precede a positive, only those are sorted.
_COMPACT_FRACTION = 0.25
# Use the numpy path / numpy kernels for CPU tensors (tests switch this off to cover torch's).
_NUMPY_ON_CPU = True
# Tied (positive, row) pairs compared against their whole row at once.
_TIE_CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class RankingResult:
    """Ranking metrics of one query set against one gallery.

    Attributes:
        cmc: float64 array of length ``max_rank``; ``cmc[k]`` is the fraction of valid queries
            whose first true match is within the top ``k + 1``.
        mAP: mean average precision over the valid queries.
        mINP: mean inverse negative penalty (Ye et al. 2021): ``num_matches / rank_of_last``.
        num_valid_queries: queries with at least one true match in the gallery.
        ap: float64 array with one average precision per query; NaN for skipped queries.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    ap: np.ndarray


def evaluate_ranking(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
) -> tuple[np.ndarray, float]:
    """CMC curve and mAP of a query x gallery distance matrix.

    Gallery entries with the same identity and the same camera as the query are ignored; queries
    without any valid match are skipped. Works on numpy arrays and on CPU or CUDA tensors (the
    computation runs on ``distmat``'s device). Ties in distance are broken by gallery index.

    Args:
        distmat: ``[num_query, num_gallery]`` distances, smaller = more similar.
        q_pids: ``[num_query]`` query identities.
        g_pids: ``[num_gallery]`` gallery identities.
        q_camids: ``[num_query]`` query cameras.
        g_camids: ``[num_gallery]`` gallery cameras.
        max_rank: length of the CMC curve. Ranks beyond the number of valid gallery entries
            repeat the last value (1.0), so the curve always has ``max_rank`` entries.

    Returns:
        ``(cmc, mAP)``: float64 array of length ``max_rank`` in [0, 1], and a float in [0, 1].

    Raises:
        EvaluationError: mismatched shapes, NaN distances, ``max_rank < 1``, or no query with a
            valid match.

    Example:
        >>> import numpy as np
        >>> dist = np.array([[0.1, 0.9, 0.5]])
        >>> cmc, mAP = evaluate_ranking(dist, [1], [1, 2, 1], [0], [1, 1, 2], max_rank=3)
        >>> cmc.tolist(), round(mAP, 4)
        ([1.0, 1.0, 1.0], 1.0)
    """
    result = evaluate_ranking_full(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    return result.cmc, result.mAP


def evaluate_ranking_full(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    *,
    ignore_pids: Iterable[int] = (),
) -> RankingResult:
    """Like :func:`evaluate_ranking`, with mINP, per-query AP and the number of valid queries.

    Args:
        distmat: ``[num_query, num_gallery]`` distances, smaller = more similar.
        q_pids: ``[num_query]`` query identities.
        g_pids: ``[num_gallery]`` gallery identities.
        q_camids: ``[num_query]`` query cameras.
        g_camids: ``[num_gallery]`` gallery cameras.
        max_rank: length of the CMC curve (see :func:`evaluate_ranking`).
        ignore_pids: gallery identities removed from every ranking (e.g. MARS junk id -1).

    Returns:
        A :class:`RankingResult`.

    Raises:
        EvaluationError: mismatched shapes, NaN distances, ``max_rank < 1``, or no query with a
            valid match.
    """
    if max_rank < 1:
        raise EvaluationError(f"max_rank must be >= 1, got {max_rank}")
    dist = as_float(as_tensor(distmat, "distmat"))
    if dist.dim() != 2:
        raise EvaluationError(f"distmat must be 2-D [num_query, num_gallery], got {dist.shape}")
    device = dist.device
    num_query, num_gallery = dist.shape
    q_pid = as_labels(q_pids, "q_pids", num_query, device)
    q_cam = as_labels(q_camids, "q_camids", num_query, device)
    g_pid = as_labels(g_pids, "g_pids", num_gallery, device)
    g_cam = as_labels(g_camids, "g_camids", num_gallery, device)
    ignored = torch.as_tensor(list(ignore_pids), dtype=torch.long, device=device)
    if ignored.numel():
        keep = ~torch.isin(g_pid, ignored)
        dist, g_pid, g_cam = dist[:, keep], g_pid[keep], g_cam[keep]
        num_gallery = dist.shape[1]
    if num_query == 0 or num_gallery == 0:
        raise EvaluationError(
            f"cannot evaluate {num_query} queries against {num_gallery} gallery entries"
        )

    if _use_numpy(dist) and dist.dtype == torch.float32:
        ranks = _ranking_cpu.positive_ranks(
            np.ascontiguousarray(dist.numpy()),
            *(labels.numpy() for labels in (q_pid, g_pid, q_cam, g_cam)),
        )
        p_q, p_k, rank, num_pos = (torch.from_numpy(array) for array in ranks)
    else:
        p_q, p_k, rank, num_pos = _positive_ranks(dist, q_pid, g_pid, q_cam, g_cam)
    rank = rank.double()

    valid = num_pos > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise EvaluationError(
            f"no query has a valid match in the gallery ({num_query} queries, "
            f"{num_gallery} gallery entries)"
        )
    ap_sum = torch.zeros(num_query, dtype=torch.float64, device=device)
    ap_sum.index_add_(0, p_q, (p_k + 1).double() / rank)
    ap = torch.where(valid, ap_sum / num_pos.clamp(min=1), torch.nan)

    is_first = p_k == 0
    first_rank = torch.zeros(num_query, dtype=torch.long, device=device)
    first_rank[p_q[is_first]] = rank[is_first].long()
    hist = torch.bincount(first_rank[valid].clamp(max=max_rank + 1) - 1, minlength=max_rank + 1)
    cmc = torch.cumsum(hist[:max_rank], 0).double() / num_valid

    is_last = p_k == num_pos[p_q] - 1
    inp = num_pos[p_q[is_last]].double() / rank[is_last]

    return RankingResult(
        cmc=cmc.cpu().numpy(),
        mAP=float(ap[valid].mean()),
        mINP=float(inp.mean()),
        num_valid_queries=num_valid,
        ap=ap.cpu().numpy(),
    )


def _positive_ranks(
    dist: torch.Tensor,
    q_pid: torch.Tensor,
    g_pid: torch.Tensor,
    q_cam: torch.Tensor,
    g_cam: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch path: ``(p_q, p_k, rank, num_pos)`` as in :func:`_ranking_cpu.positive_ranks`."""
    num_query = dist.shape[0]
    device = dist.device
    # Same-identity gallery entries of every query, as a flat list of (query, gallery) pairs.
    g_order = torch.argsort(g_pid, stable=True)
    g_pid_sorted = g_pid[g_order]
    first = torch.searchsorted(g_pid_sorted, q_pid, side="left")
    counts = torch.searchsorted(g_pid_sorted, q_pid, side="right") - first
    qidx = torch.repeat_interleave(torch.arange(num_query, device=device), counts)
    seg_start = torch.cumsum(counts, 0) - counts
    within = torch.arange(qidx.numel(), device=device) - seg_start[qidx]
    gidx = g_order[first[qidx] + within]
    value = dist[qidx, gidx]
    is_junk = g_cam[gidx] == q_cam[qidx]

    # Order the pairs by (query, distance, gallery index): gidx ascends within each query.
    order = torch.argsort(value, stable=True)
    order = order[torch.argsort(qidx[order], stable=True)]
    qidx, gidx, value, is_junk = qidx[order], gidx[order], value[order], is_junk[order]
    is_pos = ~is_junk
    pos_before = _exclusive_segment_cumsum(is_pos, seg_start, qidx)
    junk_before = _exclusive_segment_cumsum(is_junk, seg_start, qidx)

    num_pos = torch.zeros(num_query, dtype=torch.long, device=device)
    num_pos.index_add_(0, qidx, is_pos.long())
    p_q, p_k = qidx[is_pos], pos_before[is_pos]
    p_g, p_value, p_junk_before = gidx[is_pos], value[is_pos], junk_before[is_pos]

    # 1-based rank of each positive among the valid entries of its query's ranking.
    before = _entries_before(dist, p_q, p_k, p_g, p_value, num_pos)
    rank = before - p_junk_before + 1

    return p_q, p_k, rank, num_pos


def _exclusive_segment_cumsum(
    flags: torch.Tensor, seg_start: torch.Tensor, seg: torch.Tensor
) -> torch.Tensor:
    """For each element, how many flagged elements precede it within its segment."""
    excl = torch.cumsum(flags.long(), 0) - flags.long()
    return excl - excl[seg_start[seg]]


def _entries_before(
    dist: torch.Tensor,
    p_q: torch.Tensor,
    p_k: torch.Tensor,
    p_g: torch.Tensor,
    p_value: torch.Tensor,
    num_pos: torch.Tensor,
) -> torch.Tensor:
    """For each positive, how many gallery entries precede it in its row's (value, index) order.

    Only entries not farther than the query's last positive can precede a positive. When they
    are a small part of a float32 chunk (a good model), just those are sorted, all rows at once
    under packed (row, value) integer keys; otherwise whole rows are sorted.

    Args:
        dist: ``[num_query, num_gallery]`` distances.
        p_q: query of each positive.
        p_k: index of each positive among its query's positives, in ranking order.
        p_g: gallery index of each positive.
        p_value: distance of each positive.
        num_pos: positives per query.

    Raises:
        EvaluationError: the matrix holds NaN.
    """
    num_query, num_gallery = dist.shape
    last = torch.full((num_query,), -torch.inf, dtype=dist.dtype, device=dist.device)
    is_last = p_k == num_pos[p_q] - 1
    last[p_q[is_last]] = p_value[is_last]
    before = torch.zeros_like(p_q)
    rows_per_chunk = max(1, _SORT_CHUNK_ELEMENTS // num_gallery)
    for q0 in range(0, num_query, rows_per_chunk):
        q1 = min(q0 + rows_per_chunk, num_query)
        block = dist[q0:q1]
        _check_no_nan(block)
        sel = torch.nonzero((p_q >= q0) & (p_q < q1)).squeeze(1)
        if sel.numel() == 0:
            continue
        rows, values = p_q[sel] - q0, p_value[sel]
        compact = _select_up_to(block, last[q0:q1]) if dist.dtype == torch.float32 else None
        if compact is not None:
            left, right = _counts_compact(*compact, rows, values)
        else:
            left, right = _counts_sorted(block, rows, p_k[sel], values)
        before[sel] = left
        tied = torch.nonzero(right - left > 1).squeeze(1)
        if tied.numel():
            ties = sel[tied]
            before[ties] += _tied_before(dist, p_q[ties], p_g[ties], p_value[ties])
    return before


def _use_numpy(tensor: torch.Tensor) -> bool:
    """numpy's SIMD sort and mask kernels are several times faster than torch's on CPU."""
    return _NUMPY_ON_CPU and tensor.device.type == "cpu"


def _check_no_nan(block: torch.Tensor) -> None:
    total = block.numpy().sum() if _use_numpy(block) else block.sum()
    if not bool(np.isfinite(float(total))) and bool(torch.isnan(block).any()):
        raise EvaluationError("distmat contains NaN")


def _select_up_to(
    block: torch.Tensor, last: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Entries with ``block[r, c] <= last[r]``: (row of each, value of each, count per row).

    Returns None when they exceed ``_COMPACT_FRACTION`` of the block (sort whole rows then).
    """
    limit = _COMPACT_FRACTION * block.numel()
    if _use_numpy(block):
        array = block.numpy()
        mask = array <= last.numpy()[:, None]
        if np.count_nonzero(mask) > limit:
            return None
        flat = np.flatnonzero(mask)
        row_of = torch.from_numpy(flat // array.shape[1])
        values = torch.from_numpy(array.reshape(-1)[flat])
    else:
        mask = block <= last[:, None]
        if int(mask.sum()) > limit:
            return None
        row_of, col = torch.nonzero(mask, as_tuple=True)
        values = block[row_of, col]
    counts = torch.bincount(row_of, minlength=block.shape[0])
    return row_of, values, counts


def _counts_sorted(
    block: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entries of ``block[rows]`` below / not above ``values``, by sorting whole rows."""
    if _use_numpy(block):
        sorted_rows = torch.from_numpy(np.sort(block.numpy(), axis=1))
    else:
        sorted_rows = torch.sort(block, dim=1).values
    width = int(slots.max()) + 1
    padded = torch.full((block.shape[0], width), torch.inf, dtype=block.dtype, device=block.device)
    padded[rows, slots] = values
    left = torch.searchsorted(sorted_rows, padded, side="left")[rows, slots]
    right = torch.searchsorted(sorted_rows, padded, side="right")[rows, slots]
    return left, right


def _counts_compact(
    row_of: torch.Tensor,
    selected: torch.Tensor,
    counts: torch.Tensor,
    rows: torch.Tensor,
    values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same counts as :func:`_counts_sorted` from the selected (row, value) entries only."""
    keys = (row_of << 32) | _ordered_bits(selected)
    keys = torch.from_numpy(np.sort(keys.numpy())) if _use_numpy(keys) else torch.sort(keys).values
    probe = (rows << 32) | _ordered_bits(values)
    offset = (torch.cumsum(counts, 0) - counts)[rows]
    left = torch.searchsorted(keys, probe, side="left") - offset
    right = torch.searchsorted(keys, probe, side="right") - offset
    return left, right


def _ordered_bits(values: torch.Tensor) -> torch.Tensor:
    """float32 -> int64 in [0, 2**32) with the same order (-0.0 and 0.0 map to one key)."""
    bits = (values + 0.0).view(torch.int32).long()
    return torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF) + (1 << 31)


def _tied_before(
    dist: torch.Tensor, q: torch.Tensor, g: torch.Tensor, value: torch.Tensor
) -> torch.Tensor:
    """Entries of row ``q`` equal to ``value`` with a gallery index below ``g``."""
    num_gallery = dist.shape[1]
    out = torch.empty_like(q)
    step = max(1, _TIE_CHUNK_ELEMENTS // num_gallery)
    columns = torch.arange(num_gallery, device=dist.device)
    for t0 in range(0, q.numel(), step):
        t1 = min(t0 + step, q.numel())
        rows = dist[q[t0:t1]]
        hits = (rows == value[t0:t1, None]) & (columns[None, :] < g[t0:t1, None])
        out[t0:t1] = hits.sum(1)
    logger.debug("broke %d distance ties by gallery index", q.numel())
    return out
