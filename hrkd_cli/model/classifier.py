"""Teachers and students: one BERT encoder shared by all domains, one head per domain.

Pretrained weights are read by pretrained.py, hrkd checkpoints by checkpoint.py. The TinyBERT attention
loss needs the attention *scores before softmax*; transformers returns the
probabilities, so we register an attention function of our own (no fork of
BERT) that returns the masked scores when attentions are asked for (and runs
SDPA on CUDA otherwise).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface, BertConfig, BertModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask

from hrkd_cli.errors import HrkdError

SCORES_ATTENTION = "hrkd_scores"

from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()  # "Loading weights" bars would drown our own progress display
hf_logging.set_verbosity_error()  # our own loaders report every weight they do not find (pretrained.py)


def scores_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention that returns pre-softmax scores (with the additive mask) as its weights.

    When attentions are not requested it defers to SDPA on CUDA, and on the CPU when no
    gradient is recorded (evaluation, `hrkd predict`, a teacher whose attentions are not
    distilled): there SDPA's forward is 1.3x faster than the explicit product.
    """
    if not kwargs.get("output_attentions") and (query.device.type == "cuda" or not torch.is_grad_enabled()):
        # Not in CPU training: SDPA's bf16 backward there dominated a MiniLM training step
        # (27% of it) in profiles here; the explicit product trains faster.
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


# ---------------------------------------------------------------- weights


def _shown(keys, limit: int = 4) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def weights_mismatch(where, missing=(), unexpected=(), resized=()) -> HrkdError:
    """One line naming the keys a set of weights lacks, has in excess, or holds in another shape."""
    parts = [f"{label} {_shown(keys)}" for label, keys in
             (("missing keys", missing), ("unexpected keys", unexpected), ("keys of another shape", resized)) if keys]
    return HrkdError(f"weights in {where}: " + "; ".join(parts))


# The classifier heads hrkd builds (teacher.head, student.head). "pooler": BERT's pooler (dense + tanh on the
# final [CLS] state), dropout, then one linear layer per domain, as BERT, TinyBERT and the released HRKD code
# classify; it exports as a stock BertForSequenceClassification. "cls": dropout and the linear layer on the
# [CLS] state itself, no pooler (hrkd's head before the pooler existed; earlier records used it).
HEADS = ("pooler", "cls")


def encoder_from_config(cfg: BertConfig, pooler: bool = False) -> BertModel:
    cfg = copy.deepcopy(cfg)
    cfg._attn_implementation = SCORES_ATTENTION
    return BertModel(cfg, add_pooling_layer=pooler)


def head_of(encoder: BertModel) -> str:
    """The head a classifier on ``encoder`` has: "pooler" when the encoder carries BERT's pooler."""
    return "pooler" if encoder.pooler is not None else "cls"


# ---------------------------------------------------------------- classifier


@dataclass
class EncoderOutput:
    logits: torch.Tensor  # [B, C]
    hidden_states: tuple[torch.Tensor, ...] | None = None  # M+1 of [B, L, H]; 0 is the embedding output
    attentions: tuple[torch.Tensor, ...] | None = None  # M of [B, h, L, L], scores before softmax
    cls: torch.Tensor | None = None  # [B, H]
    last_hidden: torch.Tensor | None = None  # [B, L, H]


class DomainClassifier(nn.Module):
    """A BERT encoder shared across domains with ``num_heads`` linear heads.

    The heads read BERT's pooled [CLS] (dense + tanh) when the encoder has a pooler, the [CLS] state
    itself otherwise (``head_of``). ``num_heads`` is the number of domains (multi-task / HRKD models)
    or 1 (a model trained on pooled data, whose single head serves every domain).
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

    @property
    def head(self) -> str:
        return head_of(self.encoder)

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
        pooled = self.dropout(cls if out.pooler_output is None else out.pooler_output)
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
    """Teacher layer n = m * N / M for student layer m = 1..M (TinyBERT's uniform layer mapping)."""
    if student_layers < 1 or teacher_layers % student_layers != 0:
        raise HrkdError(
            f"student depth {student_layers} does not divide teacher depth {teacher_layers}: "
            "the uniform layer mapping n = m*N/M needs N divisible by M"
        )
    step = teacher_layers // student_layers
    return [m * step for m in range(1, student_layers + 1)]


def _check_source(teacher: BertModel, layers: list[int], source: str, pooler: bool) -> None:
    """The layers and the pooler a student taken from ``teacher`` needs."""
    n = teacher.config.num_hidden_layers
    if max(layers) > n:
        raise HrkdError(f"student.teacher_layers={layers} names a layer above {source} {n}")
    if pooler and teacher.pooler is None:
        raise HrkdError(f"student.head = 'pooler' needs a pooler in {source} model, which has none "
                        "(its head is 'cls'); set student.head = 'cls'")


def student_from_teacher_layers(teacher: BertModel, layers: list[int], source: str = "the teacher's",
                                pooler: bool = False) -> BertModel:
    """DistilBERT-style initialisation: the embeddings and a subset of the layers (1-based) of ``teacher``,
    and its pooler when ``pooler`` (the source must have one).

    ``source`` names the model in errors (the distilling teacher, ``student.layers_from`` or the general start)."""
    _check_source(teacher, layers, source, pooler)
    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(layers)
    student = encoder_from_config(cfg, pooler=pooler)
    student.embeddings.load_state_dict(teacher.embeddings.state_dict())
    for i, layer in enumerate(layers):
        student.encoder.layer[i].load_state_dict(teacher.encoder.layer[layer - 1].state_dict())
    if pooler:
        student.pooler.load_state_dict(teacher.pooler.state_dict())
    return student


def _evenly(n: int, k: int) -> torch.Tensor:
    """k of the indices 0..n-1, evenly spaced from 0 (every other one when k = n/2)."""
    return torch.arange(k) * n // k


def check_slice_shape(teacher_cfg: BertConfig, hidden: int, heads: int, intermediate: int, source: str) -> None:
    """What student_from_teacher_slice needs: a shape no wider than its source, head by head."""
    tc = teacher_cfg
    problems = [f"student.{name}={v} is wider than {source} {t}"
                for name, v, t in (("hidden_size", hidden, tc.hidden_size), ("num_heads", heads, tc.num_attention_heads),
                                   ("intermediate_size", intermediate, tc.intermediate_size)) if v > t]
    if hidden % heads:
        problems.append(f"student.hidden_size={hidden} is not divisible by student.num_heads={heads}")
    elif hidden // heads > tc.hidden_size // tc.num_attention_heads:
        problems.append(f"student head size {hidden // heads} (hidden_size / num_heads) is wider than {source} "
                        f"{tc.hidden_size // tc.num_attention_heads}")
    if problems:
        raise HrkdError("student.init = 'teacher-slice': " + "; ".join(problems))


def student_from_teacher_slice(teacher: BertModel, layers: list[int], hidden: int, heads: int, intermediate: int,
                               source: str = "the teacher's", pooler: bool = False) -> BertModel:
    """Weight selection (Xu et al., 2024, "Initializing Models with Larger Ones"): the embeddings and the
    layers ``layers`` (1-based) of ``teacher``, every weight cut to the student's width.

    One evenly spaced set of residual-stream dimensions is kept in every tensor that reads or writes the
    residual stream, so the cut layers still compose; attention keeps evenly spaced heads and, inside each,
    evenly spaced head dimensions; the feed-forward block keeps evenly spaced units. At the teacher's own
    width this is student_from_teacher_layers."""
    _check_source(teacher, layers, source, pooler)
    tc = teacher.config
    check_slice_shape(tc, hidden, heads, intermediate, source)
    t_head, s_head = tc.hidden_size // tc.num_attention_heads, hidden // heads
    res = _evenly(tc.hidden_size, hidden)
    att = (_evenly(tc.num_attention_heads, heads)[:, None] * t_head + _evenly(t_head, s_head)[None, :]).flatten()
    ffn = _evenly(tc.intermediate_size, intermediate)

    def cut(name: str) -> tuple[torch.Tensor | None, ...]:
        """The kept indices along each dimension of the parameter ``name`` (None: all)."""
        if name.endswith(("query.weight", "key.weight", "value.weight")):
            return att, res
        if name.endswith(("query.bias", "key.bias", "value.bias")):
            return (att,)
        if name.endswith("attention.output.dense.weight"):
            return res, att
        if name.endswith("intermediate.dense.weight"):
            return ffn, res
        if name.endswith("intermediate.dense.bias"):
            return (ffn,)
        if name.endswith("output.dense.weight"):
            return res, ffn
        if name.endswith("embeddings.weight"):  # word, position and token-type tables: every row, fewer columns
            return None, res
        if name.endswith("pooler.dense.weight"):
            return res, res
        return (res,)  # LayerNorm weights and biases, output biases, the pooler's bias

    cfg = copy.deepcopy(tc)
    cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size = \
        len(layers), hidden, heads, intermediate
    student = encoder_from_config(cfg, pooler=pooler)
    source_state = teacher.state_dict()
    state, missing = {}, []
    for name, _ in student.named_parameters():
        parts = name.split(".")
        if parts[0] == "encoder":  # encoder.layer.i.* <- encoder.layer.(layers[i] - 1).*
            parts[2] = str(layers[int(parts[2])] - 1)
        key = ".".join(parts)
        if key not in source_state:
            missing.append(key)
            continue
        t = source_state[key]
        for dim, keep in enumerate(cut(name)):
            if keep is not None:
                t = t.index_select(dim, keep)
        state[name] = t.clone()
    if missing:
        raise weights_mismatch(f"{source} model (student.init = 'teacher-slice')", missing)
    student.load_state_dict(state, strict=False)  # strict=False: the buffers (position ids) keep their defaults
    return student


def random_student(teacher_cfg: BertConfig, num_layers: int, hidden: int, heads: int, intermediate: int,
                   pooler: bool = False) -> BertModel:
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
    return encoder_from_config(cfg, pooler=pooler)


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
