"""``reid-hpo study ...``: create, list, inspect, export and delete studies.

The product modules (storage, spec, study) are imported inside each command, so that
``reid-hpo --help`` answers without loading Optuna or SQLAlchemy.

Other modules add commands to :data:`study_app` (``study run`` in ``hpo.cli.worker``,
``study report`` in ``hpo.cli.report``) with ``@study_app.command("run")``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Annotated
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hpo.cli._app import HELP_SETTINGS
from hpo.cli._app import app

if TYPE_CHECKING:
    from hpo.study import BestTrial
    from hpo.study import StudyStatus

study_app = typer.Typer(
    **HELP_SETTINGS,
    name="study",
    help=(
        "Create, inspect, export and delete studies. "
        "Storage: --storage URL, else $REID_HPO_STORAGE, else sqlite:///reid_hpo.db; "
        "passwords are always printed masked."
    ),
    epilog=(
        "Examples:\n\n\b\n"
        "  reid-hpo study create studies/mars_map_random.yaml\n"
        "  reid-hpo study status mars-map-random\n"
        "  reid-hpo study best mars-map-random --format json"
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
SpecArgument = Annotated[Path, typer.Argument(metavar="SPEC", help="Study spec YAML file.")]


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


def _pct(fraction: float | None) -> str:
    """A metric stored as a fraction in [0, 1], printed in % as torchreid does."""
    from hpo.study.records import format_pct

    return format_pct(fraction)


def _pct_metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {_pct(v)}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    )


def _params_text(params: dict[str, Any]) -> str:
    from hpo.study.records import format_number

    return ", ".join(f"{k}={format_number(v)}" for k, v in params.items())


@study_app.command("create")
def create_cmd(
    spec_file: SpecArgument,
    storage: StorageOption = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Reuse an existing study of the same name and spec."),
    ] = False,
) -> None:
    """Validate SPEC and create its study (refuses an existing name unless --resume).

    When this machine sees the dataset, the spec is also checked against it (guided ids,
    the validation carve-out) before anything is written.

    Example: reid-hpo study create studies/mars_map_random.yaml
    """
    from hpo.spec import load_spec
    from hpo.storage import close_storage
    from hpo.storage import mask_url
    from hpo.storage import open_storage
    from hpo.storage import resolve_storage_url
    from hpo.study import check_spec_fits_its_dataset
    from hpo.study import create_study

    spec = load_spec(spec_file)
    check_spec_fits_its_dataset(spec)
    opened = open_storage(resolve_storage_url(storage))
    try:
        existed = spec.name in {s.study_name for s in opened.get_all_studies()}
        study = create_study(spec, opened, resume=resume)
        n_trials = len(study.trials)
        queued = 0 if existed else n_trials
    finally:
        close_storage(opened)
    verb = "Resumed" if existed else "Created"
    typer.echo(f"{verb} study {spec.name!r} in {mask_url(opened.url)} ({n_trials} trials so far).")
    if queued:
        typer.echo(f"Queued {queued} warm-start trial(s) first (warm_start in the spec).")
    typer.echo(f"Next: reid-hpo worker {spec.name} --gpus all   (on every GPU machine)")


def printable(name: str) -> str:
    """``name`` safe for a terminal: control characters (escape sequences, newlines) written
    as Python escapes (``\\x1b``, ``\\n``); letters of any script kept."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


@study_app.command("list")
def list_cmd(
    storage: StorageOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.table,
) -> None:
    """List the studies in the storage with trial counts and best values (validation, in %).

    Example: reid-hpo study list --storage sqlite:///reid_hpo.db --format json
    """
    from hpo.storage import mask_url
    from hpo.storage import resolve_storage_url
    from hpo.study import list_studies

    url = resolve_storage_url(storage)
    infos = list_studies(url)
    if output is OutputFormat.json:
        typer.echo(json.dumps([asdict(info) for info in infos], indent=2))
        return
    console = _console()
    if not infos:
        console.print(f"No studies in {mask_url(url)}.")
        return
    table = Table(
        title=f"Studies in {mask_url(url)}",
        caption="C/P/F/R: complete, pruned, failed, running trials",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    # The name is what a user copies: it never wraps; the objective gives way first.
    names = [printable(info.name) for info in infos]
    table.add_column("name", no_wrap=True, min_width=max(len(name) for name in names))
    table.add_column("objective", overflow="fold")
    for header in ("trials", "C/P/F/R", "best", "#"):
        table.add_column(header, justify="right", no_wrap=True)
    for info, name in zip(infos, names, strict=True):
        arrow = {"maximize": "max", "minimize": "min"}.get(info.direction, info.direction)
        states = (info.states[s] for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))
        table.add_row(
            Text(name),
            f"{info.metric or '?'} ({arrow})",
            str(info.n_trials),
            "/".join(str(n) for n in states),
            _pct(info.best_value),
            "-" if info.best_trial is None else str(info.best_trial),
        )
    console.print(table)


def _status_view(status: StudyStatus) -> Group:
    """The status as one renderable: summary lines, then the running trials."""
    from hpo.study.records import METRIC_NAMES

    metric = METRIC_NAMES.get(status.metric or "", status.metric or "?")
    lines = [
        f"Study {status.name!r} in {status.storage}",
        f"objective: {metric} ({status.direction})",  # the name the dashboard shows
    ]
    counts = ", ".join(f"{state.lower()} {n}" for state, n in status.states.items() if n)
    lines.append(f"trials: {counts or 'none yet'}")
    for rung in status.rungs:
        counts = ", ".join(f"{state.lower()} {n}" for state, n in rung.states.items() if n)
        lines.append(f"rung {rung.rung} ({rung.epochs} epochs): {counts or 'none yet'}")
    budget = []
    if status.epochs_budget:
        budget.append(f"{status.epochs_finished}/{status.epochs_budget} epochs")
    elif status.n_trials_budget:
        budget.append(f"{status.n_finished}/{status.n_trials_budget} finished trials")
    if status.timeout_hours:
        budget.append(f"{_fmt(status.elapsed_hours, 2)}/{status.timeout_hours} h")
    if status.budget_used is not None:
        budget.append(f"{status.budget_used:.0%} used")
    lines.append(f"budget: {', '.join(budget) or '-'}")
    if status.best is not None:
        lines.append(
            f"best: trial {status.best.number} {status.metric or 'value'} "
            f"{_pct(status.best.value)}  {_params_text(status.best.params)}"
        )
    if status.compute is not None:
        lines += status.compute.lines()
    lines += [
        f"trial {number} resume skipped (trained from epoch 1): {why}"
        for number, why in status.resume_skipped.items()
    ]
    if (retrain := status.retrain) is not None:
        renewed = (
            "lease with no renewal time"
            if retrain.renewed_s_ago is None
            else f"lease renewed {retrain.renewed_s_ago:.0f} s ago"
        )
        stale = "; stale: the next `study retrain` takes it over" if retrain.stale else ""
        lines.append(f"retrain: trial {retrain.trial} by {retrain.holder}, {renewed}{stale}")
    return Group(*(Text(line) for line in lines), _running_table(status))


def _running_table(status: StudyStatus) -> Table | Text:
    """Running trials: epoch e/E (1-based), last validation mAP, heartbeat age, ETA."""
    if not status.running:
        return Text("running: none")
    table = Table(title="Running trials", box=box.SIMPLE_HEAD)
    for header in ("trial", "worker", "epoch", "val mAP", "heartbeat age", "elapsed", "ETA"):
        table.add_column(header, overflow="fold")
    for run in status.running:
        age = "no heartbeat" if run.heartbeat_age_s is None else f"{run.heartbeat_age_s:.0f} s"
        epoch = "-" if run.epoch is None else f"{run.epoch}/{run.epochs or '?'}"
        table.add_row(
            f"#{run.number}" + ("" if run.rung is None else f" rung {run.rung}"),
            run.worker or "-",
            epoch,
            "-" if run.val_map_pct is None else f"{run.val_map_pct:.1f}%",
            age,
            _duration(run.elapsed_s),
            _duration(run.eta_s),
        )
    return table


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else str(dt.timedelta(seconds=round(seconds)))


@study_app.command("status")
def status_cmd(
    name: NameArgument,
    storage: StorageOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.table,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Refresh every --interval seconds until Ctrl-C (table only)."),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")
    ] = 5.0,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, help="With --watch: stop after this many refreshes."),
    ] = None,
) -> None:
    """Trial counts by state, best trial, and the running trials with epoch e/E, last
    validation mAP, heartbeat age and ETA.

    Examples:

    \b
      reid-hpo study status mars-map-random
      reid-hpo study status mars-map-random --watch --interval 10
    """
    from hpo.storage import resolve_storage_url
    from hpo.study import study_status

    url = resolve_storage_url(storage)
    if watch:
        if output is OutputFormat.json:
            raise typer.BadParameter("--watch shows a table; drop --format json")
        _watch(lambda: study_status(name, url), interval, count)
        return
    status = study_status(name, url)
    if output is OutputFormat.json:
        typer.echo(json.dumps(status.to_dict(), indent=2, default=str))
    else:
        _console().print(_status_view(status))


def _watch(read: Callable[[], StudyStatus], interval: float, count: int | None) -> None:
    """Redraw the status in place on a terminal; print one status per refresh otherwise."""
    from rich.live import Live

    console = _console()
    refreshes = 0

    def render() -> Group:
        stamp = f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}, every {interval:g} s (Ctrl-C to stop)"
        return Group(_status_view(read()), Text(stamp, style="dim"))

    try:
        if not console.is_terminal:
            while True:
                console.print(render())
                refreshes += 1
                if count is not None and refreshes >= count:
                    return
                time.sleep(interval)
        with Live(render(), console=console, auto_refresh=False) as live:
            refreshes = 1
            while count is None or refreshes < count:
                time.sleep(interval)
                live.update(render(), refresh=True)
                refreshes += 1
    except KeyboardInterrupt:
        return


def _print_best(best: BestTrial) -> None:
    from hpo.study.records import format_number

    console = _console()
    console.print(
        f"Best trial of {best.study!r}: #{best.number}, validation {best.metric or 'value'} "
        f"{_pct(best.value)} ({best.direction})"
    )
    table = Table(title="Parameters")
    table.add_column("name")
    table.add_column("value")
    for key, value in best.params.items():
        table.add_row(key, format_number(value))
    console.print(table)
    if best.val_metrics:
        console.print("validation: " + _pct_metrics(best.val_metrics))
    if best.folder:
        console.print(f"trial folder: {best.folder}")
        console.print(f"rerun it: reid-hpo train --config {Path(best.folder) / 'config.json'}")
    test = best.test_result
    if test:
        metrics = test.get("metrics") or {}
        console.print(f"test set (trial {test.get('trial')}): {_pct_metrics(metrics)}")
    else:
        console.print("test set: not evaluated yet")
    retrained = best.retrain_result
    if retrained:
        console.print(
            f"retrained (trial {retrained.get('trial')}, {retrained.get('train_ids')} ids, "
            f"{retrained.get('epochs')} epochs), test set: "
            f"{_pct_metrics(retrained.get('metrics') or {})}"
        )
    else:
        console.print("retrained on all training ids: not yet ('study retrain')")
    if best.trial_compute is not None:
        console.print(f"trial {best.number} spent {best.trial_compute.describe()}")
    if best.compute is not None:
        console.print("study " + "\n".join(best.compute.lines()))


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


@study_app.command("tensorboard")
def tensorboard_cmd(name: NameArgument, storage: StorageOption = None) -> None:
    """Print the TensorBoard command whose runs are named <study>/trial_<n> (Optuna's trial
    numbers), not by the uuid folders the trials write in."""
    from hpo.storage import resolve_storage_url
    from hpo.study import logdir_spec
    from hpo.study import tensorboard_runs

    runs = tensorboard_runs(name, resolve_storage_url(storage))
    if not runs:
        typer.echo(f"study {name!r} has no TensorBoard event files yet")
        return
    typer.echo(f"tensorboard --logdir_spec '{logdir_spec(runs)}'")


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
    keep_artifacts: Annotated[
        bool,
        typer.Option("--keep-artifacts", help="Leave the study's checkpoint folder on disk."),
    ] = False,
) -> None:
    """Delete a study, all its trials and its artifact folder (checkpoints, logs).

    The folder is named by the study's uuid, so no other study's files are touched; one this
    machine does not see is reported, not removed.

    Example: reid-hpo study delete old-study --yes
    """
    from hpo.storage import mask_url
    from hpo.storage import resolve_storage_url
    from hpo.study import delete_study

    url = resolve_storage_url(storage)
    if not yes:
        what = "all its trials" if keep_artifacts else "all its trials and checkpoints"
        typer.confirm(f"Delete study {name!r} and {what} from {mask_url(url)}?", abort=True)
    deleted = delete_study(name, url, keep_artifacts=keep_artifacts)
    typer.echo(f"Deleted study {name!r} ({deleted.n_trials} trials) from {mask_url(url)}.")
    if deleted.artifacts is None:
        return
    if deleted.artifacts_removed:
        typer.echo(f"Removed its artifacts: {deleted.artifacts}")
    elif keep_artifacts:
        typer.echo(f"Its artifacts are kept in {deleted.artifacts}")
    elif deleted.artifacts_error is not None:
        typer.echo(
            f"Could not remove all of {deleted.artifacts} ({deleted.artifacts_error}); remove "
            "it once the study's workers have stopped."
        )
    else:
        typer.echo(f"Its artifacts are not on this machine; remove {deleted.artifacts} there.")


@study_app.command("rekey")
def rekey_cmd(
    name: NameArgument,
    storage: StorageOption = None,
    adopt_artifacts: Annotated[
        bool,
        typer.Option(
            "--adopt-artifacts",
            help="Keep the uuid and claim its folder for this storage (the database moved and "
            "the original is gone).",
        ),
    ] = False,
) -> None:
    """Give a copied study its own artifact folder (a fresh uuid; the old folder's checkpoints
    stay the original's and are not reused), or adopt the folder with --adopt-artifacts.
    Run it while none of the study's workers run.
    """
    from hpo.storage import resolve_storage_url
    from hpo.study import rekey_study

    done = rekey_study(name, resolve_storage_url(storage), adopt=adopt_artifacts)
    if adopt_artifacts:
        typer.echo(f"Study {name!r} in this storage now owns {done.folder}.")
    else:
        typer.echo(
            f"Study {name!r} now writes {done.folder}; {done.old_folder} stays the original's "
            "(its checkpoints are not reused here)."
        )


__all__ = ["study_app"]
