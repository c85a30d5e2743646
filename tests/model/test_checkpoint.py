import json

import pytest
import torch

from hrkd_cli.model.checkpoint import (
    load_classifier,
    members,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    save_checkpoint,
    save_group,
)
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import recover_dir
from cli_run import run_main
from tiny import tiny_classifier


META = {"role": "teacher", "kind": "mtl", "domains": ["a", "b"], "label_names": ["x", "y", "z"]}


def test_round_trip_preserves_weights_and_meta(tmp_path):
    model = tiny_classifier()
    save_checkpoint(tmp_path / "ck", model, META, extras={"projections.0.weight": torch.ones(2, 2)})
    loaded, meta = load_classifier(tmp_path / "ck")
    assert meta["kind"] == "mtl" and meta["num_heads"] == 2
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert not list(tmp_path.glob(".ck*"))  # no staging leftovers


def test_a_directory_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(HrkdError, match="not an hrkd checkpoint"):
        load_classifier(tmp_path / "other")
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "hrkd.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(HrkdError, match="not an hrkd checkpoint"):
        read_meta(tmp_path / "json")
    with pytest.raises(HrkdError, match="not found"):
        read_meta(tmp_path / "missing")


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    save_checkpoint(tmp_path / "ck", tiny_classifier(0), META)
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()

    class Boom:
        def save_pretrained(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "ck", tiny_classifier(1), META, tokenizer=Boom())
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before
    assert not list(tmp_path.glob(".ck.tmp-*"))


def test_a_swap_killed_between_renames_is_recovered(tmp_path):
    save_checkpoint(tmp_path / "last", tiny_classifier(), META)
    (tmp_path / "last").rename(tmp_path / ".last.old-123")
    recover_dir(tmp_path / "last")
    assert read_meta(tmp_path / "last")["kind"] == "mtl"


def test_group_members(tmp_path):
    save_checkpoint(tmp_path / "g" / "a" / "best", tiny_classifier(), {**META, "domains": ["a"]})
    save_group(tmp_path / "g", {"a": "a/best"}, {"role": "teacher", "domains": ["a"], "label_names": ["x", "y", "z"]})
    assert members(tmp_path / "g") == {"a": tmp_path / "g" / "a" / "best"}
    with pytest.raises(HrkdError, match="group checkpoint"):
        load_classifier(tmp_path / "g")


def test_optimizer_state_round_trips_without_pickle():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, info = optimizer_to_tensors(opt, "optim-main")
    json.dumps(info)  # the non-tensor part is plain JSON
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.1)
    optimizer_from_tensors(opt2, "optim-main", tensors, info)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)


# ---------------------------------------------------------------- damaged and mismatched checkpoints


def test_a_checkpoint_with_a_missing_key_is_refused_naming_it(tmp_path):
    from safetensors.torch import load_file, save_file

    save_checkpoint(tmp_path / "ck", tiny_classifier(), META)
    weights = tmp_path / "ck" / "model.safetensors"
    state = load_file(str(weights))
    del state["encoder.encoder.layer.1.output.dense.weight"]
    save_file(state, str(weights))
    with pytest.raises(HrkdError) as e:
        load_classifier(tmp_path / "ck")
    assert str(e.value).startswith(f"weights in {weights}: missing keys encoder.encoder.layer.1.output.dense.weight")


def test_a_head_of_another_shape_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ck", tiny_classifier(), {**META, "label_names": ["x", "y"]})  # 3 classes saved, 2 named
    with pytest.raises(HrkdError, match=r"keys of another shape heads.0.bias \(3,\) \(model \(2,\)\)"):
        load_classifier(tmp_path / "ck")


@pytest.mark.parametrize("damage", ["truncated weights", "truncated extras", "broken config", "broken meta"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, damage):
    save_checkpoint(tmp_path / "ck", tiny_classifier(), META, extras={"projections.0.weight": torch.ones(2, 2)})
    name = {"truncated weights": "model.safetensors", "truncated extras": "extras.safetensors",
            "broken config": "config.json", "broken meta": "hrkd.json"}[damage]
    f = tmp_path / "ck" / name
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    if name == "extras.safetensors":
        from hrkd_cli.model.checkpoint import load_extras

        with pytest.raises(HrkdError, match=f"{f}: damaged safetensors file"):
            load_extras(tmp_path / "ck")
        return
    # through the command line: `hrkd export` reads the checkpoint like every other command
    code, _, err = run_main(["export", str(tmp_path / "ck"), "-o", str(tmp_path / "out")], capsys, monkeypatch)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error:") and str(f) in lines[0] and "damaged" in lines[0]
    assert not (tmp_path / "out").exists()
