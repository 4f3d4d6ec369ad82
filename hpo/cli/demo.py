"""``reid-hpo demo``: the whole loop on a synthetic dataset, in minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hpo.cli._app import app

_console = Console(soft_wrap=True, highlight=False)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output folder."),
    storage: str | None = typer.Option(
        None, "--storage", help="Study storage URL (default: SQLite file in --out)."
    ),
    spec: Path | None = typer.Option(
        None, "--spec", help="Study spec (default studies/demo.yaml)."
    ),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Override the trial budget."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
) -> None:
    """Synthesize a MARS-layout dataset, run a small study with pruning, test the best trial,
    write the HTML report, and print where everything is.

    Examples:

    \b
      reid-hpo demo
      reid-hpo demo --storage postgresql://postgres@127.0.0.1/reid_hpo --trials 4
    """
    from hpo.demo import run_demo
    from hpo.storage import mask_url

    result = run_demo(out, storage_url=storage, spec_path=spec, n_trials=trials, device=device)
    masked = mask_url(result.storage_url)
    table = Table(title=f"reid-hpo demo: study {result.study_name}")
    table.add_column("what")
    table.add_column("value")
    table.add_row(
        "trials", ", ".join(f"{k.lower()} {v}" for k, v in sorted(result.states.items()) if v)
    )
    table.add_row("best trial (val mAP)", f"#{result.best_trial}: {100 * result.best_value:.1f}%")
    for key in ("mAP", "rank1", "rerank_mAP", "rerank_rank1"):
        if key in result.test_metrics:
            table.add_row(
                f"test {key} (best trial, once)", f"{100 * result.test_metrics[key]:.1f}%"
            )
    table.add_row("wall time", f"{result.wall_s:.0f} s")
    table.add_row("compute", "\n".join(result.compute.lines()))
    table.add_row("dataset", str(result.data_root))
    table.add_row("storage", masked)
    table.add_row("report", str(result.report))
    _console.print(table)
    storage_arg = (
        f"--storage '{masked}'"
        if masked == result.storage_url
        else "(storage URL in $REID_HPO_STORAGE)"
    )
    _console.print(
        f"Open the report:    file://{result.report.resolve()}\n"
        f"Open the dashboard: reid-hpo dashboard {storage_arg}  (it prints the URL to open)\n"
        f"Training curves:    reid-hpo study tensorboard {result.study_name} {storage_arg}\n"
        "                    (it prints the TensorBoard command, runs named trial_<n>)"
    )
