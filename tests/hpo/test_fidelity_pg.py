"""A ``fidelity:`` study on the real PostgreSQL server with two worker processes, one of them
killed mid-rung: its trial is failed by the heartbeat watchdog, retried from its checkpoint, and
its configuration is promoted exactly once."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo.search import promotions
from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.study.records import rung_of
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import start_python
from tests.hpo._worker_support import trials_of

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# A worker process whose first attempt of trial 0 hangs after its first epoch (its heartbeat
# goes on until the process is killed); every other trial trains at once.
WORKER = """
import sys, time
from pathlib import Path
from hpo.worker import run_worker
from tests.hpo._worker_support import FakeTrainer

class Hang:
    def on_epoch_end(self, report):
        time.sleep(600)

class Trainer(FakeTrainer):
    def fit(self, *, callbacks, resume_from):
        if Path(self.cfg.output_dir).name == "run_0":
            callbacks = [*callbacks, Hang()]
        return super().fit(callbacks=callbacks, resume_from=resume_from)

run_worker("f", sys.argv[1], trainer_factory=Trainer, poll_interval_s=0.2)
"""


def test_two_workers_one_killed_mid_rung_promote_each_configuration_once(
    tmp_path: Path, postgres_url: str
) -> None:
    data_root = make_dataset(tmp_path / "mars")
    raw = spec_dict(name="f", data_root=data_root, artifacts=tmp_path / "runs", n_trials=3)
    raw["training"]["epochs"] = 4
    raw["fidelity"] = {"kind": "sha", "eta": 2, "rungs": 2}  # rungs of 2 and 4 epochs
    create_study(StudySpec.model_validate(raw), postgres_url)
    code = WORKER.replace("sys.argv[1]", repr(postgres_url))
    workers = [start_python(code, child_env(postgres_url)) for _ in range(2)]
    try:

        def hung() -> bool:
            trials = trials_of("f", postgres_url)
            return bool(trials) and "last_checkpoint_epoch" in trials[0].user_attrs

        wait_until(hung, 120, "trial 0's first checkpoint")
        # Asynchronous: while trial 0 hangs mid-rung, the other worker goes on with new
        # configurations instead of waiting for the rung to fill.
        wait_until(
            lambda: any(t.state is TrialState.COMPLETE for t in trials_of("f", postgres_url)),
            60,
            "another trial to complete while trial 0 runs",
        )
        pid = int(trials_of("f", postgres_url)[0].user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        survivor = next(w for w in workers if w.pid != pid)
        output = survivor.communicate(timeout=scaled(120))[0]
        assert survivor.returncode == 0, output
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()

    trials = trials_of("f", postgres_url)
    killed = trials[0]
    assert killed.state is TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("origin_trial") == 0 and t.number]
    assert [t.state for t in retries] == [TrialState.COMPLETE]
    assert rung_of(retries[0]) == rung_of(killed)
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    assert all(t.state is TrialState.COMPLETE for t in trials if t is not killed)
    # Each configuration ran each rung once; every promotion is one the ASHA rule makes when
    # the rung-0 results arrive in their completion order.
    rungs = {t.number: r for t in done if (r := rung_of(t)) is not None}
    placed = Counter((r.config, r.rung) for r in rungs.values())
    assert set(placed.values()) == {1}
    seen: dict[int, float] = {}
    allowed: list[int] = []
    for t in sorted(done, key=lambda t: (t.datetime_complete, t.number)):  # type: ignore[arg-type,return-value]
        if rungs[t.number].rung == 0:
            seen[rungs[t.number].config] = float(t.value)  # type: ignore[arg-type]
            allowed += promotions(seen, allowed, 2)
    promoted = {config for config, rung in placed if rung == 1}
    assert promoted and promoted <= set(allowed)
    # The budget: 3 full-schedule trials' worth = 12 epochs, never more.
    assert sum(r.epochs for r in rungs.values()) <= 12
    assert len({t.user_attrs["worker"] for t in trials}) == 2
