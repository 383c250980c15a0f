"""The package's shape: no import circle between its parts, no source file above 500 lines,
no function above 60 lines (unless a comment says why), and every module imports on its own."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "biocredit"
MAX_LINES = 500

# Files allowed above MAX_LINES, with the reason (remove an entry once the file is short).
LONG_FILES: dict[str, str] = {}
MAX_FUNCTION_LINES = 60     # a longer function says why in a comment "# long: ..." on its
LONG_MARK = "# long:"       # def line or the line above it

# Imports between the package's parts allowed against the layering, with the reason: each
# is resolved on first use, never while the package imports.
DEFERRED = {
    ("biocredit.layers", "biocredit.conversion"):
        "convert and what goes with it under their old names, biocredit.layers.convert & co. "
        "(layers.__getattr__)",
}


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(name: str, path: Path, top_level_only: bool = False) -> dict[str, int]:
    """The package's modules that ``name`` imports (every import statement, in functions
    too, unless ``top_level_only``), each with the line of its first import."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: dict[str, int] = {}
    for node in nodes:
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package[:len(package) - node.level + 1] if node.level else []
            base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        for target in targets:
            if target in MODULES and target != name:
                found.setdefault(target, node.lineno)
    return found


def part(module: str) -> str:
    """The part of the package a module belongs to: ``biocredit.rules.fa`` -> ``biocredit.rules``."""
    return ".".join(module.split(".")[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def part_imports() -> dict[tuple[str, str], str]:
    """Every import from one part of the package into another (the root package, a lazy
    facade, left out), with where it is written."""
    edges = {}
    for name, path in MODULES.items():
        for target, line in imports(name, path).items():
            a, b = part(name), part(target)
            if a != b and "biocredit" not in (a, b):
                edges.setdefault((a, b), f"{path.relative_to(SRC)}:{line}")
    return edges


def test_no_import_circle_between_the_parts_of_the_package():
    edges = part_imports()
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if (a, b) not in DEFERRED:
            graph.setdefault(a, set()).add(b)
    circles = cycles(graph)
    where = [f"{a} -> {b} ({edges[a, b]})" for circle in circles for a, b in edges
             if a in circle and b in circle and (a, b) not in DEFERRED]
    assert not circles, f"import circles between {circles}:\n" + "\n".join(where)


def test_the_deferred_imports_exist_and_are_deferred():
    """Each allowed exception is still needed, and no module imports it at import time."""
    edges = part_imports()
    for a, b in DEFERRED:
        assert (a, b) in edges, f"{a} no longer imports {b}: remove it from DEFERRED"
        eager = [name for name, path in MODULES.items() if part(name) == a
                 and any(part(t) == b for t in imports(name, path, top_level_only=True))]
        assert not eager, f"{', '.join(eager)} import {b} while the package imports"


def test_no_import_circle_between_modules_at_import_time():
    graph = {name: set(imports(name, path, top_level_only=True))
             for name, path in MODULES.items()}
    assert not cycles(graph)


def test_no_source_file_is_longer_than_500_lines():
    lengths = {path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
               for path in MODULES.values()}
    long = {f: n for f, n in lengths.items() if n > MAX_LINES and f not in LONG_FILES}
    assert not long, f"files above {MAX_LINES} lines: {long}"


def long_functions() -> dict[str, int]:
    """Every function or method above :data:`MAX_FUNCTION_LINES` lines (its ``def`` to its
    last line) without a :data:`LONG_MARK` comment saying why, as ``FILE:LINE NAME``."""
    found = {}
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            marked = any(LONG_MARK in line for line in lines[max(node.lineno - 2, 0):node.lineno])
            if length > MAX_FUNCTION_LINES and not marked:
                found[f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno} {node.name}"] = length
    return found


def test_no_function_is_longer_than_60_lines_unless_a_comment_says_why():
    long = long_functions()
    assert not long, f"functions above {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))
def test_every_module_imports(name):
    importlib.import_module(name)
