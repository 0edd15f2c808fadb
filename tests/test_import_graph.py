"""No import circle among nodeloom's modules, and the layers import only downwards.

The check reads the source with `ast` (nothing is imported) and builds the graph of which
module imports which, for every module of the package as pyproject.toml lays it out.

What counts as an import:
- every import that runs: at module level (inside `try`/`if` too) and inside a function or
  method. A lazy, in-function import does not remove a circle, it only hides it until the
  function is called (`Graph.loads` once imported the reader that imported `Graph`), so it
  counts the same.
- not the imports under `if TYPE_CHECKING:`. They never run and only name a type for an
  annotation, the way httpx's `_exceptions` names `_models.Response`: a node's context can
  name the catalog type whose definitions take a context, without either module needing
  the other to be loaded first.
- `from package import name` is an edge to `package.name` when that is a module, else to
  `package`; importing `a.b.c` is not counted as importing `a` and `a.b` (their `__init__`s
  run, but re-export lists there are not the dependencies this check is about).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: which top-level packages may import which (DESIGN.md: api, agents, executors -> node_registry -> core)
LAYERS = {
    "nodeloom.core": {"nodeloom.core"},
    "nodeloom.node_registry": {"nodeloom.core", "nodeloom.node_registry"},
    "nodeloom.executors": {"nodeloom.core", "nodeloom.node_registry", "nodeloom.executors"},
}


def package_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the installed `nodeloom` package."""
    mapping: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in sorted(mapping.items(), key=lambda item: -item[0].count(".")):
        for source in sorted((REPO / folder).rglob("*.py")):
            parts = list(source.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules.setdefault(".".join([package, *parts]), source)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: all of them but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for other in node.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    graph: dict[str, set[str]] = {}
    for name, source in modules.items():
        is_package = source.name == "__init__.py"
        targets: set[str] = set()
        for statement in _imports(ast.parse(source.read_text(), str(source))):
            if isinstance(statement, ast.Import):
                wanted = [alias.name for alias in statement.names]
            else:
                base = statement.module or ""
                if statement.level:
                    anchor = name.split(".")[: None if is_package else -1]
                    anchor = anchor[: len(anchor) - (statement.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                wanted = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                          for alias in statement.names]
            for target in wanted:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _describe(group: list[str], graph: dict[str, set[str]]) -> str:
    edges = [f"  {source} -> {target}" for source in group for target in sorted(graph[source]) if target in group]
    return "\n".join([", ".join(group), *edges])


def test_no_module_of_nodeloom_is_in_an_import_circle() -> None:
    graph = import_graph(package_modules())
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(_describe(group, graph) for group in found)


def test_the_packages_import_only_the_layers_below_them() -> None:
    graph = import_graph(package_modules())
    wrong = []
    for module, targets in graph.items():
        for layer, allowed in LAYERS.items():
            if module == layer or module.startswith(layer + "."):
                wrong += [f"{module} -> {target}" for target in sorted(targets)
                          if not any(target == ok or target.startswith(ok + ".") for ok in allowed)]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_lazy_circle_and_ignores_a_type_checking_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "b.py").write_text("from pkg.a import f\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import f\n")
    modules = {f"pkg.{name}": tmp_path / f"{name}.py" for name in ("a", "b", "c")}
    graph = import_graph(modules)
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set()}
    assert circles(graph) == [["pkg.a", "pkg.b"]]


def test_no_module_of_the_package_imports_the_test_helpers() -> None:
    graph = import_graph(package_modules())
    assert "nodeloom.testing" in graph
    assert sorted(module for module, targets in graph.items() if "nodeloom.testing" in targets) == []
