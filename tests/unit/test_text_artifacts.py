"""Artifacts that carry their own tokenizer, on a tiny random BERT: ONNX with the tokenizer in the graph
(onnxruntime-extensions) and the MediaPipe Text Classifier .tflite; the tokenizer-agreement gate they share, and the
vocabularies they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tiny_bert import classifier, one_thread, sentences, tokenizer  # noqa: F401

from tinybert_edge.artifacts import Artifact
from tinybert_edge.converters import ExportConfig, export
from tinybert_edge.converters.tokenizer_gate import (TokenizerAgreementError, TokenizerGate, check_vocabulary,
                                                     tokenizer_agreement)
from tinybert_edge.errors import ConfigError, ExportError
from tinybert_edge.runtime.sessions import TorchSession

LENGTH = 32
# U+1680 (Ogham space) is whitespace to Hugging Face's tokenizer and a word character to both other tokenizers.
DISAGREEING = "good\u1680bad film"
# U+0381 (unassigned) is a word character to Hugging Face's tokenizer (the word becomes [UNK]); the in-graph op drops it.
OP_DISAGREEING = "good\u0381bad film"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import torch

    folder = tmp_path_factory.mktemp("tiny-text")
    model = classifier(seed=4)
    with torch.no_grad():  # spread the random logits so that labels are not decided by near-ties
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer(folder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sentences(40, seed=7)[0] + ["The MOVIE was GOOD, really!", "  bad\tbad  ", ""]


def _torch_labels(model_dir: Path, texts: list[str]) -> list[str]:
    from transformers import BertTokenizerFast

    hf = BertTokenizerFast.from_pretrained(model_dir)
    session = TorchSession(model_dir)
    names = ["neg", "pos"]
    out = []
    for text in texts:
        encoded = hf(text, truncation=True, max_length=LENGTH, return_tensors="np")
        out.append(names[int(np.argmax(session.run({k: v.astype(np.int64) for k, v in encoded.items()})[0]))])
    return out


# --- the gate and the refusals ---------------------------------------------------------------------------------------


def test_gate_names_disagreeing_strings_and_records_both_sets(model_dir):
    from transformers import BertTokenizerFast

    hf = BertTokenizerFast.from_pretrained(model_dir)

    def lossy(batch: list[str]) -> list[list[int]]:  # a tokenizer that breaks on one character
        return [hf("", truncation=True)["input_ids"] if "\u1680" in t else hf(t, truncation=True, max_length=LENGTH)
                ["input_ids"] for t in batch]

    texts = ["good film", DISAGREEING, "bad film"]
    with pytest.raises(TokenizerAgreementError, match=r"on 1 of 3 my texts.*good\\u1680bad film") as info:
        tokenizer_agreement(lossy, hf, texts, "my texts", LENGTH, TokenizerGate(corpus_strings=50), "a tokenizer")
    assert info.value.record["dev"]["agreeing"] == 2 and "corpus" in info.value.record
    record = tokenizer_agreement(lossy, hf, texts, "my texts", LENGTH, TokenizerGate(min_dev_agreement=0.6,
                                                                                   corpus_strings=50), "a tokenizer")
    assert record["dev"]["agreement"] == pytest.approx(2 / 3)
    assert record["dev"]["disagreeing"][0]["text"] == DISAGREEING
    assert record["corpus"]["n"] == 50 and 0 <= record["corpus"]["agreement"] <= 1
    with pytest.raises(ConfigError):
        TokenizerGate(min_dev_agreement=1.5)


def test_vocabularies_the_tokenizers_cannot_represent_are_refused(model_dir, tmp_path):
    import shutil

    from transformers import BertTokenizerFast

    cased = tmp_path / "cased"
    shutil.copytree(model_dir, cased)
    BertTokenizerFast(vocab_file=str(cased / "vocab.txt"), do_lower_case=False, strip_accents=False).save_pretrained(cased)
    with pytest.raises(ExportError, match="cased vocabulary that keeps accents.*naiveté"):
        check_vocabulary(cased, "op", cased=True, keep_accents=False)
    with pytest.raises(ExportError, match="lower-cases every text.*cased"):
        check_vocabulary(cased, "MediaPipe", cased=False, keep_accents=False)
    bpe = tmp_path / "bpe"
    shutil.copytree(model_dir, bpe)
    spec = json.loads((bpe / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["type"] = "BPE"
    (bpe / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ExportError, match="BERT WordPiece only.*BPE"):
        check_vocabulary(bpe, "op", cased=True, keep_accents=True)
    assert check_vocabulary(model_dir, "op", cased=False, keep_accents=False).do_lower_case


# --- ONNX with the tokenizer in the graph ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_text(model_dir, texts, tmp_path_factory) -> Artifact:
    pytest.importorskip("onnxruntime_extensions", reason="pip install 'tinybert-edge[onnx-text]'")
    out = tmp_path_factory.mktemp("onnx-text")
    made = export(model_dir, out, formats=("onnx-text",), config=ExportConfig(sequence_buckets=(16, LENGTH)),
                  texts=texts, texts_description="the tiny dev texts")
    assert [(a.format, a.precision) for a in made] == [("onnx", "fp32"), ("onnx", "int8"), ("onnx-text", "int8")]
    return made[-1]


def test_onnx_text_takes_strings_and_gives_logits_and_the_label(onnx_text, model_dir, texts):
    from tinybert_edge.runtime.onnx_text import OnnxTextSession

    assert onnx_text.path.name == "onnx-text-int8"
    meta = onnx_text.metadata
    assert meta["tokenizer_agreement"]["dev"]["agreement"] == 1.0
    assert meta["tokenizer_agreement"]["dev"]["texts"] == "the tiny dev texts"
    assert meta["tokenizer_agreement"]["corpus"]["n"] > 0
    assert meta["graph_check"]["max_abs_diff"] <= 1e-3 and meta["max_length"] == LENGTH
    assert meta["tokenizer"]["strip_accents"] is True  # HF's None resolved, passed to the op explicitly
    # Hugging Face's text cleaning (2 nodes) and lone-mark dropping (1) run in the graph before the op.
    assert meta["tokenizer_graph"] == ["StringRegexReplace"] * 3 + ["BertTokenizer"]
    reopened = Artifact.open(onnx_text.path)
    assert (reopened.format, reopened.runtime) == ("onnx-text", "onnxruntime-extensions")
    session = OnnxTextSession(onnx_text.path, threads=1)
    logits, labels = session.classify(texts)
    assert logits.shape == (len(texts), 2) and set(labels) <= {"neg", "pos"}
    agree = np.mean([a == b for a, b in zip(labels, _torch_labels(model_dir, texts))])
    assert agree >= 0.9
    long_text = " ".join(["good"] * 200)  # truncated to the artifact's length, not an error
    assert session.run_text(long_text)[1] in ("neg", "pos")
    pair_logits, _ = session.run_text("good film", "bad film")  # two strings are a pair
    assert pair_logits.shape == (2,)


def test_onnx_text_below_the_threshold_fails_and_leaves_nothing(model_dir, texts, tmp_path):
    pytest.importorskip("onnxruntime_extensions", reason="pip install 'tinybert-edge[onnx-text]'")
    out = tmp_path / "out"
    with pytest.raises(TokenizerAgreementError, match=r"good\\u0381bad film"):
        export(model_dir, out, formats=("onnx-text",), config=ExportConfig(sequence_buckets=(LENGTH,)),
               texts=texts + [OP_DISAGREEING], texts_description="dev")
    assert not (out / "onnx-text-int8").exists()
    made = export(model_dir, out, formats=("onnx-text",), config=ExportConfig(sequence_buckets=(LENGTH,)),
                  texts=texts + [OP_DISAGREEING], texts_description="dev", reuse=True,
                  tokenizer_gate=TokenizerGate(min_dev_agreement=0.9, corpus_strings=100))
    record = made[-1].metadata["tokenizer_agreement"]
    assert record["dev"]["agreeing"] == len(texts) and record["dev"]["disagreeing"][0]["text"] == OP_DISAGREEING


# --- MediaPipe -------------------------------------------------------------------------------------------------------


def test_mediapipe_asks_for_one_length_and_batch_one_before_any_work(model_dir, tmp_path):
    from tinybert_edge.converters.mediapipe_export import check_mediapipe_config, export_mediapipe

    with pytest.raises(ConfigError, match="one static length"):
        export(model_dir, tmp_path / "a", formats=("mediapipe",), config=ExportConfig(sequence_buckets=(16, 32)))
    with pytest.raises(ConfigError, match="batch 1"):
        export_mediapipe(model_dir, tmp_path / "b", ExportConfig(sequence_buckets=(32,)), texts=["x"], batch_size=4)
    check_mediapipe_config(ExportConfig(sequence_buckets=(32,)))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def mediapipe_model(model_dir, texts, tmp_path_factory) -> Artifact:
    pytest.importorskip("mediapipe", reason="pip install 'tinybert-edge[mediapipe]'")
    out = tmp_path_factory.mktemp("mediapipe")
    made = export(model_dir, out, formats=("mediapipe",), config=ExportConfig(sequence_buckets=(LENGTH,)),
                  texts=texts, texts_description="the tiny dev texts",
                  tokenizer_gate=TokenizerGate(corpus_strings=200))
    return made[0]


def test_mediapipe_text_classifier_loads_it_and_gives_the_pytorch_labels(mediapipe_model, model_dir, texts):
    from tinybert_edge.runtime.mediapipe_text import MediaPipeTextSession

    meta = mediapipe_model.metadata
    assert mediapipe_model.path.parent.name == "mediapipe-int8" and meta["sequence_length"] == LENGTH
    assert meta["tokenizer_agreement"]["dev"]["agreement"] == 1.0 and meta["tokenizer_agreement"]["corpus"]["n"] == 200
    assert meta["parity"]["passed"]  # checked on the finished file: the weights are inside it
    session = MediaPipeTextSession(mediapipe_model.path)
    try:
        scores, labels = session.classify(texts)
    finally:
        session.close()
    assert scores.shape == (len(texts), 2)
    agree = np.mean([a == b for a, b in zip(labels, _torch_labels(model_dir, texts))])
    assert agree >= 0.9


def test_mediapipe_metadata_needs_parser_1_1_and_the_file_keeps_one_signature(mediapipe_model):
    from mediapipe.tasks.python.metadata.metadata import get_metadata_buffer

    from tinybert_edge.converters.mediapipe_export import minimum_parser_version
    from tinybert_edge.runtime.litert import load_interpreter

    content = mediapipe_model.path.read_bytes()
    assert minimum_parser_version(get_metadata_buffer(content)) == "1.1.0"  # BertTokenizerOptions, a vocabulary
    interpreter = load_interpreter(mediapipe_model.path)
    assert list(interpreter.get_signature_list()) == [f"seq_{LENGTH}"]
    shapes = {d["name"]: list(d["shape"]) for d in interpreter.get_input_details()}
    assert all(shape == [1, LENGTH] for shape in shapes.values()) and len(shapes) == 3


def test_weights_stored_past_the_flatbuffer_end_are_moved_inside(mediapipe_model, tmp_path):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from tinybert_edge.converters.mediapipe_export import inline_buffers
    from tinybert_edge.runtime.litert import LiteRtSession

    original = mediapipe_model.path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(original), 0))
    sizes = [0 if b.data is None else len(b.data) for b in model.buffers]
    index = sizes.index(max(sizes))
    data = np.asarray(model.buffers[index].data, dtype=np.uint8).tobytes()
    model.buffers[index].data, model.buffers[index].offset, model.buffers[index].size = None, 1 << 40, len(data)
    head = bytes(flatbuffer_utils.convert_object_to_bytearray(model))  # offsets are fixed-width: same length again
    model.buffers[index].offset = len(head)
    outside = bytes(flatbuffer_utils.convert_object_to_bytearray(model)) + data
    assert len(outside) == len(head) + len(data)
    inlined, moved = inline_buffers(outside)
    assert moved == 1
    (tmp_path / "a.tflite").write_bytes(original)
    (tmp_path / "b.tflite").write_bytes(inlined)
    feed = {"input_ids": np.array([[2, 7, 30, 3]]), "attention_mask": np.ones((1, 4), dtype=np.int64)}
    np.testing.assert_array_equal(LiteRtSession(tmp_path / "a.tflite").run(feed),
                                  LiteRtSession(tmp_path / "b.tflite").run(feed))
    assert inline_buffers(original) == (original, 0)


def test_onnx_text_is_reused_only_when_its_int8_onnx_was_quantized_with_the_settings_asked_for(model_dir, texts,
                                                                                             tmp_path, caplog):
    import logging

    from tinybert_edge.converters import QuantizationConfig

    pytest.importorskip("onnxruntime_extensions", reason="pip install 'tinybert-edge[onnx-text]'")
    common = dict(formats=("onnx-text",), config=ExportConfig(sequence_buckets=(LENGTH,)), texts=texts,
                  texts_description="dev", reuse=True)
    first = export(model_dir, tmp_path, qconfig=QuantizationConfig.avx2(), **common)[-1]
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        same = export(model_dir, tmp_path, qconfig=QuantizationConfig.avx2(), **common)[-1]
    assert "onnx-text-int8: reusing" in caplog.text and same.metadata["created_utc"] == first.metadata["created_utc"]
    # One made before the graph cleaned text (no tokenizer_graph_version) is made again.
    record = json.loads((same.path / "metadata.json").read_text(encoding="utf-8"))
    del record["tokenizer_graph_version"]
    (same.path / "metadata.json").write_text(json.dumps(record), encoding="utf-8")
    remade = export(model_dir, tmp_path, qconfig=QuantizationConfig.avx2(), **common)[-1]
    assert remade.metadata["tokenizer_graph_version"] == 2
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        other = export(model_dir, tmp_path, qconfig=QuantizationConfig.avx2(keep_fp32=("embeddings",)), **common)[-1]
    assert "onnx-int8: reusing" not in caplog.text and "onnx-text-int8: reusing" not in caplog.text
    assert list(other.metadata["quantization"]["keep_fp32"]) == ["embeddings"]


def test_the_in_graph_tokenizer_cleans_text_as_hugging_face_does(model_dir):
    pytest.importorskip("onnxruntime_extensions", reason="pip install 'tinybert-edge[onnx-text]'")
    import dataclasses

    import onnxruntime as ort
    from transformers import BertTokenizerFast

    from tinybert_edge.converters.onnx_text_export import tokenizer_model, tokenizer_nodes
    from tinybert_edge.runtime.onnx_text import session_options

    hf = BertTokenizerFast.from_pretrained(model_dir)
    settings = check_vocabulary(model_dir, "op", cased=False, keep_accents=False)
    # Mojibake's U+FFFD, a zero-width space, a control character, odd white space, a lone Arabic mark: Hugging Face
    # drops or spaces them before WordPiece, and the op alone made [UNK] of the words they touch.
    texts = ["good\ufffd\ufffd film", "good \u200bfilm", "good\x01 film", "good\u1680bad film", "bad \u064ffilm"]

    def ids(settings) -> list[list[int]]:
        nodes = tokenizer_nodes(model_dir / "vocab.txt", settings, LENGTH, ["ids", "types", "mask"])
        session = ort.InferenceSession(tokenizer_model(nodes).SerializeToString(), session_options(1),
                                       providers=["CPUExecutionProvider"])
        return [session.run(["ids"], {"text": np.array([t], dtype=object)})[0].tolist() for t in texts]

    expected = [list(e) for e in hf(texts, truncation=True, max_length=LENGTH)["input_ids"]]
    assert ids(settings) == expected
    assert ids(dataclasses.replace(settings, clean_text=False)) != expected  # the op by itself differs on these
