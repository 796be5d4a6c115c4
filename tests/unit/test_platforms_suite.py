"""The `platforms` suite end to end on a tiny random BERT: every path built through the one chain, each path's labels
against PyTorch's, latency rounds, the fastest path against the transformers-over-optimum anchor, the .pte's size
against our TFLite's, and the results file. No timing thresholds: the numbers are only checked for being there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

for module, extra in (("executorch.runtime", "executorch"), ("onnxruntime_extensions", "onnx-text"),
                      ("mediapipe", "mediapipe"), ("optimum.onnxruntime", "onnx")):
    pytest.importorskip(module, reason=f"the platforms suite needs it: pip install 'tinybert-edge[{extra}]'")

from tiny_bert import classifier, one_thread, tokenizer, write_csv  # noqa: E402,F401

from tinybert_edge.benchmarks.results import SUITES  # noqa: E402
from tinybert_edge.benchmarks.suites import platforms  # noqa: E402


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    import torch

    folder = tmp_path_factory.mktemp("student")
    model = classifier(seed=4)
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer(folder).save_pretrained(folder)
    return folder


def test_every_path_side_by_side_in_one_results_file(student, tmp_path):
    data = write_csv(tmp_path / "dev.csv", 30)
    assert "platforms" in SUITES
    code = platforms.main(["--student", str(student), "--data", str(data), "--work-dir", str(tmp_path / "work"),
                           "--seq-length", "32", "--threads", "1", "--rounds", "2", "--texts-per-round", "10",
                           "--results-dir", str(tmp_path / "results")])
    assert code == 0
    document = json.loads((tmp_path / "results" / "platforms.json").read_text(encoding="utf-8"))
    extra, metrics = document["extra"], document["metrics"]
    paths = set(extra["paths"])
    assert {platforms.REFERENCE, platforms.ANCHOR, "ONNX, tokenizer in the graph (int8)",
            "MediaPipe Text Classifier (int8)", "ExecuTorch int8 (XNNPACK) · rust tokenizer",
            "our runtime · TFLite int8 · rust tokenizer", "our runtime · TFLite int8 · python tokenizer"} <= paths
    assert set(extra["agreement_with_pytorch"]) == paths and extra["agreement_with_pytorch"][platforms.REFERENCE] == 1.0
    assert all(len(extra["p50_ms_per_round"][name]) == 2 for name in paths - {platforms.REFERENCE})
    assert extra["fastest_path"] in paths - {platforms.REFERENCE, platforms.ANCHOR, *platforms.FLOORS}
    # The floors (a model file alone on cached ids) run the files the anchor and our bundle run: the same labels.
    agreement = extra["agreement_with_pytorch"]
    assert agreement[platforms.FLOOR] == agreement[platforms.ANCHOR]
    assert agreement[platforms.FLOOR_TFLITE] == agreement["our runtime · TFLite int8 · rust tokenizer"]
    for floor in platforms.FLOORS:
        assert f"per-call p50, {floor}" in metrics
    speedup = next(m for name, m in metrics.items() if name.startswith("speedup of the fastest path"))
    assert speedup["target"] == platforms.SPEEDUP_TARGET and speedup["met"] in (True, False)
    size = metrics["ExecuTorch int8 .pte size vs our int8 TFLite"]
    assert size["target"] == pytest.approx(platforms.PTE_SIZE_TARGET * size["baseline"])
    assert metrics["lowest label agreement with PyTorch over every path"]["target"] == platforms.AGREEMENT_TARGET
    assert "cpu_flags" in document["environment"]  # the instruction sets, as every suite records them
    assert "| path | p50 ms |" in extra["report_markdown"]
    # Our bundle's TFLite carries signature lengths fitted to the texts (the judged ones under --split all), the
    # longest the one --seq-length every other artifact takes.
    fit = extra["tflite_buckets"]
    assert fit["buckets"][-1] == 32 and len(fit["buckets"]) <= 8 and fit["fitted_on"] == "judged (all)"
    assert fit["mean_padded_length"] <= fit["required_mean_padded_length"] == 32
    from tinybert_edge.artifacts import Artifact

    assert list(Artifact.load(Path(extra["artifacts"]["tflite-int8"])).sequence_buckets) == fit["buckets"]
    assert "Our bundle's int8 TFLite has signatures at lengths" in extra["report_markdown"]


def test_the_int8_onnx_can_be_searched_on_texts_apart_from_the_judged_ones(student, tmp_path):
    from tinybert_edge.artifacts import Artifact

    data = write_csv(tmp_path / "data.csv", 400)
    common = ["--student", str(student), "--data", str(data), "--work-dir", str(tmp_path / "work"), "--seq-length",
              "32", "--threads", "1", "--rounds", "1", "--texts-per-round", "5", "--results-dir", str(tmp_path / "r")]
    # Searched and judged on the same texts would choose on the test: refused before any work.
    assert platforms.main(common + ["--int8-agreement", "0.5"]) != 0  # --split all
    assert platforms.main(common + ["--split", "dev", "--search-split", "dev", "--int8-agreement", "0.5"]) != 0
    assert not (tmp_path / "work").exists() and not (tmp_path / "r").exists()

    assert platforms.main(common + ["--split", "dev", "--int8-agreement", "0.5"]) == 0
    extra = json.loads((tmp_path / "r" / "platforms.json").read_text(encoding="utf-8"))["extra"]
    search = extra["int8_onnx_search"]
    assert (search["min_agreement"], search["split"], search["texts"]) == (0.5, "train", 320)
    assert extra["texts"] == 40 and "int8 ONNX (every ONNX path and the anchor run it) keeps" in extra["report_markdown"]
    onnx = Artifact.load(Path(extra["artifacts"]["onnx-int8"]))
    assert onnx.metadata["agreement_gate"]["examples"] == 320  # all of them, past the 256 default
    in_graph = Artifact.load(Path(extra["artifacts"]["onnx-text-int8"]))  # built from the searched int8 ONNX
    assert in_graph.metadata["quantization"]["min_agreement"] == 0.5
    # Again with fewer TFLite lengths: the TFLite that covers them with others besides is made again, not reused.
    first = extra["tflite_buckets"]["buckets"]
    assert platforms.main(common + ["--split", "dev", "--int8-agreement", "0.5", "--tflite-buckets", "2"]) == 0
    extra = json.loads((tmp_path / "r" / "platforms.json").read_text(encoding="utf-8"))["extra"]
    fit = extra["tflite_buckets"]["buckets"]
    assert len(first) > 2 and len(fit) == 2
    assert list(Artifact.load(Path(extra["artifacts"]["tflite-int8"])).sequence_buckets) == fit
