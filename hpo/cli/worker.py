"""``reid-hpo worker NAME`` and ``reid-hpo study run SPEC|NAME``: run trials of a study.

The worker code (torch, the trainer) is imported inside the commands, not at CLI start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from hpo.cli._app import app
from hpo.cli.study import study_app

logger = logging.getLogger(__name__)

_GPUS_HELP = "GPUs to use, one worker process each: 'all', 'none' (one CPU worker) or '0,1'."
_STORAGE_HELP = "Study storage URL (default: $REID_HPO_STORAGE, else sqlite:///reid_hpo.db)."
_MAX_TRIALS_HELP = "Stop each worker process after this many trials (default: study budget)."
_DEVICE_HELP = (
    "'cpu': one CPU worker, also on a machine without a GPU (where --gpus all is an error); "
    "default: the GPUs of --gpus."
)


@app.command("worker")
def worker(
    name: str = typer.Argument(..., help="Name of the study to work on."),
    gpus: str = typer.Option("all", "--gpus", help=_GPUS_HELP),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    max_trials: int | None = typer.Option(None, "--max-trials", min=1, help=_MAX_TRIALS_HELP),
    child: bool = typer.Option(False, "--child", hidden=True),
    device: str | None = typer.Option(None, "--device", help=_DEVICE_HELP),
) -> None:
    """Run trials of study NAME until its budget is met: one process per GPU, restarted if
    it dies. Start as many workers as you like, on any machines sharing the storage.

    Ctrl-C or SIGTERM: stop after the epoch; a second one stops at once. Either way the trial
    is handed back (a later worker resumes it from its last checkpoint) and the command exits
    128 + the signal number (143 for SIGTERM, 130 for Ctrl-C), so that SLURM or Kubernetes
    starts the worker again; 0 means the study's budget is met.

    The storage comes from $REID_HPO_STORAGE (keep passwords off the command line: they show
    in `ps` and shell history; or leave the password out of the URL and use ~/.pgpass).

    Example: reid-hpo worker mars-map-random --gpus 0,1
    """
    from hpo.storage import resolve_storage_url
    from hpo.study import check_study_can_run
    from hpo.worker import DeviceRestartRequired
    from hpo.worker import parse_gpus
    from hpo.worker import run_supervisor
    from hpo.worker import run_worker

    url = resolve_storage_url(storage)
    if child:
        from reid_core.engine import gpus_hidden

        try:
            with gpus_hidden(device or "cpu"):
                result = run_worker(name, url, device=device or "cpu", max_trials=max_trials)
        except DeviceRestartRequired as exc:
            logger.error("%s", exc)  # the supervisor restarts this GPU's worker
            raise typer.Exit(code=exc.exit_code) from None
        typer.echo(
            f"worker done ({result.stop_reason}): {result.trials_run} trial(s), "
            f"{result.complete} complete, {result.pruned} pruned, {result.failed} failed"
        )
        raise typer.Exit(code=result.exit_code)
    if device != "cpu":
        parse_gpus(gpus)  # a bad --gpus is reported before the storage is touched
    check_study_can_run(name, url)
    raise typer.Exit(code=run_supervisor(name, url, gpus, max_trials=max_trials, device=device))


@study_app.command("run")
def run(
    target: str = typer.Argument(..., help="A study spec (.yaml) or the name of a study."),
    gpus: str = typer.Option("all", "--gpus", help=_GPUS_HELP),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    max_trials: int | None = typer.Option(None, "--max-trials", min=1, help=_MAX_TRIALS_HELP),
    device: str | None = typer.Option(None, "--device", help=_DEVICE_HELP),
) -> None:
    """Run a study: from a spec file (created if absent, resumed if it exists with the same
    spec) or by name; then work on it as `reid-hpo worker` does.

    TARGET ending in .yaml/.yml is a spec file. Otherwise an existing study of that name
    wins over a file of that name in the working directory; the file is read as a spec only
    when no such study exists.

    Example: reid-hpo study run studies/demo.yaml --gpus none
    """
    from hpo.spec import load_spec
    from hpo.storage import resolve_storage_url
    from hpo.study import check_spec_can_run
    from hpo.study import check_study_can_run
    from hpo.study import create_study
    from hpo.worker import run_supervisor

    url = resolve_storage_url(storage)
    path = Path(target)
    is_spec = path.suffix.lower() in (".yaml", ".yml")
    if is_spec or (_is_file(path) and not _study_exists(target, url)):
        spec = load_spec(path)
        check_spec_can_run(spec)
        create_study(spec, url, resume=True)
        name = spec.name
    else:
        name = target
        check_study_can_run(name, url)
    raise typer.Exit(code=run_supervisor(name, url, gpus, max_trials=max_trials, device=device))


def _study_exists(name: str, url: str) -> bool:
    """Whether the storage holds a study ``name`` (a SQLite file that is not there holds none)."""
    from hpo.storage import close_storage
    from hpo.storage import missing_sqlite_file
    from hpo.storage import open_storage

    if missing_sqlite_file(url):
        return False
    opened = open_storage(url, must_exist=True)
    try:
        opened.get_study_id_from_name(name)
    except KeyError:
        return False
    finally:
        close_storage(opened)
    return True


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the file system cannot hold (e.g. too long)."""
    try:
        return path.is_file()
    except OSError:
        return False
