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
        help="Address to bind. Anyone who reaches it can read every study (only changes "
        "need the token): keep it on 127.0.0.1.",
    ),
    port: int = typer.Option(dashboard.DEFAULT_PORT, "--port", min=1, max=65535),
    artifact_dir: Path | None = typer.Option(
        None,
        "--artifact-dir",
        help="Folder of an Optuna FileSystemArtifactStore whose artifacts the dashboard lists.",
    ),
    allowed_host: list[str] = typer.Option(
        [],
        "--allowed-host",
        help="Host name the dashboard also answers for (repeatable); IP addresses always work.",
    ),
    read_only: bool | None = typer.Option(
        None,
        "--read-only/--read-write",
        help="Refuse deleting, renaming and editing studies. Default: read-only unless bound "
        "to a loopback address.",
        show_default=False,
    ),
) -> None:
    """Serve optuna-dashboard on the study storage until Ctrl-C.

    Only requests naming this server in their Host header are answered (no DNS rebinding), and
    changes need the token in the printed URL (a cookie once it is opened).

    Example: reid-hpo dashboard --port 8080
    """
    from hpo.storage import resolve_storage_url

    url = resolve_storage_url(storage)
    loopback = dashboard.is_loopback(host)
    token = dashboard.new_token()
    guarded = dashboard.DashboardGuard(
        dashboard.build_app(url, artifact_dir=artifact_dir),
        token=token,
        allowed_hosts=dashboard.guard_names(host, allowed_host),
        read_only=(not loopback) if read_only is None else read_only,
    )
    try:
        httpd = dashboard.bind(guarded, host=host, port=port)
    except OSError as exc:
        typer.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(code=2) from None
    for line in dashboard.startup_lines(url, host, port, token=token, read_only=guarded.read_only):
        typer.echo(line, err=line.startswith("WARNING"))
    dashboard.serve(httpd)
