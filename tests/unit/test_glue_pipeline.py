"""`tinybert-edge pipeline --task stsb` end to end on a tiny model (fine-tuning, distillation, ONNX and TFLite int8
with parity, evaluation, benchmark, model card, bundle, torch-free runtime), and the classification report's macro
metrics and confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.app.cli import EXIT_USER_ERROR, main

RELIABILITY_REPORT = Path(__file__).resolve().parents[1] / "reliability" / "data" / "report.json"


def _sts_files(tmp_path: Path, n: int = 72) -> tuple[Path, Path]:
    texts, _ = tiny_bert.sentences(n)
    seconds, _ = tiny_bert.sentences(n, seed=3)
    lines = [f"{i}\t{a}\t{b}\t{sum(w in tiny_bert.POSITIVE for w in (a + ' ' + b).split()) + 0.25 * (i % 4):.3f}"
             for i, (a, b) in enumerate(zip(texts, seconds))]
    header = "index\tsentence1\tsentence2\tscore\n"  # STS-B's own column names (a subset of its ten)
    train = tmp_path / "train.tsv"
    dev = tmp_path / "dev.tsv"
    train.write_text(header + "\n".join(lines[:54]) + "\n", encoding="utf-8")
    dev.write_text(header + "\n".join(lines[54:]) + "\n", encoding="utf-8")
    return train, dev


def test_pipeline_task_stsb_end_to_end(tmp_path, capsys):
    from test_readme import tiny_encoder

    encoder = tiny_encoder(tmp_path / "encoder")
    train, dev = _sts_files(tmp_path)
    # A learning rate that moves a tiny head onto the scores' scale in a few steps (the real one needs no config).
    config = tmp_path / "tiny.toml"
    config.write_text("[finetune]\nepochs = 4\nlearning_rate = 1e-3\nbatch_size = 16\n"
                      "[distill]\nlearning_rate = 1e-3\nbatch_size = 16\n", encoding="utf-8")
    common = ["pipeline", "--config", str(config), "--data", str(train), "--dev", str(dev), "--teacher", str(encoder),
              "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--seq-lengths", "32",
              "--threads", "1", "--bench-min-seconds", "0.01", "--intermediate-epochs", "1",
              "--prediction-epochs", "1", "--no-progress", "--quiet"]

    # Scores without --task: one error line that names the fix, and no run folder left behind.
    assert main([*common, "--name", "wrong"]) == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "--task regression" in error and "train.tsv" in error and "'score'" in error
    assert not (tmp_path / "runs" / "wrong").exists()

    assert main([*common, "--name", "sts", "--task", "stsb"]) == 0
    run = tmp_path / "runs" / "sts"
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["task"] == "regression" and report["primary_metric"] == "spearman"
    assert report["config"]["distill"]["task"] == "stsb" and report["config"]["data"]["task"] == "regression"
    assert report["student"]["selection_metric"] == "spearman"
    names = [row["name"] for row in report["rows"]]
    assert names == ["teacher · PyTorch fp32", "student · PyTorch fp32", "student · ONNX fp32", "student · ONNX int8",
                     "student · TFLite int8"]
    for row in report["rows"]:
        assert row["primary_metric"] == "spearman" and set(row["metrics"]) == {"pearson", "spearman", "mse"}
        assert row["latency"]["32"]["stats"]["p50_ms"] > 0
    artifacts = {(a["format"], a["precision"]): a["metadata"] for a in report["artifacts"]}
    assert artifacts["onnx", "int8"]["task"] == "regression" and artifacts["onnx", "int8"]["parity"]["passed"]
    assert artifacts["tflite", "int8"]["parity"]["passed"]
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert "| model | spearman |" in markdown and "scores (regression)" in markdown
    assert "checkpoint selected by dev spearman" in markdown

    # The model card: the Hub's model-index with a metric entry per student variant.
    card = (run / "student" / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---\n")[1])
    (result,) = front["model-index"][0]["results"]
    assert result["dataset"] == {"type": "glue", "name": "GLUE STS-B", "config": "stsb", "split": "validation"}
    entries = {entry["name"]: entry["value"] for entry in result["metrics"]}
    for variant in ("fp32 PyTorch", "fp32 ONNX", "int8 ONNX", "int8 TFLite"):
        assert f"Spearman correlation ({variant})" in entries and f"Pearson correlation ({variant})" in entries
    student_row = report["rows"][1]
    assert entries["Spearman correlation (fp32 PyTorch)"] == pytest.approx(student_row["metrics"]["spearman"], abs=1e-4)
    assert "teacher" in card and "budget:" in card

    # evaluate reads the data as the model's task (scores, not classes) and reports its primary metric.
    assert main(["evaluate", str(run / "artifacts" / "onnx-int8"), "--data", str(dev)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("spearman ") and "on 18 examples (onnxruntime)" in line

    # The bundle and its torch-free runtime: a score per text pair.
    assert main(["package", str(run / "artifacts"), str(tmp_path / "bundle")]) == 0
    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.tasks.regression import Score

    bundle = load_bundle(tmp_path / "bundle", model="onnxruntime")
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "regression" and manifest["labels"] == []
    single = bundle.predict("good day", pairs="a nice film")
    scores = bundle.predict(["good day", "bad day"], pairs=["a nice film", "an awful film"])
    assert isinstance(single, Score) and len(scores) == 2 and all(isinstance(s, Score) for s in scores)
    assert single.score == pytest.approx(scores[0].score, abs=1e-4)
    # The same pair through the artifact the bundle came from gives the same score.
    from tinybert_edge.evaluation import evaluate
    from tinybert_edge.tasks.regression import TextRegressionData

    pair = TextRegressionData(texts=["good day"], labels=[1.0], text_pairs=["a nice film"], source="one")
    scored = evaluate(run / "artifacts" / "onnx-int8", pair, max_length=32)
    assert float(scored.outputs[0, 0]) == pytest.approx(single.score, abs=1e-3)


def test_the_report_shows_every_classification_metric_and_a_confusion_matrix(tmp_path):
    from tinybert_edge.app.report import write_report

    report = json.loads(RELIABILITY_REPORT.read_text(encoding="utf-8"))
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    report["run_dir"] = str(run)
    for index, row in enumerate(report["rows"]):
        row["metrics"] = {"accuracy": row["accuracy"], "mcc": 0.5 - index / 100, "macro_f1": 0.6,
                          "macro_precision": 0.61, "macro_recall": 0.59}
        row["details"] = {"confusion_matrix": [[50, 3, 2], [4, 40, 6], [1, 5, 60 + index]]}
    write_report(report, run)
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert "| model | accuracy | mcc | macro_f1 | macro_precision | macro_recall | agreement with the student |" in markdown
    assert "Confusion matrix of teacher · PyTorch fp32 (rows: true label, columns: predicted):" in markdown
    assert "| negative | 50 | 3 | 2 |" in markdown and "| positive | 1 | 5 | 60 |" in markdown
    png = run / "confusion_matrix.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![confusion matrices](confusion_matrix.png)" in markdown
