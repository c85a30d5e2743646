"""Imports sit at the top of each module. One inside a function is allowed only with its reason in a comment
marked ``lazy:`` on the import's line or in the comment lines right above it; a block of consecutive imports
under one such comment shares it. The reason is what the import costs at start-up and which command needs none of it, as
tools/startup_time.py measures it (``# lazy: torch costs ~1.6 s at start-up; --help needs none``). Read from
the source (the ``ast`` of every module), nothing imported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hrkd_cli

PACKAGE = Path(hrkd_cli.__file__).parent

MARKER = re.compile(r"#\s*lazy:\s*\S")


def _statement_lists(node: ast.AST):
    """Every list of statements under ``node`` (bodies, else and finally branches, except handlers, match cases)."""
    for sub in ast.walk(node):
        for field in ("body", "orelse", "finalbody"):
            value = getattr(sub, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value


def _comment_above(lines: list[str], lineno: int) -> list[str]:
    """The lines above line ``lineno`` (1-based) up to the first that is not a comment, plus the first such line
    (a ``try:  # lazy: ...`` that opens the block)."""
    above = []
    for line in reversed(lines[: lineno - 1]):
        above.append(line)
        if not line.lstrip().startswith("#"):
            break
    return above


def unexplained_imports(source: str) -> list[int]:
    """Line numbers of the imports inside a function (at any depth) that no ``lazy:`` comment explains."""
    lines = source.splitlines()
    bad, seen = [], set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for statements in _statement_lists(fn):
            if id(statements) in seen:  # a nested function's bodies are reached from the outer one too
                continue
            seen.add(id(statements))
            explained_above = None  # the import just before, when it is explained and ends on the line above
            for stmt in statements:
                if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    explained_above = None
                    continue
                own_and_above = lines[stmt.lineno - 1: stmt.end_lineno] + _comment_above(lines, stmt.lineno)
                explained = any(MARKER.search(line) for line in own_and_above) or (
                    explained_above is not None and explained_above.end_lineno == stmt.lineno - 1)
                if not explained:
                    bad.append(stmt.lineno)
                explained_above = stmt if explained else None
    return sorted(bad)


def checked_modules() -> list[Path]:
    """Every module of hrkd_cli."""
    return sorted(PACKAGE.rglob("*.py"))


def test_every_function_level_import_says_why_it_is_lazy():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in checked_modules()
                 for line in unexplained_imports(path.read_text(encoding="utf-8"))]
    assert not offenders, "imports inside functions without a '# lazy: <reason>' comment: " + ", ".join(offenders)


def test_the_check_reaches_every_package():
    checked = {p.relative_to(PACKAGE).as_posix() for p in checked_modules()}
    assert {"cli.py", "cli_common.py", "cli_experiments.py", "data/store.py", "compare/statistics.py",
            "recipes/inspect_ratios.py", "train/trainer.py", "model/pretrained.py", "experiments/report.py"} <= checked
    packages = {p.parent.name for p in PACKAGE.rglob("__init__.py")} - {PACKAGE.name}
    assert packages <= {name.split("/")[0] for name in checked}


# A module in which every import marked FLAG must be reported, and no other.
TOY = '''\
import os  # module level: always fine


def unexplained():
    import json  # FLAG
    return json


def same_line():
    import json  # lazy: a reason on the import's own line
    return json


def line_above():
    # lazy: a reason on the line above covers the block below it
    import json
    from pathlib import (
        Path,
    )
    import re
    return json, Path, re


def comment_of_two_lines():
    # lazy: the reason starts here
    # and goes on on a second line
    import json
    return json


def block_broken_by_code():
    # lazy: covers the first import only
    import json
    x = 1
    import re  # FLAG
    return json, re, x


def comment_not_adjacent():
    # lazy: a blank line separates this from the import

    import json  # FLAG
    return json


def empty_reason():
    # lazy:
    import json  # FLAG
    return json


def nested_and_branches():
    def inner():
        import json  # FLAG
        return json
    try:  # lazy: an optional extra
        import csv
    except ImportError:
        csv = None
    if csv:
        import re  # FLAG
    return inner, re


class Holder:
    def method(self):
        import json  # FLAG
        return json
'''


def test_the_check_fails_on_an_unexplained_import():
    flagged = [n for n, line in enumerate(TOY.splitlines(), start=1) if line.endswith("# FLAG")]
    assert len(flagged) == 7
    assert unexplained_imports(TOY) == flagged
    assert unexplained_imports("def f():\n    # lazy: torch costs ~1.6 s\n    import torch\n") == []
    assert unexplained_imports("def f():\n    import torch\n") == [2]
