"""`reid-hpo study plan`: the preflight and the plan, on shipped specs at MARS size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from reid_core.data import write_mars_metadata
from reid_core.data import write_synthetic
from tests._helpers.specs import tiny_spec_dict
from tests._helpers.specs import write_spec

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def _plan(*args: str) -> Result:
    return CliRunner().invoke(app, ["study", "plan", *args])


def _user_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def mars_meta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mars_metadata(tmp_path_factory.mktemp("mars") / "mars")


@pytest.fixture()
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding a (placeholder) resnet50 weights file; cwd is a scratch folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    path.parent.mkdir(parents=True)
    path.touch()
    return path


def _json_plan(spec: Path, root: Path, tmp_path: Path) -> dict:
    result = _plan(str(spec), "--root", str(root), "--sample-frames", "0", "--format", "json",
                   "--storage", f"sqlite:///{tmp_path / 's.db'}")  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{") :])


@pytest.mark.parametrize("filename", ["mars_map_random.yaml", "mars_rerank_map_random.yaml"])
def test_shipped_random_spec_on_mars_size_metadata(
    filename: str, mars_meta: Path, weights: Path, tmp_path: Path
) -> None:
    plan = _json_plan(STUDIES / filename, mars_meta, tmp_path)
    assert (plan["all_train_ids"], plan["train_ids"], plan["val_ids"]) == (625, 563, 62)
    assert plan["iterations_per_epoch"] == 70  # 78 with all 625 ids (test_real_size.py)
    assert (plan["epochs"], plan["evaluations"]) == (121, 13)
    assert plan["first_prune_epoch"] == 79 and plan["first_prune_epoch"] >= 40
    assert (plan["n_trials"], plan["max_epochs_total"]) == (60, 60 * 121)
    assert plan["train_tracklets"] + plan["val_query"] <= 8_298 and plan["val_gallery"] > 0


def test_shipped_guided_spec_holds_out_the_papers_32_ids(
    mars_meta: Path, weights: Path, tmp_path: Path
) -> None:
    plan = _json_plan(STUDIES / "mars_map_guided.yaml", mars_meta, tmp_path)
    assert (plan["train_ids"], plan["val_ids"], plan["iterations_per_epoch"]) == (593, 32, 74)


def test_prid_without_its_split_file_is_noted_in_the_plan(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "prid", "prid", ids=16, frames=21, height=16, width=8)
    spec = write_spec(tmp_path / "s.yaml", dataset={"name": "prid", "root": str(root)})
    result = _plan(str(spec), "--sample-frames", "0", "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.strip().startswith("note:")]
    assert len(notes) == 1 and "no splits_prid2011.json" in notes[0], result.output


def test_missing_weights_are_refused_naming_the_file(
    mars_meta: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    monkeypatch.chdir(tmp_path)
    line = _user_error(
        _plan(
            str(STUDIES / "mars_map_random.yaml"), "--root", str(mars_meta), "--sample-frames", "0"
        )
    )
    assert "resnet50-0676ba61.pth" in line and "pretrained: false" in line


def test_missing_dataset_root_is_one_line(weights: Path, tmp_path: Path) -> None:
    line = _user_error(
        _plan(str(STUDIES / "mars_map_random.yaml"), "--root", str(tmp_path / "nowhere"))
    )
    assert "nowhere" in line


def test_sampled_frames_are_decoded(mars_meta: Path, weights: Path) -> None:
    # The metadata-only copy has no image: decoding a sample names the first missing frame.
    line = _user_error(_plan(str(STUDIES / "mars_map_random.yaml"), "--root", str(mars_meta)))
    assert "missing frame" in line and str(mars_meta) in line


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("tiny") / "mars", "mars", ids=16, frames=8)


def test_unwritable_artifacts_root_is_one_line(tiny_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spec = write_spec(
        tmp_path / "s.yaml",
        dataset={"name": "mars", "root": str(tiny_root)},
        artifacts={"root": str(blocker / "runs")},
    )
    assert "artifacts.root" in _user_error(_plan(str(spec)))


def test_unreachable_storage_is_one_line(tiny_root: Path, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "s.yaml",
        dataset={"name": "mars", "root": str(tiny_root)},
        artifacts={"root": str(tmp_path / "runs")},
    )
    _user_error(_plan(str(spec), "--storage", "postgresql://nobody@127.0.0.1:1/none"))


@pytest.mark.parametrize("preset", [{}, {"preset": "bbot_attn_cl"}])  # + the attention loss
def test_measure_times_steps_and_an_evaluation(
    preset: dict, tiny_root: Path, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path / "s.yaml",
        dataset={"name": "mars", "root": str(tiny_root)},
        artifacts={"root": str(tmp_path / "runs")},
        **preset,
    )
    result = _plan(str(spec), "--measure", "2", "--format", "json",
                   "--storage", f"sqlite:///{tmp_path / 's.db'}")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output[result.output.index("{") :])
    assert plan["step_seconds"] > 0 and plan["eval_seconds"] > 0
    expected = (
        plan["step_seconds"] * plan["iterations_per_epoch"] * plan["epochs"]
        + plan["eval_seconds"] * plan["evaluations"]
    ) / 3600
    assert plan["trial_hours"] == pytest.approx(expected, rel=0.05, abs=1e-3)
    assert plan["study_hours"] == pytest.approx(plan["trial_hours"] * 4, rel=0.05, abs=1e-3)
    # trial_hours is printed to 4 decimals: x60 scales its rounding (5e-5 h) to 3e-3 h.
    assert plan["reference_hours"] == pytest.approx(plan["trial_hours"] * 60, rel=0.05, abs=4e-3)


def test_the_plan_logs_its_validation_carve_out_once(
    tiny_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = write_spec(
        tmp_path / "s.yaml",
        dataset={"name": "mars", "root": str(tiny_root)},
        artifacts={"root": str(tmp_path / "runs")},
    )
    with caplog.at_level(logging.INFO):
        result = _plan(str(spec), "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert result.exit_code == 0, result.output
    assert sum("validation carve-out" in m for m in caplog.messages) == 1, caplog.messages


def test_the_plan_table_reads_in_gb_and_1_based_epochs_and_suggests_measure(
    mars_meta: Path, weights: Path, tmp_path: Path
) -> None:
    spec = STUDIES / "mars_map_random.yaml"
    plan = _json_plan(spec, mars_meta, tmp_path)
    result = _plan(str(spec), "--root", str(mars_meta), "--sample-frames", "0",
                   "--storage", f"sqlite:///{tmp_path / 's.db'}")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    disk = next(line for line in lines if "disk use" in line)
    assert disk.endswith(f"{plan['disk_mb'] / 1024:.1f} GB") and "MB" not in disk
    first = next(line for line in lines if "first epoch the pruner" in line)
    assert first.split()[-1] == str(plan["first_prune_epoch"] + 1)
    assert "--measure" in lines[-1]
    rows = [line for line in lines if line.startswith("  ")]
    assert all(len(row) <= 80 for row in rows), [row for row in rows if len(row) > 80]


def _readme_plan_examples() -> list[list[str]]:
    text = (STUDIES.parent / "README.md").read_text()
    lines = [ln.split("#")[0].split() for ln in text.splitlines()]
    return [ln[1:] for ln in lines if ln[:3] == ["reid-hpo", "study", "plan"]]


def test_readme_study_plan_examples_run(tmp_path: Path, weights: Path) -> None:
    examples = _readme_plan_examples()
    assert len(examples) == 2
    write_synthetic(tmp_path / "data" / "mars", "mars", ids=40, frames=8)
    write_synthetic(tmp_path / "demo_out" / "data" / "mars", "mars", ids=24, frames=8)
    for args in examples:
        args = [str(STUDIES / Path(a).name) if a.startswith("studies/") else a for a in args]
        result = CliRunner().invoke(app, [*args, "--storage", f"sqlite:///{tmp_path / 's.db'}"])
        assert result.exit_code == 0, (args, result.output)
        assert "iterations per epoch" in result.output or '"iterations_per_epoch"' in result.output


def test_measure_runs_the_trainers_own_step_with_the_studys_precision_and_layout(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reid_core.engine as engine

    built: list[engine.StepParts] = []
    steps: list[int] = []
    build, step = engine.build_step_parts, engine.optimisation_step
    monkeypatch.setattr(engine, "build_step_parts", lambda *a: built.append(build(*a)) or built[-1])
    monkeypatch.setattr(engine, "optimisation_step", lambda *a: steps.append(1) or step(*a))
    training = {**tiny_spec_dict()["training"], "amp": "bf16", "channels_last": True}
    spec = write_spec(
        tmp_path / "s.yaml",
        dataset={"name": "mars", "root": str(tiny_root)},
        artifacts={"root": str(tmp_path / "runs")},
        training=training,
    )
    result = _plan(str(spec), "--measure", "2", "--format", "json",
                   "--storage", f"sqlite:///{tmp_path / 's.db'}")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output[result.output.index("{") :])
    assert plan["precision"] == "bf16" and len(steps) == 3  # warm-up + 2 timed
    conv = next(m for m in built[0].model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
