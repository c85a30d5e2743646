"""The student's initialisation (kd_model.build_student): the general start shared by every teacher, and whose
layers a teacher-layers (or teacher-slice) student starts from; the losses a method combines the terms with (Eq. 5, Eq. 17)."""

import pytest
import torch
from transformers import BertModel

from hrkd_cli.model.classifier import DomainClassifier
from hrkd_cli.model.kd_model import build_student, eq17_loss
from hrkd_cli.model.losses import DomainLosses
from tiny import tiny_bert_config


def student_of(preset, teacher: DomainClassifier, num_domains: int, num_labels: int) -> DomainClassifier:
    """build_student with the settings it reads from a preset: the student section and teacher.model."""
    return build_student(preset.student, preset.teacher.model, teacher, num_domains, num_labels)


def _teacher(path, pooler: bool = True) -> DomainClassifier:
    return DomainClassifier(BertModel.from_pretrained(path, add_pooling_layer=pooler), 3, 2)


def _fine_tuned(path, seed: int) -> DomainClassifier:
    """A teacher whose weights moved away from the pre-trained ones (as fine-tuning moves them), differently per seed."""
    teacher = _teacher(path)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return teacher


def test_the_general_start_is_the_same_for_two_different_teachers(tiny_preset, tiny_teacher_dir):
    preset = tiny_preset(student={"init": "general"})
    a, b = _fine_tuned(tiny_teacher_dir, 1), _fine_tuned(tiny_teacher_dir, 2)
    assert not torch.equal(a.encoder.encoder.layer[1].output.dense.weight, b.encoder.encoder.layer[1].output.dense.weight)
    torch.manual_seed(0)
    sa = student_of(preset, a, 3, 2).encoder.state_dict()
    torch.manual_seed(0)
    sb = student_of(preset, b, 3, 2).encoder.state_dict()
    assert sa.keys() == sb.keys() and "pooler.dense.weight" in sa
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # ... and it is the pre-trained model's layers 2 and 4, its embeddings and its pooler, not a teacher's
    pre = BertModel.from_pretrained(tiny_teacher_dir)
    for i, layer in enumerate([2, 4]):
        want = pre.encoder.layer[layer - 1].state_dict()
        assert all(torch.equal(sa[f"encoder.layer.{i}.{k}"], want[k]) for k in want)
    assert torch.equal(sa["pooler.dense.weight"], pre.pooler.dense.weight)
    assert not torch.equal(sa["pooler.dense.weight"], a.encoder.pooler.dense.weight)


def test_the_general_start_can_name_another_pretrained_model(tiny_preset, tiny_teacher_dir, tmp_path):
    torch.manual_seed(5)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "general")
    student = student_of(tiny_preset(student={"init": "general", "model": str(tmp_path / "general")}),
                            _teacher(tiny_teacher_dir), 3, 2)
    other = BertModel.from_pretrained(tmp_path / "general")
    assert torch.equal(student.encoder.embeddings.word_embeddings.weight, other.embeddings.word_embeddings.weight)


def test_a_pooler_head_needs_a_source_with_a_pooler(tiny_preset, tiny_teacher_dir, tmp_path):
    from hrkd_cli.errors import HrkdError

    with pytest.raises(HrkdError, match=r"student.head = 'pooler'.*set student.head = 'cls'"):
        student_of(tiny_preset(), _teacher(tiny_teacher_dir, pooler=False), 3, 2)
    BertModel(tiny_bert_config(), add_pooling_layer=False).save_pretrained(tmp_path / "nopool")
    with pytest.raises(HrkdError, match=r"no pooler.*'cls'"):
        student_of(tiny_preset(student={"init": "general", "model": str(tmp_path / "nopool")}),
                      _teacher(tiny_teacher_dir), 3, 2)
    cls_student = student_of(tiny_preset(student={"head": "cls"}), _teacher(tiny_teacher_dir, pooler=False), 3, 2)
    assert cls_student.head == "cls" and cls_student.encoder.pooler is None


def test_teacher_layers_come_from_the_teacher_by_default(tiny_preset, tiny_teacher_dir):
    teacher = _teacher(tiny_teacher_dir)
    student = student_of(tiny_preset(), teacher, 3, 2)  # student.teacher_layers = [2, 4]
    for i, layer in enumerate([2, 4]):
        got, want = student.encoder.encoder.layer[i].state_dict(), teacher.encoder.encoder.layer[layer - 1].state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_layers_from_swaps_the_source_of_the_layers_not_the_teacher(tiny_preset, tiny_teacher_dir, tmp_path):
    torch.manual_seed(123)  # another model of the same shape: different weights
    other = BertModel(tiny_bert_config())
    other.save_pretrained(tmp_path / "other")
    teacher = _teacher(tiny_teacher_dir)
    student = student_of(tiny_preset(student={"layers_from": str(tmp_path / "other")}), teacher, 3, 2)
    for i, layer in enumerate([2, 4]):
        got = student.encoder.encoder.layer[i].state_dict()
        src, tch = other.encoder.layer[layer - 1].state_dict(), teacher.encoder.encoder.layer[layer - 1].state_dict()
        assert all(torch.equal(got[k], src[k]) for k in src)
        assert not all(torch.equal(got[k], tch[k]) for k in tch)
    emb = "word_embeddings.weight"
    assert torch.equal(student.encoder.embeddings.state_dict()[emb], other.embeddings.state_dict()[emb])


def test_a_source_with_too_few_layers_is_refused(tiny_preset, tiny_teacher_dir, tmp_path):
    from hrkd_cli.errors import HrkdError

    BertModel(tiny_bert_config(num_hidden_layers=2)).save_pretrained(tmp_path / "two")
    with pytest.raises(HrkdError, match=r"above student.layers_from '.*two': 2"):
        student_of(tiny_preset(student={"layers_from": str(tmp_path / "two")}), _teacher(tiny_teacher_dir), 3, 2)


def test_teacher_slice_cuts_the_teachers_layers_or_those_of_layers_from(tiny_preset, tiny_teacher_dir, tmp_path):
    teacher = _teacher(tiny_teacher_dir)
    shape = {"init": "teacher-slice", "hidden_size": 16, "num_heads": 4, "intermediate_size": 32}
    student = student_of(tiny_preset(student=shape), teacher, 3, 2)  # student.teacher_layers = [2, 4]
    res = torch.arange(0, 32, 2)
    assert student.encoder.config.hidden_size == 16 and len(student.heads) == 3
    assert torch.equal(student.encoder.encoder.layer[1].output.LayerNorm.bias,
                       teacher.encoder.encoder.layer[3].output.LayerNorm.bias[res])
    assert torch.equal(student.encoder.pooler.dense.weight, teacher.encoder.pooler.dense.weight[res][:, res])
    torch.manual_seed(123)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "other")
    other = BertModel.from_pretrained(tmp_path / "other")
    swapped = student_of(tiny_preset(student={**shape, "layers_from": str(tmp_path / "other")}), teacher, 3, 2)
    assert torch.equal(swapped.encoder.embeddings.word_embeddings.weight, other.embeddings.word_embeddings.weight[:, res])


def test_domain_rel_loss_scale_setting(tiny_preset):
    terms = DomainLosses(torch.ones(3), torch.ones(3, 2), torch.ones(3, 2), torch.ones(3))
    rel = type("R", (), {"ratios": torch.full((3, 3), 1 / 3)})()
    eq5 = eq17_loss(tiny_preset(distill={"drop": ["domain-rel"], "domain_rel_scale": "eq5"}).distill, terms, rel)
    uniform = eq17_loss(tiny_preset(distill={"drop": ["domain-rel"], "domain_rel_scale": "uniform"}).distill, terms, rel)
    assert float(eq5) == pytest.approx(3 * (1 + 2 + 2) + 3)
    assert float(uniform) == pytest.approx(float(eq5) / 3)
