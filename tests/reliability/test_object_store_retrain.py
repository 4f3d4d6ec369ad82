"""``study retrain`` with ``artifacts.kind: s3`` on a real S3 server process (moto's).

Hosts are stood in for by working directories (the spec's relative ``artifacts.root``,
``runs``, is each host's own cache); they share only the bucket and the study database.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import ClassVar

import optuna
import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.spec import StudySpec
from hpo.study import ArtifactMirror
from hpo.study import ObjectStoreError
from hpo.study import RetrainError
from hpo.study import RetrainOptions
from hpo.study import apply_retention
from hpo.study import create_study
from hpo.study import delete_study
from hpo.study import load_study
from hpo.study import mirror_of
from hpo.study import open_store
from hpo.study import resolve_stored
from hpo.study import retrain_trial
from hpo.worker import make_objective
from reid_core.engine import Trainer
from reid_core.engine import verify_checkpoint
from tests._helpers.s3 import S3Server
from tests.hpo._worker_support import WorkerDeath
from tests.hpo._worker_support import dying_trainer
from tests.hpo._worker_support import fake_trainer_factory
from tests.reliability.test_object_store import PREFIX
from tests.reliability.test_object_store import s3_spec

NAME = "again"
OPTIONS = RetrainOptions(epochs=2, device="cpu", rerank=False)


@dataclass(frozen=True)
class Fleet:
    """A study with one complete (fake) trial, created on host A (the working directory);
    hosts ``host_b`` and ``host_c`` under ``tmp`` have empty caches."""

    spec: StudySpec
    study: optuna.Study
    url: str
    server: S3Server
    bucket: str
    tmp: Path

    def objects(self, rel: str) -> dict[str, str]:
        """The objects of the folder ``rel`` by name inside it."""
        keys = self.server.keys(self.bucket, f"{PREFIX}/{rel}/")
        return {k.removeprefix(f"{PREFIX}/{rel}/"): k for k in keys}

    def retrain_rel(self) -> str:
        """The default retrain folder of trial 0, relative to the artifacts root."""
        return f"{self.study.user_attrs['study_uuid']}/retrain/trial_0"


@pytest.fixture()
def fleet(
    tmp_path: Path,
    mars_root: Path,
    sqlite_url: str,
    s3_endpoint: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Fleet:
    for host in ("host_a", "host_b", "host_c"):
        (tmp_path / host).mkdir()
    monkeypatch.chdir(tmp_path / "host_a")
    raw = s3_spec(NAME, mars_root, Path("runs"), s3_bucket, s3_endpoint.endpoint, n_trials=1)
    spec = StudySpec.model_validate(raw)
    study = create_study(spec, sqlite_url)
    study.optimize(
        make_objective(spec, study_name=NAME, trainer_factory=fake_trainer_factory()), n_trials=1
    )
    return Fleet(spec, study, sqlite_url, s3_endpoint, s3_bucket, tmp_path)


def _stored_json(spec: StudySpec, rel: str) -> dict[str, Any]:
    """The JSON object at ``rel`` in the study's object store."""
    store = open_store(spec.artifacts)
    assert store is not None
    return dict(json.loads(store.get_bytes(rel) or b"{}"))


class _Recording(Trainer):
    """A real trainer that records the checkpoint each ``fit`` resumed from."""

    resumed: ClassVar[list[Path | None]] = []

    def fit(self, *, callbacks, resume_from=None):  # type: ignore[no-untyped-def]
        self.resumed.append(resume_from)
        return super().fit(callbacks=callbacks, resume_from=resume_from)


def _retrain_here(
    study: optuna.Study, spec: StudySpec, options: RetrainOptions, rel: str
) -> tuple[str | None, dict[str, Any], list[int]]:
    """Retrain on the host of the working directory: the name of the checkpoint it resumed
    from, its result, and the epochs its ``metrics.jsonl`` holds."""
    _Recording.resumed = []
    result = retrain_trial(study, spec, options, trainer_factory=_Recording)
    (resumed,) = _Recording.resumed
    lines = Path(f"runs/{rel}/metrics.jsonl").read_text().splitlines()
    return (
        None if resumed is None else resumed.name,
        result,
        [json.loads(line)["epoch"] for line in lines],
    )


def test_a_retrain_on_one_host_is_read_on_another_and_deleted_with_the_study(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, study, sqlite_url, tmp_path = fleet.spec, fleet.study, fleet.url, fleet.tmp
    ran = CliRunner().invoke(
        app,
        ["study", "retrain", NAME, "--storage", sqlite_url, "--epochs", "2", "--device", "cpu"],
    )
    assert ran.exit_code == 0, ran.output
    study = load_study(NAME, sqlite_url)[0]
    stored = study.user_attrs["retrain_result"]
    rel = fleet.retrain_rel()  # trial 0: the best, the only one
    assert (stored["output_dir"], stored["checkpoint"]) == (rel, f"{rel}/epoch_0002.pt")
    objects = fleet.objects(rel)
    pushed = {"retrain.json", "test.json", "metrics.jsonl", "epoch_0002.pt", "epoch_0002.pt.sha256"}
    assert pushed <= set(objects)
    assert any(n.startswith("tensorboard/") for n in objects)
    assert not {".retrain.lock", "last.pt"} & set(objects)  # the host's lock and pointer

    monkeypatch.chdir(tmp_path / "host_b")  # an empty cache: nothing of host A's is here
    mirror = mirror_of(spec.artifacts)
    checkpoint = resolve_stored(spec.artifacts.root, stored["checkpoint"])
    assert not checkpoint.exists()
    mirror.fetch_checkpoint(checkpoint)
    assert verify_checkpoint(checkpoint) == checkpoint.resolve()  # its checksum came along
    assert (
        checkpoint.read_bytes()
        == (tmp_path / "host_a" / "runs" / rel / checkpoint.name).read_bytes()
    )
    assert _stored_json(spec, f"{rel}/test.json")["metrics"] == stored["metrics"]
    owner = _stored_json(spec, f"{rel}/retrain.json")
    assert (owner["study"], owner["study_uuid"]) == (NAME, study.user_attrs["study_uuid"])

    apply_retention(study, mirror)  # trials only, here as on a shared file system
    assert set(fleet.objects(rel)) == set(objects)

    study_uuid = study.user_attrs["study_uuid"]
    assert delete_study(NAME, sqlite_url).artifacts_removed
    assert fleet.server.keys(fleet.bucket, f"{PREFIX}/{study_uuid}/") == []


def test_a_killed_retrain_resumes_on_another_host_and_force_clears_the_store(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, study, sqlite_url, tmp_path = fleet.spec, fleet.study, fleet.url, fleet.tmp
    options = RetrainOptions(epochs=3, device="cpu", rerank=False)
    with pytest.raises(WorkerDeath):  # host A dies after epoch 1's checkpoint went up
        retrain_trial(study, spec, options, trainer_factory=dying_trainer(0))
    rel = fleet.retrain_rel()
    assert "epoch_0001.pt.sha256" in fleet.objects(rel)

    monkeypatch.chdir(tmp_path / "host_b")
    resumed, result, logged = _retrain_here(study, spec, options, rel)
    assert resumed == "epoch_0001.pt"  # host A's, from the store
    assert result["epochs_run"] == 3
    assert logged == [1, 2, 3]  # one log, host A's first
    assert "epoch_0003.pt" in fleet.objects(rel)

    # --force on a third host: the finished retrain comes from the store, is cleared there too.
    monkeypatch.chdir(tmp_path / "host_c")
    forced = dataclasses.replace(options, epochs=1, force=True)
    retrain_trial(load_study(NAME, sqlite_url)[0], spec, forced)
    objects = fleet.objects(rel)
    assert {n for n in objects if n.endswith(".pt")} == {"epoch_0001.pt"}
    assert _stored_json(spec, f"{rel}/test.json")["epochs"] == 1


def test_a_host_whose_cache_kept_an_older_checkpoint_resumes_from_the_store_s_newer_one(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, study, tmp_path = fleet.spec, fleet.study, fleet.tmp
    options = RetrainOptions(epochs=3, device="cpu", rerank=False)
    with pytest.raises(WorkerDeath):  # host A dies after epoch 1
        retrain_trial(study, spec, options, trainer_factory=dying_trainer(0))
    monkeypatch.chdir(tmp_path / "host_b")
    with pytest.raises(WorkerDeath):  # host B resumes it and dies after epoch 2
        retrain_trial(study, spec, options, trainer_factory=dying_trainer(1))
    rel = fleet.retrain_rel()
    assert "epoch_0002.pt.sha256" in fleet.objects(rel)

    monkeypatch.chdir(tmp_path / "host_a")  # its cache still holds epoch 1 only
    assert sorted(p.name for p in Path(f"runs/{rel}").glob("epoch_*.pt")) == ["epoch_0001.pt"]
    resumed, result, logged = _retrain_here(study, spec, options, rel)
    assert resumed == "epoch_0002.pt"  # host B's, from the store
    assert result["epochs_run"] == 3
    assert logged == [1, 2, 3]


def test_a_retrain_whose_files_did_not_reach_the_store_stores_nothing_until_run_again(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, study, sqlite_url = fleet.spec, fleet.study, fleet.url
    sync = ArtifactMirror.sync

    def unreachable_at_the_end(self: ArtifactMirror, folder: Path) -> None:
        if (folder / "test.json").exists():
            raise ObjectStoreError("s3://bucket: cannot upload: EndpointConnectionError")
        sync(self, folder)

    monkeypatch.setattr(ArtifactMirror, "sync", unreachable_at_the_end)
    with pytest.raises(RetrainError, match=r"cannot use the object store .*run the command again"):
        retrain_trial(study, spec, OPTIONS)
    assert "retrain_result" not in load_study(NAME, sqlite_url)[0].user_attrs

    monkeypatch.setattr(ArtifactMirror, "sync", sync)
    _Recording.resumed = []
    result = retrain_trial(study, spec, OPTIONS, trainer_factory=_Recording)

    (resumed,) = _Recording.resumed  # the finished run's last checkpoint: nothing trained again
    assert resumed is not None and resumed.name == "epoch_0002.pt"
    rel = fleet.retrain_rel()
    assert result["checkpoint"] == f"{rel}/epoch_0002.pt"
    stored = load_study(NAME, sqlite_url)[0].user_attrs["retrain_result"]
    assert stored["checkpoint"] == result["checkpoint"]
    assert "test.json" in fleet.objects(rel)


def test_an_output_outside_the_study_s_retrain_folder_is_refused_in_one_line(fleet: Fleet) -> None:
    sqlite_url, tmp_path = fleet.url, fleet.tmp
    outside = tmp_path / "elsewhere"
    ran = CliRunner().invoke(
        app,
        ["study", "retrain", NAME, "--storage", sqlite_url, "--output", str(outside)],
    )
    assert ran.exit_code == 2, ran.output
    (line,) = ran.output.strip().splitlines()
    assert "artifacts.kind: s3" in line and "/retrain/" in line
    assert not outside.exists()
