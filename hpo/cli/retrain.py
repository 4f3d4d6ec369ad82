"""``reid-hpo study retrain NAME``: the searched parameters, retrained as the reference did.

The product (Optuna, torch, the trainer) is imported inside the command, not at CLI start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hpo.cli.study import NameArgument
from hpo.cli.study import StorageOption
from hpo.cli.study import study_app

_RANKS = (1, 5, 10, 20)

_EPILOG = """\
Example (a finished study, retrained on every training id for 400 epochs on GPU 0):

  reid-hpo study retrain mars-map-random --gpus 0
"""


@study_app.command("retrain", epilog=_EPILOG)
def retrain_cmd(
    name: NameArgument,
    trial: Annotated[
        int | None,
        typer.Option("--trial", min=0, help="Retrain this trial instead of the best one."),
    ] = None,
    epochs: Annotated[
        int,
        typer.Option("--epochs", min=1, help="Training length (the reference's plain training)."),
    ] = 400,
    random_erasing: Annotated[
        float,
        typer.Option(
            "--random-erasing",
            min=0.0,
            max=1.0,
            help="Random-erasing probability (the reference's plain training; its search: 0).",
        ),
    ] = 0.5,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Run folder (default: <artifacts.root>/<study uuid>/retrain/trial_<n>; with "
            "artifacts.kind: s3 it must lie under <artifacts.root>/<study uuid>/retrain/).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Retrain although a retrain result is stored.")
    ] = False,
    rerank: Annotated[
        bool, typer.Option("--rerank/--no-rerank", help="Also report re-ranked test metrics.")
    ] = True,
    gpus: Annotated[
        str | None,
        typer.Option(
            "--gpus",
            help="One GPU as a worker names it ('0', '1', ...; held against other workers on "
            "this host) or 'none' for the CPU (default: --device).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ... (without --gpus).")
    ] = "auto",
    storage: StorageOption = None,
) -> None:
    """Retrain the best trial's parameters on EVERY training id (no validation carve-out)
    for the plain-training length, then evaluate once on the test split.

    This is how the reference's published numbers were made. The result (test metrics with
    and without re-ranking, configuration, checkpoint, code version) is stored in the study
    beside the best trial's own test result and shown by 'study best', 'study report' and
    'study export'. A killed retrain continues from its last checkpoint when run again; a
    finished one is not run twice unless --force.
    """
    from hpo.storage import close_storage
    from hpo.storage import open_storage
    from hpo.storage import resolve_storage_url
    from hpo.study import RetrainOptions
    from hpo.study import check_spec_can_run
    from hpo.study import identity_of
    from hpo.study import load_study
    from hpo.study import refuse_if_retrained
    from hpo.study import retrain_trial
    from reid_core.engine import gpus_hidden

    slot, device = _gpu_slot(gpus, device)
    with gpus_hidden(device):
        opened = open_storage(resolve_storage_url(storage), must_exist=True)
        try:
            study, spec = load_study(name, opened)
            refuse_if_retrained(study, force=force)
            check_spec_can_run(spec)
            options = RetrainOptions(
                trial=trial,
                epochs=epochs,
                random_erasing=random_erasing,
                output=output,
                force=force,
                rerank=rerank,
                device=device,
                storage=identity_of(opened),
            )
            with _claimed(slot):
                result = retrain_trial(study, spec, options, storage=opened)
        finally:
            close_storage(opened)
    _print_result(result)


def _gpu_slot(gpus: str | None, device: str) -> tuple[str | None, str]:
    """The GPU entry to lock (None: none) and the torch device of a ``--gpus`` value."""
    if gpus is None:
        return None, device
    from hpo.errors import ReidHpoError
    from hpo.worker import parse_gpus
    from hpo.worker import visible_gpus

    slots = parse_gpus(gpus)
    if len(slots) != 1:
        raise ReidHpoError(f"--gpus {gpus!r}: a retrain runs on one GPU; name one, e.g. --gpus 0")
    if slots[0] is None:
        return None, "cpu"
    return slots[0], f"cuda:{visible_gpus().index(slots[0])}"


def _claimed(slot: str | None) -> Any:
    from contextlib import nullcontext

    from hpo.worker import claim_gpus

    return nullcontext() if slot is None else claim_gpus([slot])


def _print_result(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    table = Table(title=f"Test split, trial {result['trial']} retrained")
    table.add_column("metric")
    table.add_column("plain (%)", justify="right")
    reranked = any(k.startswith("rerank_") for k in metrics)
    if reranked:
        table.add_column("re-ranked (%)", justify="right")
    for key in ("mAP", *(f"rank{k}" for k in _RANKS)):
        if key in metrics:
            row = [key, _pct(metrics[key])]
            if reranked:
                row.append(_pct(metrics.get(f"rerank_{key}")))
            table.add_row(*row)
    table.caption = (
        f"{result['train_ids']} training ids, {result['epochs']} epochs; "
        f"{result.get('num_query')} query / {result.get('num_gallery')} gallery tracklets"
    )
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    console.print(f"checkpoint: {result['checkpoint']}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
