"""numpy path of :func:`reid_core.metrics.evaluate_ranking_full` for float32 CPU matrices.

Same definition as the torch path of :mod:`reid_core.metrics._ranking`, with fewer passes over
the distance matrix (numpy's SIMD compare / select / sort kernels are several times faster than
torch's on CPU):

- the same-identity (positive and junk) entries of every query are found from the labels alone
  and ordered by (query, distance, gallery index) with one sort of packed integer keys;
- the matrix is walked once in row chunks small enough to stay in the L2 cache. In each chunk the
  entries not farther than each query's second-to-last positive are selected (a few percent of
  the matrix with a reasonable model) and the entries before each query's last positive are only
  counted, so the selection does not grow with the last positive's rank;
- the selected entries are sorted once, as ``(row, value)`` integer keys (torch's stable sort,
  ~2.5x faster than ``np.sort`` on int64 here), and every other positive's rank is a
  ``searchsorted`` in them;
- chunks where too many entries would be selected (a poor model) sort their rows instead.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from reid_core.errors import EvaluationError

# Row chunks of about this many matrix entries (1 MiB of float32) stay in the L2 cache.
_CHUNK_ELEMENTS = 1 << 18
# Above this fraction of a chunk's entries to select, its rows are sorted instead.
COMPACT_FRACTION = 0.25


def positive_ranks(
    dist: np.ndarray,
    q_pid: np.ndarray,
    g_pid: np.ndarray,
    q_cam: np.ndarray,
    g_cam: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1-based rank of every true match among its query's valid gallery entries.

    Args:
        dist: C-contiguous float32 ``[num_query, num_gallery]`` distances.
        q_pid: int64 query identities.
        g_pid: int64 gallery identities.
        q_cam: int64 query cameras.
        g_cam: int64 gallery cameras.

    Returns:
        ``(p_q, p_k, rank, num_pos)``: the query of each true match, its index among its
        query's matches in ranking order, its rank (int64), and the matches per query.

    Raises:
        EvaluationError: the matrix holds NaN.
    """
    num_query, num_gallery = dist.shape
    qidx, gidx, value, is_junk = _same_identity_pairs(dist, q_pid, g_pid, q_cam, g_cam)
    seg_start = np.searchsorted(qidx, np.arange(num_query))
    is_pos = ~is_junk
    pos_before = _exclusive_segment_cumsum(is_pos, seg_start, qidx)
    junk_before = _exclusive_segment_cumsum(is_junk, seg_start, qidx)
    num_pos = np.bincount(qidx[is_pos], minlength=num_query)
    p_q, p_k, p_g, p_value = qidx[is_pos], pos_before[is_pos], gidx[is_pos], value[is_pos]

    # Per query: the last positive (counted) and the threshold of the selection.
    is_last = p_k == num_pos[p_q] - 1
    last = np.full(num_query, -np.inf, dtype=np.float32)
    last[p_q[is_last]] = p_value[is_last]
    is_second = p_k == num_pos[p_q] - 2
    cutoff = np.full(num_query, -np.inf, dtype=np.float32)
    cutoff[p_q[is_second]] = p_value[is_second]

    left = np.zeros(p_q.size, dtype=np.int64)
    right = np.zeros(p_q.size, dtype=np.int64)
    last_left = np.zeros(num_query, dtype=np.int64)
    last_right = np.zeros(num_query, dtype=np.int64)
    pos_start = np.searchsorted(p_q, np.arange(num_query + 1))
    row_sorted = np.zeros(num_query, dtype=bool)
    selected: list[np.ndarray] = []
    selected_values: list[np.ndarray] = []
    step = max(1, _CHUNK_ELEMENTS // num_gallery)
    mask_buf = np.empty((min(step, num_query), num_gallery), dtype=bool)
    count_dtype = np.uint16 if num_gallery < (1 << 16) else np.uint32
    for r0 in range(0, num_query, step):
        r1 = min(r0 + step, num_query)
        block, mask = dist[r0:r1], mask_buf[: r1 - r0]
        # "not greater" also selects NaN, so that the check below sees every NaN.
        np.greater(block, cutoff[r0:r1, None], out=mask)
        np.logical_not(mask, out=mask)
        if np.count_nonzero(mask) > COMPACT_FRACTION * mask.size:
            p0, p1 = pos_start[r0], pos_start[r1]
            left[p0:p1], right[p0:p1] = _counts_in_sorted_rows(
                block, p_q[p0:p1] - r0, p_value[p0:p1]
            )
            row_sorted[r0:r1] = True
            continue
        flat = np.flatnonzero(mask)
        selected.append(flat + r0 * num_gallery)
        selected_values.append(block.reshape(-1)[flat])  # gathered while the block is cached
        bound = last[r0:r1, None]
        np.less(block, bound, out=mask)
        last_left[r0:r1] = np.add.reduce(mask.view(np.uint8), axis=1, dtype=count_dtype)
        np.less_equal(block, bound, out=mask)
        last_right[r0:r1] = np.add.reduce(mask.view(np.uint8), axis=1, dtype=count_dtype)

    if selected:
        _counts_in_selection(
            np.concatenate(selected) // num_gallery,
            np.concatenate(selected_values),
            p_q,
            p_value,
            left,
            right,
        )
    counted = is_last & ~row_sorted[p_q]
    left[counted] = last_left[p_q[counted]]
    right[counted] = last_right[p_q[counted]]

    before = left
    tied = np.flatnonzero(right - left > 1)
    if tied.size:
        before[tied] += _tied_before(dist, p_q[tied], p_g[tied], p_value[tied])
    rank = before - junk_before[is_pos] + 1
    return p_q, p_k, rank, num_pos


def _same_identity_pairs(
    dist: np.ndarray, q_pid: np.ndarray, g_pid: np.ndarray, q_cam: np.ndarray, g_cam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query, gallery, distance, is_junk) of every same-identity pair, in ranking order.

    Pairs are sorted by (query, distance, gallery index); raises on a NaN distance among them.
    """
    g_order = np.argsort(g_pid, kind="stable")
    g_sorted = g_pid[g_order]
    first = np.searchsorted(g_sorted, q_pid, side="left")
    counts = np.searchsorted(g_sorted, q_pid, side="right") - first
    qidx = np.repeat(np.arange(q_pid.size), counts)
    offset = np.repeat(first - (np.cumsum(counts) - counts), counts)
    gidx = g_order[np.arange(qidx.size) + offset]
    value = dist[qidx, gidx]
    if np.isnan(value).any():
        raise EvaluationError("distmat contains NaN")
    # gidx ascends within each query, so a stable sort by (query, value) breaks ties by index.
    order = np.argsort((qidx << 32) | ordered_bits(value), kind="stable")
    qidx, gidx, value = qidx[order], gidx[order], value[order]
    return qidx, gidx, value, g_cam[gidx] == q_cam[qidx]


def _exclusive_segment_cumsum(
    flags: np.ndarray, seg_start: np.ndarray, seg: np.ndarray
) -> np.ndarray:
    """For each element, how many flagged elements precede it within its segment."""
    excl = np.cumsum(flags) - flags
    return excl - excl[seg_start[seg]]


def ordered_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> int64 in [0, 2**32) with the same order (-0.0 and 0.0 map to one key)."""
    bits = (values + np.float32(0.0)).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, bits ^ 0x7FFFFFFF) + (1 << 31)


def _counts_in_selection(
    rows: np.ndarray,
    values: np.ndarray,
    p_q: np.ndarray,
    p_value: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
) -> None:
    """Fill ``left`` / ``right`` (entries below / not above) from the selected entries.

    ``rows`` / ``values`` are the row and the value of each selected entry.

    Only positives whose row was selected and whose value is within the selection are written;
    the others (the last positive of a row, rows that were sorted) are overwritten later.
    """
    if np.isnan(values).any():
        raise EvaluationError("distmat contains NaN")
    keys = torch.sort(torch.from_numpy((rows << 32) | ordered_bits(values)), stable=True)[0].numpy()
    probe = (p_q << 32) | ordered_bits(p_value)
    row_start = np.searchsorted(keys, p_q << 32)
    inside = np.searchsorted(keys, probe, side="right") - row_start
    within = inside > 0
    left[within] = np.searchsorted(keys, probe[within], side="left") - row_start[within]
    right[within] = inside[within]


def _counts_in_sorted_rows(
    block: np.ndarray, rows: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Entries of ``block[rows]`` below / not above ``values``, by sorting whole rows.

    ``rows`` is ascending (positives grouped by row).
    """
    sorted_rows = np.sort(block, axis=1)
    if np.isnan(sorted_rows[:, -1]).any():
        raise EvaluationError("distmat contains NaN")
    left = np.empty(rows.size, dtype=np.int64)
    right = np.empty(rows.size, dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(block.shape[0] + 1))
    for row, (b0, b1) in enumerate(itertools.pairwise(bounds)):
        if b1 > b0:
            left[b0:b1] = np.searchsorted(sorted_rows[row], values[b0:b1], side="left")
            right[b0:b1] = np.searchsorted(sorted_rows[row], values[b0:b1], side="right")
    return left, right


def _tied_before(dist: np.ndarray, q: np.ndarray, g: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Entries of row ``q`` equal to ``value`` with a gallery index below ``g``."""
    num_gallery = dist.shape[1]
    out = np.empty(q.size, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // num_gallery)
    columns = np.arange(num_gallery)
    for t0 in range(0, q.size, step):
        t1 = min(t0 + step, q.size)
        hits = dist[q[t0:t1]] == value[t0:t1, None]
        hits &= columns[None, :] < g[t0:t1, None]
        out[t0:t1] = np.count_nonzero(hits, axis=1)
    return out
