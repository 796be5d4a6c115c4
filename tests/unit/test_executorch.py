"""ExecuTorch (.pte, XNNPACK) export through the one chain and its runtime session, on a tiny random BERT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch.exir", reason="executorch is not installed: pip install 'tinybert-edge[executorch]'")

from tiny_bert import classifier, one_thread, sentences, tokenizer  # noqa: E402,F401

from tinybert_edge.artifacts import Artifact, export_path, find_artifacts  # noqa: E402
from tinybert_edge.converters import ExportConfig, ParityThresholds, export  # noqa: E402
from tinybert_edge.converters.executorch_export import INT8_EMBEDDING_OP, export_executorch  # noqa: E402
from tinybert_edge.errors import MissingDependencyError, ModelError, ParityError  # noqa: E402
from tinybert_edge.runtime.executorch_session import ExecuTorchSession, file_identifier  # noqa: E402
from tinybert_edge.runtime.sessions import SESSIONS, TorchSession, open_session  # noqa: E402

BUCKETS = (16, 32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import torch

    folder = tmp_path_factory.mktemp("tiny-et")
    model = classifier(seed=3, labels=("neg", "neu", "pos"))
    with torch.no_grad():  # spread the random logits so that label agreement means something
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer(folder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def batches(model_dir) -> list[dict[str, np.ndarray]]:
    from transformers import BertTokenizerFast

    texts, _ = sentences(24, seed=5)
    fast = BertTokenizerFast.from_pretrained(model_dir)
    out = []
    for start in range(0, len(texts), 8):  # padded batches of different lengths
        encoded = fast(texts[start : start + 8], padding=True, return_tensors="np")
        out.append({k: v.astype(np.int64) for k, v in encoded.items()})
    return out


@pytest.fixture(scope="module")
def exported(model_dir, batches, tmp_path_factory) -> dict[str, Artifact]:
    out = tmp_path_factory.mktemp("et-exports")
    made = export(model_dir, out, formats=("executorch",), config=ExportConfig(sequence_buckets=BUCKETS),
                  parity_batches=batches, parity_description="synthetic batches")
    made += export(model_dir, out, formats=("executorch",), quantize=False, config=ExportConfig(sequence_buckets=BUCKETS),
                   parity_batches=batches, parity_description="synthetic batches")
    return {a.precision: a for a in made}


def test_chain_writes_int8_and_fp32_pte_in_the_layout(exported):
    int8, fp32 = exported["int8"], exported["fp32"]
    assert int8.path == export_path(int8.path.parent.parent, "executorch", "int8")
    assert int8.path.name == "model.pte" and int8.path.parent.name == "executorch-int8"
    assert fp32.path.parent.name == "executorch-fp32"
    for artifact in (int8, fp32):
        assert artifact.metadata["parity"]["passed"] and artifact.metadata["parity"]["inputs"] == "synthetic batches"
        assert artifact.metadata["executorch_version"] and artifact.metadata["file_identifier"].startswith("ET")
        assert artifact.metadata["op_types"]["executorch_call_delegate"] > 0  # XNNPACK took the linear layers
        reopened = Artifact.open(artifact.path)
        assert (reopened.format, reopened.runtime, reopened.precision) == ("executorch", "executorch", artifact.precision)
    assert {(a.format, a.precision) for a in find_artifacts(int8.path.parent.parent)} == {
        ("executorch", "int8"), ("executorch", "fp32")}


def test_int8_quantizes_the_embedding_tables_too(exported):
    int8, fp32 = exported["int8"], exported["fp32"]
    # word, position and token-type tables all go through the fused int8 lookup; the fp32 program has none
    assert int8.metadata["op_types"].get(INT8_EMBEDDING_OP) == 3
    assert INT8_EMBEDDING_OP not in fp32.metadata["op_types"]
    assert int8.size_bytes < 0.7 * fp32.size_bytes


def test_session_runs_padded_batches_like_pytorch(exported, model_dir, batches):
    assert "executorch" in SESSIONS
    reference = TorchSession(model_dir)
    for precision, tolerance in (("fp32", 1e-4), ("int8", 0.5)):
        session = open_session("executorch", exported[precision].path, 1)
        assert isinstance(session, ExecuTorchSession) and session.max_sequence_length == max(BUCKETS)
        for batch in batches:
            got, want = session.run(batch), reference.run(batch)
            assert got.shape == want.shape and got.dtype == np.float32
            assert np.abs(got - want).max() < tolerance
    session = open_session("executorch", exported["fp32"].path, 1)
    too_long = {k: np.ones((1, max(BUCKETS) + 1), dtype=np.int64) for k in ("input_ids", "attention_mask")}
    with pytest.raises(ModelError, match="longer than"):
        session.run(too_long)


def test_pte_of_another_executorch_version_is_refused(exported, tmp_path):
    source = exported["fp32"]
    copy = tmp_path / "old" / "model.pte"
    copy.parent.mkdir()
    copy.write_bytes(source.path.read_bytes())
    meta = dict(source.metadata, executorch_version="0.4.0")
    (tmp_path / "old" / "model.pte.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match=r"built with ExecuTorch 0\.4\.0.*export it again"):
        ExecuTorchSession(copy)
    # no metadata: the schema identifier in the header tells
    bare = tmp_path / "bare.pte"
    content = bytearray(source.path.read_bytes())
    content[4:8] = b"ET09"
    bare.write_bytes(bytes(content))
    assert file_identifier(bytes(content)) == "ET09"
    with pytest.raises(ModelError, match="schema ET09.*another ExecuTorch version"):
        ExecuTorchSession(bare)
    junk = tmp_path / "junk.pte"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="not an ExecuTorch program"):
        ExecuTorchSession(junk)


def test_failed_parity_leaves_nothing(model_dir, batches, tmp_path):
    from tinybert_edge.converters import ParityCheck

    impossible = ParityThresholds(max_abs_diff=1e-12, min_cosine=1.0, min_argmax_agreement=1.0)
    check = ParityCheck(TorchSession(model_dir), batches, impossible)
    with pytest.raises(ParityError):
        export_executorch(model_dir, tmp_path / "executorch-int8", ExportConfig(sequence_buckets=(16,)), parity=check)
    assert not (tmp_path / "executorch-int8").exists() or not any((tmp_path / "executorch-int8").iterdir())


def test_missing_executorch_names_the_extra(model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch.exir", None)
    with pytest.raises(MissingDependencyError, match=r"tinybert-edge\[executorch\]"):
        export_executorch(model_dir, tmp_path / "m.pte")
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)
    (tmp_path / "m.pte").write_bytes(b"\0\0\0\0ET12" + b"\0" * 56)
    with pytest.raises(MissingDependencyError, match=r"tinybert-edge\[executorch\]"):
        ExecuTorchSession(tmp_path / "m.pte")


def test_pipeline_rows_carry_the_pte_when_the_format_is_asked_for(exported, model_dir):
    from tinybert_edge.app.pipeline import _targets, evaluate_targets
    from tinybert_edge.config import PipelineConfig
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.tasks import get_task
    from tiny_bert import text_data

    assert PipelineConfig(formats=("onnx", "executorch")).formats == ("onnx", "executorch")
    targets = _targets(model_dir, model_dir, [exported["int8"]])
    row = next(t for t in targets if t["name"] == "student · ExecuTorch int8")
    assert (row["backend"], row["precision"]) == ("executorch", "int8")
    encoded = get_task().encode(load_tokenizer(model_dir), text_data(40, ("neg", "neu", "pos")), 32)
    scores = evaluate_targets(targets, encoded, threads=1, progress=False)
    assert scores["student · ExecuTorch int8"]["n"] == 40
    assert scores["student · ExecuTorch int8"]["agreement_with_student"] >= 0.9
