"""Artifacts in an S3-compatible object store (``artifacts.kind: s3``) on a real server process.

Hosts are stood in for by artifacts roots (each host's local cache) that share nothing but
the bucket and the study database. The server is moto's standalone S3 server, started by the
tests on a free port (``tests/_helpers/s3.py``).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.report import build_report
from hpo.spec import ArtifactsSpec
from hpo.spec import StudySpec
from hpo.study import ArtifactMirror
from hpo.study import ObjectStore
from hpo.study import apply_retention
from hpo.study import create_study
from hpo.study import delete_study
from hpo.study import list_studies
from hpo.study import mirror_of
from hpo.study import study_status
from hpo.worker import make_objective
from reid_core.engine import Trainer
from tests._helpers.s3 import CREDENTIALS
from tests._helpers.s3 import S3Server
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import WorkerDeath
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import dying_trainer_factory
from tests.hpo._worker_support import fail_and_queue_retry
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import write_spec
from tests.reliability._procs import trials

PREFIX = "team/reid"
HEARTBEAT_S = 1  # spec_dict's: a dead worker's trial is stale after 3 s


def s3_spec(
    name: str, data_root: Path, root: Path, bucket: str, endpoint: str, **kw: object
) -> dict:
    """A tiny study spec whose artifacts go to ``bucket`` (``root``: the creating host's cache)."""
    raw = spec_dict(name=name, data_root=data_root, artifacts=root, **kw)
    raw["artifacts"] = {
        "kind": "s3",
        "root": str(root),
        "bucket": bucket,
        "prefix": PREFIX,
        "endpoint_url": endpoint,
    }
    return raw


def _died_on_host_a(
    name: str, tmp_path: Path, data_root: Path, url: str, server: S3Server, bucket: str, epochs: int
) -> tuple[StudySpec, optuna.Study, Path, Path]:
    """Trial 0 trains one epoch on host A (checkpoint pushed), dies, and is queued again.

    Returns:
        The spec, the study, host A's and host B's artifacts roots (B's does not exist yet).
    """
    host_a, host_b = tmp_path / "host_a", tmp_path / "host_b"
    raw = s3_spec(name, data_root, host_a, bucket, server.endpoint, epochs=epochs)
    spec = StudySpec.model_validate(raw)
    study = create_study(spec, url)
    dying = make_objective(
        spec,
        study_name=spec.name,
        artifacts_root=host_a,
        trainer_factory=dying_trainer_factory(0),
    )
    with pytest.raises(WorkerDeath):
        study.optimize(dying, n_trials=1)
    fail_and_queue_retry(study, url, 0)
    return spec, study, host_a, host_b


def _keys(server: S3Server, bucket: str, study: optuna.Study, under: str = "") -> list[str]:
    return server.keys(bucket, f"{PREFIX}/{study.user_attrs['study_uuid']}/{under}")


def test_a_retry_on_another_host_resumes_through_the_object_store(
    tmp_path: Path, mars_root: Path, sqlite_url: str, s3_endpoint: S3Server, s3_bucket: str
) -> None:
    spec, study, host_a, host_b = _died_on_host_a(
        "fleet", tmp_path, mars_root, sqlite_url, s3_endpoint, s3_bucket, epochs=3
    )
    assert not host_b.exists()  # host B has never seen this study

    study.optimize(make_objective(spec, study_name="fleet", artifacts_root=host_b), n_trials=1)

    first, retry = study.trials
    assert retry.state is TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] == 1  # epoch 1 was not trained again
    assert (first.user_attrs["epochs_trained"], retry.user_attrs["epochs_trained"]) == (1, 2)
    assert "resume_skipped" not in retry.user_attrs
    before = _keys(s3_endpoint, s3_bucket, study, "trial_0/run_0/")
    # The predecessor's checkpoints left the store once taken over; its logs stayed.
    assert not [k for k in before if k.endswith((".pt", ".sha256"))]
    assert any(k.endswith("run_0/metrics.jsonl") for k in before)
    after = _keys(s3_endpoint, s3_bucket, study, "trial_0/run_1/")
    names = {k.rsplit("/", 1)[-1] for k in after}
    assert {"attempt.json", "metrics.jsonl", "epoch_0003.pt", "epoch_0003.pt.sha256"} <= names
    assert any("/tensorboard/trial_1/events.out.tfevents" in k for k in after)
    assert "last.pt" not in names  # a local pointer only

    # Host A still holds its copy of the predecessor's checkpoint (it died): an orphan that
    # retention on host A removes, leaving the logs.
    attempt_a = host_a / first.user_attrs["checkpoint_dir"]
    assert list(attempt_a.glob("epoch_*.pt"))
    assert apply_retention(study, mirror_of(spec.artifacts, host_a)) > 0
    assert not list(attempt_a.glob("*.pt")) and (attempt_a / "metrics.jsonl").is_file()


def test_a_skipped_resume_is_recorded_and_shown(
    tmp_path: Path, mars_root: Path, sqlite_url: str, s3_endpoint: S3Server, s3_bucket: str
) -> None:
    spec, study, _, host_b = _died_on_host_a(
        "skip", tmp_path, mars_root, sqlite_url, s3_endpoint, s3_bucket, epochs=2
    )
    lost = _keys(s3_endpoint, s3_bucket, study, "trial_0/run_0/")
    # As if host A had never reached the store: nothing of its attempt is there.
    s3_endpoint.client().delete_objects(
        Bucket=s3_bucket, Delete={"Objects": [{"Key": k} for k in lost]}
    )

    study.optimize(make_objective(spec, study_name="skip", artifacts_root=host_b), n_trials=1)

    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert "resumed_from_epoch" not in retry.user_attrs
    assert set(retry.intermediate_values) == {0, 1}  # it trained every epoch itself
    reason = retry.user_attrs["resume_skipped"]
    assert reason.startswith("the object store holds no checkpoint of ")
    assert study_status("skip", sqlite_url).resume_skipped == {1: reason}
    shown = CliRunner().invoke(app, ["study", "status", "skip", "--storage", sqlite_url])
    assert shown.exit_code == 0, shown.output
    assert "trial 1 resume skipped (trained from epoch 1): the object store holds" in (
        " ".join(shown.output.split())
    )
    report = build_report(study, tmp_path / "report.html", storage_url=sqlite_url)
    assert "resume skipped: the object store holds no checkpoint" in report.read_text()


def test_delete_removes_the_study_objects_and_nothing_else(
    tmp_path: Path, mars_root: Path, sqlite_url: str, s3_endpoint: S3Server, s3_bucket: str
) -> None:
    root = tmp_path / "host"
    fake = fake_trainer_factory()
    studies = {}
    for name in ("gone", "kept"):
        spec = StudySpec.model_validate(
            s3_spec(name, mars_root, root, s3_bucket, s3_endpoint.endpoint, n_trials=1)
        )
        studies[name] = create_study(spec, sqlite_url)
        studies[name].optimize(
            make_objective(spec, study_name=name, trainer_factory=fake), n_trials=1
        )
    client = s3_endpoint.client()
    for foreign in (f"{PREFIX}-other/x", "unrelated.txt", f"{PREFIX}/notes.txt"):
        client.put_object(Bucket=s3_bucket, Key=foreign, Body=b"not reid-hpo's")
    kept_before = _keys(s3_endpoint, s3_bucket, studies["kept"])
    gone_uuid = studies["gone"].user_attrs["study_uuid"]
    assert _keys(s3_endpoint, s3_bucket, studies["gone"]) and (root / gone_uuid).is_dir()

    deleted = delete_study("gone", sqlite_url)

    assert deleted.artifacts_removed and deleted.artifacts_error is None
    assert deleted.artifacts == f"s3://{s3_bucket}/{PREFIX}/{gone_uuid}/"
    assert s3_endpoint.keys(s3_bucket, f"{PREFIX}/{gone_uuid}/") == []
    assert not (root / gone_uuid).exists()  # this host's cache of it too
    assert _keys(s3_endpoint, s3_bucket, studies["kept"]) == kept_before
    left = s3_endpoint.keys(s3_bucket)
    assert {f"{PREFIX}-other/x", "unrelated.txt", f"{PREFIX}/notes.txt"} <= set(left)


def test_retention_in_the_store_keeps_only_the_best_final_checkpoint(
    tmp_path: Path, mars_root: Path, sqlite_url: str, s3_endpoint: S3Server, s3_bucket: str
) -> None:
    root = tmp_path / "host"
    raw = s3_spec("keep", mars_root, root, s3_bucket, s3_endpoint.endpoint, n_trials=2, epochs=1)
    spec = StudySpec.model_validate(raw)
    study = create_study(spec, sqlite_url)
    study.optimize(make_objective(spec, study_name="keep"), n_trials=2)
    checkpoints = [k for k in _keys(s3_endpoint, s3_bucket, study) if k.endswith(".pt")]
    assert len(checkpoints) == 2  # one per trial, pushed at its checkpoint

    apply_retention(study, mirror_of(spec.artifacts))

    best = study.best_trial
    (left,) = [k for k in _keys(s3_endpoint, s3_bucket, study) if k.endswith(".pt")]
    assert left == f"{PREFIX}/{best.user_attrs['checkpoint']}"


@pytest.mark.parametrize(
    ("artifacts", "field"),
    [
        ({"aws_secret_access_key": "Zq9xKsecret"}, "aws_secret_access_key"),
        ({"endpoint_url": "http://AKIA:Zq9xKsecret@minio:9000"}, "endpoint_url"),
        ({"endpoint_url": "http://minio:9000/?X-Amz-Signature=Zq9xKsecret"}, "endpoint_url"),
    ],
    ids=["credential-key", "userinfo-url", "signed-url"],
)
def test_a_spec_carrying_a_credential_is_refused_in_one_line(
    artifacts: dict[str, str], field: str, tmp_path: Path, mars_root: Path, sqlite_url: str
) -> None:
    raw = s3_spec("secret", mars_root, tmp_path / "runs", "bucket", "http://minio:9000")
    raw["artifacts"].update(artifacts)
    spec_file = write_spec(tmp_path / "secret.yaml", raw)
    result = CliRunner().invoke(app, ["study", "create", str(spec_file), "--storage", sqlite_url])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert "artifacts" in line and "credential" in line and field in line
    assert "Zq9xKsecret" not in result.output
    assert list_studies(sqlite_url) == []


def test_a_worker_without_credentials_for_the_bucket_is_refused_in_one_line(
    tmp_path: Path,
    mars_root: Path,
    sqlite_url: str,
    s3_endpoint: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = s3_spec("nokey", mars_root, tmp_path / "runs", s3_bucket, s3_endpoint.endpoint)
    create_study(StudySpec.model_validate(raw), sqlite_url)
    # A host whose environment, profile files and instance metadata hold no credentials.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(
        app, ["worker", "nokey", "--child", "--max-trials", "1", "--storage", sqlite_url]
    )
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert f"s3://{s3_bucket}/{PREFIX}" in line and "credentials" in line.lower()


def _host_worker(name: str, url: str, host: Path, log: Path) -> subprocess.Popen[str]:
    """``reid-hpo worker NAME --child`` on a host: its working directory is ``host``, so the
    spec's relative ``artifacts.root`` (``runs``) is that host's own cache."""
    with log.open("a", encoding="utf-8") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hpo.cli", "worker", name, "--child"],
            cwd=host,
            env=child_env(url, **CREDENTIALS),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_worker_s_trial_resumes_on_another_host_through_the_object_store(
    tmp_path: Path,
    mars_root: Path,
    postgres_url: str,
    s3_endpoint: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host_a, host_b = tmp_path / "host_a", tmp_path / "host_b"
    host_a.mkdir()
    host_b.mkdir()
    monkeypatch.chdir(host_a)
    raw = s3_spec("kill", mars_root, Path("runs"), s3_bucket, s3_endpoint.endpoint, n_trials=1)
    raw["training"]["epochs"] = 4
    study_uuid = create_study(StudySpec.model_validate(raw), postgres_url).user_attrs["study_uuid"]
    pushed = f"{PREFIX}/{study_uuid}/trial_0/run_0/epoch_0002.pt.sha256"
    log = tmp_path / "workers.log"
    first = _host_worker("kill", postgres_url, host_a, log)
    try:
        # Killed once the checkpoint of epoch 2 is in the store (its checksum goes up last).
        wait_until(lambda: pushed in s3_endpoint.keys(s3_bucket), 120, "epoch 2", step=1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        time.sleep(3 * HEARTBEAT_S + 1)  # its heartbeat is stale when host B starts
        second = _host_worker("kill", postgres_url, host_b, log)
        assert second.wait(timeout=scaled(180)) == 0, log.read_text()
    finally:
        for worker in (first, locals().get("second")):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()

    found = trials("kill", postgres_url)
    (retry,) = [t for t in found if t.system_attrs.get("failed_trial") == 0]
    assert retry.state is TrialState.COMPLETE
    resumed = retry.user_attrs["resumed_from_epoch"]
    assert resumed >= 2  # epochs 1 and 2 were not trained again
    assert retry.user_attrs["epochs_trained"] == 4 - resumed
    assert "resume_skipped" not in retry.user_attrs
    # Host B trained in its own cache; host A's copy was never visible to it.
    assert (host_b / "runs" / retry.user_attrs["checkpoint_dir"]).is_dir()
    assert not (host_b / "runs" / found[0].user_attrs["checkpoint_dir"] / "tensorboard").exists()


def test_the_readme_s3_example_keeps_the_study_marker_in_the_bucket(
    tmp_path: Path, mars_root: Path, sqlite_url: str, s3_endpoint: S3Server, s3_bucket: str
) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```yaml\n(artifacts:\n  kind: s3\n.*?)```", readme, re.S)
    documented = yaml.safe_load(block)["artifacts"]
    ArtifactsSpec.model_validate(documented)  # valid as written
    raw = s3_spec("readme", mars_root, tmp_path, s3_bucket, s3_endpoint.endpoint)
    # This server's bucket and endpoint, and a cache under the test's folder.
    raw["artifacts"] = {
        **documented,
        "bucket": s3_bucket,
        "endpoint_url": s3_endpoint.endpoint,
        "root": str(tmp_path / "cache"),
    }
    study = create_study(StudySpec.model_validate(raw), sqlite_url)
    marker = f"studies/{study.user_attrs['study_uuid']}/reid-hpo-study.json"
    assert s3_endpoint.keys(s3_bucket) == [marker]
    assert not (tmp_path / "cache").exists()  # the marker is not a local file


def test_an_unreachable_store_neither_stops_training_nor_hides_why_a_retry_starts_over(
    tmp_path: Path, s3_endpoint: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = ObjectStore("no-such-bucket", endpoint_url=s3_endpoint.endpoint)
    mirror = ArtifactMirror(tmp_path, store)
    folder = tmp_path / ("a" * 32) / "trial_0" / "attempt_0"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("{}\n")

    with caplog.at_level(logging.WARNING, logger="hpo.study._mirror"):
        mirror.push(folder)  # logged, not raised: the trial trains on
    assert "not pushed to the object store" in caplog.text
    why = mirror.fetch(tmp_path / ("a" * 32) / "trial_0" / "attempt_1")
    assert why is not None and why.startswith("cannot fetch ") and "NoSuchBucket" in why


class _PushDiesAtTheCheckpoint(Exception):
    """The worker dying while its checkpoint is uploaded."""


def test_a_push_cut_at_the_checkpoint_leaves_the_store_with_that_epoch_logged(
    tmp_path: Path, s3_endpoint: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ObjectStore(s3_bucket, prefix=PREFIX, endpoint_url=s3_endpoint.endpoint)
    mirror = ArtifactMirror(tmp_path / "host_a", store)
    folder = tmp_path / "host_a" / ("a" * 32) / "trial_0" / "attempt_0"
    folder.mkdir(parents=True)
    for name in ("epoch_0002.pt", "epoch_0002.pt.sha256", "attempt.json", "config.json"):
        (folder / name).write_text(name)
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    uploaded = store.upload

    def upload_until_the_checkpoint(path: Path, rel: str) -> None:
        if path.suffix == ".pt":
            raise _PushDiesAtTheCheckpoint
        uploaded(path, rel)

    monkeypatch.setattr(store, "upload", upload_until_the_checkpoint)
    with pytest.raises(_PushDiesAtTheCheckpoint):
        mirror.sync(folder)
    keys = s3_endpoint.keys(s3_bucket, f"{PREFIX}/{'a' * 32}/")
    assert sorted(k.rsplit("/", 1)[-1] for k in keys) == ["attempt.json", "metrics.jsonl"]


class _DiesAtStart(Trainer):
    def fit(self, *, callbacks, resume_from=None):  # type: ignore[no-untyped-def]
        raise WorkerDeath("worker died before its first checkpoint")


def test_a_retry_that_dies_before_its_first_checkpoint_hands_on_what_it_took_over(
    tmp_path: Path, mars_root: Path, sqlite_url: str, s3_endpoint: S3Server, s3_bucket: str
) -> None:
    spec, study, _, host_b = _died_on_host_a(
        "relay", tmp_path, mars_root, sqlite_url, s3_endpoint, s3_bucket, epochs=2
    )
    dies = make_objective(
        spec,
        study_name="relay",
        artifacts_root=host_b,
        trainer_factory=lambda cfg, rerank: _DiesAtStart(cfg),
    )
    with pytest.raises(WorkerDeath):  # host B took the checkpoint over, then died
        study.optimize(dies, n_trials=1)
    fail_and_queue_retry(study, sqlite_url, 1)

    host_c = tmp_path / "host_c"
    study.optimize(make_objective(spec, study_name="relay", artifacts_root=host_c), n_trials=1)

    last = study.trials[2]
    assert last.state is TrialState.COMPLETE
    assert last.user_attrs["resumed_from_epoch"] == 1  # host A's epoch, through host B's copy
    assert last.user_attrs["epochs_trained"] == 1
    assert "resume_skipped" not in last.user_attrs


def test_a_checkpoint_redone_on_another_host_replaces_the_same_sized_one_left_in_the_store(
    tmp_path: Path, s3_endpoint: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host A dies while it pushes a retrain's epoch 2 (the checkpoint is up, its checksum not);
    host B resumes from epoch 1, redoes epoch 2 and pushes it: the store then holds host B's
    checkpoint with host B's checksum, not host A's same-sized file under B's checksum (which
    host C could not resume from)."""
    from reid_core.engine import CheckpointManager
    from reid_core.engine import find_resumable_checkpoint
    from reid_core.engine import load_checkpoint

    store = ObjectStore(s3_bucket, prefix=PREFIX, endpoint_url=s3_endpoint.endpoint)
    rel = Path("a" * 32) / "retrain_0"
    saved = {}
    for host, weight in (("host_a", 1.0), ("host_b", 2.0)):
        manager = CheckpointManager(tmp_path / host / rel)
        manager.save({"epoch": 1, "w": torch.tensor([0.0])}, epoch=1)
        saved[host] = manager.save({"epoch": 2, "w": torch.tensor([weight])}, epoch=2)
    assert saved["host_a"].stat().st_size == saved["host_b"].stat().st_size
    uploaded = store.upload

    def die_at_the_checksum(path: Path, key: str) -> None:
        if path.name == "epoch_0002.pt.sha256":
            raise _PushDiesAtTheCheckpoint
        uploaded(path, key)

    with monkeypatch.context() as patch:
        patch.setattr(store, "upload", die_at_the_checksum)
        with pytest.raises(_PushDiesAtTheCheckpoint):
            ArtifactMirror(tmp_path / "host_a", store).sync(tmp_path / "host_a" / rel)
    ArtifactMirror(tmp_path / "host_b", store).sync(tmp_path / "host_b" / rel)

    host_c = tmp_path / "host_c" / rel
    ArtifactMirror(tmp_path / "host_c", store).restore(host_c, ())
    found = find_resumable_checkpoint(host_c)
    assert found is not None and found.name == "epoch_0002.pt"
    assert load_checkpoint(found)["w"].item() == 2.0


@pytest.mark.parametrize("step", ["fetch", "restore"])
def test_a_download_cut_before_the_checksum_is_completed_by_the_next_one(
    tmp_path: Path, s3_endpoint: S3Server, s3_bucket: str, step: str
) -> None:
    """A host killed while it fetched (a retry's take-over) or restored (a retrain) a
    checkpoint, after the checkpoint came and before its checksum did: the next try on that
    host downloads it again instead of taking the unverifiable file for a checkpoint it holds
    (and resuming from nothing)."""
    from reid_core.engine import CheckpointManager
    from reid_core.engine import find_resumable_checkpoint

    store = ObjectStore(s3_bucket, prefix=PREFIX, endpoint_url=s3_endpoint.endpoint)
    rel = Path("a" * 32) / "trial_0" / "attempt_0"
    host_a = CheckpointManager(tmp_path / "host_a" / rel)
    host_a.save({"epoch": 1, "w": torch.tensor([1.0])}, epoch=1)
    (host_a.directory / "attempt.json").write_text("{}")
    ArtifactMirror(tmp_path / "host_a", store).sync(host_a.directory)
    cache = tmp_path / "host_b" / rel
    cache.mkdir(parents=True)
    (cache / "attempt.json").write_text("{}")
    (cache / "epoch_0001.pt").write_bytes((host_a.directory / "epoch_0001.pt").read_bytes())

    mirror = ArtifactMirror(tmp_path / "host_b", store)
    if step == "fetch":
        assert mirror.fetch(cache) is None
    else:
        mirror.restore(cache, ("attempt.json",))
    found = find_resumable_checkpoint(cache)
    assert found is not None and found.name == "epoch_0001.pt"
