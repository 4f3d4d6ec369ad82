"""``fidelity:`` studies on SQLite: rung trials, promotions, the epoch budget, asynchronous
progress, the best trial only from the full schedule, spec errors, status and report."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import ClassVar

import optuna
import pytest
from optuna.trial import TrialState
from pydantic import ValidationError
from typer.testing import CliRunner

from hpo.cli import app
from hpo.errors import NoCompletedTrialError
from hpo.search import rung_plan
from hpo.spec import StudySpec
from hpo.study import best_trial_of
from hpo.study import create_study
from hpo.study import study_status
from hpo.study.records import best_trial
from hpo.study.records import rung_of
from hpo.worker import run_worker
from hpo.worker._rungs import enqueue_promotions
from reid_core.engine import Callback
from reid_core.engine import FitResult
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import FakeTrainer
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import trials_of
from tests.hpo._worker_support import write_spec


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


@pytest.fixture(autouse=True)
def _no_full_gc(monkeypatch: pytest.MonkeyPatch) -> None:
    # A full gc.collect() after each trial costs ~1 s with torch loaded on a busy machine;
    # freeing memory is not what these tests are about.
    monkeypatch.setattr("hpo.worker._objective.release_memory", lambda: None)


def _raw(tmp_path: Path, data_root: Path, **fidelity: Any) -> dict[str, Any]:
    raw = spec_dict(name="f", data_root=data_root, artifacts=tmp_path / "runs", n_trials=2)
    raw["training"].update(epochs=4, warmup_epochs=2, milestones=[2])
    raw["fidelity"] = {"kind": "sha", "eta": 2, "rungs": 2, **fidelity}
    return raw


def _create(tmp_path: Path, data_root: Path, url: str, **fidelity: Any) -> StudySpec:
    spec = StudySpec.model_validate(_raw(tmp_path, data_root, **fidelity))
    create_study(spec, url)
    return spec


class _Recording(FakeTrainer):
    """Records the schedule each trial trains (by the folder it trains in)."""

    schedules: ClassVar[dict[str, tuple[int, int, tuple[int, ...], int]]] = {}

    def fit(self, *, callbacks: Sequence[Callback], resume_from: Path | None) -> FitResult:
        c = self.cfg
        key = str(Path(c.output_dir).parent.name)
        self.schedules[key] = (
            c.epochs,
            c.optim.warmup_epochs,
            tuple(c.optim.milestones),
            c.eval_every,
        )
        return super().fit(callbacks=callbacks, resume_from=resume_from)


def test_the_best_rung_result_is_promoted_to_the_compressed_full_schedule_within_the_epoch_budget(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url)
    _Recording.schedules = {}
    result = run_worker("f", sqlite_url, trainer_factory=_Recording)

    assert result.stop_reason == "budget"
    trials = trials_of("f", sqlite_url)
    rungs = [rung_of(t) for t in trials]
    assert all(t.state is TrialState.COMPLETE for t in trials)
    # Ladder (2, 4), eta 2: two bottom-rung configurations, then the better one promoted.
    first, second, promoted = trials
    better = max((first, second), key=lambda t: t.value)
    expected = [(0, 2, 0, False), (0, 2, 1, False), (1, 4, better.number, True)]
    assert [(r.rung, r.epochs, r.config, r.top) for r in rungs if r] == expected
    assert promoted.params == better.params
    assert promoted.user_attrs["seed"] == better.user_attrs["seed"]
    # The rung trained the recipe compressed (warm-up 2 -> 1, milestone 2 -> 1), the promoted
    # trial the full schedule, from scratch in its own folder.
    assert _Recording.schedules == {
        "trial_0": (2, 1, (1,), 1),
        "trial_1": (2, 1, (1,), 1),
        "trial_2": (4, 2, (2,), 1),
    }
    assert [t.user_attrs["epochs_done"] for t in trials] == [2, 2, 4]
    assert "resumed_from_epoch" not in promoted.user_attrs
    # Budget: 2 full-schedule trials = 8 epochs, spent exactly; status and report show rungs.
    status = study_status("f", sqlite_url)
    assert (status.epochs_finished, status.epochs_budget) == (8, 8)
    assert status.compute is not None and status.compute.unpruned_epochs == 8
    _shows_the_rungs(tmp_path, sqlite_url)
    assert [(r.rung, r.epochs, r.states["COMPLETE"]) for r in status.rungs] == [
        (0, 2, 2),
        (1, 4, 1),
    ]
    # The best is the full-schedule trial though rung trials tie it (ties go to the earlier).
    assert best_trial_of("f", sqlite_url).number == promoted.number
    # Promotions are decided once: nothing more is due.
    study = optuna.load_study(study_name="f", storage=sqlite_url)
    spec = StudySpec.model_validate(_raw(tmp_path, data_root))
    assert enqueue_promotions(study, rung_plan(spec), budget=None, direction="maximize") == []  # type: ignore[arg-type]


def _shows_the_rungs(tmp_path: Path, sqlite_url: str) -> None:
    runner = CliRunner()
    status = runner.invoke(app, ["study", "status", "f", "--storage", sqlite_url])
    assert status.exit_code == 0, status.output
    assert "rung 0 (2 epochs): complete 2" in status.output
    assert "rung 1 (4 epochs): complete 1" in status.output
    assert "8/8 epochs" in status.output
    out = tmp_path / "r.html"
    report = runner.invoke(
        app, ["study", "report", "f", "--storage", sqlite_url, "--out", str(out)]
    )
    assert report.exit_code == 0, report.output
    html = out.read_text()
    assert "rung 0 (2 epochs)</th><td>COMPLETE 2" in html
    assert html.count("<td>1 (4 epochs)</td>") == 1


class _Blocking(FakeTrainer):
    """Trial 0 trains until released."""

    release = threading.Event()

    def fit(self, *, callbacks: Sequence[Callback], resume_from: Path | None) -> FitResult:
        if Path(self.cfg.output_dir).name == "run_0":
            assert self.release.wait(scaled(60))
        return super().fit(callbacks=callbacks, resume_from=resume_from)


def test_a_worker_never_waits_for_a_rung_to_fill(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, eta=3, rungs=2, min_epochs=None)
    _Blocking.release.clear()
    first = threading.Thread(
        target=run_worker,
        args=("f", sqlite_url),
        kwargs={"max_trials": 1, "trainer_factory": _Blocking},
    )
    first.start()
    try:
        wait_until(lambda: bool(trials_of("f", sqlite_url)), 60, "trial 0 to start")
        # Rung 0 holds one running configuration of the three it needs for a promotion: a
        # second worker starts new configurations at once instead of waiting.
        second = run_worker("f", sqlite_url, max_trials=2, trainer_factory=FakeTrainer)
        trials = trials_of("f", sqlite_url)
        assert second.stop_reason == "max_trials" and second.complete == 2
        assert trials[0].state is TrialState.RUNNING
        assert [rung_of(t).rung for t in trials] == [0, 0, 0]  # type: ignore[union-attr]
        assert [rung_of(t).config for t in trials] == [0, 1, 2]  # type: ignore[union-attr]
        with pytest.raises(NoCompletedTrialError, match="no completed full-schedule"):
            best_trial_of("f", sqlite_url)
    finally:
        _Blocking.release.set()
        first.join(60)


def _frozen(number: int, value: float, rung: int | None) -> optuna.trial.FrozenTrial:
    attrs = (
        {}
        if rung is None
        else {
            "fidelity": {
                "config": number,
                "bracket": 0,
                "rung": rung,
                "epochs": 2 + 2 * rung,
                "top": rung == 1,
            }
        }
    )
    trial = optuna.trial.create_trial(value=value, user_attrs=attrs)
    trial.number = number
    return trial


def test_the_best_trial_comes_only_from_the_top_rung() -> None:
    trials = [_frozen(0, 0.9, 0), _frozen(1, 0.5, 1), _frozen(2, 0.7, 1)]
    assert best_trial(trials, "maximize").number == 2  # type: ignore[union-attr]
    assert best_trial(trials[:1], "maximize") is None
    assert best_trial([_frozen(3, 0.9, None), _frozen(4, 0.1, None)], "maximize").number == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"pruner": {"name": "median"}}, "pruner: 'median' cannot run with fidelity.kind 'sha'"),
        (
            {"fidelity": {"kind": "sha", "rungs": 2, "min_epochs": 1}},
            "rungs or min_epochs, not both",
        ),
        ({"fidelity": {"kind": "sha", "eta": 1}}, "fidelity.eta"),
        ({"fidelity": {"kind": "sha", "min_epochs": 5}}, "fidelity.min_epochs: 5 is more than"),
        ({"fidelity": {"kind": "asha"}}, "fidelity.kind"),
    ],
)
def test_spec_refuses_bad_fidelity(
    change: dict[str, Any], expected: str, tmp_path: Path, data_root: Path
) -> None:
    raw = {**_raw(tmp_path, data_root), **change}
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(")):
        StudySpec.model_validate(raw)


def test_a_ladder_that_does_not_fit_is_one_error_line_at_create(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec_file = write_spec(tmp_path / "f.yaml", _raw(tmp_path, data_root, eta=3, rungs=3))
    result = CliRunner().invoke(app, ["study", "create", str(spec_file), "--storage", sqlite_url])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == ["Error: fidelity: 3 rungs with eta=3 do not fit 4 epochs (rungs [0, 1, 4])"]


def test_study_plan_shows_the_rungs(tmp_path: Path, data_root: Path, sqlite_url: str) -> None:
    spec_file = write_spec(tmp_path / "f.yaml", _raw(tmp_path, data_root))
    args = ["study", "plan", str(spec_file), "--storage", sqlite_url, "--sample-frames", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "fidelity rungs (epochs of each compressed schedule) 2, 4" in lines
    assert "most epochs the study can spend 8" in lines
