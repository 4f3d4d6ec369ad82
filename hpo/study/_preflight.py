"""Checks a worker runs before it takes anything: dataset, frames, weights, artifacts root.

Each failure is one line (a user error, exit 2 in the CLI) raised in the launching process,
before any worker process is spawned or trial is asked for.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpo.errors import ReidHpoError
from hpo.spec import StudySpec
from hpo.spec import to_train_config
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.storage import storage_identity
from hpo.study._lifecycle import load_study
from hpo.study._marker import check_marker
from hpo.study._object_store import open_store
from hpo.study.records import StudyAttr

if TYPE_CHECKING:
    from reid_core.data import VideoDataset

SAMPLE_FRAMES = 16
"""Frames a preflight decodes by default (``--sample-frames``)."""


def check_spec_can_run(
    spec: StudySpec, *, root: str | None = None, sample_frames: int = SAMPLE_FRAMES
) -> VideoDataset:
    """Refuse a spec this machine cannot run: dataset, frames, weights, artifacts root.

    Checks, in order: the dataset's index parses (``root`` overrides ``dataset.root``),
    ``sample_frames`` frames spread over the training tracklets decode (0 skips), the ImageNet
    weights are cached when ``model.pretrained``, a C compiler exists when
    ``training.compile``, and ``artifacts.root`` is writable.

    Returns:
        The parsed dataset (reused by a later build in this process).

    Raises:
        reid_core.errors.DatasetNotFoundError: The dataset root or one of its files is missing.
        reid_core.errors.DatasetFormatError: The index is malformed or a sampled frame is
            missing or corrupt (named).
        reid_core.errors.PretrainedWeightsError: ``pretrained`` and no weights file.
        reid_core.errors.ConfigError: ``compile: true`` and no C compiler.
        reid_core.errors.CheckpointError: ``init_from`` is unusable or does not fit the model.
        ReidHpoError: ``artifacts.root`` is not a writable directory.
    """
    dataset = _check_dataset(spec, root)
    _check_validation(spec, dataset)
    _check_frames(dataset, sample_frames)
    _check_weights(spec)
    _check_compiler(spec)
    _check_init_from(spec)
    _check_artifacts(spec)
    return dataset


def check_spec_fits_its_dataset(spec: StudySpec) -> bool:
    """What ``study create`` checks when this machine sees the dataset: its index parses and
    the validation carve-out fits it (guided ids exist, enough ids are left for a batch).

    Returns:
        False when the dataset root is not readable here (nothing was checked), else True.

    Raises:
        reid_core.errors.ReidError: One line naming what does not fit.
    """
    if not Path(spec.dataset.root).is_dir():
        return False
    _check_validation(spec, _check_dataset(spec, None))
    return True


def _check_dataset(spec: StudySpec, root: str | None) -> VideoDataset:
    """Parse the study's dataset index (a missing root or file raises a one-line error)."""
    from reid_core.data import build_dataset

    dataset = build_dataset(
        spec.dataset.name,
        root or spec.dataset.root,
        split_id=spec.dataset.split_id,
        mars_gallery=spec.dataset.mars_gallery,
    )
    _ = dataset.split
    return dataset


def _check_validation(spec: StudySpec, dataset: VideoDataset) -> None:
    """Carve the validation split as a trial would: guided ids must be training ids, and the
    ids left must fill a P x K batch of the fixed recipe.

    Raises:
        reid_core.errors.ConfigError: A guided id is not a training id, or no id is left.
        ReidHpoError: Too few training ids are left for one batch.
    """
    from reid_core.data import carve_validation

    data = to_train_config(spec, {}, trial_number=0, output_dir=".").data
    # The guided colour hardness reads every frame; the counts do not depend on it.
    # A check: the carve-out is logged where it is used (the plan, each trial's trainer).
    split = carve_validation(dataset.train, data.validation, hardness=lambda _: {}, quiet=True)
    left = len({t.pid for t in split.train})
    per_batch = data.batch_size // data.num_instances
    if left < per_batch:
        raise ReidHpoError(
            f"validation: the carve-out leaves {left} training ids, fewer than the "
            f"{per_batch} ids of one batch (batch_size {data.batch_size} / num_instances "
            f"{data.num_instances}); lower validation.fraction"
        )


def _check_frames(dataset: VideoDataset, count: int) -> None:
    """Decode ``count`` frames spread evenly over the training tracklets."""
    from reid_core.data._frames import decode_frame

    train = dataset.train
    if count <= 0 or not train:
        return
    for i in np.linspace(0, len(train) - 1, count).round().astype(int).tolist():
        frames = train[i].frames
        decode_frame(frames[len(frames) // 2])


def _check_weights(spec: StudySpec) -> None:
    """Refuse ``pretrained: true`` when the ImageNet weights are not on this machine."""
    if spec.model.pretrained:
        from reid_core.models import require_pretrained_weights

        require_pretrained_weights(spec.model.backbone)


def _check_compiler(spec: StudySpec) -> None:
    """Refuse ``compile: true`` on a machine without a C compiler (one line)."""
    if spec.training.compile:
        from reid_core.engine import require_c_compiler

        require_c_compiler()


def _check_init_from(spec: StudySpec) -> None:
    """Refuse an ``init_from`` checkpoint that is missing, corrupt or does not fit the model."""
    if spec.init_from is None:
        return
    from reid_core.config import ModelConfig
    from reid_core.engine import transferable_state
    from reid_core.models import build_model_from_config

    fields = {**spec.model.model_dump(), "pretrained": False}
    training = spec.training
    model = build_model_from_config(
        ModelConfig(**fields), num_classes=1, input_size=(training.height, training.width)
    )
    transferable_state(model, Path(spec.init_from))


def check_study_can_run(name: str, url: str) -> StudySpec:
    """Fail in this process (one line, exit 2) before any worker process is spawned when the
    storage, the study or its dataset is unusable, or this machine does not see the study's
    artifacts marker (:mod:`hpo.study._marker`)."""
    storage = open_storage(url, must_exist=True)
    try:
        study, spec = load_study(name, storage)
    finally:
        close_storage(storage)
    check_spec_can_run(spec)
    study_uuid = study.user_attrs.get(StudyAttr.UUID)
    if study.user_attrs.get(StudyAttr.ARTIFACTS_MARKER) and isinstance(study_uuid, str):
        check_marker(spec.artifacts, study_uuid, name, storage_identity(url))
    return spec


def _check_artifacts(spec: StudySpec) -> None:
    """Refuse to start when the checkpoint location cannot be written (one-line error). The
    root is not created here: a missing root is checked through its nearest existing parent,
    and only ``study create`` makes it (with the study's marker). With ``kind: s3`` the root is
    this host's cache, and the bucket must answer with this host's credentials."""
    root = Path(spec.artifacts.root)
    reason = artifacts_write_error(root)
    if reason is not None:
        raise ReidHpoError(f"artifacts.root {root} is not a writable directory: {reason}")
    store = open_store(spec.artifacts)
    if store is not None:
        store.check()


def artifacts_write_error(root: Path) -> str | None:
    """Why ``root`` (or, while it does not exist, its nearest existing parent) cannot be
    written, None when it can; nothing is created."""
    existing = root
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


__all__ = [
    "SAMPLE_FRAMES",
    "artifacts_write_error",
    "check_spec_can_run",
    "check_spec_fits_its_dataset",
    "check_study_can_run",
]
