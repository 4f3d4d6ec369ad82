"""Feature extraction and ranking evaluation (CMC / mAP, optionally re-ranked)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_core import metrics as reid_metrics
from reid_core.engine._batch import finish_on_device
from reid_core.engine._chunk import evaluation_chunk
from reid_core.engine._precision import Precision
from reid_core.engine._precision import resolve_precision
from reid_core.errors import EvaluationError

logger = logging.getLogger(__name__)

RANKS: tuple[int, ...] = (1, 5, 10, 20)


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one evaluation.

    Attributes:
        metrics: ``mAP``, ``rank1``, ``rank5``, ``rank10``, ``rank20`` (fractions in [0, 1]),
            plus ``rerank_mAP``, ``rerank_rank1``, ... when re-ranking was asked for.
        cmc: The CMC curve (plain Euclidean ranking).
        rerank_cmc: The CMC curve after k-reciprocal re-ranking, if computed.
        num_query: Number of query tracklets.
        num_gallery: Number of gallery tracklets.
    """

    metrics: dict[str, float]
    cmc: np.ndarray
    rerank_cmc: np.ndarray | None
    num_query: int
    num_gallery: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (CMC curves as lists)."""
        return {
            "metrics": dict(self.metrics),
            "cmc": [float(v) for v in self.cmc],
            "rerank_cmc": None if self.rerank_cmc is None else [float(v) for v in self.rerank_cmc],
            "num_query": self.num_query,
            "num_gallery": self.num_gallery,
        }


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    device: str | torch.device,
    chunk: int = 32,
    amp: str | bool = "off",
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """One feature per tracklet: the mean of its clips' BN-neck features.

    Clips of consecutive tracklets share a forward pass (up to ``chunk`` clips), so short
    tracklets do not each pay for a small batch; in eval mode every clip's feature is
    independent of the others in its batch.

    Args:
        model: A video model whose forward returns an output with ``bn_features``.
        loader: Yields one tracklet per item: ``(clips[N, T, 3, H, W], pid, camid)``; a
            leading batch dimension of size 1 is accepted. ``uint8`` clips (a test loader
            with ``finish_on_host=False``) are normalised on ``device``.
        device: Where the model runs.
        chunk: How many clips go through the model at once on a CPU; on a CUDA device the
            chunk is sized from its free memory (:func:`~reid_core.engine.evaluation_chunk`).
        amp: The precision policy of the forward pass (``auto|fp16|bf16|off``, see
            :func:`~reid_core.engine.resolve_precision`); float32 where the device cannot run
            it. Pass the training run's policy, so features match what was trained.

    Returns:
        ``(features[num_tracklets, D]`` float32 on the CPU, ``pids``, ``camids)``.

    Raises:
        EvaluationError: If the loader yields nothing.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    precision = resolve_precision(amp, device, strict=False)
    batcher = _ClipBatcher(model, device, chunk, precision)
    pids: list[int] = []
    camids: list[int] = []
    try:
        for clips, pid, camid in loader:
            if clips.dim() == 6:
                clips = clips.squeeze(0)
            batcher.add(clips, owner=len(pids))
            pids.append(int(pid))
            camids.append(int(camid))
        batcher.flush()
    finally:
        model.train(was_training)
    if not pids:
        raise EvaluationError("no tracklets to extract features from (empty loader)")
    return batcher.means(len(pids)), np.asarray(pids, np.int64), np.asarray(camids, np.int64)


class _ClipBatcher:
    """Packs clips of consecutive tracklets into forward passes of at most ``chunk`` clips."""

    def __init__(
        self, model: nn.Module, device: torch.device, chunk: int, precision: Precision
    ) -> None:
        self.model, self.device, self.configured = model, device, max(1, chunk)
        self.chunk: int | None = None  # sized for the device at the first clips
        self.precision = precision
        self.pending: list[torch.Tensor] = []
        self.pending_owners: list[int] = []
        self.outputs: list[torch.Tensor] = []
        self.owners: list[int] = []

    def add(self, clips: torch.Tensor, owner: int) -> None:
        """Queue the clips of tracklet ``owner``; run the model whenever a batch is full."""
        if self.chunk is None:
            self.chunk = evaluation_chunk(self.configured, self.device, clips.shape[1:])
            logger.debug("feature extraction on %s: %d clips per pass", self.device, self.chunk)
        for start in range(0, clips.shape[0], self.chunk):
            piece = clips[start : start + self.chunk]
            if len(self.pending_owners) + piece.shape[0] > self.chunk:
                self.flush()
            self.pending.append(piece)
            self.pending_owners.extend([owner] * piece.shape[0])

    def flush(self) -> None:
        """Run the model on the queued clips (``uint8`` ones normalised on the device, as in
        training); the features stay on the device until :meth:`means`."""
        if not self.pending:
            return
        batch = self._staged()
        if batch.dtype == torch.uint8:
            batch = finish_on_device(batch, None, self.device)
        else:
            batch = batch.to(self.device, non_blocking=True)
        with self.precision.autocast():
            output = self.model(batch)
        self.outputs.append(output.bn_features.float())
        self.owners.extend(self.pending_owners)
        self.pending, self.pending_owners = [], []

    def _staged(self) -> torch.Tensor:
        """The queued clips as one host tensor, page-locked for a CUDA device so that the
        copy is truly asynchronous (``torch.cat`` alone would give pageable memory)."""
        first = self.pending[0]
        shape = (sum(p.shape[0] for p in self.pending), *first.shape[1:])
        pinned = self.device.type == "cuda" and not first.is_cuda
        staged = torch.empty(shape, dtype=first.dtype, device=first.device, pin_memory=pinned)
        return torch.cat(self.pending, out=staged)

    def means(self, num_tracklets: int) -> torch.Tensor:
        """``[num_tracklets, D]``: the mean feature of each tracklet's clips.

        Raises:
            EvaluationError: A tracklet had no clips (it would have no feature).
        """
        owners = torch.as_tensor(self.owners, dtype=torch.long)
        counts = torch.bincount(owners, minlength=num_tracklets)
        empty = torch.nonzero(counts == 0).flatten()
        if empty.numel():
            raise EvaluationError(f"tracklet {int(empty[0])} of the loader has no clips")
        feats = torch.cat(self.outputs)
        owners, counts = owners.to(feats.device), counts.to(feats.device)
        sums = feats.new_zeros(num_tracklets, feats.shape[1]).index_add_(0, owners, feats)
        return (sums / counts[:, None].to(sums.dtype)).cpu()  # the one copy back


def squared_euclidean(q_feats: torch.Tensor, g_feats: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, ``[num_query, num_gallery]``, clamped at 0."""
    q = q_feats.float()
    g = g_feats.float()
    distmat = q.pow(2).sum(1, keepdim=True) + g.pow(2).sum(1).unsqueeze(0) - 2.0 * q @ g.T
    return distmat.clamp_min_(0.0)


def rank_metrics(cmc: np.ndarray, mean_ap: float, *, prefix: str = "") -> dict[str, float]:
    """``{prefix}mAP`` and ``{prefix}rank{k}`` for k in 1, 5, 10, 20 from a CMC curve."""
    cmc = np.asarray(cmc, dtype=np.float64)
    metrics = {f"{prefix}mAP": float(mean_ap)}
    for k in RANKS:
        metrics[f"{prefix}rank{k}"] = float(cmc[min(k, len(cmc)) - 1])
    return metrics


def evaluate_features(
    q_feats: torch.Tensor,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_feats: torch.Tensor,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    *,
    rerank: bool = False,
    max_rank: int = 50,
) -> EvaluationResult:
    """Rank the gallery for each query by squared Euclidean distance and score it.

    Args:
        q_feats: Query features ``[num_query, D]``.
        q_pids: Query person ids.
        q_camids: Query camera ids.
        g_feats: Gallery features ``[num_gallery, D]``.
        g_pids: Gallery person ids.
        g_camids: Gallery camera ids.
        rerank: Also score the k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3).
        max_rank: Length of the CMC curves.

    Returns:
        The metrics and CMC curves.

    Raises:
        EvaluationError: If no query has a valid match in the gallery.
    """
    distmat = squared_euclidean(q_feats, g_feats)
    cmc, mean_ap = reid_metrics.evaluate_ranking(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank
    )
    metrics = rank_metrics(cmc, mean_ap)
    rerank_cmc = None
    if rerank:
        redist = reid_metrics.rerank(q_feats, g_feats)
        rerank_cmc, rerank_ap = reid_metrics.evaluate_ranking(
            redist, q_pids, g_pids, q_camids, g_camids, max_rank
        )
        metrics.update(rank_metrics(rerank_cmc, rerank_ap, prefix="rerank_"))
        rerank_cmc = np.asarray(rerank_cmc)
    return EvaluationResult(
        metrics=metrics,
        cmc=np.asarray(cmc),
        rerank_cmc=rerank_cmc,
        num_query=len(q_pids),
        num_gallery=len(g_pids),
    )


def evaluate(
    model: nn.Module,
    query_loader: Iterable[Any],
    gallery_loader: Iterable[Any],
    *,
    device: str | torch.device,
    rerank: bool = False,
    chunk: int = 32,
    amp: str | bool = "off",
) -> EvaluationResult:
    """Extract query and gallery features with ``model`` and score the ranking.

    Args:
        model: The video model (switched to eval mode for the duration).
        query_loader: Query tracklets, as for :func:`extract_features`.
        gallery_loader: Gallery tracklets.
        device: Where the model runs.
        rerank: Also report the re-ranked metrics (``rerank_mAP``, ``rerank_rank1``, ...).
        chunk: Clips per forward pass.
        amp: The precision policy of the extraction (as for :func:`extract_features`).

    Returns:
        The metrics and CMC curves.

    Raises:
        EvaluationError: If a loader is empty or no query has a valid match.
    """
    q_feats, q_pids, q_camids = extract_features(
        model, query_loader, device=device, chunk=chunk, amp=amp
    )
    g_feats, g_pids, g_camids = extract_features(
        model, gallery_loader, device=device, chunk=chunk, amp=amp
    )
    logger.debug(
        "features: %d query, %d gallery, dim %d", len(q_pids), len(g_pids), q_feats.shape[1]
    )
    device = torch.device(device)
    return evaluate_features(
        q_feats.to(device),
        q_pids,
        q_camids,
        g_feats.to(device),
        g_pids,
        g_camids,
        rerank=rerank,
    )
