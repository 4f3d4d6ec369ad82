"""A copied study database keeps the study's uuid: the copy must not write or delete the
original's artifact folder (``<root>/<uuid>/reid-hpo-study.json`` names the storage).

Commands run as a user types them: ``study create/delete/rekey/retrain`` and the worker's
preflight in process through the Typer app; trials by the worker loop with a fake trainer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from hpo.study import MARKER_NAME
from hpo.worker import run_worker
from tests._helpers.postgres import _admin_connect
from tests._helpers.postgres import fresh_database
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import spec_dict
from tests.reliability._procs import trials


def _cli(*words: str, code: int) -> Result:
    result = CliRunner().invoke(app, list(words))
    assert result.exit_code == code, result.output
    return result


def _refused_as_copy(result: Result, original: str, copy: str) -> None:
    """One ``Error:`` line naming both storages and the way out, no traceback."""
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert original in errors[0] and copy in errors[0], errors[0]
    assert "this database is a copy" in errors[0] and "study rekey" in errors[0]
    assert "Traceback" not in result.output


def _run_one_trial(name: str, url: str) -> None:
    """One trial of a worker (the real worker loop, a fake trainer: no training cost)."""
    assert run_worker(name, url, max_trials=1, trainer_factory=fake_trainer_factory()).complete


def _uuid_folders(runs: Path) -> set[str]:
    return {marker.parent.name for marker in runs.glob(f"*/{MARKER_NAME}")}


def test_a_copied_sqlite_file_is_refused_until_rekeyed(tmp_path: Path, mars_root: Path) -> None:
    runs = tmp_path / "runs"
    spec = spec_dict(name="cp", data_root=mars_root, artifacts=runs, n_trials=3, epochs=1)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str))))
    original, copy = tmp_path / "original.db", tmp_path / "copy.db"
    orig_url, copy_url = f"sqlite:///{original}", f"sqlite:///{copy}"
    _cli("study", "create", str(tmp_path / "spec.yaml"), "--storage", orig_url, code=0)
    _run_one_trial("cp", orig_url)
    (first,) = _uuid_folders(runs)
    shutil.copyfile(original, copy)  # cp original.db copy.db

    _refused_as_copy(
        _cli("worker", "cp", "--storage", copy_url, "--gpus", "none", code=2),
        str(original),
        str(copy),
    )
    _refused_as_copy(
        _cli("study", "retrain", "cp", "--storage", copy_url, "--epochs", "1", code=2),
        str(original),
        str(copy),
    )
    _refused_as_copy(
        _cli("study", "delete", "cp", "--storage", copy_url, "--yes", code=2),
        str(original),
        str(copy),
    )
    assert (runs / first / "trial_0").is_dir()  # the original's folder is untouched
    assert len(trials("cp", copy_url)) == 1  # and the copy's study is not deleted

    _run_one_trial("cp", orig_url)  # the original still works
    assert [t.state for t in trials("cp", orig_url)] == [TrialState.COMPLETE] * 2

    rekeyed = _cli("study", "rekey", "cp", "--storage", copy_url, code=0).output
    assert "checkpoints are not reused" in rekeyed
    (second,) = _uuid_folders(runs) - {first}
    record = json.loads((runs / second / MARKER_NAME).read_text())
    assert str(copy) in record["storage"]["display"]
    _run_one_trial("cp", copy_url)  # the copy now runs, into its own folder
    assert trials("cp", copy_url)[-1].state is TrialState.COMPLETE
    assert (runs / second / "trial_1").is_dir()
    assert not (runs / first / "trial_2").exists()


@pytest.mark.postgres
def test_a_postgres_database_copied_by_template_is_refused(tmp_path: Path, mars_root: Path) -> None:
    spec = spec_dict(name="tpl", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=1)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str))))
    with fresh_database() as url:
        _cli("study", "create", str(tmp_path / "spec.yaml"), "--storage", url, code=0)
        original_db = url.rsplit("/", 1)[1]
        copy_db = f"{original_db}_copy"
        conn = _admin_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{copy_db}" TEMPLATE "{original_db}"')
            copy_url = url.rsplit("/", 1)[0] + f"/{copy_db}"
            refused = _cli("study", "delete", "tpl", "--storage", copy_url, "--yes", code=2)
            _refused_as_copy(refused, f"5432/{original_db} ", f"5432/{copy_db} ")
            assert "system " in refused.output
            assert len(list((tmp_path / "runs").glob(f"*/{MARKER_NAME}"))) == 1
            _cli("study", "rekey", "tpl", "--storage", copy_url, "--adopt-artifacts", code=0)
            _cli("study", "delete", "tpl", "--storage", url, "--yes", code=2)  # now the copy's
        finally:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{copy_db}" WITH (FORCE)')
            conn.close()
