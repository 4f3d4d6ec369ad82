"""MARS at its real size, from a metadata-only copy of the index (no image is written)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_core.config import DataConfig
from reid_core.config import ValidationConfig
from reid_core.data import RandomIdentitySampler
from reid_core.data import build_dataset
from reid_core.data import carve_validation
from reid_core.data import write_mars_metadata
from reid_core.data.datasets import Mars
from reid_core.metrics import evaluate_ranking


@pytest.fixture(scope="module")
def mars_meta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mars_metadata(tmp_path_factory.mktemp("mars") / "mars")


def _batches(pids: list[int], data: DataConfig = DataConfig()) -> int:
    sampler = RandomIdentitySampler(
        pids, data.batch_size, data.num_instances, seed=0, epoch_sampling=data.epoch_sampling
    )
    return len(sampler) // data.batch_size


def test_parse_gives_the_mars_counts(mars_meta: Path) -> None:
    summary = build_dataset("mars", mars_meta).summary()
    assert (summary.train.ids, summary.train.tracklets, summary.train.frames) == (
        625,
        8_298,
        509_914,
    )
    assert summary.query.tracklets == 1_980 and summary.gallery.tracklets == 9_330
    assert len(build_dataset("mars", mars_meta, mars_gallery="official").gallery) == 11_310
    gallery_pids = {t.pid for t in build_dataset("mars", mars_meta).gallery}
    assert 0 in gallery_pids and -1 not in gallery_pids  # distractors kept, junk dropped


def test_reference_epoch_is_78_batches_and_70_after_the_carve_out(mars_meta: Path) -> None:
    train = build_dataset("mars", mars_meta).train
    assert _batches([t.pid for t in train]) == 78  # floor(625 * 4 / 32)
    split = carve_validation(train, ValidationConfig())
    assert split.num_train_pids == 563 and len({t.pid for t in split.query}) == 62
    assert _batches([t.pid for t in split.train]) == 70  # floor(563 * 4 / 32)
    # The other epoch: every tracklet once, about 3x the batches.
    per_tracklet = DataConfig(epoch_sampling="per_tracklet")
    assert _batches([t.pid for t in split.train], per_tracklet) > 3 * 70 - 10


def test_paper_guided_preset_on_mars_holds_out_exactly_32_ids(mars_meta: Path) -> None:
    train = build_dataset("mars", mars_meta).train
    split = carve_validation(train, ValidationConfig(sampling="guided", preset="paper"))
    assert split.num_train_pids == 593
    assert {t.pid for t in split.query} <= set(range(625))
    held_out = {t.pid for t in split.query}
    assert held_out == {
        41, 539, 600, 513, 287, 297, 304, 504, 90, 75, 45, 465, 408, 209, 552, 296,
        426, 31, 305, 149, 40, 129, 404, 613, 91, 393, 52, 283, 483, 371, 50, 353,
    }  # fmt: skip
    distractors = [t for t in split.gallery if t.pid not in held_out]
    remaining = sum(1 for t in train if t.pid not in held_out)
    assert len(distractors) == round(0.25 * remaining)


def test_the_index_is_parsed_once_per_process_and_again_when_it_changes(
    mars_meta: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    parse = Mars._parse
    monkeypatch.setattr(Mars, "_parse", lambda self: calls.append(1) or parse(self))
    first = build_dataset("mars", mars_meta, mars_gallery="official", min_frames=2)
    _ = first.train
    again = build_dataset("mars", mars_meta, mars_gallery="official", min_frames=2)
    _ = again.train
    assert again is first and len(calls) == 1
    query = mars_meta / "info" / "query_IDX.mat"
    stat = query.stat()
    os.utime(query, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _ = build_dataset("mars", mars_meta, mars_gallery="official", min_frames=2).train
    assert len(calls) == 2


def test_evaluation_at_mars_size_takes_seconds(mars_meta: Path) -> None:
    ds = build_dataset("mars", mars_meta)
    q_pids = np.array([t.pid for t in ds.query])
    g_pids = np.array([t.pid for t in ds.gallery])
    q_cams = np.array([t.camid for t in ds.query])
    g_cams = np.array([t.camid for t in ds.gallery])
    assert (len(q_pids), len(g_pids)) == (1_980, 9_330)
    distmat = torch.rand(1_980, 9_330, generator=torch.Generator().manual_seed(0))
    distmat[torch.from_numpy(q_pids[:, None] == g_pids[None, :])] -= 1.0  # true matches first
    # CPU seconds of this process: the promise is about the ranking's cost, which other
    # processes on a loaded machine do not change (wall-clock time they do).
    start = time.process_time()
    cmc, mean_ap = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams)
    assert time.process_time() - start < 20.0
    assert cmc[0] == pytest.approx(1.0) and mean_ap == pytest.approx(1.0)
