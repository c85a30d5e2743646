"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint directory holds ``hrkd.json`` (what it is: role, kind, domains,
labels, data hash, preset, scores), ``config.json`` (the BERT config),
``model.safetensors`` (encoder and heads), the tokenizer files, and optionally
``extras.safetensors`` (projections, graphs) and ``train_state.*`` (optimizer,
scheduler, RNG, data position) for ``--resume``.

A *group* checkpoint has no weights of its own: its ``hrkd.json`` maps each
domain to a member checkpoint (one teacher or student per domain).
Nothing here unpickles: a file handed to us can only be JSON or safetensors.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import BertConfig

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json, replace_dir, staging_dir, write_json_atomic
from hrkd_cli.model.classifier import HEADS, DomainClassifier, encoder_from_config, weights_mismatch

FORMAT = "hrkd-checkpoint/1"
META = "hrkd.json"
# What a checkpoint file missing from its directory means (a copy or a write cut short).
INCOMPLETE = "missing; the checkpoint is incomplete"


# ---------------------------------------------------------------- model checkpoints


def save_checkpoint(
    final_dir: Path,
    model: DomainClassifier,
    meta: dict,
    tokenizer=None,
    extras: dict[str, torch.Tensor] | None = None,
    train_state: tuple[dict[str, torch.Tensor], dict] | None = None,
    files: dict[str, object] | None = None,
) -> Path:
    """Write a classifier checkpoint into ``final_dir`` atomically."""
    tmp = staging_dir(final_dir)
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, tmp / "model.safetensors")
        (tmp / "config.json").write_text(model.config.to_json_string())
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extras:
            save_file({k: v.detach().contiguous().cpu() for k, v in extras.items()}, tmp / "extras.safetensors")
        if train_state is not None:
            tensors, info = train_state
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, tmp / "train_state.safetensors")
            (tmp / "train_state.json").write_text(json.dumps(info, indent=2, sort_keys=True))
        for name, obj in (files or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, sort_keys=True))
        meta = {"format": FORMAT, "num_heads": len(model.heads), "head": model.head, **meta}
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
        replace_dir(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Path(final_dir)


def save_group(final_dir: Path, members: dict[str, str], meta: dict) -> Path:
    """A checkpoint made of one member checkpoint per domain (paths relative to the group)."""
    final_dir = Path(final_dir)
    final_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(final_dir / META, {"format": FORMAT, "members": members, **meta})
    return final_dir


# ---------------------------------------------------------------- reading
# Every file of a checkpoint is read through these two functions, so a damaged or missing file is one
# line naming it wherever it is read, instead of a safetensors or JSON traceback.


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise HrkdError(f"{path}: {INCOMPLETE}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise HrkdError(f"{path}: damaged safetensors file ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                        "the checkpoint cannot be used (was it copied or written only in part?)") from None


def read_meta(path: Path) -> dict:
    path = Path(path)
    meta_path = path / META
    if not path.is_dir():
        raise HrkdError(f"{path}: checkpoint directory not found")
    if not meta_path.is_file():
        raise HrkdError(f"{path}: not an hrkd checkpoint (no {META})")
    meta = read_json(meta_path, INCOMPLETE)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HrkdError(f"{meta_path}: not an hrkd checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    return meta


def load_classifier(path: Path, device: torch.device | str = "cpu") -> tuple[DomainClassifier, dict]:
    path = Path(path)
    meta = read_meta(path)
    if "members" in meta:
        raise HrkdError(f"{path}: is a group checkpoint; load one of its members")
    weights = path / "model.safetensors"
    if not weights.is_file() or not (path / "config.json").is_file():
        raise HrkdError(f"{path}: checkpoint is incomplete (model.safetensors or config.json missing)")
    cfg = BertConfig.from_dict(read_json(path / "config.json", INCOMPLETE))
    # Checkpoints written before the pooler head existed carry no "head": theirs is "cls".
    head = meta.get("head", "cls")
    if head not in HEADS:
        raise HrkdError(f"{path / META}: unknown head {head!r}; hrkd builds {', '.join(HEADS)}")
    model = DomainClassifier(encoder_from_config(cfg, pooler=head == "pooler"), meta["num_heads"], len(meta["label_names"]))
    state = read_tensors(weights)
    expected = model.state_dict()
    resized = [f"{k} {tuple(v.shape)} (model {tuple(expected[k].shape)})"
               for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected or resized:
        raise weights_mismatch(weights, missing, unexpected, resized)
    model.load_state_dict(state)
    return model.to(device), meta


def weights_fingerprint(path: Path) -> str:
    """sha256 of the weights a checkpoint (or group) holds, to tell whether two runs used the same teacher.

    One model (every domain served by one member): the sha256 of its model.safetensors, what ``sha256sum``
    prints. One model per domain: the sha256 of the JSON map domain -> that domain's file sha256."""
    per_domain = {d: _file_sha256(p / "model.safetensors") for d, p in members(path).items()}
    distinct = set(per_domain.values())
    if len(distinct) == 1:
        return distinct.pop()
    return hashlib.sha256(json.dumps(per_domain, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    if not Path(path).is_file():
        raise HrkdError(f"{path}: {INCOMPLETE}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_extras(path: Path) -> dict[str, torch.Tensor]:
    f = Path(path) / "extras.safetensors"
    return read_tensors(f) if f.is_file() else {}


def members(path: Path) -> dict[str, Path]:
    """Domain -> checkpoint directory; a plain checkpoint serves every domain it knows."""
    path = Path(path)
    meta = read_meta(path)
    if "members" in meta:
        return {d: path / rel for d, rel in meta["members"].items()}
    return {d: path for d in meta["domains"]}


# ---------------------------------------------------------------- training state


def optimizer_to_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict, info: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in info["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
