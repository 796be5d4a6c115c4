"""The Distiller: which projections W_e and W_h exist, the head-count check, and the intermediate loss terms."""

from __future__ import annotations

import math

import pytest
import torch

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.distillation.distiller import Distiller
from tinybert_edge.distillation.features import ScoreRecorder, forward_features
from tinybert_edge.distillation.student import build_student
from tinybert_edge.errors import ConfigError


def _batch(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        tok = tiny_bert.tokenizer(Path(folder))
    texts, labels = tiny_bert.sentences(n, seed)
    encoded = tok(texts, padding=True, return_tensors="pt", return_token_type_ids=True)
    assert (encoded["attention_mask"] == 0).any()
    return {**encoded, "labels": torch.tensor(labels)}


def _features(model, batch):
    recorder = ScoreRecorder(model)
    try:
        return forward_features(model, recorder, batch)
    finally:
        recorder.remove()


def test_equal_widths_have_no_projections():
    teacher = tiny_bert.classifier(layers=4, hidden=32, heads=2)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=32, heads=2)
    distiller = Distiller(student, teacher.config, [2, 4])
    assert distiller.embedding_projection is None
    assert len(distiller.hidden_projections) == 0
    assert not [name for name, _ in distiller.named_parameters() if not name.startswith("student.")]


def test_unequal_widths_have_separate_projections():
    teacher = tiny_bert.classifier(layers=4, hidden=32, heads=2)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=16, heads=2)
    distiller = Distiller(student, teacher.config, [2, 4])
    projections = [distiller.embedding_projection, *distiller.hidden_projections]
    assert len(projections) == 3
    assert len({id(p) for p in projections}) == 3  # W_e, W_h1, W_h2 are distinct modules
    for p in projections:
        assert (p.in_features, p.out_features) == (16, 32)
    # Projections are parameters of the Distiller, so the training loop optimises them with the student.
    own = {name for name, _ in distiller.named_parameters() if not name.startswith("student.")}
    assert own == {"embedding_projection.weight", "embedding_projection.bias",
                   "hidden_projections.0.weight", "hidden_projections.0.bias",
                   "hidden_projections.1.weight", "hidden_projections.1.bias"}


def test_shared_projection_is_one_module():
    teacher = tiny_bert.classifier(layers=4, hidden=32, heads=2)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=16, heads=2)
    distiller = Distiller(student, teacher.config, [2, 4], shared_projection=True)
    projections = [distiller.embedding_projection, *distiller.hidden_projections]
    assert len(projections) == 3 and len({id(p) for p in projections}) == 1
    own = [p for name, p in distiller.named_parameters() if not name.startswith("student.")]
    assert len(own) == 2  # one weight, one bias


def test_unequal_head_counts_name_both_counts():
    teacher = tiny_bert.classifier(layers=2, hidden=32, heads=4)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=32, heads=2)
    with pytest.raises(ConfigError) as info:
        Distiller(student, teacher.config, [1, 2])
    message = str(info.value)
    assert "2 heads" in message and "teacher 4" in message
    assert "attention_weight" in message


def test_intermediate_terms_are_finite_scalars_with_projections():
    teacher = tiny_bert.classifier(layers=4, hidden=32, heads=2)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=16, heads=2)
    distiller = Distiller(student, teacher.config, [2, 4])
    batch = _batch()
    with torch.no_grad():
        t = _features(teacher, batch)
    s = _features(student, batch)
    terms = distiller.intermediate_terms(s, t, batch["attention_mask"])
    assert set(terms) == {"embedding", "attention", "hidden"}
    for name, value in terms.items():
        value = value.detach()
        assert value.dim() == 0 and math.isfinite(float(value)) and float(value) > 0, name
    # Gradients reach the student and every projection.
    sum(terms.values()).backward()
    assert distiller.embedding_projection.weight.grad is not None
    assert all(p.weight.grad is not None for p in distiller.hidden_projections)
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad is not None


def test_hidden_term_sums_over_the_mapped_layers():
    teacher = tiny_bert.classifier(layers=4, hidden=32, heads=2)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=32, heads=2)
    distiller = Distiller(student, teacher.config, [2, 4])
    batch = _batch()
    with torch.no_grad():
        t, s = _features(teacher, batch), _features(student, batch)
        terms = distiller.intermediate_terms(s, t, batch["attention_mask"])
    expected = (torch.nn.functional.mse_loss(s.hidden_states[1], t.hidden_states[2])
                + torch.nn.functional.mse_loss(s.hidden_states[2], t.hidden_states[4]))
    torch.testing.assert_close(terms["hidden"], expected)
    torch.testing.assert_close(terms["embedding"], torch.nn.functional.mse_loss(s.hidden_states[0], t.hidden_states[0]))


def test_student_copied_from_teacher_layers_has_zero_terms():
    teacher = tiny_bert.classifier(layers=2, hidden=32, heads=2)
    student = build_student("teacher-layers:1,2", teacher).eval()
    distiller = Distiller(student, teacher.config, [1, 2])
    batch = _batch(6, seed=3)
    with torch.no_grad():
        terms = distiller.intermediate_terms(_features(student, batch), _features(teacher, batch),
                                             batch["attention_mask"])
    assert {name: float(value) for name, value in terms.items()} == {"embedding": 0.0, "attention": 0.0, "hidden": 0.0}


def test_mapping_to_other_layers_is_not_zero():
    # The same copied student mapped to the wrong teacher layers must show a loss (the terms can fail).
    teacher = tiny_bert.classifier(layers=2, hidden=32, heads=2)
    student = build_student("teacher-layers:1,2", teacher).eval()
    distiller = Distiller(student, teacher.config, [2, 1])
    batch = _batch(6, seed=3)
    with torch.no_grad():
        terms = distiller.intermediate_terms(_features(student, batch), _features(teacher, batch),
                                             batch["attention_mask"])
    assert float(terms["embedding"]) == 0.0
    assert float(terms["attention"]) > 0 and float(terms["hidden"]) > 0


def test_without_the_attention_term_head_counts_may_differ():
    # The head-count error tells the user to set attention_weight = 0; that must then work.
    teacher = tiny_bert.classifier(layers=2, hidden=32, heads=4)
    student = tiny_bert.classifier(seed=1, layers=2, hidden=32, heads=2)
    distiller = Distiller(student, teacher.config, [1, 2], attention=False)
    batch = _batch()
    with torch.no_grad():
        terms = distiller.intermediate_terms(_features(student, batch), _features(teacher, batch),
                                             batch["attention_mask"])
    assert float(terms["attention"]) == 0.0
    assert float(terms["hidden"]) > 0 and float(terms["embedding"]) > 0
