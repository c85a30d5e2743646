"""The package's floor plan, read from the source (the ``ast`` of every module, nothing imported):
no import cycle, counting the ``__init__`` of every package an import passes through; recipes import no
other recipe; imports point down the floors (command line, experiments, pipeline, recipes, train and model,
data and utilities); at most MAX_LEVELS import levels among the recipes, the pipeline and the experiments;
the vocabulary imports no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import hrkd_cli

PACKAGE = Path(hrkd_cli.__file__).parent

# The most modules on one chain of imports among recipes/, experiments/ and pipeline.py (the floor plan's bound;
# the longest is 4, e.g. fewshot -> sweep -> pipeline -> distill).
MAX_LEVELS = 6
PIPELINE = "hrkd_cli.pipeline"


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
    assert "hrkd_cli.train.students" in graph["hrkd_cli.recipes.distill"]
    # prepare imports hrkd_cli.data.store, which runs hrkd_cli.data's __init__ first
    assert {"hrkd_cli.data.store", "hrkd_cli.data"} <= graph["hrkd_cli.recipes.prepare"]


def test_no_import_cycle_even_through_package_inits():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle_through_an_init():
    toy = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": set()}
    assert cycles(toy) == [["p", "p.a", "p.b"]]


def test_recipes_import_no_other_recipe():
    graph = import_graph()
    edges = {(a.rpartition(".")[2], b.rpartition(".")[2]) for a, targets in graph.items() if in_package(a, "recipes")
             for b in targets if in_package(b, "recipes")}
    assert edges == set(), "a recipe imports another recipe: move the shared part below recipes/ or into the pipeline"


def longest_chain(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """The longest path of imports that stays among ``members`` (the graph restricted to them has no cycle)."""
    best: dict[str, list[str]] = {}

    def chain(m: str) -> list[str]:
        if m not in best:
            best[m] = [m] + max((chain(t) for t in graph[m] if t in members), key=len, default=[])
        return best[m]

    return max((chain(m) for m in members), key=len, default=[])


def upper_floors(graph: dict[str, set[str]]) -> set[str]:
    return {m for m in graph if in_package(m, "recipes") or in_package(m, "experiments") or m == PIPELINE}


def test_chain_finder_counts_modules_along_the_longest_path():
    toy = {"a": {"b", "x"}, "b": set(), "x": {"y"}, "y": {"z"}, "z": set()}
    assert longest_chain(toy, {"a", "b", "x", "y"}) == ["a", "x", "y"]  # z is outside: not counted
    assert longest_chain(toy, set(toy)) == ["a", "x", "y", "z"]


def test_recipes_pipeline_and_experiments_stand_on_at_most_six_levels():
    graph = import_graph()
    chain = longest_chain(graph, upper_floors(graph))
    assert len(chain) >= 3, chain  # experiments -> pipeline -> a recipe, at least: the walk found the floors
    assert len(chain) <= MAX_LEVELS, " -> ".join(chain)


CLI = {"hrkd_cli.cli", "hrkd_cli.cli_common", "hrkd_cli.cli_experiments", "hrkd_cli.__main__"}


def floor(module: str) -> tuple[int, str]:
    """(height, name) of a module's floor (docs/code.md); an import may point to its own floor or one below."""
    if module in CLI:
        return 5, "command line"
    if module == "hrkd_cli.experiments" or in_package(module, "experiments"):
        return 4, "experiments"
    if module == PIPELINE:
        return 3, "pipeline"
    if module == "hrkd_cli.recipes" or in_package(module, "recipes"):
        return 2, "recipes"
    if any(module == f"hrkd_cli.{p}" or in_package(module, p) for p in ("train", "model")):
        return 1, "train and model"
    return 0, "data and utilities"


def test_floor_finder_places_modules():
    assert floor("hrkd_cli.cli")[1] == "command line" and floor("hrkd_cli.pipeline")[1] == "pipeline"
    assert floor("hrkd_cli.model.losses") == floor("hrkd_cli.train.trainer") == floor("hrkd_cli.train")
    assert floor("hrkd_cli.runs")[0] == floor("hrkd_cli.data.store")[0] == 0
    assert floor("hrkd_cli.recipes.teach")[0] < floor("hrkd_cli.experiments.sweep")[0]


def test_layers_point_down():
    """command line -> experiments -> pipeline -> recipes -> train and model -> data and utilities: no module
    imports one on a floor above its own (so nothing imports the CLI, and no utility reaches up into the models)."""
    upward = [f"{m} ({floor(m)[1]}) imports {t} ({floor(t)[1]})" for m, targets in sorted(import_graph().items())
              for t in sorted(targets) if floor(t)[0] > floor(m)[0]]
    assert upward == [], "\n".join(upward)


def test_the_vocabulary_imports_nothing_heavy():
    tree = ast.parse((PACKAGE / "vocabulary.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "typing"}
