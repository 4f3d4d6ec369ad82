"""Disk full and unwritable artifact locations: a clear error and a consistent study.

An unwritable location (a file where the artifacts directory should be) is refused before
any trial starts. A full disk in the middle of training is forced with ``RLIMIT_FSIZE`` in
the worker process (we run as root, so permissions cannot make a directory read-only):
writing the checkpoint fails with EFBIG, the trial FAILs with its reason, no partial file
is left behind, and the worker stops with one line once trials keep failing.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.study import list_studies
from reid_core.engine import verify_checkpoint
from tests._helpers.waits import scaled
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import write_spec
from tests.reliability._procs import trials

FILE_LIMIT_BYTES = 1_000_000  # far below a resnet10 checkpoint, far above config / metrics


def test_artifacts_location_that_is_a_file_is_refused_before_any_trial(
    tmp_path: Path, mars_root: Path
) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory")
    spec = spec_dict(name="disk", data_root=mars_root, artifacts=blocker)
    spec_file = write_spec(tmp_path / "disk.yaml", spec)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["study", "run", str(spec_file), "--gpus", "none", "--storage", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: artifacts.root")
    assert str(blocker) in lines[0]
    assert not (tmp_path / "study.db").exists() or list_studies(url) == []


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, FILE_LIMIT_BYTES))


@pytest.mark.postgres
def test_disk_full_while_checkpointing_fails_the_trial_cleanly(
    tmp_path: Path, mars_root: Path, postgres_url: str, record_property: pytest.RecordProperty
) -> None:
    runs = tmp_path / "runs"
    raw = spec_dict(name="full", data_root=mars_root, artifacts=runs, n_trials=1)
    create_study(StudySpec.model_validate(raw), postgres_url)
    done = subprocess.run(
        [sys.executable, "-m", "hpo.cli", "worker", "full", "--child"],
        cwd=REPO_ROOT,
        env=child_env(postgres_url),
        preexec_fn=_limit_file_size,
        capture_output=True,
        text=True,
        timeout=scaled(240),
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: 3 trials in a row failed"), last
    assert "exception:OSError" in last

    found = trials("full", postgres_url)
    assert found and all(t.state is TrialState.FAIL for t in found)
    assert all(t.user_attrs["fail_reason"] == "exception:OSError" for t in found)
    leftovers = [p for p in runs.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []  # no half-written file
    for checkpoint in runs.rglob("*.pt"):
        verify_checkpoint(checkpoint)  # whatever exists is complete
    record_property("failed_trials", len(found))
