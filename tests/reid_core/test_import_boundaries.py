"""reid_core stands alone: no HPO stack, a torch-free config, and no import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._helpers.imports import find_cycle
from tests._helpers.imports import import_graph
from tests._helpers.waits import scaled

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("optuna", "typer", "pydantic", "sqlalchemy", "hpo")
PUBLIC_MODULES = (
    "reid_core",
    "reid_core.config",
    "reid_core.data",
    "reid_core.models",
    "reid_core.losses",
    "reid_core.engine",
    "reid_core.metrics",
)
# Installed first on sys.meta_path of the child: any import of a blocked top-level name fails.
BLOCKER = """
import sys

BLOCKED = {blocked!r}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError("blocked import of " + name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(300),
        check=False,
    )


def _blocked(code: str) -> str:
    return BLOCKER.format(blocked=BLOCKED) + code


def test_reid_core_imports_without_the_hpo_stack() -> None:
    imports = "".join(f"import {name}\n" for name in PUBLIC_MODULES)
    leaked = "assert not [n for n in sys.modules if n.partition('.')[0] in BLOCKED]\n"
    done = _python(_blocked(imports + leaked))
    assert done.returncode == 0, done.stderr


def test_the_blocker_blocks() -> None:
    done = _python(_blocked("import hpo\n"))
    assert done.returncode != 0 and "blocked import of hpo" in done.stderr


def test_config_does_not_import_torch() -> None:
    done = _python("import sys\nimport reid_core.config\nassert 'torch' not in sys.modules\n")
    assert done.returncode == 0, done.stderr


def test_reid_core_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(REPO_ROOT / "reid_core"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


# Small packages for the cycle check itself: a loop through an import inside a function and
# one under TYPE_CHECKING; a child importing its parent package, which only re-exports it or
# does more (then the parent's import of the child counts).
HIDDEN_LOOP = {
    "__init__.py": "",
    "a.py": "def f():\n    from pkg.b import g\n",
    "b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import a\n",
}
REEXPORTING_PARENT = {
    "__init__.py": '"""Doc."""\n\nfrom pkg.a import f\n\n__all__ = ["f"]\n',
    "a.py": "import pkg\n",
}
WORKING_PARENT = {
    "__init__.py": "from pkg.a import f\n\n\ndef g():\n    return f\n",
    "a.py": "import pkg\n",
}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(HIDDEN_LOOP, ["pkg.a", "pkg.b", "pkg.a"], id="hidden-loop"),
        pytest.param(REEXPORTING_PARENT, None, id="child-of-a-reexporting-package"),
        pytest.param(WORKING_PARENT, ["pkg", "pkg.a", "pkg"], id="child-of-a-working-package"),
    ],
)
def test_the_cycle_check(tmp_path: Path, files: dict[str, str], expected: list[str] | None) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(text)
    assert find_cycle(import_graph(package)) == expected
