"""A trial's results are its own, on the real PostgreSQL with real worker processes: a worker
paused past its grace comes back without touching the retry's files, deleting a study under a
worker stops it with one line, and a worker with another heartbeat is refused.

Workers train the real model on the synthetic MARS of the suite (~0.5 s per epoch) with the
study's 1 s heartbeats (grace 3 s).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import create_study
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import spec_dict
from tests.reliability._procs import assert_study_consistent
from tests.reliability._procs import run_cli
from tests.reliability._procs import start_worker
from tests.reliability._procs import trials

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _create(name: str, url: str, tmp_path: Path, data_root: Path, **kwargs: object) -> None:
    raw = spec_dict(name=name, data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    create_study(StudySpec.model_validate(raw), url)


def _epochs_logged(folder: Path) -> list[int]:
    log = folder / "metrics.jsonl"
    if not log.is_file():
        return []
    return [json.loads(line)["epoch"] for line in log.read_text().splitlines() if line.strip()]


def _snapshot(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def test_a_paused_worker_that_comes_back_never_writes_the_retrys_files(
    tmp_path: Path, mars_root: Path, postgres_url: str, record_property: pytest.RecordProperty
) -> None:
    _create("zombie", postgres_url, tmp_path, mars_root, n_trials=1, epochs=12)
    log = tmp_path / "workers.log"
    paused = start_worker("zombie", postgres_url, log)
    rescuer: subprocess.Popen[str] | None = None
    try:

        def checkpointed() -> bool:
            found = trials("zombie", postgres_url)
            return bool(found) and found[0].user_attrs.get("last_checkpoint_epoch", -1) >= 2

        wait_until(checkpointed, 120, "trial 0's epoch-2 checkpoint")
        os.kill(paused.pid, signal.SIGSTOP)
        root = tmp_path / "runs"
        first_folder = root / trials("zombie", postgres_url)[0].user_attrs["checkpoint_dir"]
        paused_epochs = _epochs_logged(first_folder)
        rescuer = start_worker("zombie", postgres_url, log)

        def retry_checkpointed() -> bool:
            found = trials("zombie", postgres_url)
            return len(found) > 1 and found[1].user_attrs.get("last_checkpoint_epoch", -1) >= 5

        wait_until(retry_checkpointed, 180, "the retry to train past its takeover")
        retry_folder = root / trials("zombie", postgres_url)[1].user_attrs["checkpoint_dir"]
        assert retry_folder.parent == first_folder.parent  # same trial, its own attempt folder
        assert retry_folder != first_folder
        os.kill(paused.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        assert rescuer.wait(timeout=scaled(300)) == 0, log.read_text()
        assert paused.wait(timeout=scaled(120)) == 0, log.read_text()
    finally:
        for worker in (paused, rescuer):
            if worker is not None and worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.kill()
                worker.wait()

    found = assert_study_consistent("zombie", postgres_url, n_trials=1)
    first, retry = found[0], found[1]
    assert first.state is TrialState.FAIL and retry.state is TrialState.COMPLETE
    # The retry's log runs from its takeover to the end, each epoch once: nothing of the paused
    # worker was appended to it.
    retry_epochs = _epochs_logged(retry_folder)
    assert retry_epochs == list(range(retry_epochs[0], 13)) or retry_epochs == list(range(1, 13))
    assert retry_epochs[-1] == 12 and len(set(retry_epochs)) == len(retry_epochs)
    # The paused worker stopped within the epoch it was in: at most one more epoch logged.
    assert len(_epochs_logged(first_folder)) <= len(paused_epochs) + 1
    output = log.read_text()
    # The paused worker noticed at the end of its epoch (or, if it was stopped inside a
    # storage write, at that write) that the trial was no longer its own.
    assert "no longer RUNNING" in output or "already finished" in output, output
    record_property(
        "paused_worker_epochs_after_resume", len(_epochs_logged(first_folder)) - len(paused_epochs)
    )
    record_property("seconds_from_resume_to_exit", round(time.monotonic() - resumed_at, 1))


def test_deleting_the_study_under_a_worker_stops_it_with_one_line_and_no_restart(
    tmp_path: Path, mars_root: Path, postgres_url: str, record_property: pytest.RecordProperty
) -> None:
    _create("doomed", postgres_url, tmp_path, mars_root, n_trials=2, epochs=30)
    log = tmp_path / "worker.log"
    worker = start_worker("doomed", postgres_url, log, child=False)  # supervisor + child
    try:

        def training() -> bool:
            found = trials("doomed", postgres_url)
            return bool(found) and "last_checkpoint_epoch" in found[0].user_attrs

        wait_until(training, 120, "trial 0 to train")
        deleted = run_cli("study", "delete", "doomed", "--yes", env=child_env(postgres_url))
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        stopped_at = time.monotonic()
        assert worker.wait(timeout=scaled(60)) == 2, log.read_text()
        seconds_to_stop = time.monotonic() - stopped_at
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = log.read_text()
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    # Noticed at the end of the epoch in flight, or at the next budget check.
    assert re.fullmatch(
        r"Error: study 'doomed' was deleted while (trial 0 trained|this worker ran; stopping)",
        errors[0],
    ), output
    assert "Traceback" not in output
    assert "restart" not in output
    assert seconds_to_stop < scaled(30)
    record_property("seconds_from_delete_to_exit", round(seconds_to_stop, 1))


def test_a_worker_with_another_heartbeat_interval_is_refused(
    tmp_path: Path, mars_root: Path, postgres_url: str
) -> None:
    _create("beat", postgres_url, tmp_path, mars_root, n_trials=1)
    env = {**child_env(postgres_url), "REID_HPO_HEARTBEAT": "2"}
    done = run_cli("worker", "beat", "--child", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: $REID_HPO_HEARTBEAT=2 disagrees with study 'beat' (heartbeat.interval: 1 s): "
        "the heartbeat is a study setting, so that workers do not fail each other's trials; "
        "unset the variable"
    ]
    assert trials("beat", postgres_url) == []
