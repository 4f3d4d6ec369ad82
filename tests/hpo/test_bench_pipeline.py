"""The ``pipeline`` benchmark's loaders and its equality check, on a tiny synthetic MARS."""

from __future__ import annotations

import pytest

from hpo.bench._pipeline import OUT_SIZE
from hpo.bench._pipeline import PIL_TOLERANCE
from hpo.bench._pipeline import SEQ_LEN
from hpo.bench._pipeline import child_equality
from hpo.bench._pipeline import child_naive
from hpo.bench._pipeline import child_ours
from hpo.bench._pipeline import write_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_dataset(tmp_path_factory.mktemp("pipe") / "mars", ids=8, frames=6, seed=0))


def test_ours_is_bit_identical_to_the_per_frame_definition(root: str) -> None:
    result = child_equality(root, tracklets=2)
    assert result["identical"] is True
    assert result["frames"] > 0


def test_ours_is_within_the_stated_tolerance_of_pil_resizing(root: str) -> None:
    result = child_equality(root, tracklets=2)
    assert 0.0 < result["max_abs_diff_vs_pil"] <= PIL_TOLERANCE


def test_naive_and_ours_load_the_same_number_of_frames_per_batch(root: str) -> None:
    naive = child_naive(root, batch_size=8, batches=1, seed=0)
    ours = child_ours(root, batch_size=8, batches=1, seed=0, num_workers=0, cache=True, epochs=2)
    expected = [8, SEQ_LEN, 3, *OUT_SIZE]
    assert naive["shape"] == expected and ours["shape"] == expected
    assert naive["frames"] == ours["epochs"][0]["frames"] == ours["epochs"][1]["frames"] == 32
