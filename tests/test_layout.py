"""The package's floor plan, read from the source (the ``ast`` of every module, nothing imported):
no import cycle, counting the ``__init__`` of every package an import passes through; recipes import no
other recipe (beyond the listed edges still to untangle); experiments sit above the recipes and the CLI
above both; the vocabulary imports no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import hrkd_cli

PACKAGE = Path(hrkd_cli.__file__).parent

# Recipe -> recipe imports that remain (issue 30): each one is a prerequisite a recipe runs itself
# (prepare, teach) or a part shared between two recipes. The test fails on any edge not listed here and on a
# listed edge that is gone, so this list only shrinks.
KNOWN_RECIPE_EDGES = {
    ("baselines", "prepare"),
    ("baselines", "students"),
    ("distill", "baselines"),
    ("distill", "prepare"),
    ("distill", "students"),
    ("meta_teacher", "prepare"),
    ("students", "teach"),
    ("teach", "meta_teacher"),
    ("teach", "prepare"),
}


def modules() -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is a package __init__)} for every module of hrkd_cli."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imported_names(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every hrkd_cli name an import statement anywhere in the module names (relative imports resolved)."""
    package = name if is_package else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {n for n in names if n == "hrkd_cli" or n.startswith("hrkd_cli.")}


def import_graph() -> dict[str, set[str]]:
    """{module: modules it imports}; importing a.b.c also runs the __init__ of a and of a.b."""
    mods = modules()
    graph = {}
    for name, (path, is_package) in mods.items():
        targets = set()
        for imported in imported_names(ast.parse(path.read_text(encoding="utf-8")), name, is_package):
            while imported not in mods:  # `from pkg.mod import function`: the module is pkg.mod
                imported = imported.rpartition(".")[0]
            parts = imported.split(".")
            targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or several."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def in_package(module: str, package: str) -> bool:
    return module.startswith(f"hrkd_cli.{package}.")


def test_the_graph_is_read_whole():
    graph = import_graph()
    assert {"hrkd_cli.cli", "hrkd_cli.vocabulary", "hrkd_cli.recipes.distill", "hrkd_cli.experiments.sweep"} <= set(graph)
    assert "hrkd_cli.recipes.students" in graph["hrkd_cli.recipes.distill"]
    # prepare imports hrkd_cli.data.store, which runs hrkd_cli.data's __init__ first
    assert {"hrkd_cli.data.store", "hrkd_cli.data"} <= graph["hrkd_cli.recipes.prepare"]


def test_no_import_cycle_even_through_package_inits():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle_through_an_init():
    toy = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": set()}
    assert cycles(toy) == [["p", "p.a", "p.b"]]


def test_recipes_import_no_other_recipe_beyond_the_listed_edges():
    graph = import_graph()
    edges = {(a.rpartition(".")[2], b.rpartition(".")[2]) for a, targets in graph.items() if in_package(a, "recipes")
             for b in targets if in_package(b, "recipes")}
    assert edges - KNOWN_RECIPE_EDGES == set(), "a recipe imports another recipe: move the shared part below recipes/"
    assert KNOWN_RECIPE_EDGES - edges == set(), "an edge is gone: take it off KNOWN_RECIPE_EDGES"


def test_layers_point_down():
    """Only the CLI imports experiments; only experiments and the CLI import recipes; nothing imports the CLI."""
    cli = {"hrkd_cli.cli", "hrkd_cli.cli_common", "hrkd_cli.cli_experiments", "hrkd_cli.__main__"}
    for module, targets in import_graph().items():
        for target in targets:
            if in_package(target, "experiments") and not in_package(module, "experiments"):
                assert module in cli, f"{module} imports {target}"
            if in_package(target, "recipes") and not (in_package(module, "recipes") or in_package(module, "experiments")):
                assert module in cli, f"{module} imports {target}"
            if target in cli - {"hrkd_cli.__main__"}:
                assert module in cli, f"{module} imports {target}"


def test_the_vocabulary_imports_nothing_heavy():
    tree = ast.parse((PACKAGE / "vocabulary.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "typing"}
