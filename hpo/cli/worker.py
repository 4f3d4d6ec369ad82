"""``reid-hpo worker NAME`` and ``reid-hpo study run SPEC|NAME``: run trials of a study."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import typer

from hpo.cli._app import app
from hpo.cli.study import study_app
from hpo.errors import ReidHpoError
from hpo.spec import StudySpec
from hpo.spec import load_spec
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.storage import resolve_storage_url
from hpo.studies import create_study
from hpo.studies import load_study
from hpo.workers import parse_gpus
from hpo.workers import run_supervisor
from hpo.workers import run_worker
from reid_core.data import build_dataset

logger = logging.getLogger(__name__)

_GPUS_HELP = "GPUs to use, one worker process each: 'all', 'none' (one CPU worker) or '0,1'."
_STORAGE_HELP = "Study storage URL (default: $REID_HPO_STORAGE, else sqlite:///reid_hpo.db)."
_MAX_TRIALS_HELP = "Stop each worker process after this many trials (default: study budget)."


@app.command("worker")
def worker(
    name: str = typer.Argument(..., help="Name of the study to work on."),
    gpus: str = typer.Option("all", "--gpus", help=_GPUS_HELP),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    max_trials: int | None = typer.Option(None, "--max-trials", min=1, help=_MAX_TRIALS_HELP),
    child: bool = typer.Option(False, "--child", hidden=True),
    device: str = typer.Option("cpu", "--device", hidden=True),
) -> None:
    """Run trials of study NAME until its budget is met: one process per GPU, restarted if
    it dies. Start as many workers as you like, on any machines sharing the storage.

    Ctrl-C or SIGTERM: stop after the epoch; a later worker resumes the trial.

    Example: reid-hpo worker mars-map-random --gpus 0,1 --storage postgresql://u:pw@db/hpo
    """
    url = resolve_storage_url(storage)
    if child:
        result = run_worker(name, url, device=device, max_trials=max_trials)
        typer.echo(
            f"worker done ({result.stop_reason}): {result.trials_run} trial(s), "
            f"{result.complete} complete, {result.pruned} pruned, {result.failed} failed"
        )
        return
    parse_gpus(gpus)  # a malformed --gpus is reported before the storage is touched
    _check_study(name, url)
    raise typer.Exit(code=run_supervisor(name, url, gpus, max_trials=max_trials))


@study_app.command("run")
def run(
    target: str = typer.Argument(..., help="A study spec (.yaml) or the name of a study."),
    gpus: str = typer.Option("all", "--gpus", help=_GPUS_HELP),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    max_trials: int | None = typer.Option(None, "--max-trials", min=1, help=_MAX_TRIALS_HELP),
) -> None:
    """Run a study: from a spec file (created if absent, resumed if it exists with the same
    spec) or by name; then work on it as `reid-hpo worker` does.

    Example: reid-hpo study run studies/demo.yaml --gpus none
    """
    url = resolve_storage_url(storage)
    path = Path(target)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        spec = load_spec(path)
        _check_dataset(spec)
        _check_artifacts(spec)
        create_study(spec, url, resume=True)
        name = spec.name
    else:
        name = target
        _check_study(name, url)
    raise typer.Exit(code=run_supervisor(name, url, gpus, max_trials=max_trials))


def _check_dataset(spec: StudySpec) -> None:
    """Refuse to start when this machine cannot read the study's dataset (one-line error)."""
    dataset = build_dataset(
        spec.dataset.name,
        spec.dataset.root,
        split_id=spec.dataset.split_id,
        mars_gallery=spec.dataset.mars_gallery,
    )
    _ = dataset.split  # parses the layout: a missing root or file raises DatasetNotFoundError


def _check_study(name: str, url: str) -> None:
    """Fail in this process (one line, exit 2) before any worker process is spawned when the
    storage, the study or its dataset is unusable."""
    storage = open_storage(url, heartbeat=False)
    try:
        _, spec = load_study(name, storage)
    finally:
        close_storage(storage)
    _check_dataset(spec)
    _check_artifacts(spec)


def _check_artifacts(spec: StudySpec) -> None:
    """Refuse to start when the checkpoint location cannot be written (one-line error)."""
    root = Path(spec.artifacts.root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ReidHpoError(
            f"artifacts.root {root} is not a writable directory: {exc.strerror or exc}"
        ) from None
