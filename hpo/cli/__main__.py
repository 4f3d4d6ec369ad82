"""``python -m hpo.cli``: the ``reid-hpo`` command (worker processes are started this way)."""

from __future__ import annotations

from hpo.cli import main

if __name__ == "__main__":
    main()
