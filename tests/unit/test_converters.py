"""Export, quantization and parity on a 2-layer, 32-wide random BERT classifier built in-process."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.converters import (
    Artifact,
    ExportConfig,
    ParityCheck,
    ParityReport,
    ParityThresholds,
    QuantizationConfig,
    export,
    export_onnx,
    export_tflite,
    quantize_onnx,
    verify_parity,
)
from tinybert_edge.converters.cpu import CpuInfo, choose_preset
from tinybert_edge.errors import ConfigError, MissingDependencyError, ModelError, ParityError, TinyBertEdgeError
from tinybert_edge.runtime.sessions import InferenceSession

BUCKETS = (16, 32)
WORDS = [f"w{i}" for i in range(120)]
SENTENCES = [
    "w1 w2 w3",
    "w4 w5 w6 w7 w8 w9 w10 w11",
    "w12",
    "w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23 w24 w25 w26 w27 w28 w29 w30 w31 w32",
    "w40 w41 w42 w43 w44",
    "w50 w51 w52 w53 w54 w55 w56 w57 w58 w59 w60 w61 w62",
]


def _write_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)


def _bert_config(num_labels: int = 3):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
        id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2},
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = _write_tokenizer(folder)
    torch.manual_seed(0)
    model = BertForSequenceClassification(_bert_config()).eval()
    # Random init gives logits near zero; a larger head spreads them so argmax comparisons mean something.
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def batches(tiny_model) -> list[dict[str, np.ndarray]]:
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(tiny_model)
    out = []
    for start in range(0, len(SENTENCES), 3):  # dynamically padded, batch size 3, two different lengths
        enc = tokenizer(SENTENCES[start : start + 3], padding=True, return_tensors="np")
        batch = {k: v.astype(np.int64) for k, v in enc.items()}
        batch["labels"] = np.zeros(len(batch["input_ids"]), dtype=np.int64)  # ignored by parity
        out.append(batch)
    assert out[0]["input_ids"].shape[1] != out[1]["input_ids"].shape[1]
    return out


@pytest.fixture(scope="module")
def reference(tiny_model):
    from tinybert_edge.runtime.sessions import TorchSession

    return TorchSession(tiny_model)


@pytest.fixture(scope="module")
def onnx_fp32(tiny_model, reference, batches, tmp_path_factory) -> Artifact:
    out = tmp_path_factory.mktemp("exports") / "onnx"
    check = ParityCheck(reference, batches, ParityThresholds.fp32())
    return export_onnx(tiny_model, out, ExportConfig(sequence_buckets=BUCKETS), parity=check)


@pytest.fixture(scope="module")
def onnx_int8(onnx_fp32, reference, batches) -> Artifact:
    check = ParityCheck(reference, batches, ParityThresholds.int8())
    return quantize_onnx(onnx_fp32, onnx_fp32.path.parent / "onnx-int8", QuantizationConfig.for_this_cpu(), parity=check)


@pytest.fixture(scope="module")
def tflite_int8(tiny_model, reference, batches, tmp_path_factory) -> Artifact:
    out = tmp_path_factory.mktemp("tflite") / "model_int8.tflite"
    check = ParityCheck(reference, batches, ParityThresholds.int8())
    return export_tflite(tiny_model, out, ExportConfig(sequence_buckets=BUCKETS), "dynamic_int8", parity=check)


def _op_types(onnx_file: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(onnx_file)).graph.node}


class FixedSession(InferenceSession):
    backend = "fixed"

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__(Path("fixed"), None)
        self.logits = logits
        self.seen: list[set[str]] = []

    def run(self, batch):
        self.seen.append(set(batch))
        n = len(batch["input_ids"])
        out, self.logits = self.logits[:n], self.logits[n:]
        return out


# --- configuration ---------------------------------------------------------------------------------------------


def test_export_config_sorts_buckets_and_names_bad_fields():
    assert ExportConfig(sequence_buckets=(128, 64)).sequence_buckets == (64, 128)
    with pytest.raises(ConfigError, match=r"opset=9 .*14 to 20"):
        ExportConfig(opset=9)
    with pytest.raises(ConfigError, match="sequence_buckets"):
        ExportConfig(sequence_buckets=(64, 64))
    with pytest.raises(ConfigError, match="sequence_buckets"):
        ExportConfig(sequence_buckets=())


def test_quantization_presets_and_validation():
    assert QuantizationConfig.avx2().weight_type == "uint8"
    assert QuantizationConfig.avx512_vnni().weight_type == "int8"
    assert QuantizationConfig.arm64(keep_fp32=("classifier",)).keep_fp32 == ("classifier",)
    with pytest.raises(ConfigError, match=r"weight_type='int4'.*int8, uint8"):
        QuantizationConfig(weight_type="int4")
    with pytest.raises(ConfigError, match="op_types"):
        QuantizationConfig(op_types=("Conv",))
    chosen = QuantizationConfig.for_this_cpu()
    assert chosen.preset in ("avx2", "avx512_vnni", "arm64") and chosen.reason


@pytest.mark.parametrize(
    ("machine", "flags", "preset"),
    [
        ("aarch64", {"asimd", "asimddp"}, "arm64"),
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, "avx512_vnni"),
        ("x86_64", {"avx2", "avx_vnni"}, "avx512_vnni"),
        ("x86_64", {"avx2", "fma"}, "avx2"),
        ("x86_64", {"avx2", "avx512f"}, "avx2"),
    ],
)
def test_preset_follows_cpu_flags(machine, flags, preset):
    name, reason = choose_preset(CpuInfo(machine, frozenset(flags)))
    assert name == preset and reason


# --- parity ----------------------------------------------------------------------------------------------------


def test_verify_parity_passes_and_ignores_labels(batches):
    logits = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    candidate = FixedSession(logits + 1e-6)
    report = verify_parity(FixedSession(logits), candidate, batches, ParityThresholds.fp32())
    assert isinstance(report, ParityReport) and report.passed
    assert report.n_examples == 6 and report.argmax_agreement == 1.0
    assert all("labels" not in keys for keys in candidate.seen)


def test_verify_parity_gathers_every_failure_before_raising(batches):
    logits = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    with pytest.raises(ParityError) as caught:
        verify_parity(FixedSession(logits), FixedSession(-logits), batches, ParityThresholds.int8())
    message = str(caught.value)
    assert "max_abs_diff" in message and "cosine" in message and "argmax_agreement" in message
    assert "short by" in message and caught.value.report.n_examples == 6


def test_parity_thresholds_validate():
    with pytest.raises(ConfigError, match="min_cosine"):
        ParityThresholds(max_abs_diff=1.0, min_cosine=2.0, min_argmax_agreement=0.9)
    assert ParityThresholds.int8().min_argmax_agreement < ParityThresholds.fp32().min_argmax_agreement


# --- bad inputs ------------------------------------------------------------------------------------------------


def test_export_rejects_folders_without_config_or_weights(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        export_onnx(tmp_path, tmp_path / "out")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="no weights"):
        export_onnx(tmp_path, tmp_path / "out")


def test_export_rejects_non_bert_and_bare_encoders(tmp_path):
    import torch
    from transformers import BertModel

    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "gpt" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="gpt2"):
        export_tflite(tmp_path / "gpt", tmp_path / "x.tflite")
    torch.manual_seed(0)
    BertModel(_bert_config()).save_pretrained(tmp_path / "encoder", safe_serialization=True)
    with pytest.raises(ModelError, match="BertForSequenceClassification"):
        export_onnx(tmp_path / "encoder", tmp_path / "out")


def test_bucket_longer_than_position_table_is_refused(tiny_model, tmp_path):
    with pytest.raises(ModelError, match=r"\[128\] exceed the model's max_position_embeddings \(64\)"):
        export_tflite(tiny_model, tmp_path / "m.tflite", ExportConfig(sequence_buckets=(32, 128)))


def test_unwritable_output_path_is_refused(tiny_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TinyBertEdgeError, match="writable output path"):
        export_onnx(tiny_model, blocker / "onnx", ExportConfig(sequence_buckets=BUCKETS))


def test_missing_optional_dependency_names_the_extra(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    with pytest.raises(MissingDependencyError, match=r"tinybert-edge\[tflite\]"):
        export_tflite(tiny_model, tmp_path / "m.tflite")
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    from tinybert_edge.runtime.litert import LiteRtSession

    (tmp_path / "m.tflite").write_bytes(b"")
    with pytest.raises(MissingDependencyError, match=r"tinybert-edge\[tflite\]"):
        LiteRtSession(tmp_path / "m.tflite")


# --- ONNX ------------------------------------------------------------------------------------------------------


def test_onnx_export_folder_is_complete_and_fused(onnx_fp32):
    names = {p.name for p in onnx_fp32.path.iterdir()}
    assert {"model.onnx", "config.json", "vocab.txt", "tokenizer.json", "metadata.json"} <= names
    assert not [p for p in onnx_fp32.path.parent.iterdir() if p.name.endswith(".partial")]
    meta = json.loads((onnx_fp32.path / "metadata.json").read_text())
    assert meta["opset"] == 17 and meta["sequence_buckets"] == list(BUCKETS)
    assert len(meta["source_sha256"]) == 64 and meta["sdk_version"]
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] < 1e-3
    # The BERT optimizer fused every layer of this standard graph.
    assert meta["fused_operators"]["Attention"] == 2 and meta["fused_operators"]["SkipLayerNormalization"] == 4
    assert meta["missing_fusions"] == {}
    assert {"Attention", "SkipLayerNormalization"} <= _op_types(onnx_fp32.model_file)
    assert onnx_fp32.size_bytes == onnx_fp32.model_file.stat().st_size > 0


def test_onnx_exports_load_in_optimum(onnx_fp32, onnx_int8, batches, reference):
    from optimum.onnxruntime import ORTModelForSequenceClassification

    fp32 = ORTModelForSequenceClassification.from_pretrained(onnx_fp32.path)
    int8 = ORTModelForSequenceClassification.from_pretrained(onnx_int8.path, file_name="model_quantized.onnx")
    import torch

    batch = {k: torch.from_numpy(v) for k, v in batches[1].items() if k != "labels"}
    expected = reference.run(batches[1])
    np.testing.assert_allclose(fp32(**batch).logits.numpy(), expected, atol=1e-4)
    assert int8(**batch).logits.shape == expected.shape


def test_dynamic_int8_onnx_has_integer_operators(onnx_int8, onnx_fp32):
    ops = _op_types(onnx_int8.model_file)
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    assert [p.name for p in onnx_int8.path.glob("*.onnx")] == ["model_quantized.onnx"]
    meta = json.loads((onnx_int8.path / "metadata.json").read_text())
    assert meta["precision"] == "int8" and meta["quantization"]["preset"] == QuantizationConfig.for_this_cpu().preset
    assert meta["parity"]["passed"] and meta["source_sha256"] == onnx_fp32.metadata["source_sha256"]
    assert onnx_int8.size_bytes < onnx_fp32.size_bytes


def test_keep_fp32_leaves_named_modules_unquantized(onnx_fp32, tmp_path):
    artifact = quantize_onnx(onnx_fp32, tmp_path / "int8", QuantizationConfig.avx2(keep_fp32=("embeddings",)))
    ops = _op_types(artifact.model_file)
    assert "EmbedLayerNormalization" in ops and "QEmbedLayerNormalization" not in ops
    assert "MatMulInteger" in ops


def test_the_word_table_goes_int8_row_by_row_and_the_graph_still_reads_the_mask(onnx_fp32, tmp_path):
    import onnx
    import onnxruntime as ort

    from tinybert_edge.converters.embedding_int8 import quantize_word_embeddings

    model = onnx.load(onnx_fp32.model_file)
    assert quantize_word_embeddings(model) == ["EmbedLayerNormalization_0"]
    tables = {i.name: i for i in model.graph.initializer}
    int8 = [t for t in tables.values() if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) == 1 and list(int8[0].dims) == [len(WORDS) + 5, 32]  # vocabulary x width
    assert not any(n.op_type == "EmbedLayerNormalization" for n in model.graph.node)
    onnx.save(model, tmp_path / "rows.onnx")
    fused = ort.InferenceSession(str(onnx_fp32.model_file), providers=["CPUExecutionProvider"])
    rows = ort.InferenceSession(str(tmp_path / "rows.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = rng.integers(5, len(WORDS), size=(3, 9)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    types = np.zeros_like(ids)
    types[0, 5:] = 1
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    got = rows.run(None, feed)[0]
    np.testing.assert_allclose(got, fused.run(None, feed)[0], atol=0.05)
    # a padded row gives what the same text unpadded gives: the mask index still reaches the fused attention
    alone = {name: value[2:, :3] for name, value in feed.items()}
    np.testing.assert_allclose(rows.run(None, alone)[0], got[2:], atol=1e-5)
    # modules kept fp32 keep their fused node
    kept = onnx.load(onnx_fp32.model_file)
    assert quantize_word_embeddings(kept, keep_fp32={"EmbedLayerNormalization_0"}) == []


def test_onnxruntimes_one_scale_embedding_is_still_there_on_request(onnx_fp32, tmp_path):
    artifact = quantize_onnx(onnx_fp32, tmp_path / "int8", QuantizationConfig.avx2(embedding_table="ort"))
    assert "QEmbedLayerNormalization" in _op_types(artifact.model_file)
    assert artifact.metadata["quantization"]["embedding_rows_int8"] == []
    with pytest.raises(ConfigError, match="embedding_table"):
        QuantizationConfig(embedding_table="int4")


def test_failed_parity_leaves_previous_output_untouched(onnx_fp32, reference, batches, tmp_path):
    out = tmp_path / "int8"
    out.mkdir()
    (out / "previous.txt").write_text("kept")
    impossible = ParityThresholds(max_abs_diff=1e-12, min_cosine=0.98, min_argmax_agreement=0.0)
    with pytest.raises(ParityError, match="max_abs_diff"):
        quantize_onnx(onnx_fp32, out, QuantizationConfig.avx2(), parity=ParityCheck(reference, batches, impossible))
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["int8"]


def test_export_api_verifies_each_artifact(tiny_model, batches, tmp_path):
    artifacts = export(tiny_model, tmp_path / "out", formats=("onnx",), config=ExportConfig(sequence_buckets=BUCKETS),
                       qconfig=QuantizationConfig.avx2(), parity_batches=batches)
    assert [(a.format, a.precision) for a in artifacts] == [("onnx", "fp32"), ("onnx", "int8")]
    assert all(a.metadata["parity"]["passed"] for a in artifacts)
    with pytest.raises(ConfigError, match="formats"):
        export(tiny_model, tmp_path / "out", formats=("coreml",))


def test_reuse_keeps_an_int8_onnx_only_when_quantized_with_the_settings_asked_for(tiny_model, batches, tmp_path,
                                                                                  caplog):
    common = dict(formats=("onnx",), config=ExportConfig(sequence_buckets=BUCKETS), parity_batches=batches,
                  reuse=True)
    first = export(tiny_model, tmp_path / "out", qconfig=QuantizationConfig.avx2(), **common)[1]
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        same = export(tiny_model, tmp_path / "out", qconfig=QuantizationConfig.avx2(), **common)[1]
    assert "onnx-int8: reusing" in caplog.text and same.metadata["created_utc"] == first.metadata["created_utc"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        other = export(tiny_model, tmp_path / "out", qconfig=QuantizationConfig.avx2(keep_fp32=("embeddings",)),
                       **common)[1]
    assert "onnx-fp32: reusing" in caplog.text and "onnx-int8: reusing" not in caplog.text
    assert list(other.metadata["quantization"]["keep_fp32"]) == ["embeddings"]
    assert "QEmbedLayerNormalization" not in _op_types(other.model_file)


# --- TFLite ----------------------------------------------------------------------------------------------------


def test_tflite_int8_has_one_signature_per_bucket_and_int8_weights(tflite_int8):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_int8.path))
    signatures = interpreter.get_signature_list()
    assert sorted(signatures) == ["seq_16", "seq_32"]
    runner = interpreter.get_signature_runner("seq_16")
    inputs = runner.get_input_details()
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(d["dtype"] == np.int32 and list(d["shape"]) == [1, 16] for d in inputs.values())
    weight_dtypes = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in weight_dtypes
    meta = json.loads(tflite_int8.path.with_name(tflite_int8.path.name + ".json").read_text())
    assert meta["quantization"]["recipe"] == "dynamic_wi8_afp32" and meta["parity"]["passed"]
    assert meta["sequence_buckets"] == [16, 32]


def test_litert_session_buckets_pads_and_runs_batches(tflite_int8, batches, reference):
    from tinybert_edge.runtime.litert import LiteRtSession

    session = LiteRtSession(tflite_int8.path, threads=1)
    assert session.buckets == [16, 32] and session.max_sequence_length == 32
    assert session.bucket_for(5) == 16 and session.bucket_for(17) == 32
    for batch in batches:  # batch size 3 against batch-1 signatures, two lengths
        got = session.run(batch)
        assert got.dtype == np.float32 and got.shape == (3, 3)
        np.testing.assert_allclose(got, reference.run(batch), atol=0.05)
    too_long = {"input_ids": np.ones((1, 40), np.int64), "attention_mask": np.ones((1, 40), np.int64)}
    with pytest.raises(ModelError, match=r"\[16, 32\]"):
        session.run(too_long)


def test_failed_tflite_parity_leaves_no_file(tiny_model, reference, batches, tmp_path):
    impossible = ParityThresholds(max_abs_diff=1e-12, min_cosine=0.0, min_argmax_agreement=0.0)
    with pytest.raises(ParityError):
        export_tflite(tiny_model, tmp_path / "m.tflite", ExportConfig(sequence_buckets=(32,)), None,
                      parity=ParityCheck(reference, batches, impossible))
    assert list(tmp_path.iterdir()) == []


def test_litert_session_imports_neither_torch_nor_transformers():
    code = (
        "import sys, tinybert_edge.runtime.litert\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- PyTorch int8 ----------------------------------------------------------------------------------------------


def test_torch_dynamic_int8_replaces_linears_and_keeps_the_original(tiny_model, batches):
    import torch

    from tinybert_edge.runtime.torch_int8 import dynamic_int8
    from tinybert_edge.models import load_classifier

    model = load_classifier(tiny_model).eval()
    quantized = dynamic_int8(model)
    assert isinstance(model.classifier, torch.nn.Linear) and type(model.classifier) is torch.nn.Linear
    assert type(quantized.classifier) is not torch.nn.Linear
    feed = {k: torch.from_numpy(v) for k, v in batches[0].items() if k != "labels"}
    with torch.inference_mode():
        np.testing.assert_allclose(quantized(**feed).logits.numpy(), model(**feed).logits.numpy(), atol=0.1)


def test_cosine_limit_applies_to_the_eval_set_not_to_one_uncertain_example():
    # 99 confident examples that agree closely and one near-zero logit vector that a small shift turns (its argmax
    # survives): the per-example minimum cosine is poor, the set cosine is not, and the check passes.
    reference = np.array([[4.0, -2.0, -2.0]] * 99 + [[0.02, -0.01, -0.01]], dtype=np.float32)
    candidate = np.array([[4.05, -2.0, -2.05]] * 99 + [[0.005, 0.004, -0.03]], dtype=np.float32)
    ones = {"input_ids": np.ones((100, 4), np.int64), "attention_mask": np.ones((100, 4), np.int64)}
    report = verify_parity(FixedSession(reference), FixedSession(candidate), [ones], ParityThresholds.int8())
    assert report.min_cosine < 0.5 < 0.98 < report.cosine
    assert report.passed


def test_two_label_quantization_noise_passes_but_a_broken_kernel_does_not():
    # A binary classifier's logits are short 2-vectors near the boundary: int8-sized noise (sigma 0.15) on margins
    # spread over +-3 turns uncertain rows by tens of degrees, so the per-example mean cosine falls below 0.98
    # while 98% of argmaxes agree. The set cosine of row-centred logits stays high; a kernel that moves logits by
    # whole units (noise sigma 1.5) fails it.
    rng = np.random.default_rng(0)
    margin = rng.uniform(-3, 3, size=2000)
    offset = rng.normal(0.0, 0.2, size=2000)
    reference = np.stack([offset + margin / 2, offset - margin / 2], axis=1).astype(np.float32)
    ones = {"input_ids": np.ones((2000, 4), np.int64), "attention_mask": np.ones((2000, 4), np.int64)}
    relaxed = ParityThresholds(max_abs_diff=math.inf, min_cosine=0.98, min_argmax_agreement=0.0)
    sound = reference + rng.normal(0.0, 0.15, size=reference.shape).astype(np.float32)
    report = verify_parity(FixedSession(reference), FixedSession(sound), [ones], relaxed)
    assert report.mean_cosine < 0.98 < report.cosine and report.argmax_agreement > 0.95
    assert report.passed
    broken = reference + rng.normal(0.0, 1.5, size=reference.shape).astype(np.float32)
    with pytest.raises(ParityError, match="cosine"):
        verify_parity(FixedSession(reference), FixedSession(broken), [ones], relaxed)




def test_an_embedding_only_op_list_quantizes_the_word_table_alone(onnx_fp32, tmp_path):
    # onnxruntime reads an empty op list as "every op"; the row-wise table must not become that
    artifact = quantize_onnx(onnx_fp32, tmp_path / "int8", QuantizationConfig.avx2(op_types=("EmbedLayerNormalization",)))
    ops = _op_types(artifact.model_file)
    assert artifact.metadata["quantization"]["embedding_rows_int8"] == ["EmbedLayerNormalization_0"]
    assert "MatMulInteger" not in ops and "DynamicQuantizeLinear" not in ops and "EmbedLayerNormalization" not in ops


def test_below_opset_17_the_word_table_takes_onnxruntimes_one_scale_form(tiny_model, reference, batches, tmp_path):
    import onnx

    from tinybert_edge.converters.embedding_int8 import quantize_word_embeddings

    old = export_onnx(tiny_model, tmp_path / "onnx", ExportConfig(sequence_buckets=BUCKETS, opset=14),
                      parity=ParityCheck(reference, batches, ParityThresholds.fp32()))
    artifact = quantize_onnx(old, tmp_path / "int8", QuantizationConfig.avx2(),
                             parity=ParityCheck(reference, batches, ParityThresholds.int8()))
    assert "QEmbedLayerNormalization" in _op_types(artifact.model_file)
    assert artifact.metadata["quantization"]["embedding_rows_int8"] == []
    with pytest.raises(ConfigError, match=r"opset 17 or later.*not 14.*embedding_table=\"ort\""):
        quantize_word_embeddings(onnx.load(old.model_file))
