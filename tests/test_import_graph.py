"""The import graph of ``src/openjip`` as a test: no cycle between modules or between concerns
(top-level packages), and none of the walls of DESIGN.md crossed.

Imports under ``if TYPE_CHECKING:`` are not runtime dependencies and are left out; imports inside
functions count (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"

# Concerns below the services must never import the services or the command line.
SERVICES = {"receiver", "web", "federation", "site", "cli"}
LOWER_LAYERS = {"config", "storage", "index", "records", "dicom", "workflows", "operators", "sdk"}

# (importing concern, imported concern or third-party top-level module): the walls of DESIGN.md.
WALLS: dict[str, set[str]] = {
    # federation never touches images or patient data, not even through another concern.
    "federation": {"openjip.storage", "openjip.index", "minio", "opensearchpy"},
    # operator images stay slim and run anywhere.
    "sdk": {"openjip.*", "airflow", "pynetdicom", "fastapi"},
    # the backends know nothing of Airflow or DICOM networking.
    "storage": {"airflow", "pynetdicom", "openjip.airflow", "openjip.receiver"},
    "index": {"airflow", "pynetdicom", "openjip.airflow", "openjip.receiver"},
    # records, field lists and the key layout live below the index.
    "dicom": {"openjip.index"},
    "workflows": {"openjip.index"},
}
# Walls that hold for every module a concern loads, not only for its own import lines.
TRANSITIVE = {"federation", "sdk", "storage", "index"}


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(path: Path, module: str, is_package: bool) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every runtime import statement."""

    def walk(nodes: list[ast.stmt]) -> Iterator[tuple[str, list[str]]]:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from walk(node.orelse)
                continue
            if isinstance(node, ast.Import):
                yield from ((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")[: None if is_package else -1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                yield target, [alias.name for alias in node.names]
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from walk([child])

    yield from walk(ast.parse(path.read_text(), str(path)).body)


@cache
def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module -> openjip modules it imports, and module -> top-level third-party names."""
    files = {_module_name(p): p for p in SOURCE.rglob("*.py")}
    modules = {name for name, _ in files}
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for (module, is_package), path in files.items():
        internal[module], external[module] = set(), set()
        for target, names in _imported_names(path, module, is_package):
            if not target.startswith("openjip"):
                external[module].add(target.split(".")[0])
                continue
            # `from package import submodule` depends on the submodule, not on the package's
            # __init__; any other name comes from the module itself.
            submodules = {f"{target}.{name}" for name in names} & modules
            if not names or len(submodules) < len(names):
                submodules.add(target)
            for name in submodules:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    internal[module].add(name)
    return internal, external


def _concern(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _concern_graph() -> dict[str, set[str]]:
    internal, _ = _graph()
    concerns: dict[str, set[str]] = {}
    for module, targets in internal.items():
        source = _concern(module)
        concerns.setdefault(source, set())
        concerns[source] |= {_concern(t) for t in targets if _concern(t) not in ("", source)}
    concerns.pop("", None)
    return concerns


def test_no_cycle_between_modules() -> None:
    assert _cycles(_graph()[0]) == []


def test_no_cycle_between_concerns() -> None:
    assert _cycles(_concern_graph()) == []


def test_lower_layers_never_import_services() -> None:
    concerns = _concern_graph()
    crossings = {
        f"{low} -> {high}"
        for low in LOWER_LAYERS & concerns.keys()
        for high in concerns[low] & SERVICES
    }
    assert crossings == set()


def _reached(concern: str) -> set[str]:
    """Every module that importing the modules of ``concern`` loads: their imports, and the
    packages (``__init__``) above each module, all the way down."""
    internal, _ = _graph()
    seen = {m for m in internal if _concern(m) == concern}
    todo = list(seen)
    while todo:
        module = todo.pop()
        parents = {module.rsplit(".", depth)[0] for depth in range(1, module.count(".") + 1)}
        for nxt in (internal.get(module, set()) | parents) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _crosses(wall: str, concern: str, imported: set[str], external: set[str]) -> bool:
    if wall == "openjip.*":
        return bool(imported - {concern})
    if wall.startswith("openjip."):
        return wall.removeprefix("openjip.") in imported
    return wall in external


@pytest.mark.parametrize("concern", sorted(WALLS))
def test_walls(concern: str) -> None:
    internal, external = _graph()
    if concern in TRANSITIVE:
        modules = _reached(concern)
    else:
        modules = {m for m in internal if _concern(m) == concern}
    imported = {_concern(t) for m in modules for t in internal.get(m, ())} | {
        _concern(m) for m in modules
    }
    third_party = {name for m in modules for name in external.get(m, ())}
    crossed = sorted(
        wall for wall in WALLS[concern] if _crosses(wall, concern, imported - {""}, third_party)
    )
    assert crossed == [], f"{concern} reaches {crossed}"


def test_the_graph_sees_the_tree() -> None:
    """Guard against a test that passes because it parsed nothing."""
    internal, external = _graph()
    assert "openjip.receiver" in internal and "openjip.cli.main" in internal
    assert "pynetdicom" in set().union(*external.values())
