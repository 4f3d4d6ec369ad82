"""``reid-hpo study plan``: the preflight and the cost of a study, before any GPU-hour."""

from __future__ import annotations

import json
import textwrap
from typing import Annotated

import typer

from hpo.cli.study import OutputFormat
from hpo.cli.study import SpecArgument
from hpo.cli.study import StorageOption
from hpo.cli.study import study_app

_LABELS = (
    ("all_train_ids", "training ids in the dataset"),
    ("train_ids", "training ids after the validation carve-out"),
    ("train_tracklets", "training tracklets"),
    ("val_ids", "validation ids"),
    ("val_query", "validation query tracklets"),
    ("val_gallery", "validation gallery tracklets (with distractors)"),
    ("epoch_sampling", "epoch definition"),
    ("iterations_per_epoch", "iterations per epoch"),
    ("epochs", "epochs per trial"),
    ("evaluations", "evaluations per trial"),
    ("first_prune_epoch", "first epoch the pruner may compare"),
    ("rung_epochs", "fidelity rungs (epochs of each compressed schedule)"),
    ("n_trials", "trial budget"),
    ("timeout_hours", "time budget"),
    ("max_epochs_total", "most epochs the study can spend"),
    ("checkpoint_mb", "checkpoint size"),
    ("disk_mb", "checkpoint disk use, 2 kept per trial"),
    ("device", "measured on"),
    ("step_seconds", "seconds per training step"),
    ("eval_seconds", "seconds per validation evaluation"),
    ("trial_hours", "time per trial"),
    ("study_hours", "time per study, no pruning"),
    ("study_hours_pruned", "time per study, all pruned at once after the startup"),
    ("reference_hours", "the reference's search (60 full trials, no pruning)"),
)


@study_app.command("plan")
def plan_cmd(
    spec_file: SpecArgument,
    storage: StorageOption = None,
    measure: Annotated[
        int,
        typer.Option("--measure", min=0, help="Time N training steps and one evaluation here."),
    ] = 0,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
    root: Annotated[
        str | None, typer.Option("--root", help="Dataset root instead of the spec's.")
    ] = None,
    sample_frames: Annotated[
        int, typer.Option("--sample-frames", min=0, help="Frames to decode (0 skips).")
    ] = 16,
) -> None:
    """Check everything a worker needs and print the study's plan and cost.

    Checks the spec, the dataset index and SAMPLE-FRAMES decoded frames, the ImageNet weights
    when pretrained, the storage and the artifacts root; each failure is one line, exit 2.

    Example: reid-hpo study plan studies/mars_map_random.yaml --measure 20 --format json
    """
    from hpo.spec import load_spec
    from hpo.storage import close_storage
    from hpo.storage import open_storage
    from hpo.storage import resolve_storage_url
    from hpo.study import build_plan
    from hpo.study import check_spec_can_run
    from hpo.study import measure_costs

    spec = load_spec(spec_file)
    if root is not None:
        dataset_spec = spec.dataset.model_copy(update={"root": root})
        spec = spec.model_copy(update={"dataset": dataset_spec})
    dataset = check_spec_can_run(spec, sample_frames=sample_frames)
    close_storage(open_storage(resolve_storage_url(storage)))
    plan = build_plan(spec, dataset)
    if measure:
        plan = measure_costs(spec, plan, measure)
    fields = plan.to_dict()
    if output is OutputFormat.json:
        typer.echo(json.dumps(fields, indent=2))
        return
    typer.echo(f"Plan of study {spec.name!r} ({spec.dataset.name} at {plan.root}): checks passed.")
    for key, label in _LABELS:
        if fields.get(key) is not None:
            typer.echo(f"  {label:<54} {_shown(key, fields[key])}")
    for note in plan.notes:
        typer.echo(textwrap.fill(note, 80, initial_indent="  note: ", subsequent_indent="    "))
    if not measure:
        typer.echo("Add --measure 20 to time 20 training steps here and estimate the hours.")


def _shown(key: str, value: object) -> str:
    """A plan figure for a person: sizes in MB or GB, durations in h:mm, epochs 1-based."""
    if key.endswith("_mb") and isinstance(value, int | float):
        return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:.0f} MB"
    if key.endswith("_hours") and isinstance(value, int | float):
        minutes = round(value * 60)
        return f"{minutes // 60}:{minutes % 60:02d} h"
    if key == "first_prune_epoch" and isinstance(value, int):
        return str(value + 1)
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)
