"""The shared-file-system guard: a marker file in the study's artifact folder.

``study create`` writes ``<artifacts.root>/<study uuid>/reid-hpo-study.json`` (the study's uuid
and name) and records on the study that it did. A worker, or ``retrain``, on a machine that does
not see that file (a shared mount that failed and left an empty local folder, another host's
path) refuses to start in one line instead of training into a folder no other worker sees. A
study whose marker could not be written at creation (the creating machine does not see the
root) gets it from its first worker, under the study lock.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import optuna

from hpo.errors import ReidHpoError
from hpo.study._artifacts import study_dir
from hpo.study._artifacts import write_json_file
from hpo.study.records import StudyAttr

logger = logging.getLogger(__name__)

MARKER_NAME = "reid-hpo-study.json"

__all__ = [
    "MARKER_NAME",
    "ArtifactsNotSharedError",
    "check_marker",
    "ensure_marker",
    "write_marker",
]


class ArtifactsNotSharedError(ReidHpoError):
    """This machine does not see the study's artifact folder that ``study create`` marked."""


def marker_path(root: str | Path, study_uuid: str) -> Path:
    """``<root>/<study uuid>/reid-hpo-study.json``."""
    return study_dir(root, study_uuid) / MARKER_NAME


def write_marker(root: str | Path, study_uuid: str, study_name: str) -> Path:
    """Create the study's artifact folder (and ``root``) and write its marker.

    Raises:
        OSError: The folder or the file cannot be written on this machine.
    """
    path = marker_path(root, study_uuid)
    record = {"study_uuid": study_uuid, "study_name": study_name, "host": socket.gethostname()}
    write_json_file(path, record)
    return path


def check_marker(root: str | Path, study_uuid: str, study_name: str) -> None:
    """Refuse a machine that does not see the study's marker.

    Raises:
        ArtifactsNotSharedError: The marker is missing, unreadable or names another study.
    """
    path = marker_path(root, study_uuid)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("study_uuid")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != study_uuid:
        raise ArtifactsNotSharedError(
            f"artifacts.root {root} on this machine does not hold study {study_name!r}'s marker "
            f"{path} (written by `study create`): is the shared file system mounted here?"
        )


def ensure_marker(study: optuna.Study, root: str | Path, study_uuid: str) -> None:
    """Check the marker of a study that has one; write it for one that has none yet (call it
    under the study lock, so that concurrent first workers agree).

    Raises:
        ArtifactsNotSharedError: The study has a marker and this machine does not see it.
        ReidHpoError: The study has none and this machine cannot write it.
    """
    if study.user_attrs.get(StudyAttr.ARTIFACTS_MARKER):
        check_marker(root, study_uuid, study.study_name)
        return
    try:
        path = write_marker(root, study_uuid, study.study_name)
    except OSError as exc:
        raise ReidHpoError(
            f"artifacts.root {root} is not writable on this machine: {exc.strerror or exc}"
        ) from None
    study.set_user_attr(StudyAttr.ARTIFACTS_MARKER, True)
    logger.info("study %r: artifacts marker written at %s", study.study_name, path)
