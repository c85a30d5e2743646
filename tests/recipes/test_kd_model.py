"""The student's initialisation (kd_model.build_student): whose layers a teacher-layers student starts from."""

import pytest
import torch
from transformers import BertModel

from hrkd_cli.models import DomainClassifier
from hrkd_cli.recipes.kd_model import build_student
from tiny import tiny_bert_config


def _teacher(path) -> DomainClassifier:
    return DomainClassifier(BertModel.from_pretrained(path, add_pooling_layer=False), 3, 2)


def test_teacher_layers_come_from_the_teacher_by_default(tiny_preset, tiny_teacher_dir):
    teacher = _teacher(tiny_teacher_dir)
    student = build_student(tiny_preset(), teacher, 3, 2)  # student.teacher_layers = [2, 4]
    for i, layer in enumerate([2, 4]):
        got, want = student.encoder.encoder.layer[i].state_dict(), teacher.encoder.encoder.layer[layer - 1].state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_layers_from_swaps_the_source_of_the_layers_not_the_teacher(tiny_preset, tiny_teacher_dir, tmp_path):
    torch.manual_seed(123)  # another model of the same shape: different weights
    other = BertModel(tiny_bert_config(), add_pooling_layer=False)
    other.save_pretrained(tmp_path / "other")
    teacher = _teacher(tiny_teacher_dir)
    student = build_student(tiny_preset(student={"layers_from": str(tmp_path / "other")}), teacher, 3, 2)
    for i, layer in enumerate([2, 4]):
        got = student.encoder.encoder.layer[i].state_dict()
        src, tch = other.encoder.layer[layer - 1].state_dict(), teacher.encoder.encoder.layer[layer - 1].state_dict()
        assert all(torch.equal(got[k], src[k]) for k in src)
        assert not all(torch.equal(got[k], tch[k]) for k in tch)
    emb = "word_embeddings.weight"
    assert torch.equal(student.encoder.embeddings.state_dict()[emb], other.embeddings.state_dict()[emb])


def test_a_source_with_too_few_layers_is_refused(tiny_preset, tiny_teacher_dir, tmp_path):
    from hrkd_cli.errors import HrkdError

    BertModel(tiny_bert_config(num_hidden_layers=2), add_pooling_layer=False).save_pretrained(tmp_path / "two")
    with pytest.raises(HrkdError, match=r"above student.layers_from '.*two': 2"):
        build_student(tiny_preset(student={"layers_from": str(tmp_path / "two")}), _teacher(tiny_teacher_dir), 3, 2)
