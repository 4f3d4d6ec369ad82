"""Carving a validation split out of the training ids (the test set is never used)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
from PIL import Image

from reid_core.config import ValidationConfig
from reid_core.data._guided import guided_preset
from reid_core.data.datasets._base import relabel
from reid_core.data.records import ReidSplit
from reid_core.data.records import Tracklet
from reid_core.errors import ConfigError
from reid_core.errors import DatasetFormatError

logger = logging.getLogger(__name__)

#: Maps the training tracklets to a hardness score per id (higher = harder).
HardnessFn = Callable[[Sequence[Tracklet]], Mapping[int, float]]


def carve_validation(
    train: Sequence[Tracklet],
    cfg: ValidationConfig,
    *,
    hardness: HardnessFn | None = None,
    quiet: bool = False,
) -> ReidSplit:
    """Split training tracklets into a smaller train set and a validation query / gallery.

    Validation ids are drawn among the training ids seen by at least two cameras; their number
    is ``max(1, round(cfg.fraction * num_ids))`` (capped by that pool, at least one id is left
    for training):

    - ``sampling="random"``: drawn uniformly with ``cfg.seed``.
    - ``sampling="guided"``: a fixed list (training pids as in ``train``, ``fraction`` unused):
      ``cfg.guided_ids``, or the preset ``cfg.preset`` (``"paper"``: the reference's 32 hard
      MARS ids, :data:`~reid_core.data.PAPER_GUIDED_IDS`).
    - ``sampling="colour_hardness"``: the hardest ids according to ``hardness`` (higher =
      harder; ties by pid). The default, :func:`colour_histogram_hardness`, is ``1 - AP`` of
      each id under a cheap, deterministic, model-free embedding.

    The validation ids' tracklets become query and gallery by ``cfg.protocol``:

    - ``"reference"`` (the reference code's): the cameras of an id in the order they first
      appear in ``train``; the tracklets of each camera but the last are merged (frames
      concatenated in ``train`` order) into one query per camera, and the last camera's
      tracklets are the gallery. An id seen by one camera gives one query without a match.
    - ``"one_per_camera"``: one random tracklet per camera is a query, the others the
      gallery, except that an id whose tracklets would all become queries keeps its last one
      in the gallery.

    Validation gallery = those tracklets plus ``cfg.distractor_fraction``
    of the remaining training tracklets (seeded) as distractors, which stay in the training set
    too. Query and gallery keep the pids of ``train``; the returned ``train`` holds the remaining
    ids, relabelled ``0..M-1``.

    Args:
        train: training tracklets (from the dataset's ``train``; never query or gallery).
        cfg: the validation settings.
        hardness: overrides the guided mode's default per-id hardness.
        quiet: log the carve-out at DEBUG (a check whose counts are not shown).

    Returns:
        ``ReidSplit(train, query, gallery)`` of the carve-out.

    Raises:
        ConfigError: a fraction is out of range, no id has two cameras, no training id would
            be left, or a guided id (or preset id) is not a training id.
    """
    if not 0 < cfg.fraction < 1:
        raise ConfigError(f"validation fraction={cfg.fraction} must be in (0, 1)")
    if not 0 <= cfg.distractor_fraction <= 1:
        raise ConfigError(f"distractor_fraction={cfg.distractor_fraction} must be in [0, 1]")
    by_pid: defaultdict[int, list[Tracklet]] = defaultdict(list)
    for t in train:
        by_pid[t.pid].append(t)
    pool = sorted(pid for pid, ts in by_pid.items() if len({t.camid for t in ts}) >= 2)
    if not pool:
        raise ConfigError("no training id is seen by two cameras; cannot build a validation split")

    if cfg.sampling == "guided":
        val_ids = _guided_ids(cfg, set(by_pid))
    else:
        wanted = min(max(1, round(cfg.fraction * len(by_pid))), len(pool))
        if cfg.sampling == "colour_hardness":
            scores = (hardness or colour_histogram_hardness)(train)
            val_ids = sorted(sorted(pool, key=lambda p: (-scores.get(p, 0.0), p))[:wanted])
        elif cfg.sampling == "random":
            rng = np.random.default_rng([cfg.seed, 0])
            val_ids = sorted(rng.choice(pool, size=wanted, replace=False).tolist())
        else:
            raise ConfigError(
                f"sampling={cfg.sampling!r}; expected 'random', 'guided' or 'colour_hardness'"
            )
    if len(val_ids) >= len(by_pid):
        raise ConfigError(f"{len(val_ids)} validation ids leave no training id")

    if cfg.protocol == "reference":
        query, gallery = _reference_protocol([by_pid[pid] for pid in val_ids])
    elif cfg.protocol == "one_per_camera":
        query, gallery = _one_per_camera([by_pid[pid] for pid in val_ids], cfg.seed)
    else:
        raise ConfigError(f"protocol={cfg.protocol!r}; expected 'reference' or 'one_per_camera'")

    val_set = set(val_ids)
    remaining = [t for t in train if t.pid not in val_set]
    n_distractors = round(cfg.distractor_fraction * len(remaining))
    picked = np.random.default_rng([cfg.seed, 2]).choice(
        len(remaining), size=n_distractors, replace=False
    )
    gallery += [remaining[i] for i in sorted(picked.tolist())]
    logger.log(
        logging.DEBUG if quiet else logging.INFO,
        "validation carve-out (%s, %s, seed %d): %d ids, %d query / %d gallery tracklets "
        "(%d distractors), %d training ids left",
        cfg.sampling,
        cfg.protocol,
        cfg.seed,
        len(val_ids),
        len(query),
        len(gallery),
        n_distractors,
        len(by_pid) - len(val_ids),
    )
    return ReidSplit(train=relabel(remaining), query=tuple(query), gallery=tuple(gallery))


def _reference_protocol(
    ids: Sequence[Sequence[Tracklet]],
) -> tuple[list[Tracklet], list[Tracklet]]:
    """Query / gallery as the reference builds them (tools/data_manager.py, Mars_subset2):
    one merged query per camera but the id's last-seen one, whose tracklets are the gallery."""
    query: list[Tracklet] = []
    gallery: list[Tracklet] = []
    for tracklets in ids:
        cameras = list(dict.fromkeys(t.camid for t in tracklets))
        last = cameras[-1] if len(cameras) > 1 else None
        for cam in cameras:
            if cam == last:
                gallery += [t for t in tracklets if t.camid == cam]
            else:
                frames = [f for t in tracklets if t.camid == cam for f in t.frames]
                query.append(Tracklet(frames=tuple(frames), pid=tracklets[0].pid, camid=cam))
    return query, gallery


def _one_per_camera(
    ids: Sequence[Sequence[Tracklet]], seed: int
) -> tuple[list[Tracklet], list[Tracklet]]:
    """Query / gallery with one random tracklet per camera of each id as a query."""
    rng = np.random.default_rng([seed, 1])
    query: list[Tracklet] = []
    gallery: list[Tracklet] = []
    for tracklets in ids:
        chosen = set()
        if len({t.camid for t in tracklets}) >= 2:
            for cam in sorted({t.camid for t in tracklets}):
                options = [i for i, t in enumerate(tracklets) if t.camid == cam]
                chosen.add(options[int(rng.integers(len(options)))])
            if len(chosen) == len(tracklets):  # keep a match in the gallery
                chosen.remove(max(chosen))
        query += [tracklets[i] for i in sorted(chosen)]
        gallery += [t for i, t in enumerate(tracklets) if i not in chosen]
    return query, gallery


def _guided_ids(cfg: ValidationConfig, train_ids: set[int]) -> list[int]:
    """The ids of guided sampling: ``cfg.guided_ids`` or the preset ``cfg.preset``."""
    if (cfg.preset is None) == (not cfg.guided_ids):
        raise ConfigError(
            "sampling='guided' takes its ids from exactly one of preset or guided_ids "
            "(colour-histogram hardness is sampling='colour_hardness')"
        )
    ids = guided_preset(cfg.preset) if cfg.preset is not None else cfg.guided_ids or ()
    what = f"preset {cfg.preset!r}" if cfg.preset is not None else "guided_ids"
    unknown = sorted(set(ids) - train_ids)
    if unknown:
        raise ConfigError(
            f"{what}: {unknown} are not training ids (0..{len(train_ids) - 1})"
            + ("; the paper preset is for MARS (625 training ids)" if cfg.preset else "")
        )
    return sorted(set(ids))


def colour_histogram_hardness(
    records: Sequence[Tracklet], *, frames_per_tracklet: int = 3, bins: int = 8
) -> dict[int, float]:
    """Per-id hardness ``1 - AP`` under a colour-histogram embedding (no model, deterministic).

    Each tracklet is embedded by ``frames_per_tracklet`` evenly spaced frames, each reduced to
    per-channel RGB histograms (``bins`` bins) of its upper and lower half, square-rooted
    (Hellinger) and averaged, then L2-normalised. Every tracklet of an id seen by two cameras is
    ranked against all other tracklets by Euclidean distance, same-id same-camera ones ignored;
    the id's AP is the mean AP of its tracklets. Ids seen by one camera score 0.

    Args:
        records: training tracklets.
        frames_per_tracklet: frames read per tracklet.
        bins: histogram bins per channel.

    Returns:
        ``{pid: 1 - AP}`` for every pid of ``records``.
    """
    feats = np.stack([_embed(t, frames_per_tracklet, bins) for t in records])
    pids = np.array([t.pid for t in records])
    cams = np.array([t.camid for t in records])
    ap = np.full(len(records), np.nan)
    for start in range(0, len(records), 512):
        rows = np.arange(start, min(start + 512, len(records)))
        dist = 2.0 - 2.0 * feats[rows] @ feats.T  # squared distance of unit vectors
        order = np.argsort(dist, axis=1, kind="stable")
        same = pids[order] == pids[rows, None]
        valid = ~(same & (cams[order] == cams[rows, None]))
        hits = same & valid
        num_pos = hits.sum(1)
        rank = np.cumsum(valid, axis=1)
        precision = np.cumsum(hits, axis=1) / np.maximum(rank, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap[rows] = np.where(num_pos > 0, (precision * hits).sum(1) / num_pos, np.nan)
    scores: dict[int, float] = {}
    for pid in np.unique(pids).tolist():
        values = ap[pids == pid]
        values = values[~np.isnan(values)]
        scores[pid] = float(1.0 - values.mean()) if values.size else 0.0
    return scores


def _embed(record: Tracklet, k: int, bins: int) -> np.ndarray:
    picks = np.unique(np.linspace(0, len(record.frames) - 1, k).round().astype(int))
    hists = []
    for i in picks.tolist():
        path = record.frames[i]
        try:
            with Image.open(path) as img:
                img.draft("RGB", (32, 64))
                frame = np.asarray(img.convert("RGB").resize((32, 64)))
        except (OSError, ValueError) as exc:
            raise DatasetFormatError(f"cannot decode frame {path}: {exc}") from None
        parts = []
        for half in (frame[:32], frame[32:]):
            for c in range(3):
                h = np.histogram(half[..., c], bins=bins, range=(0, 256))[0].astype(np.float64)
                parts.append(np.sqrt(h / max(h.sum(), 1)))
        hists.append(np.concatenate(parts))
    feat = np.mean(hists, axis=0)
    return feat / max(np.linalg.norm(feat), 1e-12)
