import pytest
import torch

from hrkd_cli.errors import HrkdError
from hrkd_cli.model.classifier import (
    DomainClassifier,
    Projections,
    random_student,
    student_from_teacher_layers,
    student_from_teacher_slice,
    uniform_layer_map,
)
from tiny import tiny_encoder


def test_attentions_are_the_masked_scores_before_softmax():
    enc = tiny_encoder()
    ids = torch.tensor([[2, 5, 7, 9], [3, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    captured = {}
    layer0 = enc.encoder.layer[0].attention.self

    def grab(mod, args, kwargs):
        captured["x"] = args[0] if args else kwargs["hidden_states"]

    layer0.register_forward_pre_hook(grab, with_kwargs=True)
    out = enc(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    x = captured["x"]
    q = layer0.query(x).view(2, 4, 4, 8).transpose(1, 2)
    k = layer0.key(x).view(2, 4, 4, 8).transpose(1, 2)
    expected = q @ k.transpose(-1, -2) / 8**0.5
    scores = out.attentions[0]
    assert torch.allclose(scores[0], expected[0], atol=1e-5)
    assert torch.allclose(scores[1][..., :2], expected[1][..., :2], atol=1e-5)
    assert (scores[1][..., 2:] < -1e30).all()  # padded keys carry the additive mask
    assert not torch.allclose(scores.softmax(-1).sum(-1), scores.sum(-1))  # really not probabilities


def test_without_attentions_the_same_outputs_come_from_sdpa():
    enc = tiny_encoder()
    ids = torch.tensor([[2, 5, 7, 9], [3, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    a = enc(input_ids=ids, attention_mask=mask, output_attentions=True).last_hidden_state
    b = enc(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-5)


def test_inference_without_attentions_runs_sdpa_on_the_cpu(monkeypatch):
    """No gradient and no attentions asked: SDPA (faster there); training keeps the explicit product."""
    import hrkd_cli.model.classifier as models

    calls = []
    real = models.sdpa_attention_forward
    monkeypatch.setattr(models, "sdpa_attention_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    enc = tiny_encoder()
    ids = torch.tensor([[2, 5, 7, 9], [3, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    trained = enc(input_ids=ids, attention_mask=mask).last_hidden_state
    assert calls == []  # gradient recorded: explicit product
    with torch.no_grad():
        served = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        enc(input_ids=ids, attention_mask=mask, output_attentions=True)  # attentions asked: explicit product
    assert len(calls) == len(enc.encoder.layer)  # one SDPA call per layer, for the no-grad pass only
    assert torch.allclose(trained[:, :2], served[:, :2], atol=1e-5)


def test_uniform_layer_map():
    assert uniform_layer_map(12, 4) == [3, 6, 9, 12]
    assert uniform_layer_map(6, 3) == [2, 4, 6]
    with pytest.raises(HrkdError, match="does not divide teacher depth 6"):
        uniform_layer_map(6, 4)


def test_student_from_teacher_layers_copies_the_chosen_layers():
    t = tiny_encoder()
    s = student_from_teacher_layers(t, [2, 4])
    assert s.config.num_hidden_layers == 2
    assert torch.equal(s.encoder.layer[0].output.dense.weight, t.encoder.layer[1].output.dense.weight)
    assert torch.equal(s.encoder.layer[1].attention.self.query.weight, t.encoder.layer[3].attention.self.query.weight)
    assert torch.equal(s.embeddings.word_embeddings.weight, t.embeddings.word_embeddings.weight)
    with pytest.raises(HrkdError, match="above the teacher's 4"):
        student_from_teacher_layers(t, [2, 5])


def test_teacher_slice_at_the_teachers_width_is_teacher_layers():
    t = tiny_encoder()
    whole = student_from_teacher_layers(t, [2, 4]).state_dict()
    sliced = student_from_teacher_slice(t, [2, 4], 32, 4, t.config.intermediate_size).state_dict()
    assert whole.keys() == sliced.keys() and all(torch.equal(whole[k], sliced[k]) for k in whole)


def test_teacher_slice_keeps_evenly_spaced_dimensions_heads_and_units():
    t = tiny_encoder(layers=4, hidden=32, heads=4)
    ffn = t.config.intermediate_size
    s = student_from_teacher_slice(t, [3], 8, 2, ffn // 2, pooler=False)
    assert (s.config.hidden_size, s.config.num_attention_heads, s.config.intermediate_size) == (8, 2, ffn // 2)
    res = torch.arange(0, 32, 4)  # every fourth residual dimension
    att = torch.tensor([0, 2, 4, 6, 16, 18, 20, 22])  # heads 0 and 2 (of 4, 8 wide), every other dimension of each
    units = torch.arange(ffn // 2) * ffn // (ffn // 2)
    tl, sl = t.encoder.layer[2], s.encoder.layer[0]
    assert torch.equal(sl.attention.self.query.weight, tl.attention.self.query.weight[att][:, res])
    assert torch.equal(sl.attention.self.value.bias, tl.attention.self.value.bias[att])
    assert torch.equal(sl.attention.output.dense.weight, tl.attention.output.dense.weight[res][:, att])
    assert torch.equal(sl.intermediate.dense.weight, tl.intermediate.dense.weight[units][:, res])
    assert torch.equal(sl.output.dense.weight, tl.output.dense.weight[res][:, units])
    assert torch.equal(sl.output.LayerNorm.weight, tl.output.LayerNorm.weight[res])
    assert torch.equal(s.embeddings.word_embeddings.weight, t.embeddings.word_embeddings.weight[:, res])
    assert torch.equal(s.embeddings.position_embeddings.weight, t.embeddings.position_embeddings.weight[:, res])
    out = s(input_ids=torch.tensor([[2, 5, 7]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    assert out.last_hidden_state.shape == (1, 3, 8) and torch.isfinite(out.last_hidden_state).all()


def test_teacher_slice_refuses_a_wider_shape_naming_each_setting():
    t = tiny_encoder(hidden=32, heads=4)
    with pytest.raises(HrkdError, match=r"student.hidden_size=64 is wider than the teacher's 32; student head size 16"):
        student_from_teacher_slice(t, [2], 64, 4, 16)
    with pytest.raises(HrkdError, match=r"student.intermediate_size=999 is wider"):
        student_from_teacher_slice(t, [2], 16, 4, 999)
    with pytest.raises(HrkdError, match=r"head size 16 \(hidden_size / num_heads\) is wider than the teacher's 8"):
        student_from_teacher_slice(t, [2], 32, 2, 16)


def test_random_student_checks_heads():
    with pytest.raises(HrkdError, match="not divisible"):
        random_student(tiny_encoder().config, 2, 30, 4, 64)
    assert random_student(tiny_encoder().config, 2, 16, 4, 32).config.hidden_size == 16


def test_heads_route_each_domain_slice():
    enc = tiny_encoder()
    model = DomainClassifier(enc, num_heads=3, num_labels=2).eval()
    ids = torch.randint(5, 100, (4, 6))
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    both = model(ids, mask, types, [(0, 2), (2, 2)]).logits
    cls = enc(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    assert torch.allclose(both[:2], model.heads[0](cls[:2]), atol=1e-5)
    assert torch.allclose(both[2:], model.heads[2](cls[2:]), atol=1e-5)
    single = DomainClassifier(enc, num_heads=1, num_labels=2)
    assert single.head_index(2) == 0


def test_projections_when_needed_are_identity_for_equal_widths():
    p = Projections(32, 32, 2, always=False)
    h = tuple(torch.randn(1, 3, 32) for _ in range(3))
    assert all(torch.equal(a, b) for a, b in zip(p(h), h))
    assert len(Projections(16, 32, 2, always=True)(tuple(torch.randn(1, 3, 16) for _ in range(3)))) == 3
