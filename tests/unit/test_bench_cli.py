"""`tinybert-edge bench` on tiny in-process BERTs: the four report files, error rows, sweeps, atomic writing.

No test asserts a timing threshold: these run on shared machines where latency is whatever it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.benchmarks.rows import TEACHER_NAME
from tinybert_edge.benchmarks.runner import bench, inputs_from_data
from tinybert_edge.benchmarks.config import BenchConfig, parse_target
from tinybert_edge.benchmarks.report import REPORT_FILES, bench_report, write_bench_report
from tinybert_edge.app.cli import main
from tinybert_edge.errors import ConfigError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST = ["--min-seconds", "0.1", "--min-iterations", "3", "--warmup", "1", "--no-progress"]


def _onnx_student(folder: Path) -> Path:
    """A tiny BERT exported to ONNX beside its config.json and tokenizer, the layout of an exported artifact.
    (An ONNX worker starts in about a second; a PyTorch one imports transformers, ten times longer here.)"""
    import torch

    model = tiny_bert.classifier(seed=1, layers=1, hidden=16, heads=2)
    model.config.save_pretrained(folder)
    tiny_bert.tokenizer(folder).save_pretrained(folder)

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((1, 8), dtype=torch.int64) for _ in names)
    torch.onnx.export(Logits(model), example, str(folder / "model.onnx"), input_names=names, output_names=["logits"],
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names}, dynamo=False, opset_version=17)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("bench-models")
    teacher = tiny_bert.save_classifier(root / "teacher", seed=0, layers=2, hidden=32, heads=2)
    student = _onnx_student(root / "student-onnx")
    data = tiny_bert.write_csv(root / "data.csv", 40)
    return teacher, student, data


def test_cli_bench_writes_the_four_files_and_a_missing_target_is_an_error_row(models, tmp_path, capsys):
    teacher, student, data = models
    out = tmp_path / "out"
    code = main(["bench", "--teacher", str(teacher), "--target", f"student=onnxruntime:{student}",
                 "--target", f"gone=onnxruntime:{tmp_path / 'missing.onnx'}", "--data", str(data),
                 "--seq-lengths", "16", "--threads", "1", "--out", str(out), *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)  # and no staging folder left behind
    for png in ("accuracy_vs_latency.png", "latency_vs_seq_len.png"):
        assert (out / png).read_bytes()[:8] == PNG_SIGNATURE
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["kind"] == "bench"
    assert [r["name"] for r in report["rows"]] == [TEACHER_NAME, "student", "gone"]  # teacher first
    teacher_row, student_row, gone = report["rows"]
    assert gone["error"] == f"'{tmp_path / 'missing.onnx'}' does not exist" and gone["latency"] == {}
    for row in (teacher_row, student_row):
        assert row["error"] is None and 0.0 <= row["accuracy"] <= 1.0 and row["accuracy_n"] == 40
        m = row["latency"]["16"]
        assert (m["seq_len"], m["batch_size"], m["threads"]) == (16, 1, 1)
        assert len(m["samples_ms"]) >= 3 and m["stats"]["n"] == len(m["samples_ms"])
        assert m["roofline"]["ops"] > 0 and m["roofline"]["achieved_gops"] > 0
    assert student_row["speedup"]["16"] is not None and student_row["accuracy_retained"] is not None
    env = report["environment"]
    assert "avx512_vnni" in env["cpu_flags"] and "asimddp" in env["cpu_flags"] and "OMP_NUM_THREADS" in env["thread_env"]
    assert "git" in env and report["thread_settings"]["thread_grid"] == [1]
    assert report["gemm_peaks"]["1"]["fp32"]["peak_gops"] > 0
    markdown = (out / "report.md").read_text()
    assert "% of roofline" in markdown and "does not exist" in markdown and "GEMM peak, 1 threads" in markdown
    assert "| student |" in printed and "does not exist" in printed


def test_bench_sweeps_batch_and_threads_each_point_recorded(models):
    _, student, data = models
    config = BenchConfig(sequence_lengths=(8,), batch_size=1, batch_sizes=(1, 2), threads=1, thread_counts=(1, 2),
                         warmup=1, min_iterations=3, min_seconds=0.05, roofline=False)
    assert config.grid() == [(8, 1, 1), (8, 1, 2), (8, 2, 1), (8, 2, 2)]
    (row,) = bench([f"s=onnxruntime:{student}"], config=config, data=str(data), progress=False)
    assert row["precision"] == "fp32"  # read from the graph's operator types
    points = {(m["seq_len"], m["batch_size"], m["threads"]): m for m in row["sweep"]}
    assert sorted(points) == config.grid()
    for (_, batch, threads), m in points.items():
        assert m["error"] is None and m["threads"] == threads
        assert m["stats"]["batch_size"] == batch
    assert row["latency"]["8"] == points[(8, 1, 1)]  # the headline point, as pipeline and report read it


def test_inputs_are_real_tokenized_rows(models):
    from tinybert_edge.data import load_data
    from tinybert_edge.models import load_tokenizer

    teacher, _, data = models
    tokenizer = load_tokenizer(teacher)
    inputs = inputs_from_data(tokenizer, load_data(str(data)), (4, 16))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for n, pool in inputs.items():
        ids, mask = pool["input_ids"], pool["attention_mask"]
        assert ids.shape == (40, n) and (ids[:, 0] == cls).all()
        last = mask.sum(1) - 1
        assert (ids[np.arange(40), last] == sep).all()  # truncated rows keep their [SEP]
    assert (inputs[4]["attention_mask"] == 1).all()  # every sentence is longer than 4 tokens


def test_an_interrupted_report_leaves_the_previous_one(tmp_path, monkeypatch):
    rows = [{"name": "x", "role": "student", "latency": {}, "sweep": [], "error": "boom", "accuracy": None}]
    config = BenchConfig(sequence_lengths=(8,))
    first = write_bench_report(bench_report(rows, config), tmp_path)
    before = first.read_text()

    def interrupted(report):
        raise KeyboardInterrupt

    monkeypatch.setattr("tinybert_edge.benchmarks.report.render_bench_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bench_report(bench_report(rows, config), tmp_path)
    assert first.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_FILES)


def test_parse_target_and_precision_from_the_graph(tmp_path):
    target = parse_target(f"student int8=torch-int8:{tmp_path}")
    assert (target.name, target.backend, target.precision, target.role) == ("student int8", "torch-int8", "int8", "student")
    with pytest.raises(ConfigError, match="NAME=BACKEND:PATH"):
        parse_target("just-a-path")
    with pytest.raises(ConfigError, match="backend 'tensorrt' is not allowed"):
        parse_target("x=tensorrt:/m")


def _one_error_line(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_cli_bench_bad_input_exits_2(models, tmp_path, capsys):
    teacher, student, data = models
    base = ["bench", "--teacher", str(teacher), "--data", str(data), "--out", str(tmp_path / "o")]
    assert "tensorrt" in _one_error_line(capsys, [*base, "--target", f"s=tensorrt:{student}"])
    assert "--teacher" in _one_error_line(capsys, ["bench", "--target", f"s=torch:{student}", "--data", str(data),
                                                   "--out", str(tmp_path / "o")])
    assert "sequence_lengths" in _one_error_line(capsys, [*base, "--target", f"s=torch:{student}", "--seq-lengths", "0"])
    assert "does not exist" in _one_error_line(capsys, [*base[:3], "--data", str(tmp_path / "no.csv"),
                                                        "--out", str(tmp_path / "o"), "--target", f"s=torch:{student}"])
    assert not (tmp_path / "o").exists()
