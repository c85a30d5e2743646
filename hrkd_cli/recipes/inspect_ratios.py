"""`hrkd inspect-ratios`: what the relational module said during and after training.

(a) From the ratio log saved with the checkpoint: the domain-relational ratios
    per layer and domain at the start, middle and end of training.
(b) For one example per domain (HRKD Tables 5 and 6): the student and graphs are
    run on those examples (one example is each domain's prototype batch) and the
    domain-relational ratio of every layer and the hierarchical similarity ratios
    of every layer are printed per domain.

The module runs in eval mode (no dropout), so (b) is deterministic. With the
`frozen` graph mode the second GAT layer often yields exactly uniform ratios in
eval mode (see hrkd_cli/model/graph.py); the log in (a) was recorded in train mode.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from rich.table import Table

from hrkd_cli.batches import Split, load_splits, make_batch
from hrkd_cli.model.checkpoint import load_classifier, load_extras, read_meta
from hrkd_cli.data.store import load_prepared
from hrkd_cli.data.tabular import jsonl_objects
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present, write_png_atomic
from hrkd_cli.model.graph import HierarchicalRelationalModule, prototype_sum_and_count
from hrkd_cli.model.classifier import Projections
from hrkd_cli.parsing import comma_items
from hrkd_cli.model.pretrained import load_tokenizer
from hrkd_cli.runs import Say
from hrkd_cli.runtime import requires_grad
from hrkd_cli.tables import print_table


def resolve_checkpoint(path: Path) -> Path:
    """Accept a student run directory (a group) or one of its checkpoints; return the checkpoint with weights."""
    path = Path(path)
    meta = read_meta(path)
    if "members" in meta:
        targets = sorted(set(meta["members"].values()))
        path = path / targets[0]
        meta = read_meta(path)
    if meta.get("role") != "student" or not meta.get("relational"):
        raise HrkdError(f"{path}: not an HRKD student checkpoint (no relational module); use a run of --method hrkd")
    return path


def ratio_log(ckpt: Path) -> list[dict]:
    """The logged ratios of the run that wrote ``ckpt``, through its final step where the run kept them.

    best/ holds the log up to the best dev score; the sibling last/ holds it to the end of training.
    """
    log = read_json_if_present(ckpt / "ratio_log.json") or []
    full = read_json_if_present(ckpt.parent / "last" / "ratio_log.json") or []
    if len(full) > len(log) and full[: len(log)] == log:
        log = full
    return [e for e in log if "ratios" in e]


def log_table(log: list[dict], domains: list[str]) -> Table:
    picks = {"start": log[0], "middle": log[len(log) // 2], "end": log[-1]}
    table = Table(title="Domain-relational ratios during training (per layer m; columns: domains)", title_justify="left")
    table.add_column("Layer", justify="right")
    table.add_column("When")
    table.add_column("Step", justify="right")
    for d in domains:
        table.add_column(d, justify="right")
    layers = len(log[0]["ratios"])
    for m in range(layers):
        for when, entry in picks.items():
            table.add_row(str(m) if when == "start" else "", when, str(entry["step"]), *[f"{r:.3f}" for r in entry["ratios"][m]])
    return table


def plot_log(log: list[dict], domains: list[str], path: Path) -> None:
    plt = _pyplot()
    layers = len(log[0]["ratios"])
    steps = [e["step"] for e in log]
    fig, axes = plt.subplots(1, layers, figsize=(3.2 * layers, 3), sharey=True, squeeze=False)
    for m in range(layers):
        ax = axes[0][m]
        for i, d in enumerate(domains):
            ax.plot(steps, [e["ratios"][m][i] for e in log], label=d)
        ax.axhline(1 / len(domains), color="grey", lw=0.5, ls="--")
        ax.set_title(f"layer {m}")
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("domain-relational ratio")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    _save_fig(fig, path)


def _pyplot():
    """matplotlib.pyplot drawing to files (the Agg backend, no display)."""
    # lazy: matplotlib.pyplot costs ~0.4 s at start-up (tools/startup_time.py); only --plot draws
    import matplotlib

    matplotlib.use("Agg")
    # lazy: as above
    import matplotlib.pyplot as plt

    return plt


def _save_fig(fig, path: Path) -> None:
    try:
        write_png_atomic(path, fig)
    finally:
        _pyplot().close(fig)


# --------------------------------------------------------------------------- is the weighting alive?

TIE = 1e-6  # ratios closer than this count as tied (the paper graph's collapse gives exact 1/D)
ZERO_GRAD = 1e-5  # gradient norms below this are float32 rounding of an exact zero


def ratio_summary(r: torch.Tensor) -> list[dict]:
    """Per layer, over T readings of the ratios r [T, M+1, D]: mean and largest spread (max - min over
    domains), share of readings with tied ratios, mean entropy relative to log D (1 = uniform, 0 = one-hot)."""
    r = r.double()
    sp = r.max(-1).values - r.min(-1).values
    ent = -(r * r.clamp_min(1e-12).log()).sum(-1) / math.log(r.shape[-1])
    return [{"spread_mean": float(sp[:, m].mean()), "spread_max": float(sp[:, m].max()),
             "tied_share": float((sp[:, m] < TIE).double().mean()), "entropy": float(ent[:, m].mean())}
            for m in range(r.shape[1])]


def train_diagnostics(log: list[dict]) -> list[dict]:
    """Per layer, over the logged training steps (train mode: GAT dropout on): mean and largest spread,
    share of steps with tied ratios, mean relative entropy, and the mean norms of the loss gradient that
    reached the layer's graph parameters and prototypes through the ratios (logged by distill)."""
    out = ratio_summary(torch.tensor([e["ratios"] for e in log]))
    for m, row in enumerate(out):
        for key in ("grad_graph", "grad_prototypes"):
            vals = [e[key][m] for e in log if key in e]
            row[key] = sum(vals) / len(vals) if vals else None
    return out


def ratio_jacobian_norms(relational: HierarchicalRelationalModule, protos: torch.Tensor) -> tuple[list[float], list[float]]:
    """||d r_m / d phi_m||_F and ||d r_m / d h_m||_F per layer m, for one set of prototypes [M+1, D, F].

    phi_m is graph m's parameters, h_m layer m's prototypes. Both are exactly zero where the paper's
    graph has collapsed, whatever the loss."""
    x = protos.clone().requires_grad_(True)
    graph_params = [list(g.parameters()) for g in relational.graphs]
    flat = [p for ps in graph_params for p in ps]
    sq_graph, sq_proto = [0.0] * x.shape[0], [0.0] * x.shape[0]
    with requires_grad(flat, True), torch.enable_grad():
        r = relational(x).ratios
        for m in range(r.shape[0]):
            for d in range(r.shape[1]):
                grads = torch.autograd.grad(r[m, d], [x] + graph_params[m], retain_graph=True, allow_unused=True)
                if grads[0] is not None:
                    sq_proto[m] += float(grads[0][m].pow(2).sum())
                sq_graph[m] += sum(float(g.pow(2).sum()) for g in grads[1:] if g is not None)
    return [v ** 0.5 for v in sq_graph], [v ** 0.5 for v in sq_proto]


@torch.no_grad()
def eval_diagnostics(ckpt: Path, data, batches: int = 4, per_domain: int = 16) -> list[dict]:
    """The same figures in eval mode (no dropout), on prototypes of `batches` dev batches of `per_domain`
    examples per domain; gradient figures are the ratios' Jacobian norms (ratio_jacobian_norms)."""
    meta = read_meta(ckpt)
    student, projections, relational = load_relational_parts(ckpt)
    domains = meta["domains"]
    dev = load_splits(data, "dev", domains)
    if any(len(x) == 0 for x in dev):
        dev = load_splits(data, "test", domains)
    ratios, jac_graph, jac_proto = [], [], []
    for b in range(batches):
        parts = [(d, x, [(b * per_domain + i) % len(x) for i in range(per_domain)]) for d, x in enumerate(dev)]
        protos = prototypes_of(student, projections, make_batch(parts), meta.get("prototype_tokens") == "all")
        ratios.append(relational(protos).ratios)
        g, p = ratio_jacobian_norms(relational, protos)
        jac_graph.append(g)
        jac_proto.append(p)
    return [{**row, "grad_graph": sum(x[m] for x in jac_graph) / batches,
             "grad_prototypes": sum(x[m] for x in jac_proto) / batches}
            for m, row in enumerate(ratio_summary(torch.stack(ratios)))]


def verdict(train: list[dict], evals: list[dict] | None) -> str:
    """One plain line: is the relational weighting doing anything?"""
    eval_dead = evals is not None and all(e["tied_share"] == 1.0 and e["grad_graph"] < ZERO_GRAD
                                          and e["grad_prototypes"] < ZERO_GRAD for e in evals)
    train_dead = all(t["tied_share"] >= 0.5 for t in train)
    largest = max(t["spread_max"] for t in train)
    if evals is None:
        return (f"verdict: train mode only (eval mode needs the checkpoint's weights and prepared data): the ratios "
                f"{'are tied in most steps' if train_dead else f'move (largest spread {largest:.3f})'}; GAT dropout "
                f"alone can do that, so compare with an eval-mode reading or a run with gat_dropout = 0")
    if eval_dead and train_dead:
        return "verdict: INERT - the ratios are 1/D in eval mode and tied in most training steps; this is Eq. 5 / D"
    if eval_dead:
        return (f"verdict: INERT - in eval mode every layer's ratios are exactly 1/D with zero gradient; in training "
                f"they move only by GAT dropout noise (largest spread {largest:.4f})")
    if evals is not None and max(e["spread_max"] for e in evals) < 0.01:
        return "verdict: NEAR-UNIFORM - the ratios respond to the domains, but by less than 0.01 in eval mode"
    return (f"verdict: ACTIVE - the ratios differ across domains (largest training spread {largest:.3f}) "
            f"and receive gradient")


def diagnostics_table(train: list[dict], evals: list[dict] | None) -> Table:
    table = Table(title="Is the domain-relational weighting alive? (per layer m; spread = max - min over domains; "
                  "entropy relative to log D; gradients: train = |dL/dphi_m|, |dL/dh_m| through the ratios, "
                  "eval = Jacobian norms |dr_m/dphi_m|, |dr_m/dh_m|)", title_justify="left")
    for col in ("Layer", "Mode", "Spread mean", "Spread max", "Tied steps", "Entropy/log D", "Grad graph", "Grad prototypes"):
        table.add_column(col, justify="right")
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for m, t in enumerate(train):
        modes = [("train", t)] + ([("eval", evals[m])] if evals is not None else [])
        for i, (mode, x) in enumerate(modes):
            table.add_row(str(m) if i == 0 else "", mode, fmt(x["spread_mean"], ".4f"), fmt(x["spread_max"], ".4f"),
                          f"{100 * x['tied_share']:.0f} %", fmt(x["entropy"], ".4f"), fmt(x["grad_graph"], ".2e"),
                          fmt(x["grad_prototypes"], ".2e"))
    return table


def read_examples(path: Path, domains: list[str], label_names: list[str]) -> list[dict]:
    rows = []
    try:
        objects = list(jsonl_objects(path))
    except OSError as err:
        raise HrkdError(f"{path}: cannot read ({err.strerror})") from None
    for n, row in objects:
        for key in ("domain", "text"):
            if key not in row:
                raise HrkdError(f"{path}:{n}: missing field {key!r}")
        if row["domain"] not in domains:
            raise HrkdError(f"{path}:{n}: unknown domain {row['domain']!r} (the student knows {', '.join(domains)})")
        rows.append(row)
    missing = [d for d in domains if d not in {r["domain"] for r in rows}]
    if missing:
        raise HrkdError(f"{path}: needs one example for every domain; missing {', '.join(missing)}")
    by_domain = {r["domain"]: r for r in rows}
    return [by_domain[d] for d in domains]


def sample_examples(data, domains: list[str], labels: str | None, seed: int) -> list[dict]:
    wanted = comma_items(labels) if labels else [None] * len(domains)
    if len(wanted) != len(domains):
        raise HrkdError(f"--labels {labels!r}: give one label per domain ({len(domains)})")
    rng = random.Random(seed)
    out = []
    for d, want in zip(domains, wanted):
        split = load_splits(data, "test", [d])[0]
        rows = list(range(len(split)))
        if want is not None:
            match = [i for i, name in enumerate(data.label_names) if name == want or name.startswith(want)]
            if not match:
                raise HrkdError(f"--labels: {want!r} is not a label ({', '.join(data.label_names)})")
            rows = [i for i in rows if split.label[i] == match[0]]
        i = rng.choice(rows)
        out.append({"domain": d, "text": split.text[i], "text_b": split.text_b[i] or None, "label": data.label_names[split.label[i]]})
    return out


def load_relational_parts(ckpt: Path):
    """Student, projections and relational module of an HRKD checkpoint, in eval mode, strictly loaded."""
    meta = read_meta(ckpt)
    student, _ = load_classifier(ckpt)
    student.eval()
    extras = load_extras(ckpt)
    projections = Projections(student.config.hidden_size, meta["teacher_width"], student.config.num_hidden_layers,
                              meta.get("projections", "always") == "always")
    projections.load_state_dict({k[len("projections."):]: v for k, v in extras.items() if k.startswith("projections.")})
    relational = HierarchicalRelationalModule(**meta["relational"])  # its constructor arguments, as distill saved them
    relational.load_state_dict({k[len("relational."):]: v for k, v in extras.items() if k.startswith("relational.")})
    relational.eval()
    return student, projections, relational


def prototypes_of(student, projections, batch, include_padding: bool) -> torch.Tensor:
    """Eq. 6 for every domain of ``batch`` -> [M+1, D, F]."""
    out = student(batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.domain_sizes, hidden_states=True)
    projected = projections(out.hidden_states)
    protos = []
    for _, sl in batch.slices():
        sums, count = prototype_sum_and_count([h[sl] for h in projected], batch.attention_mask[sl], include_padding)
        protos.append(sums / count)
    return torch.stack(protos, dim=1)


@torch.no_grad()
def example_ratios(ckpt: Path, examples: list[dict]):
    """Run student, projections and relational module with one example per domain."""
    meta = read_meta(ckpt)
    student, projections, relational = load_relational_parts(ckpt)
    tokenizer = load_tokenizer(str(ckpt))
    enc = [tokenizer(e["text"], e.get("text_b") or None, truncation=True, max_length=512) for e in examples]
    split = Split("examples", [x["input_ids"] for x in enc], [x.get("token_type_ids", [0] * len(x["input_ids"])) for x in enc],
                  [0] * len(enc), [e["text"] for e in examples], [e.get("text_b") or "" for e in examples])
    batch = make_batch([(d, split, [d]) for d in range(len(examples))])
    return relational(prototypes_of(student, projections, batch, meta.get("prototype_tokens") == "all"))


def case_study_table(examples: list[dict], rel, width: int = 70) -> Table:
    table = Table(title="Case study (HRKD Tables 5 and 6 layout)", title_justify="left", show_lines=True)
    table.add_column("Domain", style="bold")
    table.add_column("Label")
    table.add_column("Text", max_width=width)
    table.add_column("Domain-relational ratio (layers 0..M)")
    table.add_column("Hierarchical similarity ratio (layers 1..M)")
    for d, e in enumerate(examples):
        ratios = "[" + ", ".join(f"{r:.2f}" for r in rel.ratios[:, d].tolist()) + "]"
        sims = ", ".join("[" + ", ".join(f"{x:.2f}" for x in a[d].tolist()) + "]" for a in rel.similarity)
        text = e["text"] if len(e["text"]) <= width else e["text"][: width - 3] + "..."
        table.add_row(e["domain"], str(e.get("label", "")), text, ratios, sims)
    return table


def plot_case_study(examples: list[dict], rel, path: Path) -> None:
    plt = _pyplot()
    domains = [e["domain"] for e in examples]
    M = len(rel.similarity)
    fig, axes = plt.subplots(1, M + 1, figsize=(3.2 * (M + 1), 3), squeeze=False)
    ax = axes[0][0]
    im = ax.imshow(rel.ratios.T.numpy(), cmap="viridis", aspect="auto")
    ax.set_title("domain-relational ratio")
    ax.set_yticks(range(len(domains)), domains)
    ax.set_xlabel("layer")
    fig.colorbar(im, ax=ax)
    for m, sim in enumerate(rel.similarity, start=1):
        ax = axes[0][m]
        im = ax.imshow(sim.numpy(), cmap="magma", aspect="auto", vmin=0, vmax=1)
        ax.set_title(f"hier. similarity, layer {m}")
        ax.set_yticks(range(len(domains)), domains)
        ax.set_xlabel("layer")
    fig.tight_layout()
    _save_fig(fig, path)


def inspect_ratios(checkpoint: Path, *, examples: Path | None, sample: bool, labels: str | None, seed: int,
                   plot: Path | None, console, say: Say) -> dict:
    ckpt = resolve_checkpoint(checkpoint)
    meta = read_meta(ckpt)
    domains = meta["domains"]
    result: dict = {"checkpoint": str(ckpt)}
    if examples is None and not sample:
        log = ratio_log(ckpt)
        if not log:
            raise HrkdError(f"{ckpt}: its ratio log is empty")
        print_table(console, log_table(log, domains))
        result["log"] = log
        train = train_diagnostics(log)
        ddir = Path(meta.get("data_dir", ""))
        has_weights = (ckpt / "model.safetensors").is_file()
        evals = eval_diagnostics(ckpt, load_prepared(ddir)) if ddir.is_dir() and has_weights else None
        print_table(console, diagnostics_table(train, evals))
        result["diagnostics"] = {"train": train, "eval": evals, "verdict": verdict(train, evals)}
        console.print(result["diagnostics"]["verdict"], highlight=False, soft_wrap=True)
        if evals is None:
            say(f"(eval-mode figures skipped: {'the prepared data ' + str(ddir) + ' is gone' if has_weights else 'no weights in ' + str(ckpt)})")
        if plot:
            plot_log(log, domains, plot)
            say(f"wrote {plot}")
        return result
    if examples is not None:
        rows = read_examples(examples, domains, meta["label_names"])
    else:
        ddir = Path(meta.get("data_dir", ""))
        if not ddir.is_dir():
            raise HrkdError(f"{ckpt}: its prepared data {ddir} is gone; use --examples FILE")
        rows = sample_examples(load_prepared(ddir), domains, labels, seed)
    rel = example_ratios(ckpt, rows)
    print_table(console, case_study_table(rows, rel))
    result["examples"] = rows
    result["ratios"] = rel.ratios.tolist()
    result["similarity"] = [a.tolist() for a in rel.similarity]
    if plot:
        plot_case_study(rows, rel, plot)
        say(f"wrote {plot}")
    return result
