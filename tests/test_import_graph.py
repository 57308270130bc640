"""Imports run one way: stack -> components -> autoscaler. Inside `components` they form no cycle, so every module
imports on its own, whichever is imported first; a guarded (`TYPE_CHECKING`) or function-level import counts too."""

import ast
from graphlib import CycleError, TopologicalSorter

import pytest

from stack.mocks import REPO

COMPONENTS = REPO / "components"


def module_name(path_parts: tuple[str, ...]) -> str:
    parts = list(path_parts)
    parts[-1] = parts[-1].removesuffix(".py")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p.relative_to(REPO).parts): p for p in sorted(COMPONENTS.rglob("*.py"))}


def imported(path_text: str) -> set[str]:
    """Every module a file imports, `from package import module` naming the module."""
    found = set()
    for node in ast.walk(ast.parse(path_text)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= (names & MODULES.keys()) or {node.module}
    return found


GRAPH = {name: imported(path.read_text()) for name, path in MODULES.items()}


def test_components_import_no_cycle() -> None:
    within = {name: {m for m in deps if m in MODULES and m != name} for name, deps in GRAPH.items()}
    try:
        TopologicalSorter(within).prepare()
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_components_never_import_the_stack() -> None:
    assert {name: sorted(d for d in deps if d.split(".")[0] == "stack") for name, deps in GRAPH.items()} == {
        name: [] for name in GRAPH
    }


def test_the_graph_sees_the_packages() -> None:
    """Not vacuous: the stack's args come from the packages' args modules, which the components import."""
    assert "components.model_serving.args" in GRAPH["components.model_serving.component"]
    assert "components.model_serving.args" in GRAPH["components.monitoring.rules"]
