"""A per-epoch progress bar on a terminal; nothing (only log lines) otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def epoch_progress(
    description: str, total: int | None, *, enabled: bool | None = None
) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(text)``, which moves a rich progress bar by one step.

    Args:
        description: Label of the bar (e.g. ``"epoch 3/120"``).
        total: Number of steps, if known.
        enabled: Force the bar on or off; ``None`` shows it only when stderr is a terminal.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda text: None
        return
    from rich.console import Console
    from rich.progress import BarColumn
    from rich.progress import MofNCompleteColumn
    from rich.progress import Progress
    from rich.progress import TextColumn
    from rich.progress import TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[text]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total, text="")
        yield lambda text: progress.update(task, advance=1, text=text)
