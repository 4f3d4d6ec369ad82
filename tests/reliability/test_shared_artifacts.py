"""Workers on several hosts: a host that does not see the study's shared artifact folder.

Hosts are stood in for by working directories: the spec's ``artifacts.root`` is the relative
path ``runs``, so each worker process resolves it in its own folder, as a shared mount point
resolves to a different (or an empty local) folder on a host whose mount failed. One real
PostgreSQL database holds the study.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import MARKER_NAME
from hpo.study import check_spec_can_run
from hpo.study import create_study
from hpo.study.records import StudyAttr
from tests._helpers.waits import scaled
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import spec_dict
from tests.reliability._procs import trials

pytestmark = [pytest.mark.postgres]


def _worker(name: str, url: str, host: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``reid-hpo worker NAME ARGS`` run in ``host`` (its ``runs`` is that host's root)."""
    return subprocess.run(
        [sys.executable, "-m", "hpo.cli", "worker", name, *args],
        cwd=host,
        env=child_env(url),
        capture_output=True,
        text=True,
        timeout=scaled(300),
        check=False,
    )


def _spec(name: str, mars_root: Path) -> StudySpec:
    raw = spec_dict(name=name, data_root=mars_root, artifacts=Path("runs"), n_trials=1, epochs=1)
    return StudySpec.model_validate(raw)


def _refused(result: subprocess.CompletedProcess[str], host: Path) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: artifacts.root runs"), errors
    assert "is the shared file system mounted here?" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (host / "runs").exists()  # nothing was created on the refused host


def test_a_host_that_does_not_see_the_study_marker_is_refused(
    tmp_path: Path, mars_root: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_a, host_b = tmp_path / "host_a", tmp_path / "host_b"
    host_a.mkdir()
    host_b.mkdir()
    monkeypatch.chdir(host_a)
    check_spec_can_run(_spec("fleet", mars_root))
    assert not (host_a / "runs").exists()  # the preflight never creates the root
    create_study(_spec("fleet", mars_root), postgres_url)
    (marker,) = (host_a / "runs").glob(f"*/{MARKER_NAME}")

    _refused(_worker("fleet", postgres_url, host_b, "--gpus", "none"), host_b)  # supervisor
    _refused(_worker("fleet", postgres_url, host_b, "--child"), host_b)  # a worker process
    assert trials("fleet", postgres_url) == []
    assert marker.exists()  # host A's workers run (the next test runs one)


def test_the_first_worker_marks_a_study_created_where_the_root_is_not_writable(
    tmp_path: Path, mars_root: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator, host_a, host_b = (tmp_path / name for name in ("laptop", "host_a", "host_b"))
    for host in (creator, host_a, host_b):
        host.mkdir()
    (creator / "runs").write_text("a file where the root would be")
    monkeypatch.chdir(creator)
    create_study(_spec("late", mars_root), postgres_url)
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        attrs = optuna.load_study(study_name="late", storage=storage).user_attrs
    finally:
        storage.engine.dispose()
    assert StudyAttr.ARTIFACTS_MARKER not in attrs

    first = _worker("late", postgres_url, host_a, "--child", "--max-trials", "1")
    assert first.returncode == 0, first.stderr
    (trial,) = trials("late", postgres_url)
    assert trial.state is TrialState.COMPLETE
    assert list((host_a / "runs").glob(f"*/{MARKER_NAME}"))
    _refused(_worker("late", postgres_url, host_b, "--child"), host_b)
    assert os.listdir(creator) == ["runs"]
