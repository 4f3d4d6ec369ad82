"""``reid-hpo bench [NAME] [--out DIR] [--quick]``: run the performance benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hpo.cli._app import app

if TYPE_CHECKING:
    from hpo.bench import BenchResult

_EPILOG = """\
Examples:

  reid-hpo bench --list

  reid-hpo bench ranking --quick --out bench-results

  reid-hpo bench rerank --out bench-results
"""


@app.command("bench", epilog=_EPILOG)
def bench(
    name: str | None = typer.Argument(None, help="Benchmark to run; all of them when omitted."),
    out: Path = typer.Option(
        Path("bench-results"), "--out", help="Folder for the JSON results (<name>.json)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Small sizes: seconds instead of minutes."),
    threads: int = typer.Option(
        1, "--threads", min=1, help="CPU threads of the measured processes."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic inputs."),
    list_only: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
) -> None:
    """Run the performance benchmarks (BENCHMARKS.md): a table per benchmark, plus JSON."""
    from hpo.bench import BenchOptions
    from hpo.bench import load_benchmarks
    from reid_core.files import output_file_target
    from reid_core.files import write_output_file

    console = Console()
    benchmarks = load_benchmarks()
    if list_only:
        for bench_name in benchmarks.names():
            doc = (benchmarks.get(bench_name).__doc__ or "").strip().splitlines()
            console.print(f"{bench_name}\t{doc[0] if doc else ''}", highlight=False)
        return
    names = [name] if name else benchmarks.names()
    runners = {bench_name: benchmarks.get(bench_name) for bench_name in names}
    options = BenchOptions(quick=quick, threads=threads, seed=seed)
    for bench_name in runners:
        output_file_target(out / f"{bench_name}.json", what="the benchmark result")
    for bench_name, runner in runners.items():
        result = runner(options)
        path = out / f"{bench_name}.json"
        write_output_file(path, json.dumps(result.to_json(), indent=2) + "\n", what="the result")
        console.print(_table(result))
        for key, value in result.summary.items():
            console.print(f"  {key}: {_fmt(value)}", highlight=False)
        for target in result.targets:
            mark = "[green]met[/green]" if target.met else "[red]NOT met[/red]"
            op = ">=" if target.higher_is_better else "<="
            console.print(
                f"  target {target.description}: {_fmt(target.value)} {op} "
                f"{_fmt(target.threshold)} {mark}"
            )
        console.print(f"  written {path}", highlight=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _table(result: BenchResult) -> Table:
    table = Table(title=result.title)
    for column in result.columns:
        table.add_column(column)
    for row in result.rows:
        table.add_row(*(_fmt(row.get(column, "")) for column in result.columns))
    return table
