"""Bag-of-tricks losses: label-smoothed CE, batch-hard triplet, center, OSM+CAA, the Attn-CL
attention loss, their sum."""

from __future__ import annotations

from reid_core.losses._attention import attention_loss
from reid_core.losses._center import CenterLoss
from reid_core.losses._criterion import LOSS_TERMS
from reid_core.losses._criterion import ReidCriterion
from reid_core.losses._criterion import rescale_center_grads
from reid_core.losses._cross_entropy import CrossEntropyLabelSmooth
from reid_core.losses._distances import cosine_dist
from reid_core.losses._distances import euclidean_dist
from reid_core.losses._osm_caa import OSMCAALoss
from reid_core.losses._triplet import HardTriplets
from reid_core.losses._triplet import TripletLoss
from reid_core.losses._triplet import hard_example_mining

__all__ = [
    "LOSS_TERMS",
    "CenterLoss",
    "CrossEntropyLabelSmooth",
    "HardTriplets",
    "OSMCAALoss",
    "ReidCriterion",
    "TripletLoss",
    "attention_loss",
    "cosine_dist",
    "euclidean_dist",
    "hard_example_mining",
    "rescale_center_grads",
]
