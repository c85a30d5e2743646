"""Distillation losses of HRKD sec. 2.1 (TinyBERT-style) and the two total losses.

Per-domain losses take ``reduction``: "mean" gives a scalar, "none" gives one
value per example (shape [B], the mean over every other dim), so Meta-KD can
weight examples. Everything is computed in float32, whatever the input dtype.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# TinyBERT: attention scores at or below this are additive-mask positions.
MASKED_SCORE = -1e2


def _reduce(per_elem, reduction):
    """per_elem [B, ...] -> scalar ("mean") or [B] ("none")."""
    if reduction == "mean":
        return per_elem.mean()
    if reduction == "none":
        return per_elem.reshape(per_elem.shape[0], -1).mean(dim=1)
    raise ValueError(f"unknown reduction {reduction!r} (expected 'mean' or 'none')")


def _mse(student, teacher, reduction):
    return _reduce((student.float() - teacher.float()).pow(2), reduction)


def embedding_loss(student_embeddings_projected, teacher_embeddings, reduction="mean"):
    """Eq. 1: MSE between the projected student embedding output E^S W^embd and E^T."""
    return _mse(student_embeddings_projected, teacher_embeddings, reduction)


def hidden_loss(student_hidden_projected, teacher_hidden, reduction="mean"):
    """Eq. 4: MSE between the projected student layer output H^S_m W^hidn_m and H^T_n."""
    return _mse(student_hidden_projected, teacher_hidden, reduction)


def attention_loss(student_attn, teacher_attn, mode="scores", reduction="mean"):
    """Eq. 3: (1/h) sum_i MSE over heads; inputs [B, h, L, L].

    All heads have the same size, so the mean of per-head MSEs is the plain MSE.
    mode "scores": pre-softmax scores carrying an additive mask; masked entries
    (<= -1e2) are zeroed in both, otherwise the huge mask value would dominate.
    mode "probs": post-softmax probabilities, compared as they are.
    """
    s, t = student_attn.float(), teacher_attn.float()
    if mode == "scores":
        s = torch.where(s <= MASKED_SCORE, torch.zeros_like(s), s)
        t = torch.where(t <= MASKED_SCORE, torch.zeros_like(t), t)
    elif mode != "probs":
        raise ValueError(f"unknown attention mode {mode!r} (expected 'scores' or 'probs')")
    return _reduce((s - t).pow(2), reduction)


def soft_cross_entropy(student_logits, teacher_logits, temperature=1.0,
                       class_reduction="sum", reduction="mean"):
    """Eq. 2: -sum_c softmax(z_T/t)_c log_softmax(z_S/t)_c; logits [B, C].

    class_reduction "mean" divides by C, as the released code does (docs/method.md, The distillation losses).
    No t^2 factor (neither the paper nor the released code has one).
    """
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    p_t = F.softmax(teacher_logits.float() / temperature, dim=-1)
    per_class = -p_t * log_p_s
    if class_reduction == "sum":
        per_example = per_class.sum(dim=-1)
    elif class_reduction == "mean":
        per_example = per_class.mean(dim=-1)
    else:
        raise ValueError(f"unknown class_reduction {class_reduction!r} (expected 'sum' or 'mean')")
    return _reduce(per_example, reduction)


def multi_domain_kd_loss(embd, attn, hidn, pred, gamma=1.0):
    """Eq. 5: sum_d (L_embd^d + sum_m (L_attn^{m,d} + L_hidn^{m,d}) + gamma L_pred^d).

    embd [D], attn [D, M], hidn [D, M], pred [D] -> scalar.
    """
    return embd.sum() + attn.sum() + hidn.sum() + gamma * pred.sum()


def hrkd_loss(embd, attn, hidn, pred, ratios, gamma=1.0):
    """Eq. 17: Eq. 5 with each domain's layer-m terms weighted by the
    domain-relational ratio r_{m,d}, and the prediction loss by gamma / D.

    ratios [M+1, D]: row 0 weights embd, row m weights attn[:, m-1] + hidn[:, m-1].
    """
    D = embd.shape[0]
    layer_terms = (ratios[1:].transpose(0, 1) * (attn + hidn)).sum()
    return (ratios[0] * embd).sum() + layer_terms + (gamma / D) * pred.sum()


@dataclass
class DomainLosses:
    """Per-domain loss values of one step: embd [D], attn [D, M], hidn [D, M], pred [D]."""

    embd: torch.Tensor
    attn: torch.Tensor
    hidn: torch.Tensor
    pred: torch.Tensor

    def total(self, ratios=None, gamma=1.0):
        """Eq. 17 with ratios [M+1, D]; Eq. 5 (unit domain weights) when ratios is None."""
        if ratios is None:
            return multi_domain_kd_loss(self.embd, self.attn, self.hidn, self.pred, gamma=gamma)
        return hrkd_loss(self.embd, self.attn, self.hidn, self.pred, ratios, gamma=gamma)


def kl_uniform_to_ratios(ratios):
    """Eq. R5 (ours): sum_m KL(u || r_m) = sum_m sum_d (1/D) log((1/D) / r_{m,d}).

    The `joint` mode regulariser. Minimising Eq. 17 over the ratios alone is
    solved by putting all weight on the domain with the smallest loss; this term
    grows without bound as any r_{m,d} -> 0 and is zero at r_m = 1/D.
    ratios [M+1, D] -> scalar.
    """
    D = ratios.shape[-1]
    return ((1.0 / D) * (math.log(1.0 / D) - torch.log(ratios.clamp_min(1e-12)))).sum()
