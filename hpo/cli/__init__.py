"""The ``reid-hpo`` command line. Each sub-module owns one group of commands.

Errors a user can cause (:class:`reid_core.errors.ReidError`) become one line on stderr and
exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from hpo.cli._app import app
from hpo.cli._app import main

__all__ = ["app", "main"]
