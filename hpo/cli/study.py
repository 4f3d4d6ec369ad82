"""``reid-hpo study ...``: create, list, inspect, export and delete studies.

The product modules (storage, spec, study) are imported inside each command, so that
``reid-hpo --help`` answers without loading Optuna or SQLAlchemy.

Other modules add commands to :data:`study_app` (``study run`` in ``hpo.cli.worker``,
``study report`` in ``hpo.cli.report``) with ``@study_app.command("run")``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Annotated
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from hpo.cli._app import app

if TYPE_CHECKING:
    from hpo.study import BestTrial
    from hpo.study import StudyStatus

study_app = typer.Typer(
    name="study",
    help=(
        "Create, inspect, export and delete studies. "
        "Storage: --storage URL, else $REID_HPO_STORAGE, else sqlite:///reid_hpo.db; "
        "passwords are always printed masked."
    ),
    epilog=(
        "Examples: reid-hpo study create studies/mars_map_random.yaml  |  "
        "reid-hpo study status mars-map-random  |  "
        "reid-hpo study best mars-map-random --format json"
    ),
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Study storage URL (default: $REID_HPO_STORAGE, else sqlite:///reid_hpo.db).",
        show_default=False,
    ),
]
NameArgument = Annotated[str, typer.Argument(help="Study name (see 'reid-hpo study list').")]


class OutputFormat(StrEnum):
    """Output of ``status`` and ``best``."""

    table = "table"
    json = "json"


class ExportFormat(StrEnum):
    """Output of ``export``."""

    csv = "csv"
    json = "json"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


@study_app.command("create")
def create_cmd(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="Study spec YAML file.")],
    storage: StorageOption = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Reuse an existing study of the same name and spec."),
    ] = False,
) -> None:
    """Validate SPEC and create its study (refuses an existing name unless --resume).

    Example: reid-hpo study create studies/mars_map_random.yaml --storage
    postgresql://user:pw@dbhost/reid_hpo
    """
    from hpo.spec import load_spec
    from hpo.storage import close_storage
    from hpo.storage import mask_url
    from hpo.storage import open_storage
    from hpo.storage import resolve_storage_url
    from hpo.study import create_study

    spec = load_spec(spec_file)
    opened = open_storage(resolve_storage_url(storage))
    try:
        existed = spec.name in {s.study_name for s in opened.get_all_studies()}
        study = create_study(spec, opened, resume=resume)
        n_trials = len(study.trials)
    finally:
        close_storage(opened)
    verb = "Resumed" if existed else "Created"
    typer.echo(f"{verb} study {spec.name!r} in {mask_url(opened.url)} ({n_trials} trials so far).")
    typer.echo(f"Next: reid-hpo worker {spec.name} --gpus all   (on every GPU machine)")


@study_app.command("list")
def list_cmd(storage: StorageOption = None) -> None:
    """List the studies in the storage with trial counts and best values.

    Example: reid-hpo study list --storage sqlite:///reid_hpo.db
    """
    from hpo.storage import mask_url
    from hpo.storage import resolve_storage_url
    from hpo.study import list_studies

    url = resolve_storage_url(storage)
    infos = list_studies(url)
    console = _console()
    if not infos:
        console.print(f"No studies in {mask_url(url)}.")
        return
    table = Table(title=f"Studies in {mask_url(url)}", box=box.SIMPLE_HEAD)
    table.add_column("name", overflow="fold")
    table.add_column("objective", no_wrap=True)
    for header in ("trials", "done", "pruned", "failed", "running", "best", "#"):
        table.add_column(header, justify="right", no_wrap=True)
    for info in infos:
        arrow = {"maximize": "max", "minimize": "min"}.get(info.direction, info.direction)
        table.add_row(
            info.name,
            f"{info.metric or '?'} ({arrow})",
            str(info.n_trials),
            str(info.states["COMPLETE"]),
            str(info.states["PRUNED"]),
            str(info.states["FAIL"]),
            str(info.states["RUNNING"]),
            _fmt(info.best_value),
            "-" if info.best_trial is None else str(info.best_trial),
        )
    console.print(table)


def _print_status(status: StudyStatus) -> None:
    console = _console()
    console.print(f"Study {status.name!r} in {status.storage}")
    console.print(f"objective: {status.metric or '?'} ({status.direction})")
    counts = ", ".join(f"{state.lower()} {n}" for state, n in status.states.items() if n)
    console.print(f"trials: {counts or 'none yet'}")
    budget = []
    if status.n_trials_budget:
        budget.append(f"{status.n_finished}/{status.n_trials_budget} finished trials")
    if status.timeout_hours:
        budget.append(f"{_fmt(status.elapsed_hours, 2)}/{status.timeout_hours} h")
    if status.budget_used is not None:
        budget.append(f"{status.budget_used:.0%} used")
    console.print(f"budget: {', '.join(budget) or '-'}")
    if status.best is not None:
        console.print(
            f"best: trial #{status.best.number} value {_fmt(status.best.value)}  "
            f"{_params_text(status.best.params)}"
        )
    if status.running:
        table = Table(title="Running trials")
        for header in ("trial", "worker", "heartbeat age", "last epoch", "last value"):
            table.add_column(header, overflow="fold")
        for run in status.running:
            age = "no heartbeat" if run.heartbeat_age_s is None else f"{run.heartbeat_age_s:.0f} s"
            table.add_row(
                f"#{run.number}",
                run.worker or "-",
                age,
                "-" if run.last_step is None else str(run.last_step),
                _fmt(run.last_value),
            )
        console.print(table)


@study_app.command("status")
def status_cmd(
    name: NameArgument,
    storage: StorageOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.table,
) -> None:
    """Trial counts by state, best trial, running trials with worker and heartbeat age.

    Example: reid-hpo study status mars-map-random
    """
    from hpo.storage import resolve_storage_url
    from hpo.study import study_status

    status = study_status(name, resolve_storage_url(storage))
    if output is OutputFormat.json:
        typer.echo(json.dumps(status.to_dict(), indent=2, default=str))
    else:
        _print_status(status)


def _print_best(best: BestTrial) -> None:
    console = _console()
    console.print(
        f"Best trial of {best.study!r}: #{best.number}, validation {best.metric or 'value'} "
        f"{_fmt(best.value)} ({best.direction})"
    )
    table = Table(title="Parameters")
    table.add_column("name")
    table.add_column("value")
    for key, value in best.params.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)
    if best.val_metrics:
        console.print("validation: " + _params_text(best.val_metrics))
    if best.checkpoint_dir:
        console.print(f"checkpoints: {best.checkpoint_dir}")
    test = best.test_result
    if test:
        metrics = test.get("metrics") or {}
        console.print(f"test set (trial #{test.get('trial')}): {_params_text(metrics)}")
    else:
        console.print("test set: not evaluated yet")


@study_app.command("best")
def best_cmd(
    name: NameArgument,
    storage: StorageOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.table,
) -> None:
    """The best trial on validation, and its separately stored test-set result.

    Example: reid-hpo study best mars-map-random --format json
    """
    from hpo.storage import resolve_storage_url
    from hpo.study import best_trial_of

    best = best_trial_of(name, resolve_storage_url(storage))
    if output is OutputFormat.json:
        typer.echo(json.dumps(best.to_dict(), indent=2, default=str))
    else:
        _print_best(best)


@study_app.command("export")
def export_cmd(
    name: NameArgument,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or json.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    storage: StorageOption = None,
) -> None:
    """Export every trial (params, values, intermediate values, user attrs).

    Example: reid-hpo study export mars-map-random --format csv --out trials.csv
    """
    from hpo.storage import resolve_storage_url
    from hpo.study import export_trials

    text = export_trials(name, resolve_storage_url(storage), fmt.value, out)
    if out is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"Wrote {out}", err=True)


@study_app.command("delete")
def delete_cmd(
    name: NameArgument,
    storage: StorageOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a study and all its trials (checkpoint files are left on disk).

    Example: reid-hpo study delete old-study --yes
    """
    from hpo.storage import mask_url
    from hpo.storage import resolve_storage_url
    from hpo.study import delete_study

    url = resolve_storage_url(storage)
    if not yes:
        typer.confirm(f"Delete study {name!r} and all its trials from {mask_url(url)}?", abort=True)
    n_trials = delete_study(name, url)
    typer.echo(f"Deleted study {name!r} ({n_trials} trials) from {mask_url(url)}.")


__all__ = ["study_app"]
