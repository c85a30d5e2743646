"""The Meta-KD and multi-teacher baselines' modules and losses (Pan et al., ACL 2021, sec. 3.3 and 4.2;
docs/method.md, Meta-KD). The loop that trains them is hrkd_cli/train/baselines.py.

meta-kd: loss = sum_i lambda_i (embd_i + attn_i + hidn_i + gamma pred_i + gamma2 tkd_i) / B, with
lambda_i = (1 + t_i) / (exp((1 - p_T(y_i))^2) + 1) per example and tkd_i = MSE(h_d^M(x), W_d^M h^S(x)).
mtn-kd: Eq. 5 for one domain with the prediction term against pbar = mean_k softmax(z_k / t) of all teachers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hrkd_cli.batches import Batch
from hrkd_cli.config import DistillConfig
from hrkd_cli.model.classifier import EncoderOutput
from hrkd_cli.model.kd_model import DistillationModel, Teachers, domain_losses
from hrkd_cli.model.metakd import (
    TransferableKnowledge,
    domain_expertise_weight,
    gold_probability,
    mean_pooled_embedding,
    meta_distillation_loss,
    transferable_knowledge_loss,
)
from hrkd_cli.runtime import Runtime

# meta-kd's projection W_d^M in a student checkpoint's extras.
TK_PREFIX = "tk_projection."


# ---------------------------------------------------------------- the student side


class BaselineModel(DistillationModel):
    """distill.DistillationModel without a relational module, plus meta-kd's projection W_d^M.

    forward() -> (student outputs, projected features, W_d^M h^S(x) or None).
    """

    def __init__(self, base: DistillationModel, tk_projection: nn.Module | None):
        super().__init__(base.student, base.projections, None, "real", base.attentions, base.runtime)
        self.include_padding = base.include_padding
        self.tk_projection = tk_projection

    def forward(self, batch: Batch):
        out, projected, _ = super().forward(batch)
        tk = None
        if self.tk_projection is not None:
            tk = self.tk_projection(mean_pooled_embedding(out.last_hidden.float(), batch.attention_mask))
        return out, projected, tk


# ---------------------------------------------------------------- meta-kd loss


def per_example_terms(terms, gamma: float) -> dict[str, torch.Tensor]:
    """distill.domain_losses(..., reduction="none") -> [B] tensors, layers summed (Meta-KD: sum over layers)."""
    return {
        "embd": torch.cat(terms.embd),
        "attn": torch.cat([a.sum(-1) for a in terms.attn]),
        "hidn": torch.cat([h.sum(-1) for h in terms.hidn]),
        "pred": gamma * torch.cat(terms.pred),
    }


@torch.no_grad()
def teacher_transferable(tk: TransferableKnowledge, h: torch.Tensor, domain_index: int | None) -> torch.Tensor:
    """h_d^M(x) = tanh((h(x) + e_D) W + b); an unseen domain (None) uses the mean of the learned e_D rows."""
    e = tk.domain_embedding.weight.mean(0) if domain_index is None else tk.domain_embedding.weight[domain_index]
    return torch.tanh(tk.dense(h.float() + e))


def teacher_probability(teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """p_T(y_i) of lambda_i: of the gold label for a labelled row; for a transfer row, which has no label, of the
    teacher's own prediction (its confidence), so that no gold label of a transfer row is read."""
    if batch.transfer is None:
        return gold_probability(teacher_logits, batch.labels)
    gold = gold_probability(teacher_logits, batch.labels.clamp_min(0))
    return torch.where(batch.transfer, teacher_logits.softmax(-1).amax(-1), gold)


def meta_kd_loss(cfg: DistillConfig, out: EncoderOutput, projected, student_tk, t_out: EncoderOutput, teacher_tk,
                 t_scores: torch.Tensor, batch: Batch, layer_map: list[int], stage: str = "one"):
    """L'_KD of one step (Meta-KD sec. 3.3) -> (loss, logs). Every term is weighted per example by lambda_i."""
    terms = per_example_terms(domain_losses(cfg, out, projected, t_out, batch, layer_map, reduction="none"), cfg.gamma)
    lam = domain_expertise_weight(t_scores.to(terms["embd"].device), teacher_probability(t_out.logits.float(), batch))
    tkd = None if student_tk is None else transferable_knowledge_loss(teacher_tk, student_tk, reduction="none")
    loss = meta_distillation_loss(terms, lam, tkd, cfg.metakd.gamma2 if tkd is not None else 0.0, stage)
    logs = {k: float(v.detach().mean()) for k, v in terms.items()}
    logs.update(lambda_mean=float(lam.mean()), lambda_min=float(lam.min()), lambda_max=float(lam.max()))
    if tkd is not None:
        logs["tkd"] = float(tkd.detach().mean())
    return loss, logs


# ---------------------------------------------------------------- mtn-kd loss


def averaged_soft_targets(logits: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """pbar = mean_k softmax(z_k / t): the multi-teacher target of MTN-KD, [B, C]."""
    return torch.stack([F.softmax(z.float() / temperature, dim=-1) for z in logits]).mean(0)


@torch.no_grad()
def mtn_teacher_outputs(ensemble: Teachers, teacher_domains: list[str], own: str | None, batch: Batch, runtime: Runtime,
                        temperature: float, attentions: bool) -> EncoderOutput:
    """The targets of one mtn-kd step: logits t*log(pbar) (all teachers), hidden states and attention
    scores from ``own``'s teacher, or averaged over all teachers when ``own`` is None (no own teacher)."""
    logits, full = [], []
    for k in teacher_domains:
        model, head = ensemble.by_domain[k]
        rich = own is None or k == own
        with runtime.autocast():
            o = model(batch.input_ids, batch.attention_mask, batch.token_type_ids, [(head, n) for _, n in batch.domain_sizes],
                      hidden_states=rich, attentions=rich and attentions)
        logits.append(o.logits)
        if rich:
            full.append(o)
    target = temperature * averaged_soft_targets(logits, temperature).log()
    if own is not None:
        return EncoderOutput(logits=target, hidden_states=full[0].hidden_states, attentions=full[0].attentions)

    def mean(get):
        return tuple(torch.stack([get(o)[i].float() for o in full]).mean(0) for i in range(len(get(full[0]))))

    return EncoderOutput(logits=target, hidden_states=mean(lambda o: o.hidden_states),
                         attentions=mean(lambda o: o.attentions) if attentions else None)


def mtn_kd_loss(cfg: DistillConfig, out: EncoderOutput, projected, t_out: EncoderOutput, batch: Batch, layer_map: list[int],
                stage: str = "one"):
    """Eq. 5 for one domain with the averaged target in the prediction term -> (loss, logs)."""
    terms = domain_losses(cfg, out, projected, t_out, batch, layer_map)
    inter = terms.embd.sum() + terms.attn.sum() + terms.hidn.sum()
    pred = cfg.gamma * terms.pred.sum()
    loss = {"one": inter + pred, "intermediate": inter, "prediction": pred}[stage]
    logs = {"embd": float(terms.embd.detach().sum()), "attn": float(terms.attn.detach().sum()),
            "hidn": float(terms.hidn.detach().sum()), "pred": float(terms.pred.detach().sum())}
    return loss, logs
