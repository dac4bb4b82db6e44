"""The modules of bridge/ and connectors/ import each other without a circle, and none passes 600 lines: read from
the source (every import counts, those only for type checking and those inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_boundary import ROOT, python_files

PACKAGES = [ROOT / "bridge", ROOT / "connectors"]
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that `path` imports. `from package import module` names the module, not the
    package: a package's `__init__` that gathers its own modules is the usual shape, not a circle."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}:{node.lineno}: a relative import (the project's are absolute)"
            base = node.module or ""
            named = {f"{base}.{alias.name}" for alias in node.names}
            found |= named if named <= modules else named | {base}
    return found & modules


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of bridge/ and connectors/ it imports."""
    paths = {module_name(path): path for path in python_files(*PACKAGES)}
    return {name: imports(path, set(paths)) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "bridge.errors" in graph["bridge.jobs"]  # from bridge.errors import ...
    assert "bridge.routes.groups" in graph["bridge.app"]  # from bridge.routes import groups (a module)
    assert "bridge.routes" in graph["bridge.routes.groups"]  # from bridge.routes import IM_OK (a name)
    assert "bridge.app" in graph["bridge.cli"]  # inside a function


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_no_module_passes_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in python_files(*PACKAGES)
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
