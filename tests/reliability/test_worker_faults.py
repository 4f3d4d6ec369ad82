"""Dead and stopped workers on the real PostgreSQL server: SIGKILL, SIGTERM, SIGINT, and
several workers starting one new study at once.

Workers are real ``reid-hpo worker`` processes training the real model on a synthetic MARS
(resnet10, 32x16, ~0.5 s per epoch) with 1 s heartbeats (grace period 3 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.study import list_studies
from reid_core.engine import find_resumable_checkpoint
from reid_core.engine import load_checkpoint
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import write_spec
from tests.reliability._procs import assert_study_consistent
from tests.reliability._procs import start_worker
from tests.reliability._procs import trials
from tests.reliability._procs import worker_pid

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HEARTBEAT_S = 1


def _create(name: str, url: str, tmp_path: Path, data_root: Path, **kwargs: object) -> None:
    raw = spec_dict(name=name, data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    create_study(StudySpec.model_validate(raw), url)


def _checkpointed(name: str, url: str, number: int, epoch: int = 1) -> bool:
    found = [t for t in trials(name, url) if t.number == number]
    return bool(found) and found[0].user_attrs.get("last_checkpoint_epoch", -1) >= epoch


def test_sigkilled_worker_trial_is_failed_by_heartbeat_retried_and_resumed(
    tmp_path: Path, mars_root: Path, postgres_url: str, record_property: pytest.RecordProperty
) -> None:
    _create("kill", postgres_url, tmp_path, mars_root, n_trials=2, epochs=8)
    log = tmp_path / "workers.log"
    workers = [start_worker("kill", postgres_url, log) for _ in range(2)]
    try:
        wait_until(lambda: _checkpointed("kill", postgres_url, 0, epoch=2), 120, "trial 0 epoch 2")
        victim = worker_pid(trials("kill", postgres_url)[0])
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        killed = datetime.now()  # the clock Optuna stamps datetime_complete with

        def failed() -> bool:
            return trials("kill", postgres_url)[0].state is TrialState.FAIL

        def retried() -> bool:
            return any(
                t.system_attrs.get("failed_trial") == 0 and t.state is not TrialState.WAITING
                for t in trials("kill", postgres_url)
            )

        wait_until(failed, 60, "the heartbeat to fail trial 0")
        wait_until(retried, 120, "another worker to take the retry of trial 0")
        seconds_to_retry = time.monotonic() - killed_at
        survivors = [w for w in workers if w.pid != victim]
        for worker in survivors:
            assert worker.wait(timeout=scaled(180)) == 0, log.read_text()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    found = assert_study_consistent("kill", postgres_url, n_trials=2)
    first = found[0]
    (retry,) = [t for t in found if t.system_attrs.get("failed_trial") == 0]
    assert first.state is TrialState.FAIL and "fail_reason" not in first.user_attrs
    assert retry.state is TrialState.COMPLETE
    assert retry.params == first.params
    assert retry.user_attrs["resumed_from_epoch"] >= 2  # it did not start at epoch 1
    # The survivor's watchdog sweeps while it waits for the budget, i.e. once its own trial
    # has ended: the promise runs from the later of the kill and that end (not from the kill
    # alone, which adds however long the survivor's epochs take on a loaded machine). Both
    # ends are the workers' own timestamps, not this test's polling of a loaded database.
    (own,) = [t for t in found if t.number != 0 and "failed_trial" not in t.system_attrs]
    assert first.datetime_complete is not None and own.datetime_complete is not None
    watching_from = max(killed, own.datetime_complete)
    seconds_to_fail = (first.datetime_complete - watching_from).total_seconds()
    # Grace (3 heartbeats), the last heartbeat's age and a sweep (2 more), and the reconnect
    # back-off a freshly started worker waits before its first sweep (10 s).
    assert seconds_to_fail <= 3 * HEARTBEAT_S + 2 * HEARTBEAT_S + 10, seconds_to_fail
    record_property("seconds_to_fail", round(seconds_to_fail, 1))
    record_property(
        "seconds_from_kill_to_fail", round((first.datetime_complete - killed).total_seconds(), 1)
    )
    record_property("seconds_to_retry", round(seconds_to_retry, 1))
    record_property("resumed_from_epoch", retry.user_attrs["resumed_from_epoch"])


@pytest.mark.parametrize(
    ("signum", "times"), [(signal.SIGTERM, 1), (signal.SIGINT, 2)], ids=["SIGTERM", "SIGINT-twice"]
)
def test_stopped_worker_hands_its_trial_back_exits_128_plus_n_and_a_new_worker_resumes_it(
    signum: int,
    times: int,
    tmp_path: Path,
    mars_root: Path,
    postgres_url: str,
    record_property: pytest.RecordProperty,
) -> None:
    _create("stop", postgres_url, tmp_path, mars_root, n_trials=1, epochs=6)
    log = tmp_path / "workers.log"
    worker = start_worker("stop", postgres_url, log)
    try:
        wait_until(
            lambda: _checkpointed("stop", postgres_url, 0), 120, "trial 0's first checkpoint"
        )
        worker.send_signal(signum)
        sent = time.monotonic()
        if times == 2:  # Ctrl-C twice: stop at once (mid-epoch), not after the epoch
            time.sleep(0.2)
            worker.send_signal(signum)
        assert worker.wait(timeout=scaled(60)) == 128 + signum, log.read_text()
        seconds_to_exit = time.monotonic() - sent
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert "KeyboardInterrupt" not in log.read_text()
    first, retry = trials("stop", postgres_url)
    assert first.state is TrialState.FAIL and first.user_attrs["fail_reason"] == "interrupted"
    assert retry.state is TrialState.WAITING and retry.params == first.params
    stopped_epoch = first.user_attrs["last_checkpoint_epoch"]
    # The newest checkpoint the stopped worker left is the one its retry must resume from. A
    # second signal stops at once, wherever the worker is: between an epoch's checkpoint and
    # its user attr it leaves that checkpoint with the attr one epoch behind (as a SIGKILL
    # there does); a single signal stops after the epoch's attrs are written.
    left = find_resumable_checkpoint(tmp_path / "runs" / first.user_attrs["checkpoint_dir"])
    assert left is not None
    left_epoch = load_checkpoint(left)["epoch"]
    assert left_epoch == stopped_epoch or (times == 2 and left_epoch == stopped_epoch + 1)

    second = start_worker("stop", postgres_url, log)
    assert second.wait(timeout=scaled(180)) == 0, log.read_text()
    found = assert_study_consistent("stop", postgres_url, n_trials=1)
    resumed = found[1]
    assert resumed.state is TrialState.COMPLETE
    assert resumed.user_attrs["resumed_from_epoch"] == left_epoch
    assert min(resumed.intermediate_values) == 0  # epochs before the stop were inherited
    record_property("seconds_to_exit", round(seconds_to_exit, 1))
    record_property("resumed_from_epoch", resumed.user_attrs["resumed_from_epoch"])


def test_three_workers_starting_one_new_study_create_it_once(
    tmp_path: Path, mars_root: Path, postgres_url: str
) -> None:
    spec = spec_dict(name="race", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=3)
    spec_file = write_spec(tmp_path / "race.yaml", spec)
    command = [sys.executable, "-m", "hpo.cli", "study", "run", str(spec_file), "--gpus", "none"]
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=child_env(postgres_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=scaled(240))[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(outputs)
    assert sum("created study 'race'" in out for out in outputs) == 1
    assert sum("resuming study 'race'" in out for out in outputs) == 2
    assert all("Traceback" not in out for out in outputs)
    assert [info.name for info in list_studies(postgres_url)] == ["race"]
    found = assert_study_consistent("race", postgres_url, n_trials=3)
    assert len(found) == 3
