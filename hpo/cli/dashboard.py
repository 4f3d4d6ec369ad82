"""``reid-hpo dashboard``: optuna-dashboard on the study storage, on 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path

import typer

from hpo import dashboard
from hpo.cli._app import app


@app.command("dashboard")
def dashboard_command(
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Study storage URL (default: $REID_HPO_STORAGE, else sqlite:///reid_hpo.db).",
    ),
    host: str = typer.Option(
        dashboard.DEFAULT_HOST,
        "--host",
        help="Address to bind. The dashboard has NO authentication: keep it on 127.0.0.1.",
    ),
    port: int = typer.Option(dashboard.DEFAULT_PORT, "--port", min=1, max=65535),
    artifact_dir: Path | None = typer.Option(
        None,
        "--artifact-dir",
        help="Folder of an Optuna FileSystemArtifactStore whose artifacts the dashboard lists.",
    ),
) -> None:
    """Serve optuna-dashboard on the study storage until Ctrl-C."""
    from hpo.storage import resolve_storage_url

    url = resolve_storage_url(storage)
    wsgi_app = dashboard.build_app(url, artifact_dir=artifact_dir)
    for line in dashboard.startup_lines(url, host, port):
        typer.echo(line, err=line.startswith("WARNING"))
    try:
        dashboard.serve(wsgi_app, host=host, port=port)
    except OSError as exc:
        typer.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(code=2) from None
