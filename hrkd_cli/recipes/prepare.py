"""`hrkd prepare`: read a source, split it per domain (SPEC sec. 7), tokenise once, save."""

from __future__ import annotations

from hrkd_cli.config import Preset
from hrkd_cli.data import load_prepared, prepare_dataset
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import write_json_atomic
from hrkd_cli.pretrained import load_tokenizer
from hrkd_cli.recipes.common import Say, data_dir, read_json
from hrkd_cli.runtime import Runtime, barrier

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
    manifest = prepare_dataset(cfg, tokenizer, out, tokenizer_name=preset.teacher.model)
    write_json_atomic(out.parent / FINGERPRINT, fingerprint(preset))
    return manifest


def ensure_prepared(preset: Preset, say: Say = print):
    """Reuse <run_dir>/data when it was built from the same data section and tokenizer."""
    out = data_dir(preset)
    recorded = read_json(out.parent / FINGERPRINT)
    if (out / "manifest.json").is_file() and recorded == fingerprint(preset):
        data = load_prepared(out)
        say(f"reusing prepared data {out} (hash {data.hash[:12]})")
        return data
    say(f"preparing data into {out}")
    prepare(preset, say)
    return load_prepared(out)


def prepared_on_every_rank(preset: Preset, runtime: Runtime, say: Say = print):
    """Rank 0 prepares (or reuses) the data while the other ranks wait; then every rank loads it."""
    data = ensure_prepared(preset, say) if runtime.is_main else None
    barrier(runtime)
    return data if data is not None else load_prepared(data_dir(preset))


def teacher_domains(preset: Preset, domains: list[str]) -> list[str]:
    """The domains a teacher learns from: all of the data's but ``teacher.exclude_domain`` (Meta-KD Table 4)."""
    excluded = preset.teacher.exclude_domain
    if excluded and excluded not in domains:
        raise HrkdError(f"teacher.exclude_domain={excluded!r} is not a domain of the data ({', '.join(domains)})")
    return [d for d in domains if d != excluded]
