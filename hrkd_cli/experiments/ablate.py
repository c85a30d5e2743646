"""`hrkd ablate`: HRKD and its ablations (HRKD Table 4; docs/method.md, Ablations).

Each configuration is HRKD with a set of switches off (``distill.drop``):
- ``--progressive``: the paper's cumulative order, exactly four configurations,
  each dropping the switches above it too:
  [self-attention], [self-attention, comp-agg],
  [self-attention, comp-agg, hierarchical], [all four];
- ``--drop NAME`` (repeatable): one configuration per use; ``a+b`` drops two
  switches together.
Full HRKD is always run as the reference row. Every configuration runs every
seed; seeds already finished with the same preset are reused. The configuration
with all four switches off (at the default Eq. 5 scale) is the multi-domain
TinyBERT-KD student itself, so its runs are shared with that row of Tables 2/3.
"""

from __future__ import annotations

from pathlib import Path

from hrkd_cli.compare.ablation import ablation_tables
from hrkd_cli.compare.records import collect
from hrkd_cli.config import Preset, preset_variant
from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.sweep import distill_seeds
from hrkd_cli.parsing import plus_items
from hrkd_cli.runs import Say
from hrkd_cli.runtime import Runtime
from hrkd_cli.vocabulary import ABLATIONS, PROGRESSIVE_ABLATIONS


def progressive_configs() -> list[tuple[str, ...]]:
    """The four cumulative configurations of HRKD Table 4, in the paper's order."""
    return [tuple(PROGRESSIVE_ABLATIONS[: k + 1]) for k in range(len(PROGRESSIVE_ABLATIONS))]


def parse_drop(item: str) -> tuple[str, ...]:
    """'comp-agg' -> ('comp-agg',); 'comp-agg+self-attention' -> ('self-attention', 'comp-agg') (canonical order)."""
    names = [x for x in plus_items(item) if x]
    if not names:
        raise HrkdError(f"--drop {item!r}: name an ablation ({', '.join(ABLATIONS)})")
    for n in names:
        if n not in ABLATIONS:
            raise HrkdError(f"--drop: unknown ablation {n!r}; choose from {', '.join(ABLATIONS)}")
    if len(set(names)) != len(names):
        raise HrkdError(f"--drop {item!r}: a switch is named twice")
    return tuple(a for a in ABLATIONS if a in names)


def ablation_configs(drops: list[str] | None, progressive: bool) -> list[tuple[str, ...]]:
    """The ablated configurations to run (full HRKD excluded), without repeats, progressive ones first."""
    configs: list[tuple[str, ...]] = []
    if progressive:
        configs += progressive_configs()
    for item in drops or []:
        c = parse_drop(item)
        if c not in configs:
            configs.append(c)
    if not configs:
        raise HrkdError("nothing to ablate: pass --progressive and/or --drop NAME")
    return configs


def ablate(preset: Preset, runtime: Runtime, configs: list[tuple[str, ...]], seeds: list[int], resume: bool = False,
           say: Say = print) -> dict[tuple[str, ...], list[Path]]:
    """Distil full HRKD and every configuration for every seed; returns {drop: [student run dirs]}."""
    base = {"distill.method": "hrkd"}
    if preset.distill.method != "hrkd":
        say(f"ablate: distill.method={preset.distill.method!r} replaced by 'hrkd' (ablations are of HRKD)")
    runs: dict[tuple[str, ...], list[Path]] = {}
    for drop in [(), *configs]:
        p = preset_variant(preset, {**base, "distill.drop": list(drop)})
        what = "full HRKD" if not drop else "drop " + " + ".join(drop)
        if is_multi_domain_kd(p):
            # No graph and Eq. 5's unit weights: exactly the multi-domain TinyBERT-KD student, whose runs
            # Tables 2/3 need anyway; run (or reuse) those instead of a copy under another name.
            p = preset_variant(preset, {"distill.method": "multi-domain", "distill.drop": []})
            what += " = multi-domain TinyBERT-KD (Eq. 5)"
        say(f"ablate: {what} ({len(seeds)} seed(s))")
        runs[drop] = distill_seeds(p, runtime, seeds, resume=resume, reuse=True, say=say)
    return runs


def is_multi_domain_kd(preset: Preset) -> bool:
    """HRKD with every switch off at the released code's scale (docs/method.md, Ablations) is plain Eq. 5:
    no graph, unit domain weights, gamma on the prediction loss; nothing else in the step differs."""
    cfg = preset.distill
    return (cfg.method == "hrkd" and set(cfg.drop) == set(ABLATIONS) and cfg.domain_rel_scale == "eq5"
            and cfg.graph_mode != "meta")  # meta's look-ahead pass still draws dropout masks


def ablation_results(runs: dict[tuple[str, ...], list[Path]], split: str = "test"):
    """Table 4 from the run directories of one `ablate` call."""
    records = collect([p for paths in runs.values() for p in paths])
    tables = ablation_tables(records, split)
    if not tables:
        raise HrkdError("no ablation table: the runs lack a full HRKD reference or an ablated configuration")
    return tables[0]
