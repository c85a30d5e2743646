"""The distillation model: the frozen teacher(s), the student with its projections and relational module,
and the per-domain terms of Eq. 1-4 with their totals (Eq. 5 / Eq. 17).

Shared by every student trainer (hrkd_cli/train/: students.py's setup, general_kd.py's general stage, the
distill.py and baselines.py loops). Each function takes the settings it reads (``DistillConfig``,
``StudentConfig``), never the whole preset.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hrkd_cli.model import losses
from hrkd_cli.batches import Batch
from hrkd_cli.model.checkpoint import load_classifier, members
from hrkd_cli.config import DistillConfig, StudentConfig
from hrkd_cli.errors import HrkdError
from hrkd_cli.model.graph import HierarchicalRelationalModule, prototype_sum_and_count
from hrkd_cli.model.classifier import (DomainClassifier, EncoderOutput, Projections, random_student,
                                      student_from_teacher_layers, student_from_teacher_slice)
from hrkd_cli.model.pretrained import load_pretrained_encoder
from hrkd_cli.runtime import Runtime, RngState, all_reduce_sum, requires_grad


class Teachers:
    """The frozen teacher(s): domain -> (model, head index). Run under no_grad, never in DDP."""

    def __init__(self, path: Path, domains: list[str], runtime: Runtime):
        self.by_domain: dict[str, tuple[DomainClassifier, int]] = {}
        cache: dict[Path, tuple[DomainClassifier, dict]] = {}
        for d, member in members(path).items():
            if member not in cache:
                model, meta = load_classifier(member, runtime.device)
                model.eval()
                for p in model.parameters():
                    p.requires_grad_(False)
                cache[member] = (model, meta)
        group = members(path)
        for d in domains:
            if d in group:
                model, meta = cache[group[d]]
            else:
                # A domain the teacher never saw (Meta-KD Table 4): only a one-head teacher can serve it.
                model, meta = next(iter(cache.values()))
                if len(model.heads) > 1:
                    raise HrkdError(f"{path}: teacher has no head for domain {d!r} and has one head per domain")
            head = meta["domains"].index(d) if (len(model.heads) > 1) else 0
            self.by_domain[d] = (model, head)
        self.models = list({id(m): m for m, _ in self.by_domain.values()}.values())

    @property
    def config(self):
        return self.models[0].config

    @torch.no_grad()
    def __call__(self, batch: Batch, domains: list[str], runtime: Runtime, attentions: bool) -> EncoderOutput:
        """Teacher outputs for a step's batch; one forward when a single model serves every domain."""
        groups: dict[int, list[int]] = {}
        for i, (d, _) in enumerate(batch.domain_sizes):
            groups.setdefault(id(self.by_domain[domains[d]][0]), []).append(i)
        outs = []
        slices = list(batch.slices())
        for key, idxs in groups.items():
            model = next(m for m in self.models if id(m) == key)
            rows = torch.cat([torch.arange(slices[i][1].start, slices[i][1].stop) for i in idxs]).to(batch.input_ids.device)
            sizes = [(self.by_domain[domains[batch.domain_sizes[i][0]]][1], batch.domain_sizes[i][1]) for i in idxs]
            with runtime.autocast():
                out = model(batch.input_ids[rows], batch.attention_mask[rows], batch.token_type_ids[rows], sizes,
                            hidden_states=True, attentions=attentions)
            outs.append((rows, out))
        if len(outs) == 1:
            return outs[0][1]
        return _merge(outs, batch.input_ids.shape[0])


def _merge(outs, n: int) -> EncoderOutput:
    """Put per-model outputs back into batch order."""
    first = outs[0][1]

    def scatter(get):
        ref = get(first)
        full = ref.new_zeros((n, *ref.shape[1:]))
        for rows, out in outs:
            full[rows] = get(out)
        return full

    hidden = tuple(scatter(lambda o, i=i: o.hidden_states[i]) for i in range(len(first.hidden_states)))
    attn = tuple(scatter(lambda o, i=i: o.attentions[i]) for i in range(len(first.attentions))) if first.attentions else None
    return EncoderOutput(logits=scatter(lambda o: o.logits), hidden_states=hidden, attentions=attn)


def build_student(s: StudentConfig, teacher_model: str, teacher: DomainClassifier, num_domains: int,
                  num_labels: int) -> DomainClassifier:
    """The student before distillation (student.init): the same general start for every method and teacher,
    the distilling teacher's fine-tuned layers (whole or cut narrower), a whole pre-trained model, or a random
    encoder.
    ``teacher_model`` is teacher.model, the general start when student.model is empty."""
    pooler = s.head == "pooler"
    if s.init == "general":
        # The paper starts every student from one general model (TinyBERT's general distillation); here the
        # pre-trained model before fine-tuning, so no teacher's fine-tuning reaches the student through its start.
        name = s.model or teacher_model
        encoder = student_from_teacher_layers(load_pretrained_encoder(name, pooler=pooler), s.teacher_layers,
                                              f"student.init = 'general' ({name}):", pooler=pooler)
    elif s.init in ("teacher-layers", "teacher-slice"):
        # student.layers_from swaps where the layers come from (e.g. another teacher); the soft labels and
        # features to match stay the distilling teacher's. teacher-slice cuts them to a narrower shape
        # (hidden_size, num_heads, intermediate_size) instead of starting such a student from random weights.
        source, where = teacher.encoder, "the teacher's"
        if s.layers_from:
            source, where = load_pretrained_encoder(s.layers_from, pooler=pooler), f"student.layers_from {s.layers_from!r}:"
        if s.init == "teacher-layers":
            encoder = student_from_teacher_layers(source, s.teacher_layers, where, pooler=pooler)
        else:
            encoder = student_from_teacher_slice(source, s.teacher_layers, s.hidden_size, s.num_heads,
                                                 s.intermediate_size, where, pooler=pooler)
    elif s.init == "pretrained":
        if not s.model:
            raise HrkdError("student.init='pretrained' needs student.model (a hub name or a local path)")
        encoder = load_pretrained_encoder(s.model, pooler=pooler)
    else:
        encoder = random_student(teacher.config, s.num_layers, s.hidden_size, s.num_heads, s.intermediate_size, pooler)
    if encoder.config.vocab_size != teacher.config.vocab_size:
        raise HrkdError(f"student vocabulary ({encoder.config.vocab_size}) differs from the teacher's ({teacher.config.vocab_size})")
    return DomainClassifier(encoder, num_domains, num_labels)


def relational_settings(cfg: DistillConfig, num_student_layers: int, num_domains: int, feature_dim: int) -> dict:
    """The relational module's constructor arguments; saved in the checkpoint's meta to rebuild it."""
    return {"num_student_layers": num_student_layers, "num_domains": num_domains, "feature_dim": feature_dim,
            "gat_heads": cfg.gat_heads, "dropout": cfg.gat_dropout, "drop": list(cfg.drop), "graph": cfg.graph,
            "temperature": cfg.ratio_temperature, "floor": cfg.ratio_floor, "excess_beta": cfg.excess_beta,
            "excess_decay": cfg.excess_decay}


def relational_student(cfg: DistillConfig, num_student_layers: int, num_domains: int,
                       feature_dim: int) -> HierarchicalRelationalModule:
    """HRKD's part of the student side: the hierarchical relational module (Eq. 6-16). Frozen unless
    distill.graph_mode = joint: the released code never optimises the graph (docs/method.md, Why the published
    graph is inert); in meta mode MetaGraphUpdate switches its gradients on inside its own passes."""
    relational = HierarchicalRelationalModule(**relational_settings(cfg, num_student_layers, num_domains, feature_dim))
    if cfg.graph_mode != "joint":
        for p in relational.parameters():
            p.requires_grad_(False)
    return relational


def plain_student(cfg: DistillConfig, num_student_layers: int, num_domains: int, feature_dim: int) -> None:
    """The student side of a method without a relational module: the student and its projections only."""
    return None


class DistillationModel(nn.Module):
    """Everything the optimiser may touch: student, projections (W_embd, W_m^hidn) and relational module.

    forward() returns the student's outputs, its projected features and, for HRKD,
    the relational output computed from prototypes of the *global* batch.
    """

    def __init__(self, student: DomainClassifier, projections: Projections, relational: HierarchicalRelationalModule | None,
                 prototype_tokens: str, attentions: bool, runtime: Runtime):
        super().__init__()
        self.student = student
        self.projections = projections
        self.relational = relational
        self.include_padding = prototype_tokens == "all"
        self.attentions = attentions
        self.runtime = runtime
        # Set for logged steps: keep the relational module's input so ratio_gradients() can replay it.
        self.keep_relational_input = False
        self._relational_input = None

    def forward(self, batch: Batch):
        with self.runtime.autocast():
            out = self.student(batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.domain_sizes,
                               hidden_states=True, attentions=self.attentions)
            projected = self.projections(out.hidden_states)
        rel = None
        if self.relational is not None:
            protos = self.prototypes(projected, batch)
            if self.keep_relational_input:
                self._relational_input = (protos.detach(), RngState(protos.device))
            rel = self.relational(protos)
        return out, projected, rel

    def ratio_gradients(self, loss: torch.Tensor, rel) -> dict:
        """How much of the loss's gradient reaches the relational module, per student layer m (inspect-ratios).

        d loss / d r is read off the step's graph; the relational module alone is then replayed on the same
        prototypes with the same dropout masks, and that gradient is pushed on to graph m's parameters and to
        layer m's prototypes. Norms only; nothing is accumulated, and the RNG stream is left as it was.
        With the paper's graph collapsed (same-sign layer-2 scores), both are exactly zero.
        """
        if not rel.ratios.requires_grad:
            return {}
        protos, before = self._relational_input
        (g_r,) = torch.autograd.grad(loss, rel.ratios, retain_graph=True)
        after = RngState(protos.device)
        before.restore()
        graph_params = [list(g.parameters()) for g in self.relational.graphs]
        flat = [p for ps in graph_params for p in ps]
        x = protos.clone().requires_grad_(True)
        try:
            with requires_grad(flat, True), torch.enable_grad():
                r = self.relational(x).ratios
                grads = torch.autograd.grad((r * g_r.detach()).sum(), [x] + flat, allow_unused=True)
        finally:
            after.restore()
        gx, gp = grads[0], list(grads[1:])
        per_layer, i = [], 0
        for ps in graph_params:
            sq = sum(float(g.float().pow(2).sum()) for g in gp[i: i + len(ps)] if g is not None)
            per_layer.append(sq ** 0.5)
            i += len(ps)
        proto_norms = [0.0] * x.shape[0] if gx is None else [float(v) for v in gx.float().flatten(1).norm(dim=1)]
        return {"grad_graph": per_layer, "grad_prototypes": proto_norms}

    def prototypes(self, projected: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        """Eq. 6 per domain over the global batch: token sums and counts are all-reduced before dividing."""
        protos = []
        for _, sl in batch.slices():
            sums, count = prototype_sum_and_count([h[sl] for h in projected], batch.attention_mask[sl], self.include_padding)
            protos.append(all_reduce_sum(sums, self.runtime) / all_reduce_sum(count, self.runtime))
        return torch.stack(protos, dim=1)  # [M+1, D, F]


def domain_losses(cfg: DistillConfig, out: EncoderOutput, projected: list[torch.Tensor], t: EncoderOutput,
                  batch: Batch, layer_map: list[int], reduction: str = "mean") -> losses.DomainLosses:
    """The per-domain terms of Eq. 1-4 for one step: embd [D], attn [D, M], hidn [D, M], pred [D]."""
    M = len(layer_map)
    embd, attn, hidn, pred = [], [], [], []
    zero = projected[0].new_zeros((), dtype=torch.float32)
    for _, sl in batch.slices():
        embd.append(losses.embedding_loss(projected[0][sl], t.hidden_states[0][sl], reduction))
        a_d, h_d = [], []
        for m in range(1, M + 1):
            n = layer_map[m - 1]
            h_d.append(losses.hidden_loss(projected[m][sl], t.hidden_states[n][sl], reduction))
            if cfg.attention_loss == "off":
                a_d.append(zero if reduction == "mean" else zero.expand(sl.stop - sl.start))
            else:
                s_att, t_att = out.attentions[m - 1][sl], t.attentions[n - 1][sl]
                if cfg.attention_loss == "probs":
                    s_att, t_att = s_att.float().softmax(-1), t_att.float().softmax(-1)
                a_d.append(losses.attention_loss(s_att, t_att, mode=cfg.attention_loss, reduction=reduction))
        attn.append(torch.stack(a_d, dim=-1) if reduction == "none" else torch.stack(a_d))
        hidn.append(torch.stack(h_d, dim=-1) if reduction == "none" else torch.stack(h_d))
        pred.append(losses.soft_cross_entropy(out.logits[sl], t.logits[sl], cfg.temperature, class_reduction=cfg.soft_ce, reduction=reduction))
    if reduction == "none":  # lists of per-example tensors, one per domain (Meta-KD weights them)
        return losses.DomainLosses(embd, attn, hidn, pred)
    return losses.DomainLosses(torch.stack(embd), torch.stack(attn), torch.stack(hidn), torch.stack(pred))


def eq5_loss(cfg: DistillConfig, terms: losses.DomainLosses, rel) -> torch.Tensor:
    """Eq. 5: the terms summed over layers and domains, the prediction term weighted by distill.gamma
    (multi-domain TinyBERT-KD; per domain, single-domain TinyBERT-KD). ``rel`` is unused."""
    return terms.total(None, gamma=cfg.gamma)


def eq17_loss(cfg: DistillConfig, terms: losses.DomainLosses, rel) -> torch.Tensor:
    """Eq. 17 for HRKD: each layer's per-domain terms weighted by the relational ratios (plus Eq. R5's KL term
    in joint mode when distill.ratio_kl > 0); Eq. 5 for '- Domain Rel.' at the released code's scale
    (docs/method.md, Ablations)."""
    if "domain-rel" in cfg.drop and cfg.domain_rel_scale == "eq5":
        return eq5_loss(cfg, terms, rel)
    loss = terms.total(rel.ratios, gamma=cfg.gamma)
    if cfg.graph_mode == "joint" and cfg.ratio_kl > 0:
        loss = loss + cfg.ratio_kl * losses.kl_uniform_to_ratios(rel.ratios)
    return loss
