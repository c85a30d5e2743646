"""The documentation's links and commands are real.

Every relative link in README.md, docs/*.md and results/*.md must lead to a file or folder of the
repository (and a `#anchor` to a heading of the Markdown file it names, as a code-hosting site slugs it).
Every `hrkd` command in a fenced block or an inline code span must name real subcommands and real flags of
the CLI, read from the typer app itself (no subprocess per line). Placeholders (`RUN`, `N`, `...`) are fine
where the CLI takes a positional argument or an option value.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from hrkd_cli.cli import app

REPO = Path(__file__).resolve().parents[1]


def doc_files(root: Path = REPO) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "results").glob("*.md"))]


# ---------------------------------------------------------------- Markdown: code, headings, links

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s+(\S+)", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def split_fences(text: str) -> tuple[str, list[list[str]]]:
    """(the text outside fenced blocks, with each block's lines blanked; the blocks' lines)."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        if FENCE.match(line):
            if block is None:
                block = []
            else:
                blocks.append(block)
                block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    if block is not None:
        blocks.append(block)
    return "\n".join(prose), blocks


def inline_spans(prose: str) -> list[str]:
    return [re.sub(r"\s+", " ", m.group(2)).strip() for m in INLINE_CODE.finditer(prose)]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: rendered text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get -1, -2, ...)."""
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def link_targets(path: Path) -> list[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    prose = INLINE_CODE.sub("code", prose)  # a link inside code is not a link
    return [m.group(1) for m in LINK.finditer(prose)] + [m.group(1) for m in REF_LINK.finditer(prose)]


def link_problems(path: Path, root: Path = REPO) -> list[str]:
    """Each relative link of ``path`` that does not resolve, as 'file: link: why'."""
    problems = []
    for target in link_targets(path):
        if SCHEME.match(target):
            continue  # http(s), mailto: not ours to check offline
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: {target}"
        try:
            dest.relative_to(root.resolve())
        except ValueError:
            problems.append(f"{where}: leads outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


# ---------------------------------------------------------------- commands against the CLI

ROOT_COMMAND = typer.main.get_command(app)
COMMAND_START = re.compile(r"(^|[;&|(]\s*)hrkd(\s|$)|-m\s+hrkd_cli(\s|$)")
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")"}
REDIRECTS = {"<", ">", ">>", "2>", "2>>", "&>"}


def _options(cmd) -> dict:
    """Flag spelling -> click parameter, for the options of one command (plus --help)."""
    opts = {"--help": None}
    for p in cmd.params:
        if p.param_type_name == "option":
            for name in [*p.opts, *p.secondary_opts]:
                opts[name] = p
    return opts


def _takes_value(param) -> bool:
    return param is not None and not getattr(param, "is_flag", False) and not getattr(param, "count", False)


def command_problems(tokens: list[str]) -> list[str]:
    """Problems with one `hrkd ...` command given as tokens after `hrkd`: unknown subcommands and flags."""
    cmd, path, problems = ROOT_COMMAND, ["hrkd"], []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and tok != "-":
            name = tok.split("=", 1)[0]
            opts = _options(cmd)
            if name not in opts:
                problems.append(f"{' '.join(path)}: no option {name}")
            elif _takes_value(opts[name]) and "=" not in tok:
                i += 1  # the option's value, whatever it looks like
        elif getattr(cmd, "commands", None) is not None:
            if tok in cmd.commands:
                cmd = cmd.commands[tok]
                path.append(tok)
            else:
                problems.append(f"{' '.join(path)}: no subcommand {tok!r} (choose from {', '.join(cmd.commands)})")
                break
        i += 1
    return problems


def hrkd_commands(line: str) -> list[list[str]]:
    """The `hrkd` commands of one shell line, each as its tokens after `hrkd` (or after `-m hrkd_cli`)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands, segment, skip = [], [], False
    for tok in tokens + [";"]:
        if skip:
            skip = False
            continue
        if tok in REDIRECTS:
            skip = True  # the redirection's file
            continue
        if tok in SEPARATORS:
            if segment and segment[0] == "hrkd":
                commands.append(segment[1:])
            elif "hrkd_cli" in segment and segment.index("hrkd_cli") > 0 and segment[segment.index("hrkd_cli") - 1] == "-m":
                commands.append(segment[segment.index("hrkd_cli") + 1:])
            segment = []
        else:
            segment.append(tok)
    return commands


def doc_command_lines(path: Path) -> list[str]:
    """Shell lines that run `hrkd`: from fenced blocks (continuations joined) and inline code spans."""
    prose, blocks = split_fences(path.read_text(encoding="utf-8"))
    lines = []
    for block in blocks:
        joined = "\n".join(block).replace("\\\n", " ")
        lines += [line.strip() for line in joined.splitlines()]
    lines += inline_spans(prose)
    return [line for line in lines if COMMAND_START.search(line) and not line.startswith("#")]


def doc_command_problems(path: Path, root: Path = REPO) -> tuple[int, list[str]]:
    """(how many commands were checked, the problems found) for one file."""
    count, problems = 0, []
    for line in doc_command_lines(path):
        try:
            commands = hrkd_commands(line)
        except ValueError as err:  # unbalanced quotes
            problems.append(f"{path.relative_to(root)}: {line!r}: {err}")
            continue
        for tokens in commands:
            count += 1
            problems += [f"{path.relative_to(root)}: {line!r}: {p}" for p in command_problems(tokens)]
    return count, problems


# ---------------------------------------------------------------- the documentation itself


def test_every_documentation_file_is_found():
    files = doc_files()
    names = {str(f.relative_to(REPO)) for f in files}
    assert {"README.md", "docs/usage.md", "docs/method.md", "results/README.md"} <= names
    assert all(f.is_file() for f in files)


def test_every_relative_link_resolves():
    problems, checked = [], 0
    for f in doc_files():
        checked += len(link_targets(f))
        problems += link_problems(f)
    assert checked > 50, f"only {checked} links found: is the link pattern still right?"
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_hrkd_command_uses_real_subcommands_and_flags():
    problems, checked = [], 0
    for f in doc_files():
        n, p = doc_command_problems(f)
        checked += n
        problems += p
    assert checked > 100, f"only {checked} hrkd commands found: is the extraction still right?"
    assert not problems, "commands the CLI does not have:\n" + "\n".join(problems)


def test_readme_stays_short():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 260


# ---------------------------------------------------------------- the checks catch what they should


@pytest.mark.parametrize("line, expected", [
    ("hrkd distill --preset demo --seeds 3 --set distill.graph='\"residual\"'", []),
    ("hrkd presets show amazon-cpu", []),
    ("hrkd bench students --preset amazon-cpu --no-onnx --json out.json", []),
    ("hrkd predict RUN --domain books --input - -o labels.jsonl", []),
    ("hrkd --version", []),
    ("hrkd distill --preset demo --bogus 3", ["hrkd distill: no option --bogus"]),
    ("hrkd distil --preset demo", ["hrkd: no subcommand 'distil'"]),
    ("hrkd presets shw demo", ["hrkd presets: no subcommand 'shw'"]),
    ("hrkd bench distill --no-onnx", ["hrkd bench distill: no option --no-onnx"]),
])
def test_command_check(line, expected):
    problems = [p for tokens in hrkd_commands(line) for p in command_problems(tokens)]
    assert [p.split(" (choose")[0] for p in problems] == expected


def test_commands_are_found_in_compound_lines_and_not_in_other_words():
    line = "pip install -e . && hrkd distill --preset demo; hrkd eval RUN > out.txt  # hrkd nothing"
    assert hrkd_commands(line) == [["distill", "--preset", "demo"], ["eval", "RUN"]]
    assert hrkd_commands("torchrun --nproc_per_node 2 -m hrkd_cli teach --preset demo") == [["teach", "--preset", "demo"]]
    assert not COMMAND_START.search("from hrkd_cli.model.export import model_domains")
    assert not COMMAND_START.search("see hrkd.json")


def test_slugs_follow_the_hosting_site():
    assert slug("The paper's data: Amazon and MNLI") == "the-papers-data-amazon-and-mnli"
    assert slug("`hrkd bench students`") == "hrkd-bench-students"
    assert slug("Few-shot (Figure 2)") == "few-shot-figure-2"


def test_link_check_finds_missing_files_anchors_and_escapes(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## A section\n\n## A section\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/a.md) [ok anchor](docs/a.md#a-section) [repeat](docs/a.md#a-section-1) [web](https://x.org/y)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nothing) [outside](../elsewhere.md) [self](#title)\n"
        "`[in code](docs/c.md)`\n\n```\n[in a block](docs/d.md)\n```\n")
    problems = link_problems(readme, root=tmp_path)
    assert [p.split(": ")[1] for p in problems] == ["docs/b.md", "docs/a.md#nothing", "../elsewhere.md", "#title"]
