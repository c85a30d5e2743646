"""Students on a transfer set: how transfer examples join the steps (their names: hrkd_cli.vocabulary).

The prepared data's transfer set (hrkd_cli/data/transfer.py: unlabelled text, later windows of long
texts, augmented copies) has no labels; the teacher labels it. Every student method uses it in task
distillation and in the general stage, and only through terms that match the teacher: Eq. 1, 3, 4 (and
Eq. 2's soft cross-entropy, whose target is the teacher's output). No gold label of a transfer row is ever
read (hrkd_cli.batches.with_transfer replaces it by NO_LABEL).

Task distillation: each domain's sub-batch holds its ``distill.batch_per_domain`` labelled rows, exactly
those of a run without transfer data, followed by ``distill.transfer_ratio x batch_per_domain`` transfer
rows of the same domain, drawn in a seeded order of their own that cycles through the domain's transfer
set. Every step still holds one equal sub-batch from every domain, an epoch is still one pass over the
labelled data, and the labelled rows are the same as without transfer, so a run with transfer is paired
with the run without it step by step. The general stage (student.general_epochs) reads the union of the
training text and the transfer set, its epochs counting passes over that union.
"""

from __future__ import annotations

from hrkd_cli.batches import Split, load_splits, with_transfer
from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.sampling import StepSchedule
from hrkd_cli.vocabulary import general_stage, transfer_used

# Transfer rows are drawn in an order of their own, not the labelled rows'.
TRANSFER_SEED_OFFSET = 15_485_863


def check(preset: Preset, data, domains: list[str], world_size: int = 1) -> None:
    """Refuse transfer settings a student cannot use as asked, before anything trains."""
    if not preset.data.has_transfer:
        return
    if not transfer_used(preset):
        raise HrkdError("distill.transfer_ratio = 0 and no general stage: the student would see none of the transfer "
                        "examples that data.unlabeled, data.windows or data.augment_copies prepare; leave those out")
    if not data.transfer:
        raise HrkdError(f"{data.path}: prepared without transfer examples; prepare it again (hrkd prepare)")
    empty = [d for d in domains if data.transfer["counts"][d]["total"] == 0]
    if empty and preset.distill.transfer_ratio > 0:
        raise HrkdError(f"domain {empty[0]!r} has no transfer examples, but every step takes "
                        f"{preset.distill.transfer_rows} from every domain (distill.transfer_ratio); add unlabelled "
                        "text for it, or data.windows / data.augment_copies")
    if preset.distill.transfer_rows % world_size:
        raise HrkdError(f"distill.transfer_ratio x batch_per_domain = {preset.distill.transfer_rows} transfer rows is "
                        f"not divisible by --nproc {world_size}: every process needs an equal share")


class MixedSchedule:
    """StepSchedule's labelled rows of every domain, each followed by that domain's transfer rows.

    Rows index :func:`with_transfer` splits: a transfer row r of domain d is ``len(train_d) + r``.
    With batch_per_domain and the transfer rows both divisible by the process count, rank r's share
    (rows r, r+W, ...) is its share of each part."""

    def __init__(self, labelled: StepSchedule, transfer_sizes: list[int], rows: int, offsets: list[int]):
        self.labelled, self.offsets = labelled, offsets
        self.transfer = StepSchedule(transfer_sizes, rows, labelled.seed + TRANSFER_SEED_OFFSET, labelled.epochs)

    steps_per_epoch = property(lambda self: self.labelled.steps_per_epoch)
    total_steps = property(lambda self: self.labelled.total_steps)

    def global_indices(self, step: int) -> list[list[int]]:
        return [rows + [off + r for r in extra] for rows, extra, off in
                zip(self.labelled.global_indices(step), self.transfer.global_indices(step), self.offsets)]


def mix(preset: Preset, data, domains: list[str], train: list[Split], schedule: StepSchedule):
    """(splits, schedule) of task distillation: ``train`` and ``schedule`` as they are without transfer rows
    (or with distill.transfer_ratio = 0), else each domain's split followed by its transfer set, and a
    MixedSchedule over them."""
    if not (preset.data.has_transfer and preset.distill.transfer_ratio > 0):
        return train, schedule
    transfer = load_splits(data, "transfer", domains)
    splits = [with_transfer(x, t) for x, t in zip(train, transfer)]
    return splits, MixedSchedule(schedule, [len(t) for t in transfer], preset.distill.transfer_rows, [len(x) for x in train])


def general_text(preset: Preset, data, domains: list[str]) -> list[Split]:
    """The general stage's text per domain: the train split, followed by the transfer set where there is one."""
    train = load_splits(data, "train", domains)
    if not preset.data.has_transfer:
        return train
    return [with_transfer(x, t) for x, t in zip(train, load_splits(data, "transfer", domains))]


def record(preset: Preset, data) -> dict | None:
    """What transfer data a student saw, for its run.json and checkpoints (None: none)."""
    if not transfer_used(preset):
        return None
    t = data.transfer
    u = t.get("unlabeled") or {}
    return {"hash": t["hash"], "counts": t["counts"], "unlabeled": {k: u[k] for k in ("path", "sha256")} if u else None,
            "windows": t["windows"], "window_stride": t["window_stride"], "augment": t["augment"],
            "transfer_ratio": preset.distill.transfer_ratio, "rows_per_step": preset.distill.transfer_rows,
            "general_stage": general_stage(preset)}
