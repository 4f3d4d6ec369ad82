from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reid_core.config import ValidationConfig
from reid_core.data import PAPER_GUIDED_IDS
from reid_core.data import Tracklet
from reid_core.data import build_dataset
from reid_core.data import carve_validation
from reid_core.data import colour_histogram_hardness
from reid_core.data import write_synthetic
from reid_core.errors import ConfigError


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracklet, ...]:
    root = tmp_path_factory.mktemp("val") / "mars"
    write_synthetic(root, "mars", ids=40, tracklets=3, frames=3, height=32, width=16)
    return build_dataset("mars", root).train


def test_validation_ids_are_disjoint_from_train(train) -> None:
    split = carve_validation(train, ValidationConfig(fraction=0.2, seed=1))
    val_ids = {t.pid for t in split.query}
    assert len(val_ids) == 4  # round(0.2 * 20)
    train_frames = {t.frames for t in split.train}
    assert not {t.frames for t in split.query} & train_frames
    assert split.num_train_pids == 16
    assert sorted({t.pid for t in split.train}) == list(range(16))


@pytest.mark.parametrize("protocol", ["reference", "one_per_camera"])
def test_only_training_records_are_used(train, protocol: str) -> None:
    split = carve_validation(train, ValidationConfig(fraction=0.2, protocol=protocol))
    source = {frame for t in train for frame in t.frames}
    for t in split.train + split.query + split.gallery:
        assert set(t.frames) <= source
        assert "bbox_train" in str(t.frames[0])


def _tracklets(pid: int, cams: list[int]) -> list[Tracklet]:
    """One 2-frame tracklet per entry of ``cams``, in that order (frame names say which)."""
    return [
        Tracklet(frames=(Path(f"p{pid}t{i}f0.jpg"), Path(f"p{pid}t{i}f1.jpg")), pid=pid, camid=c)
        for i, c in enumerate(cams)
    ]


def _names(t: Tracklet) -> list[str]:
    return [f.name for f in t.frames]


def test_reference_protocol_merges_every_camera_but_the_last_seen_one_into_queries() -> None:
    # id 0 seen by cameras 2, 0, 2, 1 (in that order): the last-seen camera is 1.
    train = [*_tracklets(0, [2, 0, 2, 1]), *_tracklets(1, [0, 1]), *_tracklets(2, [3])]
    cfg = ValidationConfig(sampling="guided", guided_ids=(0, 2), distractor_fraction=0.0)
    split = carve_validation(train, cfg)
    assert [(t.pid, t.camid, _names(t)) for t in split.query] == [
        (0, 2, ["p0t0f0.jpg", "p0t0f1.jpg", "p0t2f0.jpg", "p0t2f1.jpg"]),  # merged, in order
        (0, 0, ["p0t1f0.jpg", "p0t1f1.jpg"]),
        (2, 3, ["p2t0f0.jpg", "p2t0f1.jpg"]),  # one camera: a query with no match
    ]
    assert [(t.pid, t.camid, _names(t)) for t in split.gallery] == [
        (0, 1, ["p0t3f0.jpg", "p0t3f1.jpg"])
    ]
    assert len(split.train) == 2 and split.num_train_pids == 1


def test_one_per_camera_protocol_takes_one_tracklet_per_camera_as_the_query() -> None:
    train = [*_tracklets(0, [2, 0, 2, 1]), *_tracklets(1, [0, 1])]
    cfg = ValidationConfig(
        sampling="guided", guided_ids=(0,), distractor_fraction=0.0, protocol="one_per_camera"
    )
    split = carve_validation(train, cfg)
    assert sorted(t.camid for t in split.query) == [0, 1, 2]
    assert all(t in train for t in split.query)  # whole tracklets, none merged
    assert [(t.camid, t in train) for t in split.gallery] == [(2, True)]


def test_query_has_one_tracklet_per_id_and_camera(train) -> None:
    split = carve_validation(train, ValidationConfig(fraction=0.2, distractor_fraction=0.0))
    keys = [(t.pid, t.camid) for t in split.query]
    assert len(keys) == len(set(keys))
    # Every query id also has gallery tracklets (its other ones).
    assert {t.pid for t in split.query} == {t.pid for t in split.gallery}


def test_distractors_are_other_training_ids(train) -> None:
    split = carve_validation(train, ValidationConfig(fraction=0.2, distractor_fraction=0.25))
    val_ids = {t.pid for t in split.query}
    distractors = [t for t in split.gallery if t.pid not in val_ids]
    remaining = len(train) - sum(1 for t in train if t.pid in val_ids)
    assert len(distractors) == round(0.25 * remaining)


def test_same_seed_same_split_other_seed_differs(train) -> None:
    a = carve_validation(train, ValidationConfig(seed=5, fraction=0.2))
    b = carve_validation(train, ValidationConfig(seed=5, fraction=0.2))
    c = carve_validation(train, ValidationConfig(seed=6, fraction=0.2))
    assert a == b
    assert {t.pid for t in a.query} != {t.pid for t in c.query}


def test_colour_hardness_picks_the_hardest_ids_from_the_callable(train) -> None:
    def planted(records):
        return {t.pid: (1.0 if t.pid in (3, 7) else 0.0) for t in records}

    cfg = ValidationConfig(sampling="colour_hardness", fraction=0.1)
    split = carve_validation(train, cfg, hardness=planted)
    assert {t.pid for t in split.query} == {3, 7}


def test_guided_ids_are_used_verbatim(train) -> None:
    cfg = ValidationConfig(sampling="guided", guided_ids=(0, 5))
    assert {t.pid for t in carve_validation(train, cfg).query} == {0, 5}
    with pytest.raises(ConfigError, match="999"):
        carve_validation(train, ValidationConfig(sampling="guided", guided_ids=(999,)))


def test_guided_without_a_list_is_refused_not_guessed(train) -> None:
    with pytest.raises(ConfigError, match="colour_hardness"):
        carve_validation(train, ValidationConfig(sampling="guided"))


def test_paper_preset_is_the_references_32_ids() -> None:
    # REFERENCE.md "What the reference code does": exactly these 32 (the pool adds none).
    assert PAPER_GUIDED_IDS[:4] == (41, 539, 600, 513) and PAPER_GUIDED_IDS[-1] == 353
    assert len(set(PAPER_GUIDED_IDS)) == 32 and max(PAPER_GUIDED_IDS) == 613


def test_paper_preset_on_a_small_dataset_names_the_missing_ids(train) -> None:
    with pytest.raises(ConfigError, match="paper preset is for MARS"):
        carve_validation(train, ValidationConfig(sampling="guided", preset="paper"))


def test_default_hardness_ranks_a_planted_lookalike_pair_hardest(tmp_path: Path) -> None:
    # Ids 0-5 look the same in both cameras and unlike anyone else. Ids 6 and 7 swap looks
    # between the cameras: each one's best match across cameras is the other id.
    grey, purple = (128, 128, 128), (60, 30, 90)
    looks = [((255, 0, 0),) * 2, ((0, 255, 0),) * 2, ((0, 0, 255),) * 2, ((255, 255, 0),) * 2]
    looks += [((0, 255, 255),) * 2, ((255, 0, 255),) * 2, (grey, purple), (purple, grey)]
    records = []
    for pid, colours in enumerate(looks):
        for cam, colour in enumerate(colours):
            path = tmp_path / f"{pid}_{cam}.png"
            Image.new("RGB", (16, 32), colour).save(path)
            records.append(Tracklet((path,), pid, cam))
    scores = colour_histogram_hardness(records)
    assert set(sorted(scores, key=lambda p: -scores[p])[:2]) == {6, 7}
    assert scores[0] == 0.0
    cfg = ValidationConfig(sampling="colour_hardness", fraction=0.25)
    assert {t.pid for t in carve_validation(records, cfg).query} == {6, 7}


def test_bad_fraction_is_refused(train) -> None:
    with pytest.raises(ConfigError, match=r"fraction=1\.5"):
        carve_validation(train, ValidationConfig(fraction=1.5))


def test_validation_of_a_tiny_dataset_from_disk(mars_root: Path) -> None:
    split = carve_validation(build_dataset("mars", mars_root).train, ValidationConfig())
    assert split.query and split.num_train_pids == 3
