"""The import graph of a package, read statically, and a cycle finder (architecture tests)."""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path


def _modules(root: Path) -> dict[str, Path]:
    """Name of every module of the package at ``root``, with its file."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, relative imports resolved against ``package``."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _imports(tree: ast.Module, package: str, modules: Collection[str]) -> set[str]:
    """The modules of ``modules`` imported anywhere in ``tree`` (``TYPE_CHECKING``, functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return found & set(modules)


def _only_reexports(tree: ast.Module) -> bool:
    """Whether a package ``__init__`` holds nothing but a docstring, imports and ``__all__``."""
    return all(
        isinstance(stmt, ast.Import | ast.ImportFrom)
        or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
        or (isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets) == "__all__")
        for stmt in tree.body
    )


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports.

    A package that only re-exports has no edges to its own submodules: its ``__init__``
    importing its children is no loop, and so a child may import it.
    """
    modules = _modules(root)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        targets = _imports(tree, name if is_package else name.rpartition(".")[0], modules)
        if is_package and _only_reexports(tree):
            targets = {t for t in targets if not t.startswith(name + ".")}
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for target in sorted(graph[node]):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)):
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done and (cycle := visit(node)):
            return cycle
    return None
