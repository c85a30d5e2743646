"""HRKD Table 4: full HRKD and its ablations, each row compared with full HRKD like Tables 2/3 compare with
TinyBERT-KD (Welch, paired t over matched seeds, the sign-flip test over test examples)."""

from __future__ import annotations

import hashlib
import json

from hrkd_cli.compare.records import ABLATION_LABELS, RunRecord, check_same_data, domains_of
from hrkd_cli.compare.statistics import STD_NOTE
from hrkd_cli.compare.tables import ResultTable, compare_with, group_rows, legend_notes, mark_best, pairing_notes
from hrkd_cli.vocabulary import ABLATIONS, PROGRESSIVE_ABLATIONS


def ablation_label(drop: tuple[str, ...]) -> str:
    """Paper labels for the cumulative configurations; '(alone)' for single switches off that path."""
    if not drop:
        return "HRKD"
    k = len(drop)
    if tuple(drop) == tuple(PROGRESSIVE_ABLATIONS[:k]):
        return f"- {ABLATION_LABELS[drop[-1]]}"
    if k == 1:
        return f"- {ABLATION_LABELS[drop[0]]} (alone)"
    return " ".join(f"- {ABLATION_LABELS.get(d, d)}" for d in drop) + " (together)"


def _distill_key(r: RunRecord, leave_out: tuple[str, ...]) -> str:
    dump = json.loads(json.dumps({k: r.preset.get(k) for k in ("data", "teacher", "student", "distill")}))
    for name in leave_out:
        (dump.get("distill") or {}).pop(name, None)
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def variant_key(r: RunRecord) -> str:
    """What an ablation shares with its full-HRKD reference: every preset section but distill.drop and the seed."""
    return _distill_key(r, ("drop",))


# distill fields that act only through the relational graph (prototypes, GAT, compare-aggregate)
GRAPH_ONLY_FIELDS = ("method", "drop", "graph_mode", "graph_lr", "gat_heads", "gat_dropout", "prototype_tokens",
                     "domain_rel_scale", "graph", "ratio_temperature", "ratio_floor", "excess_beta", "excess_decay",
                     "meta_objective", "ratio_kl")


def stands_for_domain_rel(r: RunRecord, family: list[RunRecord]) -> bool:
    """A multi-domain TinyBERT-KD run is HRKD with every switch dropped at the released code's scale (docs/method.md, Ablations):
    no graph, Eq. 5 with unit weights. It serves an HRKD family whose other settings it shares."""
    ref = family[0]
    return (r.role == "student" and r.method == "multi-domain" and not r.drop and r.data_hash == ref.data_hash
            and (ref.preset.get("distill") or {}).get("domain_rel_scale", "eq5") == "eq5"
            and _distill_key(r, GRAPH_ONLY_FIELDS) == _distill_key(ref, GRAPH_ONLY_FIELDS))


def ablation_drop(r: RunRecord) -> tuple[str, ...]:
    """The switches a run has off, as Table 4 counts them: a multi-domain run has all of them off."""
    return tuple(ABLATIONS) if r.method == "multi-domain" else r.drop


def ablation_tables(records: list[RunRecord], split: str = "test") -> list[ResultTable]:
    """Table 4 for every HRKD configuration that has a full run and at least one ablation beside it."""
    hrkd = [r for r in records if r.role == "student" and r.method == "hrkd"]
    if not hrkd:
        return []
    data_hash = check_same_data(hrkd)
    families: dict[str, list[RunRecord]] = {}
    for r in hrkd:
        families.setdefault(variant_key(r), []).append(r)
    tables = []
    for fam in families.values():
        if not any(set(r.drop) == set(ABLATIONS) for r in fam):
            fam = fam + [r for r in records if stands_for_domain_rel(r, fam)]
        if not any(not r.drop for r in fam) or not any(ablation_drop(r) for r in fam):
            continue
        domains = domains_of(fam, split)
        rows = group_rows(fam, split, domains)
        full = next(row for row in rows if not ablation_drop(row.first))
        for row in rows:
            row.label = ablation_label(tuple(d for d in ABLATIONS if d in ablation_drop(row.first)))
        rows.sort(key=lambda row: (bool(ablation_drop(row.first)), row.label.endswith(")"), len(ablation_drop(row.first)),
                                   [ABLATIONS.index(d) for d in ablation_drop(row.first)]))
        base = full.stats.get("average")
        for row in rows:
            avg = row.stats.get("average")
            if row is full:
                row.p_note = "ref"
                row.extra["Δ Average"] = "0.0"
                continue
            if avg and base:
                row.extra["Δ Average"] = f"{avg.mean - base.mean:+.1f}"
            compare_with(row, full, split, domains)
        mark_best(rows, [*domains, "average"])
        tag = full.first.tag
        notes = [STD_NOTE, "Δ Average: mean average accuracy minus that of full HRKD (points)",
                 *legend_notes("full HRKD"), *pairing_notes(rows),
                 "rows without a suffix follow the paper's cumulative order: each also drops the ones above it",
                 "bold: best, underlined: second best"]
        tables.append(ResultTable(f"Table 4: ablations of {full.first.record.get('row', 'HRKD')}" + (f" [{tag}]" if tag != "hrkd" else ""),
                                  split, domains, rows, data_hash, extra_columns=["Δ Average"], p_label="p vs HRKD", notes=notes))
    return tables
