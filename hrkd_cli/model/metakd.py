"""Meta-KD (Pan et al., ACL 2021): the meta-teacher and meta-distillation losses.

Read with the paper open (sec. 3.2 meta-teacher learning, sec. 3.3 meta-distillation)
and docs/method.md (Meta-KD), which says how this code reads it where the paper is unclear.

Notation: K domains, C classes, N (or B) examples, H hidden width.
  h(x)    mean-pooled last-layer token embeddings               (sec. 3.2)
  p_k^(m) mean h(x) of the class-m examples of domain k        (sec. 3.2, prototype)
  t_i     prototype score of example i                         (sec. 3.2)
  h_d(x)  transferable knowledge, tanh((h(x) + e_D(x)) W + b)  (sec. 3.2)
  L_DA    domain-adversarial loss towards corrupted domain labels
  lambda_i domain-expertise weight                             (sec. 3.3)
  L_TKD   MSE between teacher and (projected) student h_d(x)  (sec. 3.3)

Instance weights (t_i, lambda_i) are constants: they are detached wherever they
weight a loss, so a model cannot lower its loss by lowering its own weights.
"""


import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import replacing
from hrkd_cli.model.checkpoint import load_extras, members, read_meta, read_tensors
from hrkd_cli.model.classifier import DomainClassifier
from hrkd_cli.runtime import Runtime

STAGES = ("one", "intermediate", "prediction")
# What a meta-teacher run leaves for the students (read by the Meta-KD baseline).
PROTOTYPE_FILE = "prototype_scores.safetensors"
PROTOTYPE_FORMAT = "hrkd-prototype-scores/1"
EXTRAS_PREFIX = "transferable."


# ---------------------------------------------------------------- sec. 3.2: instance level

def mean_pooled_embedding(last_hidden, attention_mask):
    """h(x) (Meta-KD sec. 3.2): average of the last-layer token embeddings.

    last_hidden [B, L, H], attention_mask [B, L] (1 = real token) -> [B, H].
    Only real tokens are averaged (docs/method.md, Meta-KD). The released code instead drops
    [CLS] and averages padding too; pass an all-ones mask to average padding.
    """
    mask = attention_mask.to(last_hidden.dtype).unsqueeze(-1)  # [B, L, 1]
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def class_prototypes(embeddings, labels, domains, num_domains, num_classes, return_counts=False):
    """p_k^(m) (Meta-KD sec. 3.2): mean embedding of class m within domain k.

    embeddings [N, H], labels [N], domains [N] -> prototypes [K, C, H].
    Empty cell: a (k, m) pair with no examples gets the zero vector. Its cosine
    with any h(x) is defined as 0 in `prototype_scores`, so an empty cell adds
    nothing to any score (neither pulls it up nor down). With return_counts=True
    also returns counts [K, C]; counts == 0 flags the empty cells.
    """
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise HrkdError(f"class label out of range 0..{num_classes - 1}: got {labels.min().item()}..{labels.max().item()}")
    if domains.numel() and (domains.min() < 0 or domains.max() >= num_domains):
        raise HrkdError(f"domain label out of range 0..{num_domains - 1}: got {domains.min().item()}..{domains.max().item()}")
    H = embeddings.shape[-1]
    cell = domains * num_classes + labels  # flat (k, m) index
    sums = embeddings.new_zeros(num_domains * num_classes, H).index_add_(0, cell, embeddings)
    counts = torch.bincount(cell, minlength=num_domains * num_classes)
    protos = sums / counts.clamp(min=1).unsqueeze(-1).to(embeddings.dtype)
    protos = protos.view(num_domains, num_classes, H)
    counts = counts.view(num_domains, num_classes)
    return (protos, counts) if return_counts else protos


def zeta(alpha, num_domains):
    """zeta = (1 - alpha) / (K - 1) (Meta-KD sec. 3.2): weight of each out-of-domain prototype."""
    if not 0.0 <= alpha <= 1.0:
        raise HrkdError(f"Meta-KD alpha must lie in [0, 1]: got {alpha}")
    if num_domains < 2:
        raise HrkdError(f"Meta-KD prototype score needs at least 2 domains: got K={num_domains}")
    return (1.0 - alpha) / (num_domains - 1)


def prototype_scores(embeddings, labels, domains, prototypes, alpha):
    """t_i (Meta-KD sec. 3.2, prototype score).

    t_i = alpha * cos(p_{k_i}^(y_i), h(x_i)) + zeta * sum_{k' != k_i} cos(p_{k'}^(y_i), h(x_i)),
    with zeta = (1 - alpha)/(K - 1). embeddings [N, H], labels [N] (gold class y_i),
    domains [N] (k_i), prototypes [K, C, H] -> t [N], in [-1, 1].
    K = 1 is refused (no out-of-domain prototypes; L_DA is undefined too).
    """
    K = prototypes.shape[0]
    z = zeta(alpha, K)
    h = F.normalize(embeddings, dim=-1)                       # zero vector stays zero -> cos 0
    p = F.normalize(prototypes, dim=-1).transpose(0, 1)[labels]  # [N, K, H]: p_k^(y_i) for every k
    cos = (p * h.unsqueeze(1)).sum(-1)                         # [N, K]
    w = torch.full_like(cos, z)
    w[torch.arange(len(domains)), domains] = alpha             # own domain gets alpha
    return (w * cos).sum(-1)


# ---------------------------------------------------------------- sec. 3.2: feature level

def corrupt_domain_labels(domains, generator=None):
    """z_i, the false domain labels of L_DA (Meta-KD sec. 3.2, footnote 3).

    An in-batch shuffle: a random permutation of the batch's domain labels (same
    multiset). As in the paper's footnote, a shuffled label may coincide with the
    true one; z_i != d_i is not enforced. Deterministic given a seeded generator.
    """
    device = generator.device if generator is not None else domains.device
    perm = torch.randperm(domains.shape[0], generator=generator, device=device)
    return domains[perm.to(domains.device)]


class TransferableKnowledge(nn.Module):
    """h_d(x) = tanh((h(x) + e_D(x)) W + b) and the K-way domain classifier (Meta-KD sec. 3.2)."""

    def __init__(self, hidden, num_domains):
        super().__init__()
        self.domain_embedding = nn.Embedding(num_domains, hidden)   # e_D
        self.dense = nn.Linear(hidden, hidden)                      # W, b
        self.domain_classifier = nn.Linear(hidden, num_domains)     # sigma (logits; softmax in the CE)

    def forward(self, h, domains):
        """h [B, H] = h(x), domains [B] = true domain labels d_i -> h_d(x) [B, H] in (-1, 1)."""
        return torch.tanh(self.dense(h + self.domain_embedding(domains)))

    def domain_logits(self, h_d):
        """Logits of the K-way domain classifier on h_d(x): [B, K]."""
        return self.domain_classifier(h_d)


class MetaTeacherModel(nn.Module):
    """The classifier (one head) and the transferable-knowledge module, trained together."""

    def __init__(self, classifier: DomainClassifier, num_domains: int):
        super().__init__()
        self.classifier = classifier
        self.transferable = TransferableKnowledge(classifier.config.hidden_size, num_domains)

    def forward(self, batch, domain_ids: torch.Tensor, runtime: Runtime):
        """-> (class logits [B, C], domain logits [B, K]); h(x) and h_d(x) are computed in float32."""
        with runtime.autocast():
            out = self.classifier(batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.domain_sizes)
        h = mean_pooled_embedding(out.last_hidden.float(), batch.attention_mask)
        return out.logits, self.transferable.domain_logits(self.transferable(h, domain_ids))


def domain_adversarial_loss(domain_logits, corrupted_domains, reduction="mean"):
    """L_DA (Meta-KD sec. 3.2): cross-entropy of the domain classifier towards the corrupted labels z_i."""
    return F.cross_entropy(domain_logits, corrupted_domains, reduction=reduction)


def weighted_example_mean(per_example_loss, weights):
    """sum_i w_i * l_i / B: each example's loss scaled by its own weight, then divided by the batch size.

    Per-example weighting, as in the Meta-KD losses (t_i in L_MT, lambda_i in L'_KD);
    not mean(w) * mean(l). Normalised by B (the example count, like the paper's
    1 / sum_k |D_k|), not by sum(w), so the loss scale follows the weights.
    The weights are detached (constants).
    """
    return (weights.detach() * per_example_loss).sum() / per_example_loss.shape[0]


def meta_teacher_loss(logits, labels, t, domain_logits, corrupted_domains, gamma1):
    """L_MT (Meta-KD sec. 3.2, total meta-teacher loss).

    L_MT = (sum_i t_i * CE_i) / N + gamma1 * L_DA, L_DA averaged over the N examples,
    over the pooled examples of all domains. logits [N, C], labels [N], t [N],
    domain_logits [N, K], corrupted_domains [N]. (The released code also multiplies
    L_DA by t_i; this code weights only the CE.)
    """
    if gamma1 < 0:
        raise HrkdError(f"Meta-KD gamma1 must be >= 0: got {gamma1}")
    ce = F.cross_entropy(logits, labels, reduction="none")
    return weighted_example_mean(ce, t) + gamma1 * domain_adversarial_loss(domain_logits, corrupted_domains)


# ---------------------------------------------------------------- sec. 3.3: meta-distillation

def gold_probability(teacher_logits, labels):
    """p_T(y_i): the teacher's softmax probability of the true class, [B] (input to lambda_i)."""
    return teacher_logits.softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def domain_expertise_weight(t, teacher_prob_of_gold):
    """lambda_i (Meta-KD sec. 3.3, domain-expertise weight).

    lambda_i = (1 + t_i) / (exp((1 - p_T(y_i))^2) + 1). The paper writes
    exp(yhat - y)^2; docs/method.md (Meta-KD) reads yhat as the teacher's probability of the
    gold class (y = 1 for it), hence (1 - p_T(y_i))^2. Largest for a prototypical
    (t -> 1), correctly predicted (p_T -> 1) example; lambda in [0, 1] for t in [-1, 1].
    """
    return (1.0 + t) / (torch.exp((1.0 - teacher_prob_of_gold) ** 2) + 1.0)


def transferable_knowledge_loss(teacher_tk, student_tk_projected, reduction="mean"):
    """L_TKD (Meta-KD sec. 3.3): MSE(h_d^M(x), h_d^S(x) W_d^M), element-wise mean.

    teacher_tk [B, H_T] (the target, detached); student_tk_projected [B, H_T] is the
    student's h_d(x) already through the learned projection to teacher width.
    reduction "none" -> [B] (mean over H_T per example), "mean" -> scalar.
    """
    if reduction not in ("mean", "none"):
        raise HrkdError(f"transferable_knowledge_loss reduction must be 'mean' or 'none': got {reduction!r}")
    per_example = F.mse_loss(student_tk_projected, teacher_tk.detach(), reduction="none").mean(-1)
    return per_example.mean() if reduction == "mean" else per_example


def meta_distillation_loss(per_example, lambda_, tkd=None, gamma2=0.0, stage="one"):
    """L'_KD (Meta-KD sec. 3.3, complete KD loss), per-example weighted by lambda_i.

    per_example: dict of [B] tensors "embd", "attn", "hidn", "pred" (each example's
    summed-over-layers MSE / soft CE). tkd: [B] or scalar L_TKD (a scalar is used
    for every example). Every term used is multiplied by lambda_i, then
    sum_i / B (`weighted_example_mean`). Terms per stage:
      "one"          lambda_i * (embd + attn + hidn + pred + gamma2 * tkd)   the paper's one-stage formula
      "intermediate" lambda_i * (embd + attn + hidn + gamma2 * tkd)          two-stage, stage 1
      "prediction"   lambda_i * pred                                         two-stage, stage 2
    Two stages as in TinyBERT and the released Meta-KD code. The released code's
    stage 2 is an unweighted soft CE: pass lambda_ = ones to reproduce it.
    Only the keys a stage uses are required; tkd is ignored in "prediction" and
    may be None when gamma2 == 0.
    """
    if stage not in STAGES:
        raise HrkdError(f"Meta-KD distillation stage must be one of {', '.join(STAGES)}: got {stage!r}")
    if gamma2 < 0:
        raise HrkdError(f"Meta-KD gamma2 must be >= 0: got {gamma2}")
    names = {"one": ("embd", "attn", "hidn", "pred"),
             "intermediate": ("embd", "attn", "hidn"),
             "prediction": ("pred",)}[stage]
    missing = [n for n in names if n not in per_example]
    if missing:
        raise HrkdError(f"Meta-KD stage {stage!r} needs per-example term(s) {', '.join(missing)}")
    total = sum(per_example[n] for n in names)
    if stage != "prediction" and gamma2 > 0:
        if tkd is None:
            raise HrkdError(f"Meta-KD stage {stage!r} with gamma2={gamma2} needs the tkd term")
        total = total + gamma2 * tkd
    return weighted_example_mean(total, lambda_)


# ---------------------------------------------------------------- a meta-teacher's artifacts


def save_prototype_scores(path: Path, scores: dict[str, torch.Tensor], prototypes: torch.Tensor, info: dict) -> None:
    tensors = {f"score.{d}": t.float().contiguous() for d, t in scores.items()}
    tensors["prototypes"] = prototypes.float().contiguous()
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": PROTOTYPE_FORMAT, "info": json.dumps(info, sort_keys=True)})


def load_prototype_scores(teacher_path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """({domain: t [N_d]}, info) stored by a meta-teacher run; index i is the i-th example of the domain's train split."""
    path = Path(teacher_path) / PROTOTYPE_FILE
    if not path.is_file():
        raise HrkdError(f"{teacher_path}: no {PROTOTYPE_FILE}; it is not a meta-teacher (hrkd teach --kind meta)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise HrkdError(f"{path}: damaged safetensors file ({type(err).__name__}); train the meta-teacher again") from None
    if meta.get("format") != PROTOTYPE_FORMAT:
        raise HrkdError(f"{path}: not a prototype-score file (format {meta.get('format')!r})")
    tensors = read_tensors(path)
    scores = {k[len("score."):]: v for k, v in tensors.items() if k.startswith("score.")}
    return scores, json.loads(meta["info"])


def transferable_extras(module: TransferableKnowledge) -> dict[str, torch.Tensor]:
    return {EXTRAS_PREFIX + k: v for k, v in module.state_dict().items()}


def load_transferable(teacher_path: Path, device="cpu") -> tuple[TransferableKnowledge, list[str]]:
    """The meta-teacher's TransferableKnowledge module (frozen) and the domains its embedding rows stand for."""
    member = next(iter(members(teacher_path).values()))
    meta = read_meta(member)
    extras = {k[len(EXTRAS_PREFIX):]: v for k, v in load_extras(member).items() if k.startswith(EXTRAS_PREFIX)}
    if not extras:
        raise HrkdError(f"{member}: no transferable-knowledge weights; it is not a meta-teacher checkpoint")
    module = TransferableKnowledge(extras["dense.weight"].shape[1], extras["domain_embedding.weight"].shape[0])
    module.load_state_dict(extras)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device), list(meta["domains"])
