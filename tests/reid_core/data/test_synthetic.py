from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_core.data import build_dataset
from reid_core.data import write_synthetic
from reid_core.errors import ConfigError


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("layout", ["mars", "ilidsvid"])
def test_same_seed_writes_the_same_bytes(tmp_path: Path, layout: str) -> None:
    kwargs = {"ids": 4, "frames": 4, "height": 32, "width": 16}
    a = write_synthetic(tmp_path / "a", layout, seed=3, **kwargs)
    b = write_synthetic(tmp_path / "b", layout, seed=3, **kwargs)
    c = write_synthetic(tmp_path / "c", layout, seed=4, **kwargs)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_mars_layout_files(mars_root: Path) -> None:
    for name in ("train_name.txt", "test_name.txt", "tracks_train_info.mat"):
        assert (mars_root / "info" / name).is_file()
    assert (mars_root / "info" / "tracks_test_info.mat").is_file()
    assert (mars_root / "info" / "query_IDX.mat").is_file()
    assert list((mars_root / "bbox_test" / "00-1").glob("00-1C*T*F*.jpg"))
    assert list((mars_root / "bbox_test" / "0000").glob("0000C*T*F*.jpg"))
    with Image.open(next((mars_root / "bbox_train").rglob("*.jpg"))) as img:
        assert img.format == "JPEG"
        assert img.size == (16, 32)


def test_ilids_and_prid_have_two_cameras(ilids_root: Path, prid_root: Path) -> None:
    assert sorted(p.name for p in (ilids_root / "i-LIDS-VID" / "sequences").iterdir()) == [
        "cam1",
        "cam2",
    ]
    assert sorted(p.name for p in (prid_root / "prid_2011" / "multi_shot").iterdir()) == [
        "cam_a",
        "cam_b",
    ]
    with Image.open(next(prid_root.rglob("*.png"))) as img:
        assert img.format == "PNG"


def test_non_empty_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not an empty folder"):
        write_synthetic(tmp_path, "mars")


def _mean_frame(frames: tuple[Path, ...]) -> np.ndarray:
    return np.mean([np.asarray(Image.open(f), dtype=np.float32) for f in frames], axis=0)


def test_identities_are_distinguishable_but_not_trivially(tmp_path: Path) -> None:
    # Raw-pixel nearest neighbour across cameras: better than chance, not perfect.
    root = write_synthetic(tmp_path / "m", "ilidsvid", ids=24, frames=4, height=32, width=16)
    ds = build_dataset("ilidsvid", root)
    q = np.stack([_mean_frame(t.frames).ravel() for t in ds.query])
    g = np.stack([_mean_frame(t.frames).ravel() for t in ds.gallery])
    dist = ((q[:, None] - g[None]) ** 2).sum(-1)
    hits = np.mean(
        np.array([t.pid for t in ds.gallery])[dist.argmin(1)] == [t.pid for t in ds.query]
    )
    assert 1 / 12 < hits < 1.0
