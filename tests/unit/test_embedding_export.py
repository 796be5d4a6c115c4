"""Exporting a sentence encoder (issue 17): pooling and normalisation inside the ONNX graph, int8, parity on the
vectors, and the export folder loading in sentence-transformers' ONNX backend with the same vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_embedding_task import encoder_folder
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.onnx")

TEXTS = ["good movie", "the film was really very bad and the actor was awful", "", "   ", "sun rain wind"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny sentence encoder saved as this SDK saves a student, and its fp32 and int8 ONNX exports."""
    from tinybert_edge.converters.chain import export
    from tinybert_edge.converters.config import ExportConfig
    from tinybert_edge.models import load_model, load_tokenizer, save_model

    root = tmp_path_factory.mktemp("embedding-export")
    teacher = encoder_folder(root / "teacher", layers=2, hidden=32, heads=2)
    student = save_model(load_model(teacher, "embedding"), load_tokenizer(teacher), root / "student")
    artifacts = export(student, root / "export", formats=("onnx",), quantize=True,
                       config=ExportConfig(sequence_buckets=(32,)))
    return student, {a.precision: a for a in artifacts}


def _batch(folder: Path, texts=TEXTS):
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.tasks import get_task
    from tinybert_edge.tasks.embedding import TextEmbeddingData

    encoded = get_task("embedding").encode(load_tokenizer(folder), TextEmbeddingData(list(texts)), 32)
    return encoded.collate(range(len(texts)))


def test_the_graph_outputs_the_pooled_normalised_vector(exported):
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession, TorchSession

    student, artifacts = exported
    batch = _batch(student)
    reference = TorchSession(student).run(batch)
    onnx_fp32 = OnnxRuntimeSession(artifacts["fp32"].path)
    assert onnx_fp32.output_names[0] == "sentence_embedding"
    vectors = onnx_fp32.run(batch)
    assert vectors.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(vectors, reference, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[2], vectors[3], atol=1e-6)  # empty and whitespace-only: "[CLS] [SEP]"
    metadata = artifacts["fp32"].metadata
    assert metadata["task"] == "embedding" and metadata["pooling"] == {"pooling": "mean", "normalize": True}
    assert metadata["parity"]["passed"] and metadata["parity"]["cosine"] > 0.9999


def test_int8_is_quantized_and_gated_by_the_cosine_of_vectors(exported):
    from tinybert_edge.converters.onnx_export import op_type_counts
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession, TorchSession

    student, artifacts = exported
    int8 = artifacts["int8"]
    ops = op_type_counts(int8.model_file)
    assert any(name in ops for name in ("MatMulInteger", "DynamicQuantizeLinear", "QAttention")), ops
    batch = _batch(student)
    reference, vectors = TorchSession(student).run(batch), OnnxRuntimeSession(int8.path).run(batch)
    cosines = np.sum(reference * vectors, axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(vectors, axis=1)
    assert cosines.min() > 0.9
    assert int8.metadata["parity"]["passed"]


def test_the_onnx_folder_loads_in_sentence_transformers_with_the_same_vectors(exported):
    st = pytest.importorskip("sentence_transformers")
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession

    student, artifacts = exported
    folder = artifacts["fp32"].path
    assert json.loads((folder / "modules.json").read_text())[-1]["type"].endswith("Normalize")
    model = st.SentenceTransformer(str(folder), backend="onnx", device="cpu",
                                   model_kwargs={"file_name": "model.onnx", "provider": "CPUExecutionProvider"})
    theirs = model.encode(TEXTS, convert_to_numpy=True)
    ours = OnnxRuntimeSession(folder).run(_batch(student))
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_tflite_int8_carries_the_pooled_vector(exported, tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from tinybert_edge.converters.chain import export
    from tinybert_edge.converters.config import ExportConfig
    from tinybert_edge.runtime.sessions import TorchSession, open_session

    student, _ = exported
    (artifact,) = export(student, tmp_path / "export", formats=("tflite",), quantize=True,
                         config=ExportConfig(sequence_buckets=(32,)))
    assert artifact.metadata["parity"]["passed"]
    batch = {k: v for k, v in _batch(student).items() if k != "labels"}
    padded = {k: np.pad(v, ((0, 0), (0, 32 - v.shape[1]))) for k, v in batch.items()}
    reference = TorchSession(student).run(batch)
    vectors = open_session("litert", artifact.path).run(padded)
    cosines = np.sum(reference * vectors, axis=1) / np.linalg.norm(vectors, axis=1)
    assert vectors.shape == reference.shape and cosines.min() > 0.9
