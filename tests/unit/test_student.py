"""Building students: the paper's presets, a subset of the teacher's layers, a BertConfig file, a saved folder."""

from __future__ import annotations

import json

import pytest
import torch

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.distillation.student import build_student
from tinybert_edge.errors import ConfigError, ModelError

LABELS = ("neg", "neutral", "pos")


@pytest.fixture(scope="module")
def teacher():
    return tiny_bert.classifier(seed=1, layers=3, hidden=32, heads=2, labels=LABELS)


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_preset_tinybert4_shape_keeps_teacher_vocabulary_and_labels():
    # The preset has 12 heads; the teacher must too for the config to be a sensible distillation pair.
    teacher = tiny_bert.classifier(layers=2, hidden=48, heads=12, labels=LABELS)
    student = build_student("tinybert-4l-312h", teacher)
    cfg = student.config
    shape = (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads)
    assert shape == (4, 312, 1200, 12)
    assert cfg.vocab_size == teacher.config.vocab_size == len(tiny_bert.WORDS)
    assert student.bert.embeddings.word_embeddings.weight.shape == (len(tiny_bert.WORDS), 312)
    assert cfg.num_labels == 3
    assert [cfg.id2label[i] for i in range(3)] == list(LABELS)
    assert cfg.label2id == {name: i for i, name in enumerate(LABELS)}
    assert student.classifier.out_features == 3
    assert len(student.bert.encoder.layer) == 4


def test_teacher_layers_copies_exactly_those_layers(teacher):
    student = build_student("teacher-layers:1,3", teacher)
    assert student.config.num_hidden_layers == 2
    assert student.config.hidden_size == teacher.config.hidden_size
    _same_tensors(student.bert.encoder.layer[0], teacher.bert.encoder.layer[0])
    _same_tensors(student.bert.encoder.layer[1], teacher.bert.encoder.layer[2])
    _same_tensors(student.bert.embeddings, teacher.bert.embeddings)
    _same_tensors(student.bert.pooler, teacher.bert.pooler)
    _same_tensors(student.classifier, teacher.classifier)
    # And not the skipped layer: layer 2 differs from layer 3 in a random teacher.
    assert not torch.equal(student.bert.encoder.layer[1].attention.self.query.weight,
                           teacher.bert.encoder.layer[1].attention.self.query.weight)
    assert [student.config.id2label[i] for i in range(3)] == list(LABELS)


def test_teacher_layers_student_is_independent_of_teacher(teacher):
    student = build_student("teacher-layers:2", teacher)
    before = teacher.bert.encoder.layer[1].output.dense.weight.clone()
    with torch.no_grad():
        student.bert.encoder.layer[0].output.dense.weight.add_(1.0)
    assert torch.equal(teacher.bert.encoder.layer[1].output.dense.weight, before)


@pytest.mark.parametrize("spec", ["teacher-layers:0,2", "teacher-layers:1,4", "teacher-layers:", "teacher-layers:a,b"])
def test_teacher_layers_out_of_range_or_malformed(teacher, spec):
    with pytest.raises(ConfigError) as info:
        build_student(spec, teacher)
    assert "teacher-layers" in str(info.value)


def test_teacher_layers_out_of_range_names_the_valid_range(teacher):
    with pytest.raises(ConfigError, match=r"1\.\.3"):
        build_student("teacher-layers:1,4", teacher)


def test_config_spec(tmp_path, teacher):
    path = tmp_path / "student.json"
    path.write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                                "intermediate_size": 24}))
    student = build_student(f"config:{path}", teacher)
    cfg = student.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (1, 16, 2, 24)
    assert cfg.vocab_size == teacher.config.vocab_size
    assert [cfg.id2label[i] for i in range(3)] == list(LABELS)
    assert student.classifier.out_features == 3


def test_config_spec_with_other_vocabulary_is_a_model_error(tmp_path, teacher):
    path = tmp_path / "student.json"
    path.write_text(json.dumps({"vocab_size": 500}))
    with pytest.raises(ModelError, match="vocabulary"):
        build_student(f"config:{path}", teacher)


@pytest.mark.parametrize("content", [None, "{not json"])
def test_config_spec_unreadable(tmp_path, teacher, content):
    path = tmp_path / "student.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="student config"):
        build_student(f"config:{path}", teacher)


def test_student_folder_is_loaded_with_teacher_labels(tmp_path, teacher):
    folder = tiny_bert.save_classifier(tmp_path / "general", seed=3, layers=1, hidden=16, heads=2, labels=("x", "y"))
    student = build_student(str(folder), teacher)
    assert student.config.num_hidden_layers == 1 and student.config.hidden_size == 16
    assert student.classifier.out_features == 3
    assert [student.config.id2label[i] for i in range(3)] == list(LABELS)


def test_student_folder_with_other_vocabulary_is_a_model_error(tmp_path, teacher):
    from transformers import BertForSequenceClassification

    config = tiny_bert.bert_config(layers=1, hidden=16, heads=2, labels=LABELS)
    config.vocab_size = len(tiny_bert.WORDS) + 20
    BertForSequenceClassification(config).save_pretrained(tmp_path / "other", safe_serialization=True)
    with pytest.raises(ModelError) as info:
        build_student(str(tmp_path / "other"), teacher)
    message = str(info.value)
    assert str(len(tiny_bert.WORDS) + 20) in message and str(len(tiny_bert.WORDS)) in message
    assert "tokenizer" in message


def test_unknown_spec_lists_the_options(teacher):
    with pytest.raises(ConfigError) as info:
        build_student("tinybert-3l", teacher)
    message = str(info.value)
    assert "'tinybert-3l'" in message
    for option in ("tinybert-4l-312h", "tinybert-6l-768h", "teacher-layers:", "config:", "folder"):
        assert option in message
