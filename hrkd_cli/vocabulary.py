"""The names hrkd uses for what it trains: methods, teacher kinds, graphs, ablations, and the directory tag
and row name of a run.

This module imports neither torch nor any other hrkd_cli module, so reading tables (hrkd_cli.compare),
validating a preset (hrkd_cli.config) and the training recipes all spell names from the same place.
docs/method.md says what each method computes, docs/adding-a-method.md how to add one.
"""

from __future__ import annotations

from typing import NamedTuple

# distill.method values, in the order `--method` lists them.
METHODS = ("tinybert", "multi-domain", "hrkd", "meta-kd", "mtn-kd")
# teacher.kind values.
TEACHER_KINDS = ("single", "mix", "mtl", "multi-domain", "meta")
ABLATIONS = ("self-attention", "comp-agg", "hierarchical", "domain-rel")
# The paper's cumulative order (HRKD Table 4).
PROGRESSIVE_ABLATIONS = ABLATIONS
# The relational read-outs (hrkd_cli/model/graph.py): "paper" is Eq. 7-12 as published, the others are this project's.
GRAPHS = ("paper", "residual", "excess")

# The method's name in a row: "<teacher> -(<method>)-> BERT_S".
METHOD_NAMES = {
    "tinybert": "TinyBERT-KD",
    "multi-domain": "TinyBERT-KD",
    "hrkd": "HRKD",
    "meta-kd": "Meta-distillation",
    "mtn-kd": "MTN-KD",
}
# The teacher kind a method distils from unless distill.teacher_kind says otherwise.
DEFAULT_TEACHER = {"tinybert": "single", "multi-domain": "multi-domain", "hrkd": "multi-domain", "meta-kd": "meta",
                   "mtn-kd": "single"}
TEACHER_ROW_NAMES = {
    "single": "BERT-single",
    "mix": "BERT-mix",
    "mtl": "BERT-mtl",
    "multi-domain": "HRKD-teacher",
    "meta": "Meta-teacher",
}
# Methods that train one student per domain or several teachers' students (the Meta-KD baselines' settings apply).
BASELINE_METHODS = ("meta-kd", "mtn-kd")

# Relational settings that name a run when they differ from their defaults (short name, field).
RELATIONAL_CHOICES = (("tau", "ratio_temperature"), ("floor", "ratio_floor"), ("beta", "excess_beta"),
                      ("decay", "excess_decay"), ("outer-", "meta_objective"), ("kl", "ratio_kl"))


def teacher_kind(preset) -> str:
    """The teacher kind a preset's student distils from (distill.teacher_kind, or the method's default)."""
    cfg = preset.distill
    return DEFAULT_TEACHER[cfg.method] if cfg.teacher_kind == "auto" else cfg.teacher_kind


def relational_choices(cfg) -> list[tuple[str, object]]:
    """The relational settings away from their defaults, for run names and row names."""
    fields = type(cfg).model_fields
    return [(short, getattr(cfg, name)) for short, name in RELATIONAL_CHOICES if getattr(cfg, name) != fields[name].default]


def general_stage(preset) -> bool:
    """True when setup runs TinyBERT's general stage before task distillation (students.setup)."""
    return preset.student.init == "random" and preset.student.general_epochs > 0


def transfer_used(preset) -> bool:
    """True when the student sees transfer examples: the data has some and a stage takes them."""
    return preset.data.has_transfer and (preset.distill.transfer_ratio > 0 or general_stage(preset))


def transfer_name_parts(preset) -> list[str]:
    """What transfer data a student sees, for its directory and row names ([] for none); every transfer
    setting away from its default is named, so runs on different transfer sets never share a directory."""
    if not transfer_used(preset):
        return []
    d, fields = preset.data, type(preset.data).model_fields
    parts = ["unlabeled"] if d.unlabeled else []
    if d.windows:
        parts.append(f"windows{d.windows}" + (f"s{d.window_stride}" if d.window_stride else ""))
    if d.augment_copies:
        parts.append(f"augment{d.augment_copies}")
        parts += [f"{short}{getattr(d, key)}" for short, key in (("rate", "augment_rate"), ("nn", "augment_neighbours"),
                                                                 ("aseed", "augment_seed"))
                  if getattr(d, key) != fields[key].default]
    if preset.distill.transfer_ratio != type(preset.distill).model_fields["transfer_ratio"].default:
        parts.append(f"ratio{preset.distill.transfer_ratio:g}")
    return parts


class RunNames(NamedTuple):
    """A student run's directory tag (student/<tag>/seed-N) and its row name in tables."""

    tag: str
    row: str


def run_names(preset) -> RunNames:
    """The directory tag and the row name of a student run, spelt from the same settings: every setting that
    distinguishes runs of a method appears in both, so two configurations never share `student/<tag>/seed-N`.

    tag: 'hrkd-excess-meta-beta10.0', 'tinybert-from-multi-domain-drop-domain-rel+transfer-unlabeled-T4'
    row: 'HRKD-teacher -(HRKD[excess, meta, beta=10.0])-> BERT_S'"""
    cfg = preset.distill
    kind = teacher_kind(preset)
    choices = relational_choices(cfg) if cfg.method == "hrkd" else []
    transfer = transfer_name_parts(preset)
    two_stage = cfg.method in BASELINE_METHODS and cfg.metakd.stages == "two"

    tag = cfg.method
    if kind != DEFAULT_TEACHER[cfg.method]:
        tag += f"-from-{kind}"
    if cfg.method == "hrkd" and cfg.graph != "paper":
        tag += f"-{cfg.graph}"
    if cfg.method == "hrkd" and cfg.graph_mode != "frozen":
        tag += f"-{cfg.graph_mode}"
    tag += "".join(f"-{short}{value}" for short, value in choices)
    if cfg.drop:
        tag += "-drop-" + "+".join(cfg.drop)
    if two_stage:
        tag += "-two-stage"
    if preset.teacher.exclude_domain:
        tag += f"-teacher-without-{preset.teacher.exclude_domain}"
    if transfer:
        tag += "+transfer-" + "-".join(transfer)
    if cfg.tag:
        tag += f"-{cfg.tag}"

    teacher = "Multi-teachers" if cfg.method == "mtn-kd" else TEACHER_ROW_NAMES[kind]
    method = METHOD_NAMES[cfg.method]
    if cfg.method == "hrkd" and (cfg.graph != "paper" or choices):
        method += "[" + ", ".join([cfg.graph, cfg.graph_mode] + [f"{short}={value}" for short, value in choices]) + "]"
    row = f"{teacher} -({method})-> BERT_S"
    if cfg.drop:
        row += " - " + ", ".join(cfg.drop)
    if two_stage:
        row += " (two-stage)"
    if transfer:
        row += " +transfer[" + ", ".join(transfer) + "]"
    if cfg.tag:
        row += f" ({cfg.tag})"
    return RunNames(tag, row)
