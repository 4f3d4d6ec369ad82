"""The C compiler ``compile: true`` needs: Triton (GPU) and Inductor (CPU) build helpers with
it at first use, so a host without one fails deep inside the first step. It is refused up
front instead, in one line."""

from __future__ import annotations

import os
import shutil

from reid_core.errors import ConfigError

__all__ = ["c_compiler", "require_c_compiler"]


def c_compiler() -> str | None:
    """The C compiler found: ``$CC`` when set and found, else ``cc``, ``gcc`` or ``clang``
    on ``PATH``; None when there is none."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def require_c_compiler() -> str:
    """The C compiler for ``compile: true``.

    Raises:
        ConfigError: No C compiler is found (one line: install gcc or set compile: false).
    """
    found = c_compiler()
    if found is None:
        where = f"$CC={os.environ['CC']}" if os.environ.get("CC") else "cc, gcc or clang on PATH"
        raise ConfigError(
            f"compile: true needs a C compiler and none was found ({where}): install gcc "
            "(the reid-hpo image has it) or set compile: false"
        )
    return found
