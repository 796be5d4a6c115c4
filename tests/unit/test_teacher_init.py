"""Students initialised from the teacher (`from-teacher:`): exactness at full width, what a narrower student keeps,
the record of how it was made, the distiller's start, and every bad input refused before anything is built."""

from __future__ import annotations

import json

import pytest
import torch

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.distillation.student import build_student, stream_projection
from tinybert_edge.distillation.teacher_init import StudentShape, check_importance_data, describe, init_from_teacher
from tinybert_edge.errors import ConfigError, ModelError

# The teacher: 3 layers, 48 wide, 4 heads of 12, FFN 96 (tiny_bert makes FFN = 2 x width).
TEACHER = dict(layers=3, hidden=48, heads=4)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_bert.tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def importance(tok):
    from tinybert_edge.data import encode

    return encode(tok, tiny_bert.text_data(96, seed=5), 32)


def _with_layer_norms_perturbed(model, seed=0):
    """Non-uniform LayerNorm gamma and non-zero beta everywhere: a random init has gamma = 1, beta = 0, which would
    hide any mistake in how the affine parameters are carried over."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.5 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))
    return model


def _trained_teacher(seed=0, steps=120):
    """A tiny teacher that has learnt the synthetic sentiment task (its label is which word list a text draws from)."""
    from tinybert_edge.data import encode

    folder_tok = tiny_bert.tokenizer(_tmp())
    model = tiny_bert.classifier(seed=seed, **TEACHER).train()
    encoded = encode(folder_tok, tiny_bert.text_data(512, seed=11), 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randint(0, len(encoded), (32,), generator=generator).tolist()
        batch = {k: torch.as_tensor(v) for k, v in encoded.collate(rows).items()}
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="teacher-init-tok-"))


@pytest.fixture(scope="module")
def trained():
    return _trained_teacher()


def _inputs(encoded, rows):
    batch = encoded.collate(list(rows))
    return {k: torch.as_tensor(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _accuracy(model, encoded):
    with torch.no_grad():
        logits = model(**_inputs(encoded, range(len(encoded)))).logits
    return (logits.argmax(-1).numpy() == encoded.labels).mean()


def _config_file(tmp_path, layers, hidden, heads, intermediate):
    path = tmp_path / f"student-{layers}-{hidden}-{heads}-{intermediate}.json"
    path.write_text(json.dumps({"num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": heads,
                                "intermediate_size": intermediate}))
    return path


# --- exactness at full width ---------------------------------------------------------------------------------------

def test_full_width_select_computes_the_teachers_function(tmp_path, importance, tok):
    teacher = _with_layer_norms_perturbed(tiny_bert.classifier(seed=3, **TEACHER))
    # No method named: at the teacher's width that is "select", the exact one.
    student = build_student(f"from-teacher:{_config_file(tmp_path, 3, 48, 4, 96)}", teacher, importance_data=importance,
                            tokenizer=tok)
    assert student.config.student_init["hidden_method"] == "select"
    inputs = _inputs(importance, range(32))
    with torch.no_grad():
        want = teacher(**inputs, output_hidden_states=True)
        got = student(**inputs, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(got.hidden_states, want.hidden_states):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_full_width_pca_rotation_with_layer_norm_folded_is_exact_for_uniform_gamma(tmp_path, importance, tok):
    # A rotation of a post-LN BERT's stream commutes with its LayerNorms when each gamma is uniform (any beta):
    # centring commutes because P maps 1/sqrt(d) to 1/sqrt(D), the norm because P is orthogonal.
    teacher = _with_layer_norms_perturbed(tiny_bert.classifier(seed=3, **TEACHER))
    with torch.no_grad():
        for index, module in enumerate(m for m in teacher.modules() if isinstance(m, torch.nn.LayerNorm)):
            module.weight.fill_(0.7 + 0.1 * index)
    student = build_student(f"from-teacher:{_config_file(tmp_path, 3, 48, 4, 96)}@pca", teacher,
                            importance_data=importance, tokenizer=tok)
    projection, _ = stream_projection(student)
    assert not torch.allclose(projection.abs(), torch.eye(48), atol=1e-2)  # a real rotation, not a permutation
    torch.testing.assert_close(projection.T @ projection, torch.eye(48), rtol=0, atol=1e-5)
    inputs = _inputs(importance, range(32))
    with torch.no_grad():
        want = teacher(**inputs, output_hidden_states=True)
        got = student(**inputs, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(got.hidden_states, want.hidden_states):  # the stream, rotated by P
        torch.testing.assert_close(mine, theirs @ projection, rtol=1e-4, atol=1e-4)


def test_full_depth_and_width_with_fewer_ffn_neurons_keeps_the_most_important(tmp_path, importance, tok):
    # Only the FFN shrinks: dropping the least important neurons must hurt less than dropping the most important.
    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    made = init_from_teacher(teacher, StudentShape(3, 48, 4, 48), teacher.__class__, importance)
    kept = made.student
    reversed_teacher = tiny_bert.classifier(seed=3, **TEACHER)
    import tinybert_edge.distillation.teacher_init as module

    original = module._top
    module._top = lambda scores, count: original(-scores, count)  # the least important units instead
    try:
        worst = init_from_teacher(reversed_teacher, StudentShape(3, 48, 4, 48), teacher.__class__, importance).student
    finally:
        module._top = original
    inputs = _inputs(importance, range(len(importance)))
    with torch.no_grad():
        want = teacher(**inputs, output_hidden_states=True).hidden_states[-1]
        error_kept = (kept(**inputs, output_hidden_states=True).hidden_states[-1] - want).pow(2).mean()
        error_worst = (worst(**inputs, output_hidden_states=True).hidden_states[-1] - want).pow(2).mean()
    assert error_kept < error_worst


# --- a narrower, shallower student ---------------------------------------------------------------------------------

def test_narrower_student_is_a_plain_bert_of_the_task_with_its_record(tmp_path, importance, tok):
    from transformers import BertForSequenceClassification

    teacher = tiny_bert.classifier(seed=3, labels=("neg", "neutral", "pos"), **TEACHER)
    spec = f"from-teacher:{_config_file(tmp_path, 2, 36, 4, 64)}@pca"
    student = build_student(spec, teacher, importance_data=importance, tokenizer=tok)
    assert type(student) is BertForSequenceClassification
    config = student.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size) == \
        (2, 36, 4, 64)
    assert config.vocab_size == teacher.config.vocab_size and student.classifier.out_features == 3
    assert [config.id2label[i] for i in range(3)] == ["neg", "neutral", "pos"]
    record = config.student_init
    assert record["method"] == "from-teacher" and record["hidden_method"] == "pca"
    assert record["name"] == "2l-36h-4a-64i · from teacher (pca)"
    assert record["layers"] == [2, 3] and record["heads"] == [[0, 1, 2, 3]] * 2  # uniform map of 2 in 3 (rounded)
    assert record["importance_examples"] == len(importance) and record["seconds"] >= 0 and record["cpu_seconds"] >= 0
    # It saves and loads as any BERT, the record in config.json.
    student.save_pretrained(tmp_path / "saved", safe_serialization=True)
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["student_init"]["name"] == record["name"]
    loaded = BertForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    inputs = _inputs(importance, range(8))
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, student(**inputs).logits)


def test_head_pruning_keeps_whole_heads_and_the_distiller_maps_them(tmp_path, importance, tok):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.distiller import IntermediateObjective

    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    student = build_student(f"from-teacher:{_config_file(tmp_path, 2, 24, 2, 48)}", teacher,
                            importance_data=importance, tokenizer=tok)
    heads = student.config.student_init["heads"]
    assert len(heads) == 2 and all(len(h) == 2 and h == sorted(h) and set(h) <= {0, 1, 2, 3} for h in heads)
    # Head size 12 kept: the teacher's head width. The score loss pairs each student head with its teacher head.
    objective = IntermediateObjective(student, teacher, [2, 3], DistillConfig(), "cpu")
    assert objective.distiller.head_map == heads
    terms = objective({**_inputs(importance, range(16))})
    assert torch.isfinite(terms["attention"]) and terms["attention"] >= 0


def test_the_distillers_projections_start_at_the_transpose_of_p(tmp_path, importance, tok):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.distiller import IntermediateObjective

    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    student = build_student(f"from-teacher:{_config_file(tmp_path, 2, 36, 4, 64)}", teacher,
                            importance_data=importance, tokenizer=tok)
    projection, offset = stream_projection(student)
    objective = IntermediateObjective(student, teacher, [2, 3], DistillConfig(), "cpu")
    for linear in [objective.distiller.embedding_projection, *objective.distiller.hidden_projections]:
        assert torch.equal(linear.weight, projection) and torch.equal(linear.bias, offset)
    # A random student of the same shape gets random projections (nothing remembered across students).
    random_student = build_student(f"config:{_config_file(tmp_path, 2, 36, 4, 64)}", teacher)
    assert stream_projection(random_student) is None


@pytest.mark.parametrize("method", ["select", "pca"])
def test_teacher_initialised_student_beats_a_random_one(tmp_path, trained, tok, method):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.data import encode
    from tinybert_edge.distillation.distiller import IntermediateObjective

    held_out = encode(tok, tiny_bert.text_data(200, seed=21), 32)
    assert _accuracy(trained, held_out) > 0.9  # the teacher has learnt the task
    shape = _config_file(tmp_path, 2, 32, 4, 64)
    importance = encode(tok, tiny_bert.text_data(128, seed=7), 32)
    torch.manual_seed(0)
    from_teacher = build_student(f"from-teacher:{shape}@{method}", trained, importance_data=importance, tokenizer=tok)
    random = build_student(f"config:{shape}", trained).eval()
    # The task, before any training: the teacher-initialised student already solves it; the random one guesses.
    assert _accuracy(from_teacher, held_out) > 0.8 > _accuracy(random, held_out) + 0.2
    # The intermediate (TinyBERT stage 1) loss it starts from is lower too.
    batch = _inputs(held_out, range(64))
    losses = {}
    for name, student in (("teacher", from_teacher), ("random", random)):
        torch.manual_seed(0)
        objective = IntermediateObjective(student, trained, [2, 3], DistillConfig(), "cpu")
        with torch.no_grad():
            losses[name] = objective(batch)
        objective.remove()
    assert losses["teacher"]["hidden"] < losses["random"]["hidden"]
    assert losses["teacher"]["total"] < losses["random"]["total"]


def test_distill_records_how_the_student_was_made(tmp_path, tok):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.task_distillation import distill

    folder = tiny_bert.save_classifier(tmp_path / "teacher", seed=4, **TEACHER)
    shape = _config_file(tmp_path, 2, 32, 4, 64)
    config = DistillConfig(student=f"from-teacher:{shape}", intermediate_epochs=1, prediction_epochs=1, batch_size=16,
                           max_length=32, eval_every=2, checkpoint_every=2, log_every=1)
    result = distill(folder, tiny_bert.text_data(48, seed=1), tiny_bert.text_data(16, seed=2), tmp_path / "student",
                     config, progress=False)
    summary = json.loads((tmp_path / "student" / "distill.json").read_text())
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert summary["student_init"]["name"] == saved["student_init"]["name"] == result.student_init["name"] \
        == "2l-32h-4a-64i · from teacher (pca)"  # narrower: PCA unless told otherwise
    assert summary["student_init"]["importance_examples"] == 48


@pytest.mark.parametrize("spec, record", [
    ("tinybert-4l-312h", "tinybert-4l-312h · random init"),
    ("teacher-layers:1,3", "2l-48h-12a-96i · teacher layers 1,3 copied"),
])
def test_every_student_says_how_it_was_made(spec, record):
    teacher = tiny_bert.classifier(seed=3, layers=3, hidden=48, heads=12)
    assert build_student(spec, teacher).config.student_init["name"] == record


def test_general_distilled_record_names_its_start():
    start = describe("from-teacher", "tinybert-4l-312h", hidden_method="pca")
    assert describe("general-distilled", "tinybert-4l-312h", start=start)["name"] == \
        "tinybert-4l-312h · general-distilled after from teacher (pca)"
    assert describe("general-distilled", "tinybert-4l-312h", start=describe("random", "tinybert-4l-312h"))["name"] == \
        "tinybert-4l-312h · general-distilled after random init"


# --- bad input: a clear error naming the constraint, before anything is built ----------------------------------------

@pytest.mark.parametrize("shape, message", [
    ((4, 48, 4, 96), r"layers \(4\) exceeds the teacher's \(3\)"),
    ((2, 64, 4, 96), r"hidden width \(64\) exceeds the teacher's \(48\)"),
    ((2, 48, 4, 128), r"FFN size \(128\) exceeds the teacher's \(96\)"),
    ((2, 48, 8, 96), r"attention heads \(8\) exceeds the teacher's \(4\)"),
    ((2, 48, 2, 96), r"head size \(24\) exceeds the teacher's \(12\)"),
    ((2, 36, 5, 64), r"5 attention heads do not divide the width 36"),
    ((2, 36, 4, 0), r"FFN size must be a positive integer, got 0"),
    ((2, 36, 0, 64), r"attention heads must be a positive integer, got 0"),
    ((0, 36, 4, 64), r"layers must be a positive integer, got 0"),
])
def test_a_shape_the_teacher_cannot_give_is_a_config_error(tmp_path, importance, tok, shape, message):
    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    with pytest.raises(ConfigError, match=message):
        build_student(f"from-teacher:{_config_file(tmp_path, *shape)}", teacher, importance_data=importance,
                      tokenizer=tok)


def test_importance_data_empty_or_missing_is_a_config_error(importance, tok):
    from tinybert_edge.data import EncodedData

    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    empty = EncodedData(input_ids=[], token_type_ids=[], labels=importance.labels[:0])
    with pytest.raises(ConfigError, match="importance data is empty"):
        init_from_teacher(teacher, StudentShape(2, 32, 4, 64), teacher.__class__, empty)
    with pytest.raises(ConfigError, match="needs importance data"):
        build_student("from-teacher:tinybert-4l-312h", tiny_bert.classifier(seed=3, layers=4, hidden=384, heads=12))


def test_importance_data_from_another_tokenizer_is_a_model_error(tmp_path, importance, tok):
    from transformers import BertTokenizerFast

    from tinybert_edge.data import EncodedData

    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    shape = StudentShape(2, 32, 4, 64)
    too_large = EncodedData(input_ids=[[2, 500, 3]], token_type_ids=[[0, 0, 0]], labels=importance.labels[:1])
    with pytest.raises(ModelError, match=r"token id 500, outside the teacher's vocabulary of 100"):
        init_from_teacher(teacher, shape, teacher.__class__, too_large)
    no_cls = EncodedData(input_ids=[[7, 8, 3]], token_type_ids=[[0, 0, 0]], labels=importance.labels[:1])
    with pytest.raises(ModelError, match=r"not the teacher tokenizer's \[CLS\] \(2\)"):
        init_from_teacher(teacher, shape, teacher.__class__, no_cls, tokenizer=tok)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(tiny_bert.WORDS + ["extra"]) + "\n")
    other = BertTokenizerFast(vocab_file=str(vocab))
    with pytest.raises(ModelError, match="has 101 tokens and the teacher 100"):
        check_importance_data(importance, teacher.config, other)


@pytest.mark.parametrize("spec, message", [
    ("from-teacher:tinybert-4l-312h@svd", "unknown width method 'svd'"),
    ("from-teacher:", "name a shape"),
])
def test_malformed_from_teacher_specs(importance, tok, spec, message):
    teacher = tiny_bert.classifier(seed=3, **TEACHER)
    with pytest.raises(ConfigError, match=message):
        build_student(spec, teacher, importance_data=importance, tokenizer=tok)


def test_a_bad_shape_writes_nothing(tmp_path):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.task_distillation import distill

    folder = tiny_bert.save_classifier(tmp_path / "teacher", seed=4, **TEACHER)
    config = DistillConfig(student=f"from-teacher:{_config_file(tmp_path, 2, 96, 4, 64)}", max_length=32)
    with pytest.raises(ConfigError, match="hidden width"):
        distill(folder, tiny_bert.text_data(32, seed=1), tiny_bert.text_data(8, seed=2), tmp_path / "student", config,
                work_dir=tmp_path / "work", progress=False)
    assert not (tmp_path / "student").exists() and not (tmp_path / "work").exists()


def test_general_distillation_can_start_from_the_teacher_and_records_it(tmp_path):
    from tinybert_edge.config import GeneralDistillConfig
    from tinybert_edge.distillation.general import general_distill

    folder = tiny_bert.save_classifier(tmp_path / "encoder", seed=4, **TEACHER)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_bert.sentences(40, seed=3)[0]) + "\n")
    config = GeneralDistillConfig(student=f"from-teacher:{_config_file(tmp_path, 2, 32, 4, 64)}@pca", max_steps=2,
                                  batch_size=8, max_length=16, log_every=1, checkpoint_every=2)
    general_distill(folder, corpus, tmp_path / "general", config, progress=False)
    record = json.loads((tmp_path / "general" / "config.json").read_text())["student_init"]
    assert record["name"] == "2l-32h-4a-64i · general-distilled after from teacher (pca)"
    assert record["start"]["importance_examples"] == 40 and record["steps"] == 2
