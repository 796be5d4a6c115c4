"""Accuracy-gated int8 and the converters' answers to bad input, on a 2-layer, 32-wide BERT built in-process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.converters import (
    AccuracyBudgetError,
    Artifact,
    ExportConfig,
    QuantizationConfig,
    export,
    export_onnx,
    export_tflite,
    quantize_onnx,
    quantize_onnx_gated,
)
from tinybert_edge.converters import gate
from tinybert_edge.errors import ConfigError, ExportError, ModelError, TinyBertEdgeError

BUCKETS = (16, 32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import torch

    folder = tmp_path_factory.mktemp("tiny") / "model"
    model = tiny_bert.classifier(seed=0)
    with torch.no_grad():  # spread the logits so that int8 rounding rarely decides a label by itself
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    tiny_bert.tokenizer(folder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dev_batches(model_dir) -> list[dict[str, np.ndarray]]:
    from transformers import BertTokenizerFast

    texts, labels = tiny_bert.sentences(24, seed=1)
    tok = BertTokenizerFast.from_pretrained(model_dir)
    out = []
    for start in range(0, len(texts), 8):
        enc = tok(texts[start : start + 8], padding=True, return_tensors="np")
        batch = {k: v.astype(np.int64) for k, v in enc.items()}
        batch["labels"] = np.asarray(labels[start : start + 8], dtype=np.int64)
        out.append(batch)
    return out


@pytest.fixture(scope="module")
def fp32(model_dir, tmp_path_factory) -> Artifact:
    return export_onnx(model_dir, tmp_path_factory.mktemp("exports") / "onnx", ExportConfig(sequence_buckets=BUCKETS))


def _op_types(onnx_file: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(onnx_file)).graph.node}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- accuracy gate ---------------------------------------------------------------------------------------------


def test_node_groups_follow_the_gate_order(fp32):
    groups = gate.node_groups(fp32.model_file, QuantizationConfig().op_types)
    assert list(groups) == ["embeddings", "head", "attention"]
    # The fused graph: one EmbedLayerNormalization; per layer a fused Attention (the Q/K/V projections) and the
    # attention output projection; the head is Gemm, which dynamic int8 does not quantize.
    assert [n for n in groups["embeddings"]] == ["EmbedLayerNormalization_0"] and groups["head"] == []
    assert sorted(groups["attention"]) == sorted(["Attention_0", "Attention_1",
                                                  "/bert/encoder/layer.0/attention/output/dense/MatMul",
                                                  "/bert/encoder/layer.1/attention/output/dense/MatMul"])


def test_gate_keeps_the_first_attempt_within_budget(fp32, dev_batches, tmp_path):
    artifact = quantize_onnx_gated(fp32, tmp_path / "int8", dev_batches, budget_points=100.0,
                                   config=QuantizationConfig.avx2())
    gate_meta = json.loads((tmp_path / "int8" / "metadata.json").read_text())["accuracy_gate"]
    assert gate_meta["excluded_groups"] == [] and len(gate_meta["attempts"]) == 1
    assert gate_meta["attempts"][0]["passed"] and 0.0 <= gate_meta["fp32_accuracy"] <= 1.0
    assert gate_meta["n_examples"] == 24 and artifact.metadata["accuracy_gate"] == gate_meta
    # every node int8: the word table row-wise (converters.embedding_int8), the rest onnxruntime's integer kernels
    ops = _op_types(artifact.model_file)
    assert {"LayerNormalization", "QAttention", "MatMulInteger"} <= ops
    assert not {"EmbedLayerNormalization", "QEmbedLayerNormalization"} & ops
    assert artifact.metadata["quantization"]["embedding_rows_int8"] == ["EmbedLayerNormalization_0"]
    assert _leftovers(tmp_path) == []


def test_gate_excludes_sensitive_groups_in_order_until_within_budget(fp32, dev_batches, tmp_path, monkeypatch):
    # fp32, then one accuracy per attempt: only the attempt with attention also in fp32 is within 1 point.
    accuracies = iter([0.90, 0.80, 0.85, 0.895])
    monkeypatch.setattr(gate, "dev_accuracy", lambda session, batches: next(accuracies))
    artifact = quantize_onnx_gated(fp32, tmp_path / "int8", dev_batches, config=QuantizationConfig.avx2())
    gate_meta = artifact.metadata["accuracy_gate"]
    assert [a["excluded_groups"] for a in gate_meta["attempts"]] == [[], ["embeddings"], ["embeddings", "attention"]]
    assert [a["accuracy"] for a in gate_meta["attempts"]] == [0.80, 0.85, 0.895]
    assert [a["passed"] for a in gate_meta["attempts"]] == [False, False, True]
    assert gate_meta["excluded_groups"] == ["embeddings", "attention"] and gate_meta["budget_points"] == 1.0
    ops = _op_types(artifact.model_file)
    assert {"EmbedLayerNormalization", "Attention", "MatMulInteger"} <= ops
    assert not {"QEmbedLayerNormalization", "QAttention"} & ops
    assert json.loads((artifact.path / "metadata.json").read_text())["accuracy_gate"] == gate_meta
    assert _leftovers(tmp_path) == []


def test_gate_that_misses_the_budget_raises_and_writes_nothing(fp32, dev_batches, tmp_path):
    out = tmp_path / "int8"
    with pytest.raises(AccuracyBudgetError, match=r"more than -1 accuracy points.*fp32 embeddings\+attention") as caught:
        quantize_onnx_gated(fp32, out, dev_batches, budget_points=-1.0, config=QuantizationConfig.avx2())
    assert [a.excluded_groups for a in caught.value.attempts] == [(), ("embeddings",), ("embeddings", "attention")]
    assert not any(a.passed for a in caught.value.attempts)
    assert list(tmp_path.iterdir()) == []


def test_gate_checks_its_arguments(fp32, dev_batches, tmp_path):
    unlabelled = [{k: v for k, v in b.items() if k != "labels"} for b in dev_batches]
    with pytest.raises(ConfigError, match="labels"):
        quantize_onnx_gated(fp32, tmp_path / "int8", unlabelled)
    with pytest.raises(ConfigError, match="budget_points"):
        quantize_onnx_gated(fp32, tmp_path / "int8", dev_batches, budget_points=float("nan"))
    assert list(tmp_path.iterdir()) == []


# --- agreement search -------------------------------------------------------------------------------------------


@pytest.fixture()
def parity(model_dir, dev_batches):
    from tinybert_edge.converters.parity import ParityCheck, ParityThresholds
    from tinybert_edge.runtime.sessions import TorchSession

    return ParityCheck(TorchSession(model_dir), dev_batches, ParityThresholds.for_precision("int8"), "24 sentences")


def _quantizable(fp32) -> list[str]:
    import onnx

    return gate._quantizable(onnx.load(str(fp32.model_file)), QuantizationConfig.avx2().op_types)


def _fp32_count(session) -> int:
    return json.loads((Path(session.path) / "metadata.json").read_text())["quantization"]["nodes_excluded"]


def test_agreement_search_keeps_nothing_fp32_when_int8_already_agrees(fp32, parity, tmp_path):
    artifact = gate.quantize_onnx_to_agreement(fp32, tmp_path / "int8", parity,
                                               QuantizationConfig.avx2(min_agreement=0.5))
    record = artifact.metadata["agreement_gate"]
    assert record["fp32_nodes"] == [] and record["ranking"] == [] and len(record["attempts"]) == 1
    assert record["min_agreement"] == 0.5 and record["examples"] == 24 and record["inputs"] == "24 sentences"
    assert record["attempts"][0]["agreement"] >= 0.5 and artifact.metadata["parity"]["passed"] is not False
    assert json.loads((tmp_path / "int8" / "metadata.json").read_text())["agreement_gate"] == record
    assert _leftovers(tmp_path) == []


def test_agreement_search_keeps_the_nodes_that_move_the_outputs_most_fp32_one_at_a_time(fp32, parity, tmp_path,
                                                                                         monkeypatch):
    from tinybert_edge.converters.parity import ParityCheck

    real = ParityCheck.measure

    def measure(self, candidate):  # the real outputs and differences; agreement short until two nodes are fp32
        report = real(self, candidate)
        excluded = _fp32_count(candidate)
        return dataclasses.replace(report, argmax_agreement=report.argmax_agreement if excluded >= 2 else 0.5)

    monkeypatch.setattr(ParityCheck, "measure", measure)
    artifact = gate.quantize_onnx_to_agreement(fp32, tmp_path / "int8", parity,
                                               QuantizationConfig.avx2(min_agreement=0.7))
    record = artifact.metadata["agreement_gate"]
    quantizable = _quantizable(fp32)
    # Every quantizable node ranked by its own int8 error, largest first; the first two kept fp32, in that order.
    assert sorted(r["node"] for r in record["ranking"]) == sorted(quantizable)
    diffs = [r["mean_abs_diff_alone"] for r in record["ranking"]]
    assert diffs == sorted(diffs, reverse=True) and diffs[0] > 0
    assert record["fp32_nodes"] == [r["node"] for r in record["ranking"][:2]]
    assert [(a["fp32_nodes"], a["passed"]) for a in record["attempts"]] == [(0, False), (1, False), (2, True)]
    assert [a["last_added"] for a in record["attempts"]] == [None, *record["fp32_nodes"]]
    # The kept nodes are still the fp32 operators of the export, under their own names; the rest is int8.
    import onnx

    graph = {n.name: n.op_type for n in onnx.load(str(artifact.model_file)).graph.node}
    original = {n.name: n.op_type for n in onnx.load(str(fp32.model_file)).graph.node}
    assert all(graph.get(name) == original[name] for name in record["fp32_nodes"])
    assert "MatMulInteger" in graph.values() or "QAttention" in graph.values()
    assert _leftovers(tmp_path) == []


def test_agreement_search_that_cannot_reach_its_target_raises_and_writes_nothing(fp32, parity, tmp_path,
                                                                                 monkeypatch):
    from tinybert_edge.converters.parity import ParityCheck

    real = ParityCheck.measure
    monkeypatch.setattr(ParityCheck, "measure",
                        lambda self, c: dataclasses.replace(real(self, c), argmax_agreement=0.5))
    with pytest.raises(AccuracyBudgetError, match=r"cannot be shown to decide as torch does on 0.7 of the inputs.*"
                                                   r"on 24 parity examples stays below it even with \d+ of its \d+ "
                                                   r"quantizable nodes kept fp32") as caught:
        gate.quantize_onnx_to_agreement(fp32, tmp_path / "int8", parity, QuantizationConfig.avx2(min_agreement=0.7))
    n = len(_quantizable(fp32))
    assert len(caught.value.attempts) == 1 + int(gate.MAX_FP32_SHARE * n)
    assert list(tmp_path.iterdir()) == []
    assert caught.value.quantizable_nodes == n
    # The glue suite's caption reads the last attempt from the error the export chain records.
    from tinybert_edge.benchmarks.suites.glue import _failed_search
    from tinybert_edge.converters import ExportFailure

    record = _failed_search(ExportFailure(caught.value))
    assert record["tried_fp32_nodes"] == int(gate.MAX_FP32_SHARE * n) and record["quantizable_nodes"] == n
    assert record["best_agreement"] == 0.5 and 0.0 < record["best_lower_bound"] < 0.5


def test_agreement_search_refuses_too_few_examples_with_the_number_needed(fp32, parity, tmp_path):
    # 24 examples: even 24 of 24 has a 95% Wilson lower bound of 0.86, far below 0.995.
    assert gate.examples_needed(0.995) == 765 and gate.agreement_lower_bound(24, 24) == pytest.approx(0.862, abs=1e-3)
    with pytest.raises(ConfigError, match=r"24 parity examples, too few.*give at least 765 examples"):
        gate.quantize_onnx_to_agreement(fp32, tmp_path / "int8", parity, QuantizationConfig.avx2(min_agreement=0.995))
    assert list(tmp_path.iterdir()) == []


def test_agreement_setting_is_checked_and_reaches_the_export_chain(model_dir, dev_batches, tmp_path, capsys):
    with pytest.raises(ConfigError, match="min_agreement"):
        QuantizationConfig(min_agreement=1.5)
    with pytest.raises(ConfigError, match="min_agreement.*static"):
        QuantizationConfig(mode="static", min_agreement=0.99)
    made = export(model_dir, tmp_path / "out", formats=("onnx",), config=ExportConfig(sequence_buckets=BUCKETS),
                  qconfig=QuantizationConfig.avx2(min_agreement=0.5), parity_batches=dev_batches)
    int8 = [a for a in made if a.precision == "int8"][0]
    assert int8.metadata["agreement_gate"]["min_agreement"] == 0.5
    from tinybert_edge.app.cli import main

    assert main(["export", str(model_dir), str(tmp_path / "cli"), "--formats", "onnx", "--int8-agreement",
                 "0.995"]) != 0
    assert "give --data" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


# --- bad input -------------------------------------------------------------------------------------------------


def test_unsupported_architectures_are_named(tmp_path):
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, GPT2Config, GPT2Model

    torch.manual_seed(0)
    DistilBertForSequenceClassification(DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2,
                                                         hidden_dim=64)).save_pretrained(tmp_path / "distilbert")
    GPT2Model(GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2)).save_pretrained(tmp_path / "gpt2")
    out = tmp_path / "out"
    with pytest.raises(ModelError, match="'distilbert'"):
        export(tmp_path / "distilbert", out)
    with pytest.raises(ModelError, match="'gpt2'"):
        export_onnx(tmp_path / "gpt2", out)
    with pytest.raises(ModelError, match="'distilbert'"):
        export_tflite(tmp_path / "distilbert", tmp_path / "m.tflite")
    assert not out.exists() and not (tmp_path / "m.tflite").exists()


def test_incomplete_model_folders_are_refused(model_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        export(empty, tmp_path / "out")
    (empty / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(ModelError, match="no weights"):
        export(empty, tmp_path / "out")
    (empty / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    (empty / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable config.json"):
        export(empty, tmp_path / "out")
    with pytest.raises(ModelError, match="does not exist"):
        export(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_opsets_the_runtime_cannot_load(tmp_path):
    with pytest.raises(ConfigError, match=r"opset=99 is not allowed; allowed: an integer from 14 to 20"):
        ExportConfig(opset=99)
    import onnx
    from onnx import TensorProto, helper

    from tinybert_edge.runtime.sessions import OnnxRuntimeSession

    # A graph stamped with an opset newer than this onnxruntime knows.
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 99)])
    onnx.save(model, tmp_path / "future.onnx")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxRuntimeSession(tmp_path / "future.onnx")


def test_buckets_longer_than_the_position_table_are_refused(model_dir, tmp_path):
    config = ExportConfig(sequence_buckets=(32, 128))
    for run in (lambda: export_onnx(model_dir, tmp_path / "onnx", config),
                lambda: export(model_dir, tmp_path / "out", config=config)):
        with pytest.raises(ModelError, match=r"\[128\] exceed the model's max_position_embeddings \(64\)"):
            run()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_are_refused_before_any_work(model_dir, fp32, dev_batches, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = ExportConfig(sequence_buckets=BUCKETS)
    attempts = {
        "export": lambda: export(model_dir, blocker / "out", config=config),
        "export_tflite": lambda: export_tflite(model_dir, blocker / "m.tflite", config),
        "quantize_onnx": lambda: quantize_onnx(fp32, blocker / "int8", QuantizationConfig.avx2()),
        "quantize_onnx_gated": lambda: quantize_onnx_gated(fp32, blocker / "deeper" / "int8", dev_batches),
    }
    for name, run in attempts.items():
        with pytest.raises(TinyBertEdgeError, match="writable output path"):
            run()
    # An existing file where the ONNX folder goes, an existing folder where the .tflite goes.
    with pytest.raises(ExportError, match="existing file"):
        export_onnx(model_dir, blocker, config)
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(ExportError, match="existing folder"):
        export_tflite(model_dir, tmp_path / "dir.tflite", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "dir.tflite"]
    assert blocker.read_text() == "not a folder" and list((tmp_path / "dir.tflite").iterdir()) == []


# --- command line and benchmark helpers --------------------------------------------------------------------------


def test_cli_export_passes_opset_and_keep_fp32(model_dir, tmp_path, capsys):
    from tinybert_edge.app.cli import main

    assert main(["export", str(model_dir), str(tmp_path / "out"), "--formats", "onnx", "--seq-lengths", "16", "32",
                 "--opset", "17", "--keep-fp32", "embeddings"]) == 0
    meta = json.loads((tmp_path / "out" / "onnx-int8" / "metadata.json").read_text())
    assert meta["opset"] == 17 and meta["quantization"]["keep_fp32"] == ["embeddings"]
    assert "QEmbedLayerNormalization" not in _op_types(tmp_path / "out" / "onnx-int8" / "model_quantized.onnx")
    assert main(["export", str(model_dir), str(tmp_path / "bad"), "--opset", "99"]) == 2
    assert "opset=99" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_converters_suite_pads_real_rows_to_the_measured_length(model_dir):
    from tinybert_edge.benchmarks.suites.converters import latency_inputs
    from tinybert_edge.data import encode
    from tinybert_edge.models import load_tokenizer

    encoded = encode(load_tokenizer(model_dir), tiny_bert.text_data(10), max_length=16)
    inputs = latency_inputs(encoded, 16, rows=8)
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(array.shape == (8, 16) for array in inputs.values())
    assert inputs["input_ids"][0, 0] == 2 and inputs["attention_mask"].sum(axis=1).min() >= 3  # [CLS] + words


def test_converters_suite_pairs_each_export_with_its_baseline_round_by_round():
    from tinybert_edge.benchmarks.suites.converters import PAIRS, paired_comparisons

    rng = np.random.default_rng(0)
    drift = rng.uniform(0.8, 1.3, size=6)
    speed = {"ours onnx int8": 5.0, "optimum onnx int8": 5.5, "ours tflite int8": 6.0, "litert defaults tflite int8": 6.0}
    by_round = {name: {64: [tuple(d * rng.normal(ms, 0.05, 100)) for d in drift]} for name, ms in speed.items()}
    paired = paired_comparisons(by_round, (64,))
    assert set(paired) == {f"{fmt} @ seq 64" for fmt in PAIRS}
    onnx, tflite = paired["onnx @ seq 64"], paired["tflite @ seq 64"]
    assert onnx["ratio_interval"][1] < 1.0 and onnx["rounds_ours_faster"] == 6 and onnx["rounds"] == 6
    assert onnx["median_round_ratio"] == pytest.approx(5.0 / 5.5, abs=0.01)
    assert tflite["ratio_interval"][0] <= 1.0 <= tflite["ratio_interval"][1]  # the same speed: a tie
