"""``reid-hpo data synth`` and ``reid-hpo data check``: synthetic datasets and dataset checks."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from hpo.cli._app import HELP_SETTINGS
from hpo.cli._app import app

if TYPE_CHECKING:
    from reid_core.data import DatasetSummary


class DatasetName(enum.StrEnum):
    """Dataset layouts the readers and the synthetic writer know."""

    mars = "mars"
    ilidsvid = "ilidsvid"
    prid = "prid"


class MarsGalleryOption(enum.StrEnum):
    """MARS gallery conventions."""

    exclude_query = "exclude_query"
    official = "official"


data_app = typer.Typer(
    **HELP_SETTINGS,
    help="Synthetic datasets in the public layouts, and dataset checks.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

_SYNTH_EPILOG = """\
Example: a small MARS-layout dataset, then its check

  reid-hpo data synth data/mars --layout mars --ids 32 --seed 0

  reid-hpo data check data/mars --dataset mars
"""

_CHECK_EPILOG = """\
Example:

  reid-hpo data check /datasets/MARS --dataset mars --mars-gallery official

  reid-hpo data check data/prid --dataset prid --split-id 3
"""


@data_app.command("synth", epilog=_SYNTH_EPILOG)
def synth(
    out: Path = typer.Argument(..., help="Destination folder (created; must be empty)."),
    layout: DatasetName = typer.Option(..., "--layout", help="On-disk layout to write."),
    ids: int = typer.Option(16, "--ids", help="Identities (MARS: half train, half test)."),
    cameras: int = typer.Option(3, "--cameras", help="MARS cameras (2..6); others have 2."),
    tracklets: int = typer.Option(4, "--tracklets", help="MARS tracklets per identity."),
    frames: int = typer.Option(12, "--frames", help="Maximum frames per tracklet."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes the same bytes."),
    height: int = typer.Option(64, "--height", help="Frame height in pixels."),
    width: int = typer.Option(32, "--width", help="Frame width in pixels."),
) -> None:
    """Write a small synthetic dataset, with learnable identities, in a public layout."""
    from reid_core.data import write_synthetic

    root = write_synthetic(
        out,
        layout.value,  # type: ignore[arg-type]
        ids=ids,
        cameras=cameras,
        tracklets=tracklets,
        frames=frames,
        seed=seed,
        height=height,
        width=width,
    )
    typer.echo(f"wrote a synthetic {layout.value} dataset to {root}")


@data_app.command("check", epilog=_CHECK_EPILOG)
def check(
    root: Path = typer.Argument(..., help="Dataset root folder."),
    dataset: DatasetName = typer.Option(..., "--dataset", help="Which dataset layout."),
    split_id: int = typer.Option(0, "--split-id", help="iLIDS-VID / PRID-2011 split (0..9)."),
    mars_gallery: MarsGalleryOption = typer.Option(
        MarsGalleryOption.exclude_query, "--mars-gallery", help="MARS gallery convention."
    ),
) -> None:
    """Parse a dataset, open every frame, and print its counts (exit 2 on the first problem)."""
    from reid_core.data import check_dataset

    with Progress(transient=True, console=Console(stderr=True)) as progress:
        task = progress.add_task("verifying frames", total=None)
        summary = check_dataset(
            root,
            dataset.value,
            split_id=split_id,
            mars_gallery=mars_gallery.value,  # type: ignore[arg-type]
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    Console().print(summary_table(summary, root))


def summary_table(summary: DatasetSummary, root: Path) -> Table:
    """A rich table of a dataset's counts, one row per subset."""
    table = Table(title=f"{summary.name} at {root}: OK")
    for column in ("subset", "ids", "tracklets", "frames", "cameras"):
        table.add_column(column, justify="left" if column == "subset" else "right")
    for name, counts in summary.rows():
        table.add_row(
            name,
            str(counts.ids),
            str(counts.tracklets),
            str(counts.frames),
            str(counts.cameras),
        )
    return table
