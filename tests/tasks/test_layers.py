"""The layering of the package: task names only under tasks/, imports only point downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import geodefect
from geodefect.tasks import TASKS

PACKAGE = Path(geodefect.__file__).parent
#: layers that must not import the task policy, the verbs or the CLI above them
LOWER = ("sliding", "graph", "io", "labels", "chips", "datasets", "models", "losses", "metrics", "training",
         "inference", "evaluation", "plots", "explain", "export", "windows.py", "config.py", "catalog.py", "summary.py")
ABOVE = ("geodefect.tasks", "geodefect.workflows", "geodefect.cli")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE), ast.parse(path.read_text())


def test_no_task_name_is_compared_outside_tasks():
    names = set(TASKS)
    offenders = []
    for rel, tree in _modules():
        if rel.parts[0] in ("tasks", "testing"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                if node.value == "roads" and not _in_compare(tree, node):
                    continue  # also the name of the road layer in roads.gpkg
                offenders.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not offenders, "task names outside geodefect/tasks/: " + ", ".join(offenders)


def _in_compare(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(n is target for n in ast.walk(node)):
            return True
    return False


def test_lower_layers_do_not_import_upwards():
    offenders = []
    for rel, tree in _modules():
        if rel.parts[0] not in LOWER:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(ABOVE):
                offenders.append(f"{rel}:{node.lineno} imports {node.module}")
    assert not offenders, "; ".join(offenders)


def test_tasks_do_not_import_workflows_or_cli():
    for rel, tree in _modules():
        if rel.parts[0] != "tasks":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("geodefect.workflows", "geodefect.cli")), f"{rel}: {node.module}"


def test_no_import_cycles():
    """No two modules import each other, directly or around a loop (function-level imports included)."""
    import networkx as nx

    graph = nx.DiGraph()
    for rel, tree in _modules():
        name = "geodefect." + ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("geodefect."):
                graph.add_edge(name, node.module)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles[:5]
