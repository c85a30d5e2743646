"""Per-example test predictions: what evaluation returns and the predictions.json every finished run writes."""

from __future__ import annotations

import datasets
import torch

from hrkd_cli.batches import Split
from hrkd_cli.model.checkpoint import save_checkpoint
from hrkd_cli.train.evaluation import checkpoint_predictions, domain_accuracy, domain_predictions, evaluate_checkpoint
from hrkd_cli.predictions import PREDICTIONS, read_predictions
from hrkd_cli.train.evaluation import score_test
from tiny import tiny_classifier

DOMAINS = ["a", "b"]


def columns(seed: int, n: int = 70) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 20, (n,), generator=g).tolist()  # mixed lengths: evaluation sorts rows by length
    ids = [torch.randint(1, 50, (k,), generator=g).tolist() for k in lengths]
    return {"input_ids": ids, "token_type_ids": [[0] * k for k in lengths], "label": torch.randint(0, 3, (n,), generator=g).tolist(),
            "text": [f"t{i}" for i in range(n)], "text_b": [""] * n}


class FakeData:
    """The parts of PreparedData that scoring reads."""

    hash = "d" * 64
    manifest = {"hash": "d" * 64, "split_hashes": {"a/test": "1" * 64, "b/test": "2" * 64}}

    def dataset(self, domain, split):
        return datasets.Dataset.from_dict(columns(DOMAINS.index(domain)))


def test_predictions_are_per_row_argmax_in_split_order(cpu_runtime):
    model = tiny_classifier().eval()
    split = Split.from_dataset("a", FakeData().dataset("a", "test"))
    preds = domain_predictions(model, 1, split, cpu_runtime, batch_size=16)
    with torch.no_grad():
        for i in (0, 7, 33, 69):
            ids = torch.tensor([split.input_ids[i]])
            out = model(ids, torch.ones_like(ids), torch.zeros_like(ids), [(1, 1)])
            assert preds[i] == int(out.logits.argmax(-1))
    hits = sum(p == y for p, y in zip(preds, split.label))
    assert domain_accuracy(model, 1, split, cpu_runtime, batch_size=16) == hits / len(split)


def test_score_test_writes_predictions_that_reproduce_the_scores(tmp_path, cpu_runtime):
    out = tmp_path / "run"
    save_checkpoint(out, tiny_classifier(), {"role": "student", "domains": DOMAINS, "label_names": ["x", "y", "z"], "data_hash": "d" * 64})
    data = FakeData()
    scores = score_test(out, data, DOMAINS, cpu_runtime)
    splits = [Split.from_dataset(d, data.dataset(d, "test")) for d in DOMAINS]
    assert scores == evaluate_checkpoint(out, splits, cpu_runtime, data.hash)  # the metric itself is unchanged
    pred = read_predictions(out)
    assert (out / PREDICTIONS).is_file() and not list(out.glob(".predictions.json*"))  # written atomically
    assert pred["split"] == "test" and pred["data_hash"] == data.hash
    assert pred["test_hashes"] == {"a": "1" * 64, "b": "2" * 64}
    assert {d: pred["domains"][d]["pred"] for d in DOMAINS} == checkpoint_predictions(out, splits, cpu_runtime)
    for s in splits:
        lists = pred["domains"][s.domain]
        assert lists["gold"] == s.label
        assert sum(p == y for p, y in zip(lists["pred"], lists["gold"])) / len(s) == scores[s.domain]


def _ddp_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import json

    import torch.distributed as dist

    from hrkd_cli.runtime import Runtime

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        split = Split.from_dataset("a", FakeData().dataset("a", "test"))
        rt = Runtime(torch.device("cpu"), "fp32", rank, world)
        preds = domain_predictions(tiny_classifier(), 0, split, rt, batch_size=16)  # 5 batches: ranks score 3 and 2
        if rank == 0:
            with open(out_file, "w") as f:
                json.dump(preds, f)
    finally:
        dist.destroy_process_group()


def test_two_processes_predict_like_one(tmp_path, cpu_runtime):
    import json

    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "preds.json")), nprocs=2, join=True)
    split = Split.from_dataset("a", FakeData().dataset("a", "test"))
    assert json.loads((tmp_path / "preds.json").read_text()) == domain_predictions(tiny_classifier(), 0, split, cpu_runtime, batch_size=16)
