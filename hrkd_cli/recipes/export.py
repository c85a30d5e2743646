"""`hrkd export`: each domain of a teacher or student as a plain transformers folder (``hf``) or ONNX file.

Which transformers class a domain becomes (sequence classification for the pooler head, token
classification read at [CLS] for the older "cls" head): hrkd_cli/model/export.py. This recipe picks the
domains, names the folders (``OUT/<domain>/``) and writes the model card of each.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from hrkd_cli import __version__
from hrkd_cli.errors import HrkdError
from hrkd_cli.model.export import (
    HF_TOLERANCE,
    INT8_PROB_TOLERANCE,
    ONNX_TOLERANCE,
    DomainModel,
    model_domains,
    onnx_runtime,
    open_domain,
    run_record,
    write_hf,
    write_onnx,
)
from hrkd_cli.runs import Say

FORMATS = ("hf", "onnx")
QUANTIZE = ("int8",)


def export_command(run: Path, fmt: str, domain: str | None, out: Path, quantize: str | None) -> str:
    """The command that makes this export, for the model card."""
    args = ["hrkd", "export", str(run), "--format", fmt]
    args += ["--domain", domain] if domain else []
    args += ["--quantize", quantize] if quantize else []
    return shlex.join(args + ["-o", str(out)])


def usage(fmt: str, path: Path, quantize: str | None, pooler: bool = True) -> str:
    """The lines that load and run an export with its own libraries only."""
    p = repr(str(path))
    if fmt == "hf" and pooler:
        return (
            "from transformers import pipeline\n"
            f'classify = pipeline("text-classification", model={p})\n'
            'classify(["text to classify"], top_k=None, truncation=True)  # every label with its probability\n'
        )
    if fmt == "hf":
        return (
            "from transformers import AutoModelForTokenClassification, AutoTokenizer\n"
            f"tok, model = AutoTokenizer.from_pretrained({p}), AutoModelForTokenClassification.from_pretrained({p})\n"
            'probs = model(**tok(["text to classify"], truncation=True, padding=True, return_tensors="pt")).logits[:, 0].softmax(-1)\n'
        )
    onnx = "model.int8.onnx" if quantize else "model.onnx"
    return (
        "import onnxruntime as ort; from transformers import AutoTokenizer\n"
        f'tok, session = AutoTokenizer.from_pretrained({p}), ort.InferenceSession({repr(str(path) + "/" + onnx)})\n'
        'logits = session.run(["logits"], dict(tok(["text to classify"], truncation=True, padding=True, return_tensors="np")))[0]\n'
    )


def _pct(x) -> str:
    return f"{100 * float(x):.1f}" if isinstance(x, (int, float)) else "?"


def model_card(dm: DomainModel, record: dict, fmt: str, path: Path, command: str, quantize: str | None, checks: dict) -> str:
    meta = dm.meta
    encoder = dm.module.model.encoder
    pooler = dm.module.model.head == "pooler"
    cfg = encoder.config
    params = sum(p.numel() for p in encoder.parameters()) + (cfg.hidden_size + 1) * len(dm.label_names)
    role = meta.get("role", "model")
    row = record.get("row") or meta.get("row") or role
    if role == "teacher":
        teacher = f"none: this is a teacher, fine-tuned from `{meta.get('source_model', '?')}`"
        method = f"fine-tuning, teacher kind `{meta.get('kind', '?')}`"
    else:
        tpath = record.get("teacher") or meta.get("teacher") or "?"
        teacher = f"{run_record(Path(tpath)).get('row') or 'teacher'} (`{tpath}`)" if tpath != "?" else "?"
        method = f"`{meta.get('method', '?')}`"
        if meta.get("method") == "hrkd":
            method += f", graph `{meta.get('graph_mode', 'frozen')}`"
        if meta.get("drop"):
            method += f", without {', '.join(meta['drop'])}"
        if meta.get("layer_map"):
            method += f", student layer m matched to teacher layer {meta['layer_map']}"
    test = record.get("test") or {}
    first = [d for d in meta.get("domains", []) if d in test]
    order = first + sorted(d for d in test if d not in first and d != "average") + (["average"] if "average" in test else [])
    scores = ", ".join((f"**{d} {_pct(test[d])}**" if d == dm.domain else f"{d} {_pct(test[d])}") for d in order) or "not recorded"
    data = f"hash `{(meta.get('data_hash') or '?')[:12]}`, preset `{meta.get('preset', '?')}`, at most {dm.max_seq_length} tokens"
    if dm.text_pair:
        data += ", sentence pairs (`text`, `text_b`)"
    if fmt == "hf":
        check = (f"logits within {checks['max_abs_logit_diff']:.1e} of hrkd's own on {checks['examples']} examples "
                 f"(tolerance {HF_TOLERANCE:g}, fp32)")
        if "pipeline_max_abs_prob_diff" in checks:
            check += f"; the text-classification pipeline's probabilities within {checks['pipeline_max_abs_prob_diff']:.1e}"
    else:
        check = (f"ONNX Runtime logits within {checks['max_abs_logit_diff']:.1e} of PyTorch's on {checks['examples']} "
                 f"examples (tolerance {ONNX_TOLERANCE:g})")
        if "int8" in checks:
            q = checks["int8"]
            check += (f"; int8: probabilities within {q['max_abs_prob_diff']:.3f} (tolerance {INT8_PROB_TOLERANCE:g}), "
                      f"same label on {100 * q['label_agreement']:.1f} % of them")
    lines = [
        "---",
        "library_name: transformers" if fmt == "hf" else "library_name: onnx",
        "tags: [hrkd, knowledge-distillation, bert, text-classification]",
        "---",
        "",
        f"# {row}: domain `{dm.domain}`",
        "",
        f"A {cfg.num_hidden_layers}-layer BERT (width {cfg.hidden_size}, {cfg.num_attention_heads} heads, "
        f"{params / 1e6:.1f} M parameters) that classifies `{dm.domain}` text into "
        + ", ".join(f"`{n}`" for n in dm.label_names) + ". Exported from an hrkd run "
        "(Hierarchical Relational Knowledge Distillation, Dong et al., EMNLP 2021).",
        "",
        "| | |",
        "| --- | --- |",
        f"| teacher | {teacher} |",
        f"| method | {method} |",
        f"| data | {data} |",
        f"| test accuracy (%) | {scores} |",
        f"| made by | `{command}` (hrkd {__version__}, {time.strftime('%Y-%m-%d')}) |",
        f"| check | {check} |",
        "",
        "## Use",
        "",
        "```python",
        usage(fmt, path, quantize, pooler).rstrip("\n"),
        "```",
        "",
        ("Every label of each text with its probability; `AutoModelForSequenceClassification` loads the folder too. "
         "For sentence pairs pass `{\"text\": a, \"text_pair\": b}` per example."
         if fmt == "hf" and pooler else
         "Class probabilities of each text, in the order of `model.config.id2label`"
         + (" (the same names as in `hrkd_export.json`)." if fmt == "onnx" else ".")
         + " For sentence pairs pass two lists: `tok(texts, texts_b, ...)`."),
        "`hrkd predict` runs this folder too.",
        "",
    ]
    if fmt == "hf" and not pooler:
        lines += why_token_classification()
    return "\n".join(lines)


def why_token_classification() -> list[str]:
    """The model card's note for a "cls"-head export (hrkd's head before the pooler existed)."""
    return [
        "## Why a token-classification class",
        "",
        "This model's head is dropout and one linear layer on the final [CLS] state, with no pooler. "
        "`BertForSequenceClassification` puts BERT's pooler (a dense layer and tanh) before its classifier, so "
        "no weights make it compute these logits. `BertForTokenClassification` is BERT without a pooler and "
        "the same dropout and linear layer on every token; at position 0, [CLS], it is this model exactly, "
        "hence `logits[:, 0]`. Do not load this folder with `AutoModelForSequenceClassification`: it would "
        "start a pooler at random (transformers reports `bert.pooler.dense.* MISSING`) and its outputs would "
        "mean nothing. Models trained with hrkd's default pooler head export as `BertForSequenceClassification`.",
        "",
    ]


def export(run: Path, fmt: str = "hf", domain: str | None = None, out: Path | None = None, quantize: str | None = None,
           say: Say = print) -> list[Path]:
    """Write ``out/<domain>/`` for each domain of ``run`` (or the one named); returns the folders."""
    if fmt not in FORMATS:
        raise HrkdError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise HrkdError(f"--quantize {quantize!r}: the one choice is int8")
    if quantize is not None and fmt != "onnx":
        raise HrkdError("--quantize applies to --format onnx")
    if fmt == "onnx":
        onnx_runtime()  # a missing extra fails before any model is loaded
    run = Path(run)
    domains = model_domains(run)
    if domain is not None and domain not in domains:
        raise HrkdError(f"{run}: has no model for domain {domain!r} (domains: {', '.join(domains)})")
    out = Path(out) if out is not None else run / "export" / fmt
    command = export_command(run, fmt, domain, out, quantize)
    record = run_record(run)
    written = []
    for d in [domain] if domain else domains:
        dm = open_domain(run, d)
        final = out / d

        def card(checks, dm=dm, final=final):
            return model_card(dm, record, fmt, final, command, quantize, checks)

        if fmt == "hf":
            checks = write_hf(dm, final, card, {"command": command})
            read = "logits" if checks["class"] == "BertForSequenceClassification" else "logits[:, 0]"
            say(f"wrote {final}: {checks['class']}, {read} within {checks['max_abs_logit_diff']:.1e} "
                f"of hrkd's on {checks['examples']} examples")
        else:
            checks = write_onnx(dm, final, card, quantize, {"command": command})
            line = f"wrote {final}: model.onnx within {checks['max_abs_logit_diff']:.1e} of PyTorch's on {checks['examples']} examples"
            if "int8" in checks:
                line += f"; model.int8.onnx probabilities within {checks['int8']['max_abs_prob_diff']:.3f}"
            say(line)
        written.append(final)
    return written
