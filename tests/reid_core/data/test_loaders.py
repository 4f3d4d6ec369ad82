from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch

from reid_core.config import DataConfig
from reid_core.data import build_dataset
from reid_core.data import build_test_loader
from reid_core.data import build_train_loader
from reid_core.data._frames import decode_frame
from reid_core.data._frames import load_frame
from reid_core.errors import DatasetFormatError

CFG = DataConfig(
    height=32, width=16, seq_len=4, batch_size=4, num_instances=2, num_workers=0, test_max_clips=3
)


def test_train_batches_have_the_promised_shapes(mars_root: Path) -> None:
    loader = build_train_loader(build_dataset("mars", mars_root).train, CFG, seed=0)
    clips, pids, camids = next(iter(loader))
    assert clips.shape == (4, 4, 3, 32, 16)
    assert clips.dtype == torch.float32
    assert pids.dtype == torch.int64 and camids.dtype == torch.int64
    assert len(set(pids.tolist())) == 2


def test_train_loader_is_deterministic_per_seed_and_epoch(mars_root: Path) -> None:
    train = build_dataset("mars", mars_root).train
    a = next(iter(build_train_loader(train, CFG, seed=3)))[0]
    b = next(iter(build_train_loader(train, CFG, seed=3)))[0]
    loader = build_train_loader(train, CFG, seed=3)
    loader.sampler.set_epoch(1)
    c = next(iter(loader))[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_test_items_hold_every_clip_up_to_the_cap(mars_root: Path) -> None:
    ds = build_dataset("mars", mars_root)
    loader = build_test_loader(ds.query, CFG)
    clips, pid, camid = next(iter(loader))
    n_frames = len(ds.query[0].frames)
    assert clips.shape == (min(3, -(-n_frames // 4)), 4, 3, 32, 16)
    assert (pid, camid) == (ds.query[0].pid, ds.query[0].camid)
    assert len(loader) == len(ds.query)


def test_corrupt_frame_raises_naming_the_file(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    ds = build_dataset("mars", root)
    bad = ds.query[0].frames[0]
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetFormatError, match=bad.name):
        next(iter(build_test_loader(ds.query, CFG)))


def test_missing_frame_in_a_worker_keeps_the_one_line_message(copy_tree, mars_root: Path) -> None:
    root = copy_tree(mars_root)
    ds = build_dataset("mars", root)
    missing = ds.query[0].frames[-1]
    missing.unlink()
    cfg = DataConfig(height=32, width=16, num_workers=1)
    with pytest.raises(DatasetFormatError) as info:
        next(iter(build_test_loader(ds.query, cfg)))
    assert str(info.value).splitlines()[0] == f"missing frame {missing}"
    del info
    gc.collect()  # shut the worker down here, not in a later test


def test_frame_cache_gives_the_same_clips(mars_root: Path) -> None:
    query = build_dataset("mars", mars_root).query
    cached = DataConfig(**{**CFG.__dict__, "cache_frames": True})
    a = next(iter(build_test_loader(query, CFG)))[0]
    loader = build_test_loader(query, cached)
    b = next(iter(loader))[0]
    assert torch.equal(a, b)
    assert len(loader.dataset._cache) > 0


def test_decode_frame_matches_pil_decoding(mars_root: Path) -> None:
    path = build_dataset("mars", mars_root).query[0].frames[0]
    frame = decode_frame(path)
    assert frame.dtype == torch.uint8
    assert torch.equal(frame, torch.from_numpy(load_frame(path).copy()).permute(2, 0, 1))


def test_decode_frame_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="missing frame"):
        decode_frame(tmp_path / "0001.jpg")


def test_frame_cache_holds_frames_already_resized(mars_root: Path) -> None:
    query = build_dataset("mars", mars_root).query
    cfg = DataConfig(**{**CFG.__dict__, "height": 24, "width": 12, "cache_frames": True})
    loader = build_test_loader(query, cfg)
    next(iter(loader))
    cached = next(iter(loader.dataset._cache._items.values()))
    assert cached.shape == (3, 24, 12) and cached.dtype == torch.uint8
