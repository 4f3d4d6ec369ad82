"""The shape of ``hpo``: one-way dependencies, Optuna internals in one adapter, a CLI that
starts without torch."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import optuna
import pytest

from hpo.storage._optuna_adapter import PRIVATE_OPTUNA_NAMES
from tests._helpers.imports import find_cycle
from tests._helpers.imports import import_graph
from tests._helpers.waits import scaled

REPO_ROOT = Path(__file__).resolve().parents[2]
HPO = REPO_ROOT / "hpo"
ADAPTER = HPO / "storage" / "_optuna_adapter.py"

# A module may import modules of its own package and of packages of a lower layer only.
LAYERS = {
    "hpo.errors": 0,
    "hpo.url_secrets": 0,
    "hpo.storage": 1,
    "hpo.spec": 1,
    "hpo.weights": 1,
    "hpo.search": 2,
    "hpo.study": 3,
    "hpo.worker": 4,
    "hpo.report": 4,
    "hpo.dashboard": 4,
    "hpo.demo": 5,
    "hpo.bench": 6,
    "hpo.doctor": 7,
    "hpo.cli": 8,
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None


def test_hpo_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(HPO))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_dependencies_point_one_way() -> None:
    wrong = []
    for module, targets in import_graph(HPO).items():
        source = _package(module)
        if source not in LAYERS:
            continue
        for target in targets:
            package = _package(target)
            if package in LAYERS and package != source and LAYERS[package] >= LAYERS[source]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_the_layers_cover_every_subpackage_and_root_module() -> None:
    found = {_package(module) for module in import_graph(HPO)} - {None}
    assert found == set(LAYERS)


def _optuna_private_names() -> set[str]:
    """Private (single underscore) functions, classes and attributes defined by Optuna."""
    names = set()
    for path in Path(optuna.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


# A dotted Optuna path with a private part, e.g. "optuna.storages._cached_storage".
_PRIVATE_PATH = re.compile(r"\boptuna(?:\.[A-Za-z]\w*)*\._[A-Za-z]\w*")


def _private_optuna_uses(path: Path, optuna_private: set[str]) -> list[str]:
    """Imports of private Optuna modules or names, and accesses ``x._name`` of an Optuna
    private name that this module does not define itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optuna"):
            names = [*node.module.split("."), *(alias.name for alias in node.names)]
            uses += [f"from {node.module} import {n}" for n in names if n.startswith("_")]
        elif isinstance(node, ast.Import):
            uses += [
                f"import {alias.name}"
                for alias in node.names
                if alias.name.startswith("optuna") and "._" in alias.name
            ]
        elif isinstance(node, ast.Attribute) and node.attr in optuna_private - own:
            uses.append(f"line {node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (found := _PRIVATE_PATH.search(node.value))
        ):
            uses.append(f"line {node.lineno}: {found.group(0)!r}")
    return uses


def test_private_optuna_names_live_only_in_the_adapter() -> None:
    optuna_private = _optuna_private_names()
    found = {
        str(path.relative_to(REPO_ROOT)): uses
        for path in sorted(HPO.rglob("*.py"))
        if path != ADAPTER and (uses := _private_optuna_uses(path, optuna_private))
    }
    assert not found, found


def test_the_checker_sees_a_private_optuna_use(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from optuna.storages._cached_storage import _CachedStorage\n"
        "def f(study):\n    return study._storage\n"
        "NAME = 'optuna.storages.RDBStorage._get_trials'\n"
        "DOC = 'optuna.TrialPruned and hpo.study._artifacts are fine'\n"
    )
    uses = _private_optuna_uses(module, _optuna_private_names())
    assert len(uses) == 4, uses  # private module and class, the attribute, the dotted string


def _private_names_of_other_packages(path: Path, own: str | None) -> list[str]:
    """``from <pkg>.<mod> import _name`` in ``path`` where ``<pkg>`` is not ``own``, the
    importer's package (``hpo.worker``, ``reid_core.engine``, ...)."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            root = node.module.partition(".")[0]
            if root in ("hpo", "reid_core") and _package(node.module) != own:
                names = (alias.name for alias in node.names)
                uses += [f"from {node.module} import {n}" for n in names if _private(n)]
    return uses


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")  # __version__ is public


def test_no_module_imports_a_private_name_of_another_package() -> None:
    # A helper two packages need is public in the package that owns it (e.g. release_memory).
    found = {}
    for root in (HPO, REPO_ROOT / "reid_core"):
        for path in sorted(root.rglob("*.py")):
            module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if uses := _private_names_of_other_packages(path, _package(module)):
                found[str(path.relative_to(REPO_ROOT))] = uses
    assert not found, found


def test_the_checker_sees_a_private_name_of_another_package(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from hpo.worker._objective import _release_memory\n"
        "from hpo.doctor._report import _own\n"  # its own package: allowed
        "from hpo.worker._objective import fail_reason\n"  # a public name: allowed
        "from hpo import __version__\n",
        encoding="utf-8",
    )
    uses = _private_names_of_other_packages(module, "hpo.doctor")
    assert uses == ["from hpo.worker._objective import _release_memory"]


@pytest.mark.parametrize("name", [n for n in PRIVATE_OPTUNA_NAMES if n.startswith("optuna.")])
def test_the_adapters_private_names_exist_in_the_installed_optuna(name: str) -> None:
    module_name, cls_name, attr = name.rsplit(".", 2)
    owner = getattr(importlib.import_module(module_name), cls_name)
    assert callable(getattr(owner, attr, None)), f"{name} is gone from optuna {optuna.__version__}"


def test_optuna_is_pinned_to_the_5x_line() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "optuna>=5.0,<6" in pyproject["project"]["dependencies"]


# Runs one CLI command in a fresh interpreter and prints which heavy modules it imported.
_PROBE = """
import json, sys
from hpo.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = [m for m in ("torch", "torchvision") if m in sys.modules]
print(json.dumps({"exit": code, "heavy": heavy}))
"""


def _probe(*args: str, cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def finished_study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite storage with a reid-hpo study holding one COMPLETE trial."""
    from hpo.storage import close_storage
    from hpo.storage import open_storage
    from hpo.study import create_study
    from tests._helpers.specs import tiny_spec

    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'reid_hpo.db'}"
    storage = open_storage(url)
    try:
        study = create_study(tiny_spec(name="light"), storage)
        trial = study.ask()
        trial.suggest_float("sigma", 0.1, 1.0)
        study.tell(trial, 0.5)
    finally:
        close_storage(storage)
    return url


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["study", "list"], id="list"),
        pytest.param(["study", "status", "light"], id="status"),
        pytest.param(["study", "best", "light"], id="best"),
        pytest.param(["study", "export", "light", "--format", "json"], id="export"),
        pytest.param(["study", "delete", "light", "--yes"], id="delete"),
        pytest.param(["dashboard", "--help"], id="dashboard"),
    ],
)
def test_commands_that_need_no_model_import_no_torch(
    args: list[str], finished_study_url: str, tmp_path: Path
) -> None:
    storage = [] if args[0] != "study" else ["--storage", finished_study_url]
    result = _probe(*args, *storage, cwd=tmp_path)
    assert result == {"exit": 0, "heavy": []}


def test_the_dashboard_app_builds_without_torch(finished_study_url: str, tmp_path: Path) -> None:
    code = (
        "import sys\nfrom hpo.dashboard import build_app\n"
        f"build_app({finished_study_url!r})\n"
        "print([m for m in ('torch', 'torchvision') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
