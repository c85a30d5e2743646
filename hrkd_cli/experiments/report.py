"""`hrkd report RESULTS_DIR`: one Markdown file with every table the results allow.

RESULTS_DIR is a preset's run_dir. The report holds, when the runs exist:
- the prepared data (HRKD Table 1 counts) and its manifest hash;
- Tables 2/3: teacher and student rows of RESULTS_DIR (ablations excluded);
- Table 4: HRKD and its ablations;
- Figure 2: the few-shot improvement rates from RESULTS_DIR/fewshot/rate-*/, with a PNG;
- a case study of the ratios (HRKD Tables 5 and 6) from an HRKD student;
- every run with its seed, preset hash, data hash and wall time, the resolved
  preset of the reference run and how the other rows' presets differ from it;
- the environment: package versions, device and precision.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import time
from pathlib import Path

import torch

from hrkd_cli.compare.ablation import ablation_tables
from hrkd_cli.compare.records import RunRecord, check_same_data, results_records
from hrkd_cli.compare.render import to_markdown
from hrkd_cli.compare.tables import ResultTable, compare_table
from hrkd_cli.config import preset_to_toml, recorded_preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.fewshot_results import fewshot_results, plot_fewshot, sample_dirs
from hrkd_cli.fsio import read_json_if_present, write_text_atomic
from hrkd_cli.runs import Say
from hrkd_cli.runtime import cpu_supports_bf16

TABLE_TITLES = {"mnli": "Table 2 equivalent: MNLI", "amazon": "Table 3 equivalent: Amazon Reviews"}
FIGURE_NAME = "figure2-fewshot.png"


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def data_section(manifest: dict | None, data_hash: str) -> list[str]:
    lines = ["## Data", ""]
    if manifest is None or (data_hash and manifest.get("hash") != data_hash):
        lines += [f"Data manifest hash of the runs: `{data_hash}` (the prepared data in this directory is "
                  f"{'missing' if manifest is None else 'a different one: `' + str(manifest.get('hash')) + '`'})", ""]
        return lines
    lines += [f"- source: {manifest.get('source')}" + (f" ({manifest['source_path']})" if manifest.get("source_path") else ""),
              f"- manifest hash: `{manifest.get('hash')}`",
              f"- split seed {manifest.get('split_seed')}, max sequence length {manifest.get('max_seq_length')}, "
              f"tokenizer {manifest.get('tokenizer')}, sample rate {manifest.get('sample_rate')}", "",
              "| Domain | #Train | #Dev | #Test |", "|---|---:|---:|---:|"]
    for d in manifest.get("domains", []):
        c = manifest["counts"][d]
        lines.append(f"| {_md(d)} | {c['train']['total']} | {c['dev']['total']} | {c['test']['total']} |")
    lines.append("")
    return lines


def main_table(records: list[RunRecord], source: str, split: str) -> ResultTable | None:
    rows = [r for r in records if not (r.role == "student" and r.drop)]
    if not rows:
        return None
    title = TABLE_TITLES.get(source, f"Tables 2/3 layout: {source or 'results'}")
    table = compare_table(rows, split, title=f"{title} (accuracy %, {split})")
    table.per_seed = True  # the report keeps each seed's average below the table
    return table


# ---------------------------------------------------------------- case study


def _hrkd_run(records: list[RunRecord]) -> RunRecord | None:
    cands = [r for r in records if r.role == "student" and r.method == "hrkd" and not r.drop]
    if not cands:
        return None
    cands.sort(key=lambda r: (r.tag != "hrkd", r.seed if isinstance(r.seed, int) else 0))
    return cands[0]


def case_study_section(records: list[RunRecord], seed: int = 0) -> list[str]:
    run = _hrkd_run(records)
    if run is None:
        return []
    lines = ["## Case study: ratios of one example per domain (HRKD Tables 5 and 6 layout)", ""]
    # lazy: these bring transformers and datasets, ~3.5 s at start-up on top of the rest of the report
    # (tools/startup_time.py); `hrkd report --no-case-study` and results without an HRKD student need none
    from hrkd_cli.data.store import load_prepared
    from hrkd_cli.model.checkpoint import read_meta
    from hrkd_cli.recipes.inspect_ratios import example_ratios, ratio_log, resolve_checkpoint, sample_examples

    try:
        ckpt = resolve_checkpoint(run.path)
        meta = read_meta(ckpt)
        ddir = Path(meta.get("data_dir", ""))
        if not ddir.is_dir():
            raise HrkdError(f"its prepared data {ddir} is gone")
        examples = sample_examples(load_prepared(ddir), meta["domains"], None, seed)
        rel = example_ratios(ckpt, examples)
        log = ratio_log(ckpt)
    except (HrkdError, OSError, KeyError) as err:
        return lines + [f"_Skipped: {err}_", ""]
    lines += [f"Student `{run.path}` (`{ckpt.name}` checkpoint), one test example per domain drawn with seed {seed} "
              f"(`hrkd inspect-ratios {run.path} --sample --seed {seed}`); graph in eval mode.", "",
              "| Domain | Label | Text | Domain-relational ratio (layers 0..M) | Hierarchical similarity ratio (layers 1..M) |",
              "|---|---|---|---|---|"]
    for d, e in enumerate(examples):
        ratios = "[" + ", ".join(f"{r:.2f}" for r in rel.ratios[:, d].tolist()) + "]"
        sims = ", ".join("[" + ", ".join(f"{x:.2f}" for x in a[d].tolist()) + "]" for a in rel.similarity)
        text = e["text"] if len(e["text"]) <= 90 else e["text"][:87] + "..."
        lines.append(f"| {_md(e['domain'])} | {_md(e.get('label', ''))} | {_md(text)} | {ratios} | {sims} |")
    lines.append("")
    uniform = float((rel.ratios - 1.0 / rel.ratios.shape[1]).abs().max()) < 5e-3
    if uniform:
        lines += ["In eval mode the domain-relational ratios are (nearly) uniform, as expected of a frozen random "
                  "graph without dropout (see `hrkd_cli/model/graph.py`); the ratios logged during training are below.", ""]
    if log:
        domains = meta["domains"]
        last, first = log[-1], log[0]
        lines += [f"Domain-relational ratios logged during training (train mode), step {first['step']} → step {last['step']}:", "",
                  "| Layer | " + " | ".join(_md(d) for d in domains) + " |", "|---:|" + "---:|" * len(domains)]
        for m in range(len(last["ratios"])):
            lines.append(f"| {m} | " + " | ".join(f"{a:.3f} → {b:.3f}" for a, b in zip(first["ratios"][m], last["ratios"][m])) + " |")
        lines.append("")
    return lines


# ---------------------------------------------------------------- runs, presets, environment


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def runs_section(groups: list[tuple[str, list[RunRecord]]]) -> list[str]:
    lines = ["## Runs", "", "| Table | Row | Seed | Run directory | Preset | Preset hash | Data hash | Test avg | Wall time (s) |",
             "|---|---|---:|---|---|---|---|---:|---:|"]
    total = 0.0
    for name, records in groups:
        for r in sorted(records, key=lambda r: (r.role != "teacher", r.record.get("row", ""), str(r.path))):
            avg = (r.record.get("test") or {}).get("average")
            wall = float(r.record.get("wall_time_s") or 0.0)
            total += wall
            ph = r.record.get("preset_hash") or _teacher_hash(r)
            lines.append(f"| {name} | {_md(r.record.get('row', r.tag))} | {r.seed} | `{r.path}` | {_md(r.preset.get('name', '?'))} | "
                         f"`{ph}` | `{r.data_hash[:16]}` | {'-' if avg is None else f'{100 * avg:.2f}'} | {wall:.0f} |")
    lines += ["", f"Total recorded wall time: {total:.0f} s ({total / 3600:.2f} h). Preset hash: sha256 of the data, teacher, "
              "student and distill sections (seed excluded), for teachers of the teacher and data sections; data hash: the prepared data's manifest hash.", ""]
    return lines


def _teacher_hash(r: RunRecord) -> str:
    """Teachers are identified by their teacher and data sections (what `reusable_teacher` checks)."""
    try:
        return recorded_preset(r.preset).section_hash("teacher", "data") + " (teacher, data)"
    except Exception:
        return "-"


IGNORED_DIFF = ("name", "description", "run_dir", "seed")


def presets_section(records: list[RunRecord]) -> list[str]:
    ref = _hrkd_run(records) or next((r for r in records if r.role == "student"), None) or (records[0] if records else None)
    if ref is None or not ref.preset:
        return []
    try:
        toml = preset_to_toml(recorded_preset(ref.preset))
    except Exception:  # an older record whose preset no longer validates: show the dump
        toml = json.dumps(ref.preset, indent=2)
    lines = ["## Presets", "", f"Reference preset: that of `{ref.path}` ({ref.record.get('row')}).", "",
             "<details><summary>resolved preset (TOML)</summary>", "", "```toml", toml.rstrip(), "```", "", "</details>", "",
             "How the other runs' presets differ from it (student rows; name, description, run_dir and seed ignored):", "",
             "| Row | Run directory | Differences |", "|---|---|---|"]
    base = _flatten(ref.preset)
    seen = {(ref.role, ref.record.get("preset_hash") or str(ref.path))}
    for r in records:
        key = (r.role, r.record.get("preset_hash") or str(r.path))
        if key in seen or r.path == ref.path:
            continue
        seen.add(key)
        flat = _flatten(r.preset)
        diffs = [f"{k}={json.dumps(flat.get(k))}" for k in sorted(set(base) | set(flat))
                 if k.split(".")[0] not in IGNORED_DIFF and k not in IGNORED_DIFF and base.get(k) != flat.get(k)]
        if r.role == "teacher":
            diffs = [d for d in diffs if d.startswith(("teacher.", "data."))]
        lines.append(f"| {_md(r.record.get('row', r.tag))} | `{r.path}` | {_md(', '.join(diffs) or 'none')} |")
    lines.append("")
    return lines


def environment_section(records: list[RunRecord]) -> list[str]:
    def version(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "-"

    here_cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    here_precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp32") if here_cuda else ("bf16" if cpu_supports_bf16() else "fp32")
    lines = ["## Environment", "", "Recorded by the runs:", "",
             "| Python | torch | transformers | Device | Precision (requested) | Processes | Runs |", "|---|---|---|---|---|---:|---:|"]
    envs: dict[tuple, int] = {}
    for r in records:
        e = r.record.get("environment") or {}
        rt = r.preset.get("runtime") or {}
        device = e.get("cuda") or f"CPU ({e.get('processor') or e.get('machine') or '?'})"
        key = (e.get("python", "?"), e.get("torch", "?"), e.get("transformers", "?"), device, rt.get("precision", "?"), rt.get("nproc", 1))
        envs[key] = envs.get(key, 0) + 1
    for key, n in envs.items():
        lines.append("| " + " | ".join(_md(x) for x in key) + f" | {n} |")
    lines += ["", "Precision `auto` means bf16 autocast where the hardware supports it (CUDA with bf16, or a CPU with "
              "AVX512-BF16/AMX), fp32 otherwise.", "",
              "This report was written on: "
              f"Python {platform.python_version()}, hrkd {version('hrkd')}, torch {torch.__version__}, "
              f"transformers {version('transformers')}, scipy {version('scipy')}, numpy {version('numpy')}, "
              f"matplotlib {version('matplotlib')}; {platform.platform()}; "
              f"device {here_cuda or 'CPU (' + (platform.processor() or platform.machine()) + ')'}, "
              f"`auto` precision here resolves to {here_precision}.", ""]
    return lines


# ---------------------------------------------------------------- the recipe


def report(results_dir: Path, out: Path | None = None, split: str = "test", case_study: bool = True,
           say: Say = print) -> Path:
    """Write the report (default <results_dir>/report.md) and the Figure 2 PNG beside it; return its path."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HrkdError(f"{results_dir}: no such results directory")
    out = Path(out) if out else results_dir / "report.md"
    records = results_records(results_dir)
    samples = sample_dirs(results_dir)  # rate-<r> and count-<N> points
    fewshot = fewshot_results(results_dir, split=split) if samples else None
    if not records and not (fewshot and fewshot.points):
        raise HrkdError(f"{results_dir}: no finished runs under teacher/, student/ or fewshot/rate-*/, count-*/")
    manifest = read_json_if_present(results_dir / "data" / "manifest.json")
    source = (manifest or {}).get("source") or next(((r.preset.get("data") or {}).get("source", "") for r in records), "")

    lines = [f"# HRKD results: `{results_dir}`", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by `hrkd report`. Accuracies in % on the {split} split; "
             "student rows are means over seeds ± sample standard deviation.", ""]
    contents: list[str] = []
    body: list[str] = []
    data_hash = ""
    if records:
        data_hash = check_same_data(records)
        body += data_section(manifest, data_hash)
    table = main_table(records, source, split) if records else None
    if table is not None:
        contents.append(table.title)
        body += ["## " + table.title, "", to_markdown(table, heading="")]
    for t in ablation_tables(records, split) if records else []:
        contents.append(t.title)
        body += ["## " + t.title, "", to_markdown(t, heading="")]
    if fewshot is not None and fewshot.points:
        contents.append("Figure 2: few-shot learning")
        body += ["## Figure 2 equivalent: few-shot learning", ""]
        if fewshot.methods:
            png = plot_fewshot(fewshot, out.parent / FIGURE_NAME)
            rel = png.relative_to(out.parent) if png.parent == out.parent else png
            body += [f"![Improvement rate over BERT-single -(TinyBERT-KD)-> BERT_S per sample rate]({rel})", ""]
        shown = {p.label for p in fewshot.points}
        body += [fewshot.to_markdown(heading=""), "Few-shot results directories: " +
                 ", ".join(f"`{d}`" for smp, d in samples if smp.label in shown), ""]
        few_records = [(f"few-shot {smp.label}", results_records(d)) for smp, d in samples]
    else:
        few_records = []
    if case_study and records:
        cs = case_study_section(records)
        if cs:
            contents.append("Case study")
            body += cs
    if not contents:
        body += ["_No table can be built yet: the runs lack student rows._", ""]
    body += runs_section([("main", records), *few_records])
    body += presets_section(records or [r for _, recs in few_records for r in recs])
    body += environment_section(records + [r for _, recs in few_records for r in recs])
    lines += ["Contents: " + "; ".join(contents) + ".", ""] if contents else []
    write_text_atomic(out, "\n".join(lines + body).rstrip() + "\n")
    say(f"wrote {out}")
    return out
