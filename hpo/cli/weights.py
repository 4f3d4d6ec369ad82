"""``reid-hpo weights fetch``: the ImageNet weights into the torch hub cache, checksum verified."""

from __future__ import annotations

from pathlib import Path

import typer

from hpo.cli._app import HELP_SETTINGS
from hpo.cli._app import app

weights_app = typer.Typer(
    **HELP_SETTINGS,
    help="The ImageNet weights pretrained backbones start from.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


@weights_app.command("fetch")
def fetch_cmd(
    dest: Path | None = typer.Option(
        None,
        "--dest",
        help="Folder of the file (default: the torch hub cache, $TORCH_HOME/hub/checkpoints).",
    ),
    backbone: str = typer.Option("resnet50", "--backbone", help="Backbone whose weights."),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="Folder URL of a mirror (default $REID_HPO_WEIGHTS_BASE_URL, else "
        "https://download.pytorch.org/models).",
    ),
) -> None:
    """Download torchvision's ImageNet weights of BACKBONE into the torch hub cache (or
    DEST), check the SHA-256 prefix in the file name, and move the file in place atomically.
    A file already there with the right checksum is kept. Without network access: exit 2 with
    the URL to download elsewhere and where to copy the file.

    Examples:

    \b
      reid-hpo weights fetch
      reid-hpo weights fetch --dest weights
    """
    from hpo.weights import fetch_weights

    result = fetch_weights(backbone, dest=dest, base_url=base_url)
    state = "downloaded" if result.downloaded else "already present"
    typer.echo(f"{result.path}: {state}, sha256 {result.sha256}")
