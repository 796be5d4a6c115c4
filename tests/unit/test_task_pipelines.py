"""`tinybert-edge pipeline --task ner` and `--task qa` end to end on a tiny random BERT: the same pipeline, reading
the data with the task, reporting the task's own metric for every row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from test_question_answering import synthetic as qa_synthetic
from test_token_classification import synthetic as ner_synthetic, write_conll

pytest.importorskip("onnxruntime")


def _squad(path: Path, data) -> Path:
    articles: dict[str, list] = {}
    for qid, title, question, context, answers in zip(data.ids, data.titles, data.questions, data.contexts,
                                                      data.answers):
        articles.setdefault(title, []).append({"context": context, "qas": [{"id": qid, "question": question,
                                                                             "answers": answers}]})
    path.write_text(json.dumps({"data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_pipeline_runs_a_task_from_the_command_line(tmp_path, capsys, task):
    from tinybert_edge.app.cli import main

    encoder = tiny_bert.save_encoder(tmp_path / "encoder")
    if task == "ner":
        files = ["--data", str(write_conll(tmp_path / "train.txt", ner_synthetic(120, 0))),
                 "--dev", str(write_conll(tmp_path / "dev.txt", ner_synthetic(30, 1))),
                 "--test", str(write_conll(tmp_path / "test.txt", ner_synthetic(30, 2)))]
    else:
        files = ["--data", str(_squad(tmp_path / "squad.json", qa_synthetic(150, 0)))]  # split by article
    code = main(["pipeline", "--task", task, *files, "--teacher", str(encoder), "--student", "teacher-layers:2",
                 "--sequence-lengths", "32", "--formats", "onnx", "--threads", "1", "--bench-min-seconds", "0.05",
                 "--finetune-max-train-examples", "100", "--distill-max-train-examples", "100",
                 "--runs-dir", str(tmp_path / "runs"), "--name", task, "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress", "--quiet"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err[-3000:]
    report = json.loads((tmp_path / "runs" / task / "report.json").read_text())
    expected = {"ner": ("token-classification", "entity_f1"), "qa": ("question-answering", "f1")}[task]
    assert (report["task"], report["primary_metric"]) == expected
    assert [r["name"] for r in report["rows"]] == ["teacher · PyTorch fp32", "student · PyTorch fp32",
                                                   "student · ONNX fp32", "student · ONNX int8"]
    for row in report["rows"]:
        assert row["primary_metric"] == expected[1] and 0.0 <= row[expected[1]] <= 1.0
    assert f"| model | {expected[1]} |" in out
    if task == "qa":
        assert report["data"]["train"] + report["data"]["dev"] + report["data"]["test"] == 150
