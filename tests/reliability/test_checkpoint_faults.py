"""Truncated or corrupt checkpoints: detected by checksum, the previous one (or a fresh start)
is used, and neither the trial nor the worker crashes on it."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.study import ArtifactMirror
from hpo.study import create_study
from hpo.worker import make_objective
from reid_core.engine import CheckpointManager
from reid_core.engine import find_resumable_checkpoint
from reid_core.engine import load_checkpoint
from reid_core.errors import CheckpointError
from tests.hpo._worker_support import WorkerDeath
from tests.hpo._worker_support import dying_trainer_factory
from tests.hpo._worker_support import fail_and_queue_retry
from tests.hpo._worker_support import spec_dict


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    manager = CheckpointManager(tmp_path / "run", keep=3)
    for epoch in range(1, 4):
        manager.save({"epoch": epoch, "weights": [float(epoch)]}, epoch=epoch)
    return manager.directory


def test_an_intact_run_resumes_from_its_newest_checkpoint(run_dir: Path) -> None:
    assert find_resumable_checkpoint(run_dir) == (run_dir / "epoch_0003.pt").resolve()


def test_a_run_killed_before_last_pt_moved_resumes_from_its_newest_checkpoint(
    run_dir: Path,
) -> None:
    # Killed after epoch 3's checkpoint and checksum were written, before last.pt moved.
    CheckpointManager(run_dir).point_last_to(run_dir / "epoch_0002.pt")
    assert find_resumable_checkpoint(run_dir) == (run_dir / "epoch_0003.pt").resolve()


def test_a_run_resumed_from_an_earlier_epoch_drops_the_later_ones_at_once(
    run_dir: Path,
) -> None:
    manager = CheckpointManager(run_dir)
    manager.point_last_to(run_dir / "epoch_0003.pt")
    manager.drop_after(1)  # resumed from epoch 1: epochs 2 and 3 are an abandoned run's
    assert sorted(p.name for p in run_dir.iterdir()) == ["epoch_0001.pt", "epoch_0001.pt.sha256"]
    assert find_resumable_checkpoint(run_dir) == (run_dir / "epoch_0001.pt").resolve()


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte], ids=["truncated", "bit_flip"])
def test_a_damaged_newest_checkpoint_is_refused_by_its_checksum(
    damage: object, run_dir: Path
) -> None:
    damage(run_dir / "epoch_0003.pt")  # type: ignore[operator]
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(run_dir)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _truncate(run_dir / "epoch_0003.pt")
    with caplog.at_level(logging.WARNING):
        found = find_resumable_checkpoint(run_dir)
    assert found == (run_dir / "epoch_0002.pt").resolve()
    assert load_checkpoint(found)["epoch"] == 2
    assert "epoch_0003.pt" in caplog.text


def test_a_missing_checksum_file_counts_as_damaged(run_dir: Path) -> None:
    (run_dir / "epoch_0003.pt.sha256").unlink()
    assert find_resumable_checkpoint(run_dir) == (run_dir / "epoch_0002.pt").resolve()


def test_no_usable_checkpoint_means_a_fresh_start(run_dir: Path, tmp_path: Path) -> None:
    for path in run_dir.glob("epoch_*.pt"):
        _flip_a_byte(path)
    assert find_resumable_checkpoint(run_dir) is None
    assert find_resumable_checkpoint(tmp_path / "never_written") is None


def _crashed_trial_with_a_retry(tmp_path: Path, mars_root: Path) -> tuple[optuna.Study, StudySpec]:
    """Trial 0 trains epochs 0 and 1 (checkpointed), dies; a WAITING retry is queued."""
    raw = spec_dict(name="ckpt", data_root=mars_root, artifacts=tmp_path / "runs", epochs=3)
    spec = StudySpec.model_validate(raw)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = create_study(spec, url)

    crashing = make_objective(spec, study_name="ckpt", trainer_factory=dying_trainer_factory(1))
    with pytest.raises(WorkerDeath):
        study.optimize(crashing, n_trials=1)
    fail_and_queue_retry(study, url, 0)
    return study, spec


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_retry_with_a_truncated_last_checkpoint_resumes_from_the_previous_one(
    tmp_path: Path, mars_root: Path
) -> None:
    study, spec = _crashed_trial_with_a_retry(tmp_path, mars_root)
    trial_dir = tmp_path / "runs" / study.trials[0].user_attrs["checkpoint_dir"]
    _truncate(trial_dir / "epoch_0002.pt")

    study.optimize(make_objective(spec, study_name="ckpt"), n_trials=1)

    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] == 1  # epoch 1's checkpoint, not epoch 2's
    retry_dir = tmp_path / "runs" / retry.user_attrs["checkpoint_dir"]
    assert load_checkpoint(retry_dir)["epoch"] == 3  # its own folder holds a sound checkpoint
    assert not list(trial_dir.glob("epoch_*.pt"))  # the predecessor's files were freed


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_retry_with_only_corrupt_checkpoints_restarts_from_epoch_0(
    tmp_path: Path, mars_root: Path
) -> None:
    study, spec = _crashed_trial_with_a_retry(tmp_path, mars_root)
    trial_dir = tmp_path / "runs" / study.trials[0].user_attrs["checkpoint_dir"]
    for path in trial_dir.glob("epoch_*.pt"):
        _flip_a_byte(path)

    study.optimize(make_objective(spec, study_name="ckpt"), n_trials=1)

    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert "resumed_from_epoch" not in retry.user_attrs
    assert load_checkpoint(tmp_path / "runs" / retry.user_attrs["checkpoint_dir"])["epoch"] == 3


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_retry_killed_after_freeing_its_predecessor_is_resumed_from_its_own_folder(
    tmp_path: Path, mars_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry killed right after it freed its predecessor's checkpoints (its own folder holds
    the taken-over one): the next retry resumes from epoch 2, not from epoch 1 with nothing."""
    study, spec = _crashed_trial_with_a_retry(tmp_path, mars_root)
    free = ArtifactMirror.drop

    def free_then_die(self: ArtifactMirror, folder: Path, *, keep: Path | None = None) -> int:
        free(self, folder, keep=keep)
        raise WorkerDeath("worker died after freeing its predecessor's checkpoints")

    with monkeypatch.context() as patch:
        patch.setattr(ArtifactMirror, "drop", free_then_die)
        with pytest.raises(WorkerDeath):
            study.optimize(make_objective(spec, study_name="ckpt"), n_trials=1)
    fail_and_queue_retry(study, f"sqlite:///{tmp_path / 'study.db'}", 1)

    study.optimize(make_objective(spec, study_name="ckpt"), n_trials=1)

    retry = study.trials[2]
    assert retry.state is TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] == 2, retry.user_attrs.get("resume_skipped")
    assert load_checkpoint(tmp_path / "runs" / retry.user_attrs["checkpoint_dir"])["epoch"] == 3


class _KilledWhileRemoving(BaseException):
    """The process dying between the two files of an old checkpoint being removed."""


@pytest.mark.parametrize("step", ["prune", "remove_all"])
def test_a_removal_cut_between_a_checkpoint_and_its_checksum_is_finished_by_the_next_one(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Killed after the first of an old checkpoint's two files went: the next rotation (or
    removal) finds what is left and removes it, instead of a checksum file without its
    checkpoint staying for good (here and, pushed, in the object store)."""
    manager = CheckpointManager(run_dir, keep=3)
    unlink = Path.unlink
    calls = []

    def die_at_the_second(self: Path, missing_ok: bool = False) -> None:
        if self.name.startswith("epoch_0001"):
            calls.append(self)
        if len(calls) == 2:
            raise _KilledWhileRemoving
        unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "unlink", die_at_the_second)
        with pytest.raises(_KilledWhileRemoving):
            if step == "prune":
                manager.save({"epoch": 4, "weights": [4.0]}, epoch=4)
            else:
                manager.remove_all()
    if step == "prune":
        manager.save({"epoch": 5, "weights": [5.0]}, epoch=5)
        left = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("epoch_0001"))
    else:
        manager.remove_all()
        left = sorted(p.name for p in run_dir.iterdir())
    assert left == []
