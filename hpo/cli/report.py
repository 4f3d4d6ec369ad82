"""``reid-hpo study report`` (HTML report) and ``reid-hpo study test`` (one test-set evaluation)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from hpo.cli.study import NameArgument
from hpo.cli.study import StorageOption
from hpo.cli.study import study_app

logger = logging.getLogger(__name__)


@study_app.command("report")
def report_cmd(
    name: NameArgument,
    out: Annotated[
        Path, typer.Option("--out", help="HTML file to write (self-contained, opens offline).")
    ],
    storage: StorageOption = None,
) -> None:
    """Write the study's self-contained HTML report.

    Summary, optimisation history, learning curves (pruned trials marked), parallel
    coordinates, parameter importances, trial timeline by worker and the best trial's CMC.

    Example: reid-hpo study report mars-map-random --out report.html
    """
    import optuna

    from hpo.report import build_report
    from hpo.storage import close_storage
    from hpo.storage import open_storage
    from hpo.storage import resolve_storage_url
    from hpo.study import reading

    url = resolve_storage_url(storage)
    opened = open_storage(url, must_exist=True)
    try:
        # Any Optuna study of that name: a reid-hpo spec is not required for a report.
        with reading(name, opened, "`study report` read it"):
            study = optuna.load_study(study_name=name, storage=opened)
            path = build_report(study, out, storage_url=url)
            n_trials = len(study.get_trials(deepcopy=False))
    finally:
        close_storage(opened)
    typer.echo(f"Wrote {path} ({n_trials} trials of study {name!r}).")


@study_app.command("test")
def test_cmd(
    name: NameArgument,
    storage: StorageOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Evaluate again even if a result is stored.")
    ] = False,
    rerank: Annotated[
        bool, typer.Option("--rerank/--no-rerank", help="Also report re-ranked metrics.")
    ] = True,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
) -> None:
    """Evaluate the best trial once on the test split and store the result.

    The best trial is chosen on validation only; its test result is stored in the study user
    attr 'test_result', shown by 'study best' and 'study report', and never used for selection.

    Example: reid-hpo study test mars-map-random --device cuda
    """
    from hpo.storage import close_storage
    from hpo.storage import open_storage
    from hpo.storage import resolve_storage_url
    from hpo.study import evaluate_best_on_test
    from hpo.study import load_study

    opened = open_storage(resolve_storage_url(storage), must_exist=True)
    try:
        study, spec = load_study(name, opened)
        result = evaluate_best_on_test(study, spec, force=force, rerank=rerank, device=device)
    finally:
        close_storage(opened)
    metrics = ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result["metrics"].items()
    )
    typer.echo(f"Test split, trial {result['trial']}: {metrics}")
