"""Worker processes for the fault tests: start, find by trial, wait, measure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from tests._helpers.waits import scaled
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def start_worker(
    name: str, url: str, log: Path, *args: str, child: bool = True, **env: str
) -> subprocess.Popen[str]:
    """``reid-hpo worker NAME [--child]`` with 1 s heartbeats, output appended to ``log``
    (``env``: more environment variables)."""
    command = [
        sys.executable,
        "-m",
        "hpo.cli",
        "worker",
        name,
        *(["--child"] if child else ["--gpus", "none"]),
        *args,
    ]
    handle = log.open("a", encoding="utf-8")
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=child_env(url, **env),
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_cli(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m hpo.cli ARGV`` from the repository root, to completion (within
    ``scaled(timeout)``), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "hpo.cli", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        check=False,
    )


def trials(name: str, url: str) -> list[FrozenTrial]:
    """The study's trials as a fresh reader sees them (empty while the study does not exist)."""
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"poolclass": __import__("sqlalchemy").pool.NullPool}
    )
    try:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return []
        return study.get_trials(deepcopy=True)
    finally:
        storage.engine.dispose()


def worker_pid(trial: FrozenTrial) -> int:
    """The pid in the trial's ``worker`` user attr (``host:pid``)."""
    return int(trial.user_attrs["worker"].rsplit(":", 1)[1])


def assert_study_consistent(name: str, url: str, n_trials: int) -> list[FrozenTrial]:
    """Exactly ``n_trials`` finished, nothing RUNNING or WAITING, no two finished trials that
    are the same attempt (a retry and its original)."""
    found = trials(name, url)
    finished = [t for t in found if t.state in FINISHED]
    assert len(finished) == n_trials, [(t.number, t.state.name) for t in found]
    assert not [t for t in found if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    origins = [t.system_attrs.get("failed_trial", t.number) for t in finished]
    assert len(set(origins)) == len(origins), origins  # no trial finished twice
    return found
