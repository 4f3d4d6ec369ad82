"""One retrain of a study at a time on any host: the retrain lease in the study's database.

Hosts are stood in for by retrain folders of their own (``--output``): the folder lock cannot
see the other host, the lease can. The holder is a real ``study retrain`` process; the
refused one is the CLI as a user types it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.study import RetrainLeaseError
from hpo.study import RetrainOptions
from hpo.study import StudyAttr
from hpo.study import load_study
from hpo.study import retrain_trial
from hpo.study._retrain_lease import LEASE_ATTR
from hpo.study._retrain_lease import RetrainLease
from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.engine import Trainer
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import told_study

NAME = "leased"
GRACE_S = 3.0  # spec_dict's heartbeat: interval 1 s, grace 3 s


def _retrain_command(url: str, folder: Path, epochs: int) -> list[str]:
    return [
        *("study", "retrain", NAME, "--storage", url, "--epochs", str(epochs)),
        *("--device", "cpu", "--no-rerank", "--output", str(folder)),
    ]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_retrain_of_the_study_on_another_host_is_refused_until_the_holder_is_gone(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'study.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    told_study(url, NAME, tmp_path)
    host_a, host_b = tmp_path / "host_a" / "retrain", tmp_path / "host_b" / "retrain"
    holder = subprocess.Popen(
        [sys.executable, "-m", "hpo.cli", *_retrain_command(url, host_a, 500)],
        cwd=REPO_ROOT,
        env=child_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until((host_a / "epoch_0001.pt.sha256").exists, 240, "host A's first checkpoint")
        refused = CliRunner().invoke(app, _retrain_command(url, host_b, 1))
        lines = refused.output.strip().splitlines()
        assert refused.exit_code == 2 and len(lines) == 1, refused.output
        assert lines[0].startswith(
            f"Error: study '{NAME}' is being retrained (trial 0) by "
            f"{socket.gethostname()}:{holder.pid}, whose lease was renewed "
        ), lines[0]
        assert f"not renewed for {GRACE_S:.0f} s is taken over" in lines[0]
        assert not host_b.exists() or not any(host_b.glob("epoch_*"))  # nothing trained
        status = CliRunner().invoke(app, ["study", "status", NAME, "--storage", url])
        assert re.search(
            rf"retrain: trial 0 by {re.escape(socket.gethostname())}:{holder.pid}, lease "
            r"renewed \d+ s ago\n",
            status.output,
        ), status.output
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()

    # The holder was killed on this host: its lease is taken over at once.
    done = CliRunner().invoke(app, _retrain_command(url, host_b, 1))
    assert done.exit_code == 0, done.output
    study = load_study(NAME, url)[0]
    assert study.user_attrs[StudyAttr.RETRAIN_RESULT]["epochs"] == 1
    status = CliRunner().invoke(app, ["study", "status", NAME, "--storage", url])
    assert "retrain:" not in status.output  # the lease is cleared when the retrain ends


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def storage(tmp_path: Path) -> optuna.storages.BaseStorage:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    told_study(url, NAME, tmp_path)
    opened = open_storage(url)
    yield opened
    close_storage(opened)


def _lease(storage: optuna.storages.BaseStorage, clock: _Clock, interval_s: float = 60.0):
    return RetrainLease(storage, NAME, 0, interval_s=interval_s, grace_s=GRACE_S, clock=clock)


def _stored_lease(storage: optuna.storages.BaseStorage) -> object:
    study_id = storage.get_study_id_from_name(NAME)
    return storage.get_study_system_attrs(study_id).get(LEASE_ATTR)


def test_a_live_lease_is_refused_and_a_stale_one_taken_over_from_a_holder_that_then_stops(
    storage: optuna.storages.BaseStorage, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    paused = _lease(storage, clock)
    paused.acquire()
    clock.now += GRACE_S  # renewed exactly a grace ago: still live
    with pytest.raises(RetrainLeaseError, match=r"renewed 3 s ago"):
        _lease(storage, clock).acquire()

    clock.now += 1  # silent for longer than the grace: a host paused or cut off
    successor = _lease(storage, clock)
    successor.acquire()
    assert "taking over the retrain lease of" in caplog.text
    assert _stored_lease(storage)["token"] == successor.token  # type: ignore[index]

    stored: list[str] = []
    with pytest.raises(RetrainLeaseError, match="another process took over the retrain"):
        paused.check()
    with pytest.raises(RetrainLeaseError):
        paused.while_held(lambda: stored.append("result"))
    assert stored == []
    paused.release()  # leaves the successor's lease alone
    assert _stored_lease(storage)["token"] == successor.token  # type: ignore[index]
    successor.while_held(lambda: stored.append("result"))
    assert stored == ["result"]
    successor.release()
    assert _stored_lease(storage) is None


def test_a_fresh_lease_of_a_process_of_this_host_that_is_gone_is_taken_at_once(
    storage: optuna.storages.BaseStorage, caplog: pytest.LogCaptureFixture
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    study_id = storage.get_study_id_from_name(NAME)
    clock = _Clock()
    for holder, free in (
        (f"{socket.gethostname()}:{gone.pid}", True),
        (f"{socket.gethostname()}:{os.getpid()}", False),  # alive
        (f"elsewhere:{gone.pid}", False),  # another host's: only the grace frees it
    ):
        lease = {"trial": 0, "holder": holder, "token": "x", "renewed_at": clock.now}
        storage.set_study_system_attr(study_id, LEASE_ATTR, lease)
        contender = _lease(storage, clock)
        if free:
            contender.acquire()
            contender.release()
            assert "whose process no longer runs on this host" in caplog.text
        else:
            with pytest.raises(RetrainLeaseError, match=holder):
                contender.acquire()


def test_the_holder_renews_its_lease_every_interval(
    storage: optuna.storages.BaseStorage,
) -> None:
    clock = _Clock()
    lease = _lease(storage, clock, interval_s=0.05)
    lease.acquire()
    try:
        first = _stored_lease(storage)["renewed_at"]  # type: ignore[index]
        clock.now += 10
        wait_until(
            lambda: _stored_lease(storage)["renewed_at"] > first,  # type: ignore[index]
            30,
            "a renewal",
            step=0.05,
        )
    finally:
        lease.release()


class _TakenOverAfterEpoch1(Callback):
    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self.storage = storage

    def on_epoch_end(self, report: EpochReport) -> None:
        if report.epoch == 0:
            study_id = self.storage.get_study_id_from_name(NAME)
            successor = {"trial": 0, "holder": "elsewhere:1", "token": "y", "renewed_at": 0.0}
            self.storage.set_study_system_attr(study_id, LEASE_ATTR, successor)


def test_a_retrain_taken_over_while_it_trains_stops_and_stores_nothing(
    storage: optuna.storages.BaseStorage, tmp_path: Path
) -> None:
    class TakenOver(Trainer):
        def fit(self, *, callbacks, resume_from=None):  # type: ignore[no-untyped-def]
            return super().fit(
                callbacks=[*callbacks, _TakenOverAfterEpoch1(storage)], resume_from=resume_from
            )

    study, spec = load_study(NAME, storage)
    options = RetrainOptions(epochs=3, device="cpu", rerank=False, output=tmp_path / "retrain")
    with pytest.raises(RetrainLeaseError, match="another process took over"):
        retrain_trial(study, spec, options, trainer_factory=TakenOver, storage=storage)
    assert StudyAttr.RETRAIN_RESULT not in study.user_attrs
    assert not (tmp_path / "retrain" / "test.json").exists()
    assert not (tmp_path / "retrain" / "epoch_0003.pt").exists()  # stopped after epoch 2
    assert _stored_lease(storage)["token"] == "y"  # type: ignore[index]


@pytest.mark.parametrize("renewed_at", [None, "soon", [1]])
def test_a_lease_without_a_readable_renewal_time_is_stale(
    storage: optuna.storages.BaseStorage, renewed_at: object
) -> None:
    study_id = storage.get_study_id_from_name(NAME)
    lease = {"trial": 0, "holder": "elsewhere:1", "token": "x", "renewed_at": renewed_at}
    storage.set_study_system_attr(study_id, LEASE_ATTR, lease)
    contender = _lease(storage, _Clock())
    contender.acquire()
    contender.release()
    assert _stored_lease(storage) is None


@pytest.mark.parametrize(
    ("renewed_at", "shown"),
    [
        (0.0, "lease renewed 1000000 s ago; stale: the next `study retrain` takes it over"),
        ("soon", "lease with no renewal time; stale: the next `study retrain` takes it over"),
    ],
)
def test_status_shows_a_stale_lease_as_stale(
    storage: optuna.storages.BaseStorage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    renewed_at: object,
    shown: str,
) -> None:
    monkeypatch.setattr("time.time", lambda: 1_000_000.0)
    study_id = storage.get_study_id_from_name(NAME)
    lease = {"trial": 0, "holder": "elsewhere:1", "token": "x", "renewed_at": renewed_at}
    storage.set_study_system_attr(study_id, LEASE_ATTR, lease)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    table = CliRunner().invoke(app, ["study", "status", NAME, "--storage", url])
    assert f"retrain: trial 0 by elsewhere:1, {shown}" in table.output, table.output
    as_json = CliRunner().invoke(
        app, ["study", "status", NAME, "--storage", url, "--format", "json"]
    )
    assert json.loads(as_json.output)["retrain"]["stale"] is True
