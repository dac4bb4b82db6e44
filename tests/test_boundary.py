"""The connector boundary, read from the source: the core names no helpdesk and imports only the connector protocol;
connectors import only the bridge's public API (bridge.api)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from connectors.base import load_connector_classes

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "bridge"
EMULATORS = CORE / "sandbox"  # the emulators of each helpdesk and the sandbox that wires them: helpdesk-specific
PROTOCOL = "connectors.base"
PUBLIC_API = "bridge.api"
CONNECTOR_SOURCES = [ROOT / "connectors", ROOT / "tests" / "conformance" / "toy_connector"]


def python_files(*folders: Path, skip: Path | None = None) -> list[Path]:
    found = [p for folder in folders for p in sorted(folder.rglob("*.py"))]
    return [p for p in found if skip is None or skip not in p.parents]


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import, absolute; `from x import y` counts as x.y as well as x."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the module's package
                parts = list(path.relative_to(ROOT).parts[:-1])
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def code_words(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every name and string in the code: identifiers, attributes, arguments, imports and string
    constants other than docstrings. Comments and docstrings are prose, free to name a helpdesk."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield line, node.value
        elif isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.arg):
            yield line, node.arg
        elif isinstance(node, ast.keyword):
            yield line, node.arg or ""
        elif isinstance(node, ast.alias):
            yield line, node.name
            if node.asname:
                yield line, node.asname
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module


def test_the_core_imports_no_connector_but_the_protocol() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files(CORE, skip=EMULATORS)
        for line, module in imported_modules(path)
        if within(module, "connectors") and module != "connectors" and not within(module, PROTOCOL)
    ]
    assert wrong == []


def test_the_core_names_no_helpdesk() -> None:
    """No helpdesk's settings, payloads, Id rules or routes in bridge/ (outside the emulators): only in prose."""
    helpdesks = set(load_connector_classes())
    assert {"salesforce", "zendesk"} <= helpdesks
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in python_files(CORE, skip=EMULATORS)
        for line, text in code_words(path)
        if any(name in text.lower() for name in helpdesks)
    ]
    assert wrong == []


def test_connectors_import_only_the_public_api_of_the_bridge() -> None:
    files = python_files(*CONNECTOR_SOURCES)
    assert ROOT / "connectors" / "zendesk" / "connector.py" in files
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if within(module, "bridge") and module != "bridge" and not within(module, PUBLIC_API)
    ]
    assert wrong == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The readers above find an import, a setting and a route in code, and pass over prose."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Zendesk in a docstring is prose."""\n'
        "# Salesforce in a comment too\n"
        "from connectors.zendesk.setup import setup\n"
        "import bridge.config\n"
        "zendesk_url = None\n"
        'ROUTE = "/salesforce/events"\n'
    )
    words = [text for _, text in code_words(sample)]
    assert "zendesk_url" in words and "/salesforce/events" in words
    assert not any("docstring" in w or "comment" in w for w in words)
    modules = {module for _, module in imported_modules(sample)}
    assert {"connectors.zendesk.setup", "bridge.config"} <= modules
