"""Tiny synthetic datasets, written once per session, in each public layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reid_core.data import write_synthetic


@pytest.fixture(scope="session")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only MARS tree: 8 ids (4 train, 4 test), 3 cameras, 4 tracklets per id."""
    return write_synthetic(
        tmp_path_factory.mktemp("mars") / "mars", "mars", ids=8, frames=8, height=32, width=16
    )


@pytest.fixture(scope="session")
def ilids_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only iLIDS-VID tree with 8 persons."""
    return write_synthetic(
        tmp_path_factory.mktemp("ilids") / "ilids", "ilidsvid", ids=8, frames=8, height=32, width=16
    )


@pytest.fixture(scope="session")
def prid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only PRID-2011 tree with 8 eligible persons plus short / single-camera ones."""
    return write_synthetic(
        tmp_path_factory.mktemp("prid") / "prid", "prid", ids=8, height=32, width=16
    )


@pytest.fixture()
def copy_tree(tmp_path: Path):
    """Copy a session tree to ``tmp_path`` so a test may damage it."""

    def copy(root: Path) -> Path:
        return Path(shutil.copytree(root, tmp_path / root.name))

    return copy
