"""The package's import graph has no cycle, counting every import of a birdie module: module-level, inside
functions, and under ``TYPE_CHECKING`` (a lazy import that closes a loop is still a circle in the design)."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "birdie"


def _module_names(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module and package of ``package``."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The birdie modules ``module`` imports anywhere in its file. ``from pkg import name`` counts as an import of
    ``pkg.name`` when that is a module, else of ``pkg``; relative imports are resolved against the package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    return {target for target in targets if target in modules and target != module}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the birdie modules it imports."""
    modules = _module_names(package)
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[m0, m1, ..., m0]`` (each imports the next), or None when the graph is acyclic."""
    finished: set[str] = set()
    for root in sorted(graph):
        if root in finished:
            continue
        path = [root]
        pending = [iter(sorted(graph[root]))]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                finished.add(path.pop())
            elif following in path:
                return path[path.index(following):] + [following]
            elif following not in finished:
                path.append(following)
                pending.append(iter(sorted(graph[following])))
    return None


def test_find_cycle_reports_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_relative_function_level_and_type_checking_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import Thing\n")
    (package / "top.py").write_text("def make():\n    from .sub.leaf import value\n    import pkg.sub\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.sub": {"pkg.sub.leaf"}, "pkg.sub.leaf": {"pkg.top"},
                     "pkg.top": {"pkg.sub.leaf", "pkg.sub"}}
    assert find_cycle(graph) == ["pkg.sub", "pkg.sub.leaf", "pkg.top", "pkg.sub"]


def test_birdie_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "birdie.models.lm" in graph and graph["birdie.models.lm"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
