"""Domain prototypes, domain-relational graphs and the hierarchical
compare-aggregate mechanism (HRKD sec. 2.2-2.3).

Shapes: M student layers (layer 0 = embedding output, so M+1 prototype layers),
D domains, F prototype width (the teacher width: prototypes are taken from the
projected student features).

Everything after the prototypes runs in float32 with autocast off: the bilinear
forms h W h^T over F ~ 768 reach large values, and bf16 would make the softmaxes
over them noisy.

Initialisation follows the released HRKD code (cheneydon/hrkd, models/gnn.py),
because with the default `frozen` graph mode (docs/method.md, Why the published graph is inert) the random initial
weights alone decide the ratios:
- GAT W and a: xavier-uniform, gain 1.414 (pyGAT), one matrix per head.
- W^D_m: xavier-uniform, gain 1.414, over each F x F matrix.
- W^H_{m,.}: the released code calls xavier-uniform on the whole [D, F, F] block
  of a layer, so torch takes fan_in = F*F and fan_out = D*F. That bound,
  1.414 * sqrt(6 / (F*F + D*F)), is about sqrt(F) times smaller than a per-matrix
  one; we keep it, since it is what keeps alpha^H away from a one-hot softmax in
  the published runs.
"""

import math
from typing import List, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from hrkd_cli.vocabulary import ABLATIONS, GRAPHS  # the names a preset may give; validated in config first
GAT_GAIN = 1.414
LEAKY_SLOPE = 0.2


def _xavier_uniform_(t, fan_in, fan_out, gain=GAT_GAIN):
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return t.uniform_(-bound, bound)


# --------------------------------------------------------------------------- prototypes

def prototype_sum_and_count(layer_features, attention_mask, include_padding=False):
    """Numerator and denominator of Eq. 6 (prototype h_{m,d} = token mean of layer m's output) for one
    domain's sub-batch.

    layer_features: M+1 tensors [B, L, F] (projected embedding output, then the
    projected layer outputs). Returns (sums [M+1, F] float32, count scalar float32).
    Kept apart from the division so the caller can all-reduce both across ranks.
    include_padding=True averages padding tokens too, as the released code does.
    """
    feats = torch.stack([f.float() for f in layer_features])  # [M+1, B, L, F]
    if include_padding:
        sums = feats.sum(dim=(1, 2))
        count = torch.tensor(float(feats.shape[1] * feats.shape[2]), device=feats.device)
    else:
        mask = attention_mask.to(device=feats.device, dtype=torch.float32)  # [B, L]
        sums = (feats * mask[None, :, :, None]).sum(dim=(1, 2))
        count = mask.sum()
    return sums, count


# --------------------------------------------------------------------------- graph attention

class GraphAttentionLayer(nn.Module):
    """One GAT layer over a fully connected graph with self loops.

    Eq. 7-9 with K heads (concatenated), and Eq. 10-12 with K=1 and out_features=1.
    Each head k: s_ij = a_k^T [W_k h_i ; W_k h_j], alpha = softmax_j(LeakyReLU(s)),
    h'_i = ELU(sum_j alpha_ij W_k h_j). Dropout on the input and on alpha, as pyGAT.
    """

    def __init__(self, in_features, out_features, heads=1, dropout=0.1):
        super().__init__()
        self.heads, self.out_features, self.dropout = heads, out_features, dropout
        self.W = nn.Parameter(torch.empty(heads, in_features, out_features))
        self.a = nn.Parameter(torch.empty(heads, 2 * out_features))  # [a_self ; a_neighbour]
        for k in range(heads):
            _xavier_uniform_(self.W[k], in_features, out_features)
            # pyGAT's a is a (2F', 1) matrix: fan_in 1, fan_out 2F'
            _xavier_uniform_(self.a[k], 1, 2 * out_features)

    def forward(self, x):
        """x [N, in] -> [N, heads * out] (heads concatenated in order)."""
        x = F.dropout(x, self.dropout, training=self.training)
        Wh = torch.einsum("ni,kio->kno", x, self.W)  # [K, N, out]
        a_self, a_nbr = self.a[:, : self.out_features], self.a[:, self.out_features:]
        # a^T [Wh_i ; Wh_j] splits into a term for i plus a term for j
        s = (Wh @ a_self.unsqueeze(-1)) + (Wh @ a_nbr.unsqueeze(-1)).transpose(1, 2)  # [K, N, N]
        alpha = F.softmax(F.leaky_relu(s, LEAKY_SLOPE), dim=-1)  # over neighbours j
        alpha = F.dropout(alpha, self.dropout, training=self.training)
        h = F.elu(alpha @ Wh)  # [K, N, out]
        return h.transpose(0, 1).reshape(x.shape[0], -1)


class DomainRelationalGraph(nn.Module):
    """Two-layer GAT for one student layer m; nodes are the D domain prototypes.

    Eq. 7-9 (K heads, width F') then Eq. 10-12 (W' 1 x KF', a' in R^2), then a
    softmax over domains gives the domain-relational ratios r_m [D] (sum to 1).

    Beware: the second layer works on scalars z_j = W' h'_j, so s'_ij = a'_1 z_i + a'_2 z_j.
    If all s'_ij share one sign, LeakyReLU is linear on them, the a'_1 z_i term cancels
    in the softmax, every node gets the same output and r_m is exactly uniform (with
    zero gradient). With random frozen weights and close domain prototypes this is the
    usual case in eval mode; in training, dropout noise breaks the tie.
    """

    def __init__(self, feature_dim, hidden_dim=None, heads=8, dropout=0.1):
        super().__init__()
        hidden_dim = feature_dim if hidden_dim is None else hidden_dim
        self.layer1 = GraphAttentionLayer(feature_dim, hidden_dim, heads=heads, dropout=dropout)
        self.layer2 = GraphAttentionLayer(heads * hidden_dim, 1, heads=1, dropout=dropout)

    def forward(self, prototypes):
        """prototypes [D, F] -> r_m [D]."""
        return F.softmax(self.layer2(self.layer1(prototypes)).squeeze(-1), dim=0)


# --------------------------------------------------------------------------- a read-out that cannot collapse
#
# The paper's ratios are softmax_d of a second GAT layer that works on scalars
# (Eq. 10-12); whenever that layer's scores share a sign its output is the same
# for every node and the ratios are exactly 1/D with zero gradient. GAT's first
# layer has the same weakness (its attention is "static": a row's softmax
# cancels the node's own term whenever the LeakyReLU is linear), so width alone
# does not help. The read-outs below keep each domain's own prototype in its
# score (a residual self term) and bound the ratios away from one-hot.


def mix_with_uniform(p, floor):
    """Eq. R3 (ours): r = (1 - lambda) p + lambda / D.

    Every ratio stays >= lambda / D and <= 1 - lambda + lambda / D, so no
    domain's distillation signal is switched off, whatever the scores.
    """
    return (1.0 - floor) * p + floor / p.shape[-1]


def relational_scores(z, x, w):
    """Eq. R1 (ours): s_d = w^T [z_d ; x_d - mean_j x_j].

    z [D, K*F'] is the first GAT layer's output (Eq. 7-9), x [D, F] the graph's
    input prototypes; w [K*F' + F] is a learnt read-out. The residual term
    x_d - mean_j x_j is each domain's own deviation from the others, so s_d
    differs across domains whenever the prototypes do (ds/dx is w's lower part,
    non-zero), even where GAT's attention makes z the same for every node.
    """
    return torch.cat([z, x - x.mean(dim=0, keepdim=True)], dim=-1) @ w


def excess_loss_feature(layer_loss):
    """Eq. R4 (ours): g_d = L_d / mean_j L_j - 1, the relative excess of each
    domain's current student-teacher loss over the domains' mean (the
    excess-loss signal of domain reweighting as in DoReMi, with the teacher as
    the reference model). layer_loss [..., D] -> [..., D]; zero when all are equal.
    """
    return layer_loss / layer_loss.mean(dim=-1, keepdim=True).clamp_min(1e-12) - 1.0


def readout_ratios(scores, temperature, floor):
    """Eq. R2-R3 (ours): r = (1 - lambda) softmax(s / tau) + lambda / D."""
    return mix_with_uniform(F.softmax(scores / temperature, dim=-1), floor)


class ResidualRelationalGraph(nn.Module):
    """The `residual` and `excess` graphs for one student layer m (ours).

    Eq. 7-9 as the paper (K heads, width F', ELU), then, instead of the scalar
    second layer Eq. 10-12, the read-out Eq. R1 with its residual self term,
    plus (for `excess`, beta > 0) beta * g_{m,d} of Eq. R4, and Eq. R2-R3:
        r_m = (1 - lambda) softmax((s_m + beta g_m) / tau) + lambda / D.
    """

    def __init__(self, feature_dim, hidden_dim=None, heads=8, dropout=0.1):
        super().__init__()
        hidden_dim = feature_dim if hidden_dim is None else hidden_dim
        self.layer1 = GraphAttentionLayer(feature_dim, hidden_dim, heads=heads, dropout=dropout)
        width = heads * hidden_dim + feature_dim
        self.readout = nn.Parameter(torch.empty(width))
        _xavier_uniform_(self.readout, width, 1)

    def forward(self, prototypes, temperature=1.0, floor=0.5, excess=None, beta=0.0):
        """prototypes [D, F] (and excess g [D]) -> r_m [D]."""
        s = relational_scores(self.layer1(prototypes), prototypes, self.readout)
        if excess is not None and beta:
            s = s + beta * excess
        return readout_ratios(s, temperature, floor)


# --------------------------------------------------------------------------- compare-aggregate

def reference_prototypes(h_m, W_D):
    """Eq. 13-14: alpha^D = softmax(h_m W^D h_m^T) over the last axis, RP = alpha^D h_m.

    h_m [D, F], W_D [F, F] -> (RP [D, F], alpha^D [D, D]).
    """
    alpha_D = F.softmax(h_m @ W_D @ h_m.transpose(0, 1), dim=-1)
    return alpha_D @ h_m, alpha_D


def compare_aggregate(h_upto_m_d, W_H_md, rp_md):
    """Eq. 15-16: alpha^H = softmax over layers 0..m of h_{<=m,d} W^H_{m,d} RP_{m,d},
    aggregated prototype AP = alpha^H h_{<=m,d}.

    h_upto_m_d [m+1, F], W_H_md [F, F], rp_md [F] -> (AP [F], alpha^H [m+1]).
    Leading batch dims are allowed, e.g. all domains at once:
    [D, m+1, F], [D, F, F], [D, F] -> ([D, F], [D, m+1]).
    """
    scores = (h_upto_m_d @ (W_H_md @ rp_md.unsqueeze(-1))).squeeze(-1)  # [..., m+1]
    alpha_H = F.softmax(scores, dim=-1)
    return (alpha_H.unsqueeze(-2) @ h_upto_m_d).squeeze(-2), alpha_H


class RelationalOutput(NamedTuple):
    ratios: torch.Tensor  # [M+1, D] domain-relational ratios r
    similarity: List[torch.Tensor]  # M items; item m-1 is alpha^H of layer m, [D, m+1]
    reference_attention: List[Optional[torch.Tensor]]  # M items; alpha^D [D, D] or None
    graph_inputs: List[torch.Tensor]  # M+1 items [D, F]: h_0, then AP_m (or its ablated stand-in)


class HierarchicalRelationalModule(nn.Module):
    """Prototypes of all layers and domains -> domain-relational ratios (sec. 2.2-2.3).

    forward(prototypes [M+1, D, F]) -> RelationalOutput. Layer 0's graph sees the
    raw embedding prototypes; layer m >= 1's graph sees the aggregated prototypes AP_m.

    `drop` holds ablations (HRKD Table 4; docs/method.md, Ablations); they are independent switches,
    so a progressive row is just their union:
    - "self-attention": RP_m = h_m (no W^D; reference_attention reports I).
    - "comp-agg": AP_m = plain mean of layers 0..m (no W^D, W^H; similarity uniform).
    - "hierarchical": graph m sees h_m only (no W^D, W^H; similarity one-hot on m).
    - "domain-rel": no graphs; every ratio is 1/D. Loss scale: with ratios 1/D,
      Eq. 17 equals Eq. 5 divided by D, i.e. the same scale as a graph whose
      ratios sum to 1 over domains and the same gamma/D on the prediction loss.
      The released code instead uses Eq. 5's unit weights (docs/method.md, Ablations): callers that
      want that check `uses_graph` and call losses.multi_domain_kd_loss.
      Without graphs nothing consumes AP, so no aggregation is computed; similarity
      then reports the parameter-free weights of the other switches (one-hot if
      "hierarchical" is dropped too, else uniform) and reference_attention is None.
    Parameters that an ablation leaves unused are not created (keeps DDP happy).
    """

    def __init__(self, num_student_layers, num_domains, feature_dim, gat_heads=8,
                 gat_hidden=None, dropout=0.1, drop=(), graph="paper", temperature=1.0, floor=0.5,
                 excess_beta=1.0, excess_decay=0.9):
        super().__init__()
        drop = frozenset(drop)
        unknown = drop - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablation(s) {sorted(unknown)}; expected a subset of {ABLATIONS}")
        if graph not in GRAPHS:
            raise ValueError(f"unknown graph {graph!r}; expected one of {GRAPHS}")
        M, D, Fdim = num_student_layers, num_domains, feature_dim
        self.num_student_layers, self.num_domains, self.feature_dim = M, D, Fdim
        self.drop = drop
        self.graph = graph
        self.temperature, self.floor = temperature, floor
        self.excess_beta, self.excess_decay = excess_beta, excess_decay
        self.uses_graph = "domain-rel" not in drop
        # compare-aggregate is learned only if nothing replaces it or makes it unused
        self.learned_aggregation = not drop & {"comp-agg", "hierarchical", "domain-rel"}
        self.uses_reference_attention = self.learned_aggregation and "self-attention" not in drop

        # Creation order graphs, W^H, W^D: with one seed, every ablation gets the
        # same initial values for the parts it keeps, so ablation runs compare cleanly.
        graph_cls = DomainRelationalGraph if graph == "paper" else ResidualRelationalGraph
        self.graphs = nn.ModuleList(
            [graph_cls(Fdim, gat_hidden, gat_heads, dropout) for _ in range(M + 1)]
            if self.uses_graph else [])
        self.needs_losses = self.uses_graph and graph == "excess"
        if self.needs_losses:
            # Eq. R4's L_{m,d}: a running mean of each layer's per-domain loss, saved with the checkpoint
            # so a resumed run continues with the same ratios.
            self.register_buffer("loss_ema", torch.zeros(M + 1, D))
            self.register_buffer("loss_ema_steps", torch.zeros((), dtype=torch.long))
        self.W_D = self.W_H = None
        if self.learned_aggregation:
            self.W_H = nn.Parameter(torch.empty(M, D, Fdim, Fdim))  # W^H_{m,d}
            for i in range(M):  # released code's fans for a [D, F, F] block (module doc)
                _xavier_uniform_(self.W_H[i], Fdim * Fdim, D * Fdim)
        if self.uses_reference_attention:
            self.W_D = nn.Parameter(torch.empty(M, Fdim, Fdim))  # W^D_m, m = 1..M
            for i in range(M):
                _xavier_uniform_(self.W_D[i], Fdim, Fdim)

    def aggregate(self, h, m):
        """Graph input for layer m >= 1. h [M+1, D, F] -> (input [D, F], alpha^H [D, m+1], alpha^D)."""
        D = h.shape[1]
        h_upto = h[: m + 1].transpose(0, 1)  # [D, m+1, F]
        if "hierarchical" in self.drop:
            sim = torch.zeros(D, m + 1, device=h.device)
            sim[:, m] = 1.0  # the graph sees layer m alone
            return h[m], sim, None
        if not self.learned_aggregation:
            sim = torch.full((D, m + 1), 1.0 / (m + 1), device=h.device)
            return h_upto.mean(dim=1), sim, None
        if self.uses_reference_attention:
            rp, alpha_D = reference_prototypes(h[m], self.W_D[m - 1])
        else:
            rp, alpha_D = h[m], torch.eye(D, device=h.device)
        ap, alpha_H = compare_aggregate(h_upto, self.W_H[m - 1], rp)
        return ap, alpha_H, alpha_D

    def forward(self, prototypes):
        M1, D, _ = prototypes.shape
        if M1 != self.num_student_layers + 1 or D != self.num_domains:
            raise ValueError(f"prototypes {tuple(prototypes.shape)}: expected "
                             f"[{self.num_student_layers + 1}, {self.num_domains}, F]")
        with torch.autocast(prototypes.device.type, enabled=False):
            h = prototypes.float()
            ratios, similarity, reference_attention, graph_inputs = [], [], [], []
            for m in range(M1):
                x = h[m]
                if m >= 1:
                    x, alpha_H, alpha_D = self.aggregate(h, m)
                    similarity.append(alpha_H)
                    reference_attention.append(alpha_D)
                graph_inputs.append(x)
                if self.uses_graph and self.graph == "paper":
                    ratios.append(self.graphs[m](x))
                elif self.uses_graph:
                    # Before the first observe() the running loss is all zeros and g is -1 for every domain:
                    # a constant shift that softmax ignores, so no branch (and no device sync) is needed.
                    g = excess_loss_feature(self.loss_ema[m]) if self.needs_losses else None
                    ratios.append(self.graphs[m](x, self.temperature, self.floor, g, self.excess_beta))
                else:
                    ratios.append(torch.full((D,), 1.0 / D, device=h.device))
            return RelationalOutput(torch.stack(ratios), similarity, reference_attention, graph_inputs)

    @torch.no_grad()
    def observe(self, layer_loss):
        """Fold one step's per-layer, per-domain loss [M+1, D] (Eq. 17's terms that r_m weights:
        row 0 the embedding loss, row m the attention + hidden losses of layer m) into Eq. R4's
        running mean (exponential, decay ``excess_decay``; the first step sets it)."""
        if not self.needs_losses:
            return
        layer_loss = layer_loss.detach().float().to(self.loss_ema.device)
        decayed = self.loss_ema * self.excess_decay + layer_loss * (1.0 - self.excess_decay)
        # torch.where, not an if on the step count: no host-device sync on every training step
        self.loss_ema.copy_(torch.where(self.loss_ema_steps == 0, layer_loss, decayed))
        self.loss_ema_steps += 1


def layer_losses(terms):
    """The per-layer, per-domain loss that each ratio r_{m,d} weights in Eq. 17: [M+1, D].

    terms: losses.DomainLosses with embd [D], attn [D, M], hidn [D, M].
    """
    return torch.cat([terms.embd.unsqueeze(0), (terms.attn + terms.hidn).transpose(0, 1)], dim=0)
