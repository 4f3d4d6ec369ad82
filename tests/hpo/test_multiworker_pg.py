"""Several worker processes on the real PostgreSQL server: budget, sampler, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.search import build_sampler
from hpo.search import suggest
from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.worker import run_supervisor
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import start_python
from tests.hpo._worker_support import trials_of

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKER = "import sys; sys.argv = ['reid-hpo', 'worker', 'w', '--child']; " + (
    "from hpo.cli import main; main()"
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _create(tmp_path: Path, data_root: Path, url: str, **kwargs: object) -> StudySpec:
    raw = spec_dict(name="w", data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    spec = StudySpec.model_validate(raw)
    create_study(spec, url)
    return spec


def test_two_worker_processes_finish_exactly_n_trials(
    tmp_path: Path, data_root: Path, postgres_url: str
) -> None:
    _create(tmp_path, data_root, postgres_url, n_trials=4, sampler="tpe", pruner="median")
    workers = [start_python(WORKER, child_env(postgres_url)) for _ in range(2)]
    outputs = [w.communicate(timeout=scaled(300))[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(outputs)

    trials = trials_of("w", postgres_url)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert len(trials) == 4  # nothing beyond the budget, nothing left RUNNING or WAITING
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    assert len({t.user_attrs["worker"] for t in trials}) <= 2


def test_a_second_process_rebuilds_the_same_sampler_from_url_and_name(
    tmp_path: Path, data_root: Path, postgres_url: str
) -> None:
    spec = _create(tmp_path, data_root, postgres_url, sampler="tpe")
    code = (
        "import json; from hpo.study import load_study; from hpo.search import suggest; "
        f"study, spec = load_study('w', {postgres_url!r}); "
        "print(json.dumps(suggest(study.ask(), spec)))"
    )
    process = start_python(code, child_env(postgres_url))
    output, _ = process.communicate(timeout=scaled(120))
    assert process.returncode == 0, output
    remote = json.loads(output.strip().splitlines()[-1])

    local_study = optuna.create_study(sampler=build_sampler(spec), direction="maximize")
    assert remote == suggest(local_study.ask(), spec)


def test_killed_worker_is_restarted_and_its_trial_resumes_from_the_checkpoint(
    tmp_path: Path, data_root: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(tmp_path, data_root, postgres_url, n_trials=1, epochs=6)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    killed: list[int] = []

    def kill_the_first_worker_after_a_checkpoint() -> None:
        def checkpointed() -> bool:
            trials = trials_of("w", postgres_url)
            return bool(trials) and "last_checkpoint_epoch" in trials[0].user_attrs

        wait_until(checkpointed, 180, "the first checkpoint of trial 0")
        pid = int(trials_of("w", postgres_url)[0].user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_first_worker_after_a_checkpoint, daemon=True)
    killer.start()
    code = run_supervisor("w", postgres_url, "none")
    killer.join(timeout=scaled(5))

    assert code == 0
    assert killed, "the worker was never killed"
    first, retry = trials_of("w", postgres_url)
    assert first.state is TrialState.FAIL  # failed by the watchdog once its heartbeat went stale
    assert retry.state is TrialState.COMPLETE
    assert retry.params == first.params
    assert retry.user_attrs["resumed_from_epoch"] > 0
    assert retry.user_attrs["worker"] != first.user_attrs["worker"]
