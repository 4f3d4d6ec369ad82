"""Re-identification metrics: CMC / mAP / mINP and k-reciprocal re-ranking, vectorised in torch.

:func:`evaluate_ranking` and :func:`rerank` accept numpy arrays or torch tensors (CPU or CUDA)
and compute on the input's device. :mod:`reid_core.metrics.reference` holds the plain per-query
loop definitions they are tested and benchmarked against.
"""

from __future__ import annotations

from reid_core.metrics._ranking import RankingResult
from reid_core.metrics._ranking import evaluate_ranking
from reid_core.metrics._ranking import evaluate_ranking_full
from reid_core.metrics._rerank import rerank

__all__ = ["RankingResult", "evaluate_ranking", "evaluate_ranking_full", "rerank"]
