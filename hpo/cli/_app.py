"""Root Typer app, the user-error boundary, and registration of the command groups."""

from __future__ import annotations

import errno
import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from hpo.cli._logging import configure_logging
from reid_core.errors import ReidError

EXIT_USER_ERROR = 2


def user_error_line(exc: BaseException) -> str:
    """The single line shown for a user error."""
    text = str(exc).strip()
    return f"Error: {text.splitlines()[0] if text else type(exc).__name__}"


# A path the user gave that the operating system refuses: its reason is the whole story.
_PATH_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EROFS}
)


def is_user_path_error(exc: BaseException) -> bool:
    """An OSError about a named path (too long, not a folder, no permission, read-only)."""
    return isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS and exc.filename is not None


def path_error_line(exc: OSError) -> str:
    """``Error: cannot use PATH: REASON`` for :func:`is_user_path_error` errors."""
    return f"Error: cannot use {exc.filename}: {exc.strerror}"


class _ReidGroup(TyperGroup):
    """Turns every :class:`ReidError` raised by a command (and every OSError about a path the
    user named, :func:`is_user_path_error`) into one stderr line and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (ReidError, OSError) as exc:
            if (ctx.obj and ctx.obj.get("debug")) or not (
                isinstance(exc, ReidError) or is_user_path_error(exc)
            ):
                raise
            line = user_error_line(exc) if isinstance(exc, ReidError) else path_error_line(exc)
            typer.echo(line, err=True)
            raise typer.Exit(code=EXIT_USER_ERROR) from None


HELP_SETTINGS: dict[str, Any] = {"rich_markup_mode": None}
"""How every command group renders ``--help``: the plain formatter, which wraps to the
terminal up to 80 columns, never cuts a default or a choice, and shows booleans as flags
(the Rich panels squeeze the help into an 18-character column at 80 columns). The three
Typer apps (this one, ``study``, ``data``) all take it."""

app = typer.Typer(
    **HELP_SETTINGS,
    cls=_ReidGroup,
    name="reid-hpo",
    help="Tune video person re-ID models (ResNet50TA_BT bag of tricks) with Optuna studies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from hpo import __version__

        typer.echo(f"reid-hpo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for user errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    ctx.obj = {"debug": debug}
    configure_logging(verbose=verbose)


# Command groups, one module each; a module registers its commands on ``app`` at import.
_COMMAND_MODULES = (
    "data",
    "train",
    "study",
    "retrain",
    "plan",
    "report",
    "worker",
    "dashboard",
    "demo",
    "bench",
    "weights",
    "doctor",
)
for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"hpo.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"hpo.cli.{_name}":
            raise


def main() -> None:
    """Console-script entry point."""
    app()
