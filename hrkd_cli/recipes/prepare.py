"""`hrkd prepare`: read a source, split it per domain (docs/usage.md, Your own data), tokenise once, save; with transfer settings
also the transfer set the students distil on (docs/transfer.md). Reusing data prepared before is
hrkd_cli/pipeline.py's (ensure_prepared)."""

from __future__ import annotations

from hrkd_cli.config import Preset
from hrkd_cli.data.augment import mark_replacements
from hrkd_cli.data.store import prepare_dataset
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import write_json_atomic
from hrkd_cli.model.pretrained import load_pretrained_encoder, load_tokenizer
from hrkd_cli.runs import Say, data_dir

FINGERPRINT = "preset-fingerprint.json"


def fingerprint(preset: Preset) -> dict:
    # The tokenizer comes from the teacher's model, so it is part of what the data depends on.
    return {"data": preset.section_hash("data"), "tokenizer": preset.teacher.model}


def prepare(preset: Preset, say: Say = print) -> dict:
    """Build the prepared dataset into <run_dir>/data, replacing an older one atomically."""
    cfg = preset.data
    if cfg.source != "synthetic" and not cfg.path:
        raise HrkdError(f"data.path is empty: source {cfg.source!r} needs a directory or file (--source PATH)")
    tokenizer = load_tokenizer(preset.teacher.model)
    out = data_dir(preset)
    manifest = prepare_dataset(cfg, tokenizer, out, tokenizer_name=preset.teacher.model,
                               embeddings=lambda: teacher_input_embeddings(preset))
    write_json_atomic(out.parent / FINGERPRINT, fingerprint(preset))
    report_transfer(manifest, say)
    return manifest


def teacher_input_embeddings(preset: Preset):
    """The word-embedding matrix of the model the teacher starts from (teacher.model), which augmentation
    searches for neighbours: fine-tuning barely moves it, and the teacher need not exist yet."""
    return load_pretrained_encoder(preset.teacher.model).embeddings.word_embeddings.weight.detach()


def report_transfer(manifest: dict, say: Say) -> None:
    """What the transfer set holds beyond prepare's table: what was dropped and why."""
    t = manifest.get("transfer")
    if not t:
        return
    u = t.get("unlabeled")
    if u:
        dropped = u["dropped"]
        say(f"unlabelled text {u['path']}: {u['rows']} rows; dropped {dropped['dev'] + dropped['test']} equal to a "
            f"dev ({dropped['dev']}) or test ({dropped['test']}) text"
            + (f"; {u['other_domains']} of domains left out by data.domains" if u["other_domains"] else ""))
    if t.get("train_texts_in_evaluation"):
        say(f"{t['train_texts_in_evaluation']} training texts equal to a dev or test text give no windows or copies")
    a = t.get("augment")
    if a and a["texts_without_replaceable_words"]:
        say(f"augmentation: {a['texts_without_replaceable_words']} training texts have no single-piece word to replace")
    total = sum(c["total"] for c in t["counts"].values())
    say(f"transfer set: {total} examples (hash {t['hash'][:12]}); the teachers never see them")


def augmented_examples(data, n: int, max_words: int = 60) -> list[dict]:
    """``n`` augmented transfer examples (the first copy of the first training texts, taking the domains in
    turn), each with its training text and the replacements marked."""
    if not data.transfer or not (data.transfer.get("augment") or {}).get("copies"):
        return []
    queues = []
    for d in data.domains:
        ds = data.dataset(d, "transfer")
        seen, first = set(), []
        for i, (o, src) in enumerate(zip(ds["origin"], ds["source_row"])):
            if o == "augmented" and src not in seen:
                seen.add(src)
                first.append(i)
        queues.append((d, ds, first))
    out = []
    for k in range(max((len(q) for _, _, q in queues), default=0)):
        for d, ds, rows in queues:
            if len(out) == n:
                return out
            if k < len(rows):
                row = ds[rows[k]]
                train = data.dataset(d, "train")[row["source_row"]]
                out.append({"domain": d, "train_row": row["source_row"], "original": train["text"],
                            "augmented": row["text"], "marked": mark_replacements(train["text"], row["text"], max_words)})
    return out


def show_augmented(data, n: int, say: Say) -> None:
    """Print ``n`` augmented texts with their replacements marked [old->new] (`hrkd prepare --show-augmented N`)."""
    examples = augmented_examples(data, n)
    if not examples:
        say("no augmented examples: set data.augment_copies")
    for e in examples:
        say(f"{e['domain']}, train row {e['train_row']}: {e['marked']}")
