"""Run records: reading run directories (run.json, predictions.json), grouping them into rows and
matching rows seed by seed.

A *run record* is the ``run.json`` every teach and distill run leaves next to its checkpoint. A teacher
row is one teacher directory; a student row is every seed of one configuration (same ``preset_hash``,
i.e. the same data, teacher, student and distill sections). Records of different prepared datasets
(manifest hashes) are never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from hrkd_cli.config import TRANSFER_FIELDS, with_late_fields
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.predictions import read_predictions
from hrkd_cli.vocabulary import DEFAULT_TEACHER

# Paper order of the rows (HRKD Tables 2 and 3).
TEACHER_ORDER = ["single", "mix", "mtl", "meta", "multi-domain"]
METHOD_ORDER = ["tinybert", "multi-domain", "mtn-kd", "meta-kd", "hrkd"]
TINYBERT_METHODS = ("tinybert", "multi-domain")
# Which TinyBERT-KD method is the natural one for a teacher kind (vocabulary.DEFAULT_TEACHER reversed).
NATURAL_TINYBERT = {"single": "tinybert", "multi-domain": "multi-domain"}

ABLATION_LABELS = {
    "self-attention": "Self-attention",
    "comp-agg": "Comp-Agg",
    "hierarchical": "Hierarchical Rel.",
    "domain-rel": "Domain Rel.",
}


@dataclass
class RunRecord:
    path: Path  # the directory holding run.json
    record: dict

    @property
    def role(self) -> str:
        return self.record.get("role", "")

    @property
    def seed(self) -> int | None:
        return self.record.get("seed")

    @property
    def data_hash(self) -> str:
        return self.record.get("data_hash", "")

    @property
    def preset(self) -> dict:
        return self.record.get("preset") or {}

    @property
    def method(self) -> str:
        return self.record.get("method") or ""

    @property
    def drop(self) -> tuple[str, ...]:
        return tuple((self.preset.get("distill") or {}).get("drop") or ())

    @property
    def tag(self) -> str:
        """student/<tag>/seed-N -> tag; teacher/<kind> -> kind."""
        return self.path.parent.name if self.role == "student" else self.path.name

    @property
    def teacher_kind(self) -> str:
        if self.role == "teacher":
            return self.record.get("kind", "")
        kind = (self.preset.get("distill") or {}).get("teacher_kind", "auto")
        return DEFAULT_TEACHER.get(self.method, "") if kind == "auto" else kind

    @property
    def uses_transfer(self) -> bool:
        """True when the student distilled on transfer examples (its row name says which)."""
        return self.role == "student" and " +transfer[" in (self.record.get("row") or "")

    @cached_property
    def configuration_without_transfer(self) -> dict:
        """The record's data, teacher, student and distill settings with every transfer setting left out: two
        student rows with equal values differ only in the transfer data they saw. A field the record predates
        takes its "as before" value (config.LATE_FIELDS)."""
        p = with_late_fields(self.preset)
        data = {k: v for k, v in (p.get("data") or {}).items() if k not in TRANSFER_FIELDS}
        distill = {k: v for k, v in (p.get("distill") or {}).items() if k != "transfer_ratio"}
        return {"data": data, "teacher": p.get("teacher"), "student": p.get("student"), "distill": distill}

    @property
    def group_key(self) -> str:
        if self.role == "teacher":
            return "teacher:" + str(self.path.resolve())
        return "student:" + (self.record.get("preset_hash") or str(self.path.parent.resolve()))

    def score(self, split: str, column: str) -> float | None:
        v = (self.record.get(split) or {}).get(column)
        return None if v is None else 100.0 * float(v)

    @cached_property
    def predictions(self) -> dict | None:
        """The run's predictions.json (None for runs finished before predictions were saved)."""
        return read_predictions(self.path)


def _read(path: Path) -> dict | None:
    """A run.json, or None when it is absent or damaged: a table lists the runs it can read."""
    try:
        return read_json_if_present(path)
    except HrkdError:
        return None


def _record_at(run_json: Path) -> RunRecord | None:
    rec = _read(run_json)
    if not isinstance(rec, dict) or rec.get("role") not in ("teacher", "student"):
        return None
    return RunRecord(run_json.parent, rec)


def results_records(results_dir: Path) -> list[RunRecord]:
    """The records of one results directory (a preset's run_dir): teacher/*/run.json, student/*/seed-*/run.json.

    Sub-experiments below it (fewshot/rate-*/) are separate results directories and are not included.
    """
    results_dir = Path(results_dir)
    found = sorted(results_dir.glob("teacher/*/run.json")) + sorted(results_dir.glob("student/*/seed-*/run.json"))
    return [r for r in (_record_at(p) for p in found) if r is not None]


def collect(paths: list[Path]) -> list[RunRecord]:
    """Records from run directories (teacher/<kind>, student/<tag>/seed-N), student tag directories
    (every seed-N below) or results directories (a preset's run_dir)."""
    if not paths:
        raise HrkdError("nothing to compare: give run directories or a results directory")
    records: dict[Path, RunRecord] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise HrkdError(f"{path}: no such run or results directory")
        if path.is_file() and path.name == "run.json":
            path = path.parent
        if not (path / "run.json").is_file() and (path.parent / "run.json").is_file() and (path / "hrkd.json").is_file():
            path = path.parent  # a checkpoint inside a run (best/, last/, a tinybert domain's directory)
        if (path / "run.json").is_file():
            found = [_record_at(path / "run.json")]
            if found[0] is None:
                raise HrkdError(f"{path}/run.json: not a teach or distill run record")
        elif list(path.glob("seed-*/run.json")):
            found = [_record_at(p) for p in sorted(path.glob("seed-*/run.json"))]
        else:
            found = results_records(path)
        found = [r for r in found if r is not None]
        if not found:
            raise HrkdError(f"{path}: no finished runs (run.json) in it, in its seed-*/ or under teacher/ and student/")
        for r in found:
            records.setdefault(r.path.resolve(), r)
    return list(records.values())


def check_same_data(records: list[RunRecord]) -> str:
    """The one manifest hash of ``records``; refuse records from different prepared datasets."""
    first: RunRecord | None = None
    for r in records:
        if not r.data_hash:
            raise HrkdError(f"{r.path}: run record has no data hash")
        if first is None:
            first = r
        elif r.data_hash != first.data_hash:
            raise HrkdError(
                f"runs from different datasets cannot be compared: {first.path} used data {first.data_hash} "
                f"and {r.path} used data {r.data_hash}"
            )
    return first.data_hash if first else ""


def domains_of(records: list[RunRecord], split: str) -> list[str]:
    """Domain columns in the data's order (the first record naming the most domains)."""
    best: list[str] = []
    for r in records:
        ds = [k for k in (r.record.get(split) or {}) if k != "average"]
        if len(ds) > len(best):
            best = ds
    manifest_order = None
    for r in records:
        ds = (r.preset.get("data") or {}).get("domains")
        if ds:
            manifest_order = ds
            break
    if manifest_order and set(manifest_order) == set(best):
        return list(manifest_order)
    return best


def group_runs(records: list[RunRecord]) -> list[list[RunRecord]]:
    """Records grouped by row (teacher directory or student configuration), each group sorted by seed."""
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.group_key, []).append(r)
    for runs in groups.values():
        runs.sort(key=lambda r: (r.seed if isinstance(r.seed, int) else 0, str(r.path)))
    return list(groups.values())


def matched_seeds(runs: list[RunRecord], ref_runs: list[RunRecord]) -> list[tuple[int, RunRecord, RunRecord]]:
    """(seed, run, reference run) for every seed number both rows have, in seed order. Runs that share a
    seed share batch order and student initialisation, which is what makes them a pair."""
    ref_by_seed: dict[int, RunRecord] = {}
    for r in ref_runs:
        if isinstance(r.seed, int):
            ref_by_seed.setdefault(r.seed, r)
    pairs: dict[int, tuple[int, RunRecord, RunRecord]] = {}
    for r in runs:
        if isinstance(r.seed, int) and r.seed in ref_by_seed:
            pairs.setdefault(r.seed, (r.seed, r, ref_by_seed[r.seed]))
    return [pairs[s] for s in sorted(pairs)]


def usable_predictions(run: RunRecord, domains: list[str]) -> tuple[dict | None, str]:
    """The run's test predictions for ``domains``, or None and why they cannot be used."""
    pred = run.predictions
    if pred is None:
        return None, "no predictions.json"
    if pred.get("split") != "test" or pred.get("data_hash") != run.data_hash:
        return None, "predictions.json is from other data than run.json"
    for d in domains:
        lists = pred["domains"].get(d)
        if lists is None:
            return None, f"predictions.json has no domain {d}"
        # Stale-file guard: the predictions must reproduce the accuracy run.json records.
        acc = (run.record.get("test") or {}).get(d)
        hits = sum(p == y for p, y in zip(lists["pred"], lists["gold"]))
        if acc is None or abs(hits / max(1, len(lists["gold"])) - float(acc)) > 1e-6:
            return None, "predictions.json disagrees with run.json's test accuracy"
    return pred, ""


def prediction_pairs(pairs: list[tuple[int, RunRecord, RunRecord]], domains: list[str]):
    """Per-seed predictions of a row and its reference over ``domains`` (one list per matched seed, each in the
    order of the one ``gold`` list), the seeds used, and one line per seed left out (missing predictions, or test
    data whose hash differs from the reference's or from the other seeds')."""
    pred, ref_pred, gold, used, skipped = [], [], None, [], []
    for seed, run, ref in pairs:
        a, why = usable_predictions(run, domains)
        b, ref_why = usable_predictions(ref, domains)
        if a is None or b is None:
            skipped.append(f"seed {seed}: {why or 'reference ' + ref_why}")
            continue
        if any((a.get("test_hashes") or {}).get(d) != (b.get("test_hashes") or {}).get(d)
               or a["domains"][d]["gold"] != b["domains"][d]["gold"] for d in domains):
            skipped.append(f"seed {seed}: test data hash differs from the reference's, not paired")
            continue
        seed_gold = [y for d in domains for y in a["domains"][d]["gold"]]
        if gold is not None and seed_gold != gold:
            skipped.append(f"seed {seed}: test examples differ from seed {used[0]}'s, not paired")
            continue
        gold = seed_gold
        pred.append([p for d in domains for p in a["domains"][d]["pred"]])
        ref_pred.append([p for d in domains for p in b["domains"][d]["pred"]])
        used.append(seed)
    return pred, ref_pred, gold or [], used, skipped


def teacher_mismatch(run: RunRecord, ref: RunRecord) -> str:
    """Why two runs cannot be paired as distilled from one teacher ("" when they can): both records carry the
    sha256 of the teacher weights they distilled from (run.json "teacher_sha256") and the two differ. Records
    written before the fingerprint existed are paired by teacher path as before."""
    a, b = run.record.get("teacher_sha256"), ref.record.get("teacher_sha256")
    if a and b and a != b:
        return f"teacher weights differ (sha256 {a[:12]} vs {b[:12]})"
    return ""
