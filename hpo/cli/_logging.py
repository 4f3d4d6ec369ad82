"""One log format for reid-hpo's lines and Optuna's: plain lines on stderr, one handler."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
"""Time and level only: an epoch line fits an 80-column terminal."""
VERBOSE_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
"""With ``-v``: the date and the logger's name too."""
DATE_FORMAT = "%H:%M:%S"
VERBOSE_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def configure_logging(*, verbose: bool) -> None:
    """Route every logger, Optuna's included, through one stderr handler and format.

    Optuna installs its own handler and format and stops propagation; both are undone here.
    Its per-trial INFO lines ("Trial 3 finished with value ... and parameters {...}") repeat
    what the worker already logs, so Optuna is kept at WARNING unless ``verbose``.

    Args:
        verbose: DEBUG for reid-hpo (and INFO for Optuna) instead of INFO (WARNING), and
            lines that name their logger.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=VERBOSE_LOG_FORMAT if verbose else LOG_FORMAT,
        datefmt=VERBOSE_DATE_FORMAT if verbose else DATE_FORMAT,
    )
    import optuna.logging

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
    # boto3's libraries log each credential lookup at INFO and, at DEBUG, request headers
    # that name the access key: kept at WARNING, verbose or not.
    for name in ("boto3", "botocore", "s3transfer", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
