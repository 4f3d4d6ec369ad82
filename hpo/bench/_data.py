"""Synthetic re-ID features with a MARS-like identity / camera structure, for the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MARS test split: 1,980 query and 9,330 gallery tracklets, 636 identities, 6 cameras.
MARS_QUERY = 1980
MARS_GALLERY = 9330
MARS_IDS = 636
MARS_CAMERAS = 6
FEATURE_DIM = 2048


@dataclass(frozen=True)
class FeatureSet:
    """Query and gallery features with their identities and cameras (float32 / int64)."""

    q_feats: np.ndarray
    g_feats: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    def with_queries_in_gallery(self) -> FeatureSet:
        """The official MARS convention: the gallery also holds every query tracklet."""
        return FeatureSet(
            q_feats=self.q_feats,
            g_feats=np.concatenate([self.q_feats, self.g_feats]),
            q_pids=self.q_pids,
            g_pids=np.concatenate([self.q_pids, self.g_pids]),
            q_camids=self.q_camids,
            g_camids=np.concatenate([self.q_camids, self.g_camids]),
        )


def mars_like_features(
    scale: float = 1.0, *, dim: int = FEATURE_DIM, noise: float = 3.0, seed: int = 0
) -> FeatureSet:
    """Features of ``scale`` x the MARS test split (1,980 queries, 9,330 gallery tracklets).

    Each identity has a random centre and appears in a few of the 6 cameras (about 7% in a
    single camera, so their queries have no cross-camera match, as in MARS); a tracklet is its
    identity's centre plus a camera offset plus Gaussian noise, all scaled so that squared
    distances are O(1). With the default noise the ranking is imperfect (mAP around 0.8).

    Args:
        scale: size relative to the MARS test split.
        dim: feature width.
        noise: per-tracklet noise relative to the identity spread.
        seed: random seed.

    Returns:
        A :class:`FeatureSet` (queries not in the gallery: the 9,330 convention).
    """
    rng = np.random.default_rng(seed)
    num_query = max(2, round(MARS_QUERY * scale))
    num_gallery = max(2, round(MARS_GALLERY * scale))
    num_ids = max(2, round(MARS_IDS * scale))
    cam_count = np.where(rng.random(num_ids) < 0.07, 1, rng.integers(2, MARS_CAMERAS + 1, num_ids))
    cam_sets = [rng.permutation(MARS_CAMERAS)[:c] for c in cam_count]

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        pids = rng.integers(0, num_ids, count)
        cams = np.array([rng.choice(cam_sets[p]) for p in pids], dtype=np.int64)
        return pids.astype(np.int64), cams

    q_pids, q_cams = draw(num_query)
    g_pids, g_cams = draw(num_gallery)
    scale_f = np.float32(1.0 / np.sqrt(dim))
    centres = rng.standard_normal((num_ids, dim), dtype=np.float32) * scale_f
    cam_shift = rng.standard_normal((MARS_CAMERAS, dim), dtype=np.float32) * scale_f * 0.3

    def embed(pids: np.ndarray, cams: np.ndarray) -> np.ndarray:
        out = rng.standard_normal((pids.size, dim), dtype=np.float32)
        out *= scale_f * np.float32(noise)
        out += centres[pids]
        out += cam_shift[cams]
        return out

    return FeatureSet(
        q_feats=embed(q_pids, q_cams),
        g_feats=embed(g_pids, g_cams),
        q_pids=q_pids,
        g_pids=g_pids,
        q_camids=q_cams,
        g_camids=g_cams,
    )


def squared_distances(q_feats: np.ndarray, g_feats: np.ndarray) -> np.ndarray:
    """``[num_query, num_gallery]`` squared Euclidean distances (float32)."""
    dist = q_feats @ g_feats.T
    dist *= -2
    dist += np.einsum("ij,ij->i", q_feats, q_feats)[:, None]
    dist += np.einsum("ij,ij->i", g_feats, g_feats)[None, :]
    return dist
