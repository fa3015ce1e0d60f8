"""The packages of picozoo are layered: their import graph has no cycle.

Every module is parsed with ``ast`` (imports inside functions and under ``TYPE_CHECKING``
count too); an import of ``picozoo.X...`` from a module of package or top-level module ``Y``
is an edge ``Y -> X``. The layers, lowest first:

    errors -> settings, atomic, capture, onnx_files, provenance, threads, thirdparty
    -> picozoo (its __init__: __version__, PicozooError, Settings) -> yaml_strict,
    paddle_program -> paddle_dir -> hub, runtime -> native -> targets, catalog, describe,
    modelinfo, render -> resolve -> detect -> convert -> bench -> cli -> __main__

(detection agreement is detection logic: ``convert`` uses ``detect``; what runs a model is
:mod:`picozoo.resolve`, below both, and a conversion is passed into it).
``yaml_strict``, the one YAML loader, imports nothing of picozoo: it sits under ``paddle_dir``.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "picozoo"
ROOT = "picozoo"  # the package's own __init__ (``from picozoo import __version__``)

#: Every node's layer, lowest first: a node imports only from layers below its own.
LAYERS = (
    {"errors"},
    {"settings", "atomic", "capture", "onnx_files", "provenance", "threads", "thirdparty"},
    {ROOT},  # __version__, and lazy re-exports of PicozooError and Settings
    {"yaml_strict", "paddle_program", "naive_buffer"},  # YAML; Paddle, Lite programs as data
    {"paddle_dir"},
    {"hub", "runtime"},
    {"native"},  # a step in a child process, where a crash is one error line
    {"targets", "catalog", "describe", "modelinfo", "render"},
    {"resolve"},
    {"detect"},
    {"convert"},
    {"bench"},
    {"cli"},
    {"__main__"},
)


def _units() -> set[str]:
    """Subpackages and top-level modules: the nodes of the graph."""
    return {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}


def _unit_of(module: str, units: set[str]) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in units and parts[1] != "__init__":
        return parts[1]
    return ROOT


def _imported(path: Path, module: str) -> list[str]:
    """Absolute names of what ``module`` (file ``path``) imports from picozoo."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                prefix = ".".join(base)
                names = [node.module] if node.module else [a.name for a in node.names]
                found += [f"{prefix}.{n}" for n in names]
            elif node.module:
                found.append(node.module)
    return [n for n in found if n == ROOT or n.startswith(ROOT + ".")]


@functools.cache
def import_graph() -> dict[tuple[str, str], list[str]]:
    """``{(importer, imported): ["module -> name", ...]}`` between distinct nodes (parsed once
    per session; the tests only read it)."""
    units = _units()
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        module = ".".join(parts)
        for name in _imported(path, module):
            a, b = _unit_of(module, units), _unit_of(name, units)
            if a != b:
                edges[(a, b)].append(f"{module} -> {name}")
    return dict(edges)


def _cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    """One cycle of the graph as a list of nodes (first == last), or None."""
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in sorted(edges):
        succ[a].append(b)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in succ[node]:
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(succ):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_graph_sees_imports_inside_functions() -> None:
    """The parser is not blind: a lazy import (bench imports convert inside functions only)
    is an edge, and the known layers are there."""
    edges = import_graph()
    assert any("picozoo.bench.targets -> picozoo.convert" in e for e in edges[("bench", "convert")])
    assert ("convert", "detect") in edges and ("cli", "bench") in edges
    assert ("detect", "resolve") in edges and ("convert", "resolve") in edges


def test_no_two_packages_import_each_other() -> None:
    edges = import_graph()
    mutual = [
        f"{a} <-> {b}: " + "; ".join(edges[(a, b)] + edges[(b, a)])
        for a, b in sorted(edges)
        if a < b and (b, a) in edges
    ]
    assert not mutual, "packages importing each other:\n" + "\n".join(mutual)


def test_the_package_import_graph_has_no_cycle() -> None:
    edges = import_graph()
    cycle = _cycle(edges)
    assert cycle is None, (
        "import cycle "
        + " -> ".join(cycle)
        + ":\n"
        + "\n".join(f"  {a} -> {b}: {'; '.join(edges[(a, b)])}" for a, b in pairwise(cycle))
    )


def test_every_import_goes_down_the_layers() -> None:
    level = {node: i for i, nodes in enumerate(LAYERS) for node in nodes}
    unplaced = sorted(_units() - {"__init__"} - set(level))
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"
    upward = [
        f"{a} (layer {level[a]}) -> {b} (layer {level[b]}): {'; '.join(names)}"
        for (a, b), names in sorted(import_graph().items())
        if level[b] >= level[a]
    ]
    assert not upward, "imports that do not go down the layers:\n" + "\n".join(upward)


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {("a", "b"): ["x"], ("b", "c"): ["y"], ("c", "a"): ["z"], ("c", "d"): ["w"]}
    assert _cycle(edges) == ["a", "b", "c", "a"]
    assert _cycle({("a", "b"): ["x"], ("a", "c"): ["y"], ("b", "c"): ["z"]}) is None
