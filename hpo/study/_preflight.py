"""Checks a worker runs before it takes anything: the dataset and the artifacts root.

Each failure is one line (a user error, exit 2 in the CLI) raised in the launching process,
before any worker process is spawned or trial is asked for.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hpo.errors import ReidHpoError
from hpo.spec import StudySpec
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.study._lifecycle import load_study


def check_spec_can_run(spec: StudySpec) -> None:
    """Refuse a spec whose dataset this machine cannot read or whose artifacts root it cannot
    write.

    Raises:
        reid_core.errors.DatasetNotFoundError: The dataset root or one of its files is missing.
        ReidHpoError: ``artifacts.root`` is not a writable directory.
    """
    _check_dataset(spec)
    _check_artifacts(spec)


def _check_dataset(spec: StudySpec) -> None:
    """Refuse to start when this machine cannot read the study's dataset (one-line error)."""
    from reid_core.data import build_dataset

    dataset = build_dataset(
        spec.dataset.name,
        spec.dataset.root,
        split_id=spec.dataset.split_id,
        mars_gallery=spec.dataset.mars_gallery,
    )
    _ = dataset.split  # parses the layout: a missing root or file raises DatasetNotFoundError


def check_study_can_run(name: str, url: str) -> StudySpec:
    """Fail in this process (one line, exit 2) before any worker process is spawned when the
    storage, the study or its dataset is unusable."""
    storage = open_storage(url, heartbeat=False)
    try:
        _, spec = load_study(name, storage)
    finally:
        close_storage(storage)
    check_spec_can_run(spec)
    return spec


def _check_artifacts(spec: StudySpec) -> None:
    """Refuse to start when the checkpoint location cannot be written (one-line error)."""
    root = Path(spec.artifacts.root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ReidHpoError(
            f"artifacts.root {root} is not a writable directory: {exc.strerror or exc}"
        ) from None


__all__ = ["check_spec_can_run", "check_study_can_run"]
