"""Multi-signature TFLite files: one `seq_<L>` subgraph per bucket, compacted so that the second bucket costs
little more than its operators (`converters.tflite_export.compact_flatbuffer`). Tiny random BERT built in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tiny_bert import one_thread, save_classifier  # noqa: F401  (one_thread: autouse fixture)
from tinybert_edge.converters import ExportConfig, ParityCheck, ParityThresholds, export_tflite
from tinybert_edge.converters.tflite_export import compact_flatbuffer, convert_buckets, quantize_tflite
from tinybert_edge.errors import ConfigError

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

BUCKETS = (16, 32)
TEXTS = ["good movie and the best story", "awful rain", "the coffee was cold and the bread was stale but the tea"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_classifier(tmp_path_factory.mktemp("tiny-bert"), labels=("neg", "neu", "pos"))


@pytest.fixture(scope="module")
def int8_flatbuffer(tiny_model) -> bytes:
    """The quantized two-bucket flatbuffer as litert-torch + ai-edge-quantizer leave it (before compaction)."""
    from tinybert_edge.converters.artifact import check_source

    return quantize_tflite(convert_buckets(check_source(tiny_model, BUCKETS), ExportConfig(sequence_buckets=BUCKETS)),
                           "dynamic_int8")


@pytest.fixture(scope="module")
def batches(tiny_model) -> list[dict[str, np.ndarray]]:
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(tiny_model)
    encoded = tokenizer(TEXTS, padding=True, return_tensors="np")
    batch = {k: v.astype(np.int64) for k, v in encoded.items()}
    batch["labels"] = np.zeros(len(TEXTS), dtype=np.int64)
    return [batch]


def _model(flatbuffer: bytes):
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))


def _quantization_bytes(subgraph) -> int:
    """Bytes of per-tensor quantization vectors in one subgraph: float32 scales and int64 zero points."""
    total = 0
    for tensor in subgraph.tensors:
        q = tensor.quantization
        if q is not None and q.scale is not None:
            total += 4 * len(q.scale) + (8 * len(q.zeroPoint) if q.zeroPoint is not None else 0)
    return total


def _signature_outputs(flatbuffer: bytes, rows: np.ndarray) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    out = {}
    for length in BUCKETS:
        runner = interpreter.get_signature_runner(f"seq_{length}")
        ids = np.zeros((1, length), np.int32)
        ids[0, : rows.shape[1]] = rows[0, :length]
        mask = (ids != 0).astype(np.int32)
        result = runner(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids))
        out[f"seq_{length}"] = next(iter(result.values()))
    return out


def test_second_bucket_no_longer_repeats_quantization_parameters(int8_flatbuffer):
    model = _model(int8_flatbuffer)
    assert len(model.subgraphs) == 2
    repeated = _quantization_bytes(model.subgraphs[1])
    assert repeated > 0  # per-channel scales and zero points of the int8 weights, stored again for seq_32

    compacted, info = compact_flatbuffer(int8_flatbuffer, keep_tensor_names=True)

    assert info["shared_quantization_tables"] > 0
    assert info["bytes_before"] == len(int8_flatbuffer) and info["bytes_after"] == len(compacted)
    assert len(int8_flatbuffer) - len(compacted) >= repeated
    # Read back, every tensor still has its own (equal) parameters: sharing is a storage detail.
    before, after = _model(int8_flatbuffer), _model(compacted)
    for sub_before, sub_after in zip(before.subgraphs, after.subgraphs):
        for t_before, t_after in zip(sub_before.tensors, sub_after.tensors):
            assert t_before.name == t_after.name and t_before.buffer == t_after.buffer
            if t_before.quantization is not None and t_before.quantization.scale is not None:
                np.testing.assert_array_equal(t_before.quantization.scale, t_after.quantization.scale)
                np.testing.assert_array_equal(t_before.quantization.zeroPoint, t_after.quantization.zeroPoint)


def test_compaction_keeps_outputs_bit_identical_in_every_signature(int8_flatbuffer, batches):
    compacted, _ = compact_flatbuffer(int8_flatbuffer)
    rows = batches[0]["input_ids"]
    before = _signature_outputs(int8_flatbuffer, rows)
    after = _signature_outputs(compacted, rows)
    assert sorted(after) == ["seq_16", "seq_32"]
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_debug_names_are_dropped_unless_asked_for_and_signature_names_stay(int8_flatbuffer):
    stripped, info = compact_flatbuffer(int8_flatbuffer)
    kept, kept_info = compact_flatbuffer(int8_flatbuffer, keep_tensor_names=True)
    assert info["names_dropped"] > 0 and kept_info["names_dropped"] == 0
    assert len(stripped) < len(kept)

    original, model = _model(int8_flatbuffer), _model(stripped)
    io_positions = set()
    for signature in model.signatureDefs:
        for io in list(signature.inputs) + list(signature.outputs):
            io_positions.add((signature.subgraphIndex, io.tensorIndex))
            kept_name = model.subgraphs[signature.subgraphIndex].tensors[io.tensorIndex].name
            assert kept_name and kept_name == original.subgraphs[signature.subgraphIndex].tensors[io.tensorIndex].name
    others = [t.name for i, s in enumerate(model.subgraphs) for j, t in enumerate(s.tensors) if (i, j) not in io_positions]
    assert others and not any(others)
    assert all(t.name for s in _model(kept).subgraphs for t in s.tensors if t.name is not None) and \
        sum(1 for s in _model(kept).subgraphs for t in s.tensors if t.name) > len(io_positions)


def test_export_writes_the_compacted_file_and_it_passes_parity(tiny_model, batches, tmp_path):
    from tinybert_edge.runtime.litert import LiteRtSession
    from tinybert_edge.runtime.sessions import TorchSession

    check = ParityCheck(TorchSession(tiny_model), batches, ParityThresholds.int8())
    artifact = export_tflite(tiny_model, tmp_path / "m.tflite", ExportConfig(sequence_buckets=BUCKETS),
                             "dynamic_int8", parity=check)
    meta = json.loads(artifact.path.with_name("m.tflite.json").read_text())
    assert meta["parity"]["passed"]
    assert meta["compaction"]["bytes_after"] == artifact.path.stat().st_size < meta["compaction"]["bytes_before"]
    session = LiteRtSession(artifact.path, threads=1)
    assert session.buckets == list(BUCKETS)
    assert session.run(batches[0]).shape == (len(TEXTS), 3)


def test_tensor_names_option_is_checked():
    assert ExportConfig().tflite_tensor_names is False
    with pytest.raises(ConfigError, match="tflite_tensor_names"):
        ExportConfig(tflite_tensor_names="yes")


def test_conversion_steps_print_only_when_the_sdk_logs_at_debug(tiny_model, capsys, caplog, monkeypatch):
    """A Python user's export prints nothing of litert-torch's ~60 conversion steps; `--verbose` (DEBUG) shows them;
    the environment is left as it was."""
    import logging
    import os

    from tinybert_edge.converters.artifact import check_source

    monkeypatch.delenv("LITERT_TORCH_SHOW_PROGRESS", raising=False)
    source = check_source(tiny_model, (16,))
    caplog.set_level(logging.INFO, logger="tinybert_edge")
    convert_buckets(source, ExportConfig(sequence_buckets=(16,)))
    quiet = capsys.readouterr()
    caplog.set_level(logging.DEBUG, logger="tinybert_edge")
    convert_buckets(source, ExportConfig(sequence_buckets=(16,)))
    verbose = capsys.readouterr()
    assert quiet.out == "" and "[START]" not in quiet.err
    assert "[START] LiteRT-Torch Convert" in verbose.out + verbose.err
    assert "LITERT_TORCH_SHOW_PROGRESS" not in os.environ


def test_quantizer_progress_bar_stays_off_stderr_unless_debug(tiny_model, capsys, caplog):
    """ai-edge-quantizer shows a tqdm bar for models of 100+ tensors even when told not to; it is hidden at the
    default log level and shown at DEBUG."""
    import logging

    from tinybert_edge.converters.artifact import check_source

    flatbuffer = convert_buckets(check_source(tiny_model, BUCKETS), ExportConfig(sequence_buckets=BUCKETS))
    capsys.readouterr()
    caplog.set_level(logging.INFO, logger="tinybert_edge")
    quantize_tflite(flatbuffer, "dynamic_int8")
    quiet = capsys.readouterr()
    caplog.set_level(logging.DEBUG, logger="tinybert_edge")
    quantize_tflite(flatbuffer, "dynamic_int8")
    verbose = capsys.readouterr()
    assert "Applying Transformations" not in quiet.err + quiet.out
    assert "Applying Transformations" in verbose.err
