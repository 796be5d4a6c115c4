"""Issue 21's comparison in the task suites (ner, qa): other student shapes beside the suite's own, task-distilled
on the same budget from the same teacher, measured side by side, and a run that continues where it stopped."""

from __future__ import annotations

import json

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from test_token_classification import synthetic

pytest.importorskip("onnxruntime")


@pytest.fixture()
def suite(tmp_path, monkeypatch):
    from tinybert_edge.benchmarks.suites import task_table

    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                                  "intermediate_size": 32}))
    monkeypatch.setattr(task_table, "ENCODER", str(tiny_bert.save_encoder(tmp_path / "encoder")))
    monkeypatch.setattr(task_table, "STUDENT", "teacher-layers:2")
    monkeypatch.setattr(task_table, "DEFAULT_STUDENT", "layers-2")
    monkeypatch.setattr(task_table, "STUDENTS", {"layers-2": "teacher-layers:2",
                                                 "narrow-teacher": f"from-teacher:{narrow}@pca"})
    return task_table


def tiny_budget(suite):
    """One epoch of each stage on all of the synthetic data, 32 tokens, a 50 ms latency measurement."""
    return suite.TaskBudget(teacher_examples=None, teacher_epochs=1.0, distill_examples=None, intermediate_epochs=1.0,
                            prediction_epochs=1.0, test_examples=None, bench_seconds=0.05, max_length=32)


def test_compared_students_sit_beside_the_suites_own_and_a_rerun_trains_nothing(tmp_path, suite, monkeypatch):
    from tinybert_edge.distillation import task_distillation
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.tasks import get_task

    task = get_task("token-classification")
    train, dev = synthetic(60, 0), synthetic(20, 1)
    budget = tiny_budget(suite)
    run = tmp_path / "run"
    teacher, student = suite.train_student(task, train, dev, run, budget, str(tmp_path / "cache"), False)
    config = json.loads((student / "config.json").read_text())
    encoded = task.encode(load_tokenizer(student), task.align(dev, config), 32)
    compared = suite.compare_students(task, ["narrow-teacher"], teacher, student, None, train, dev, encoded,
                                      encoded.select(range(8)), run, budget, False)

    students = compared["students"]
    assert list(students) == ["layers-2", "narrow-teacher"]
    assert students["narrow-teacher"]["shape"] == "1x16, 2x8" and students["layers-2"]["shape"] == "1x32, 2x16"
    assert "from teacher (pca)" in students["narrow-teacher"]["made"]
    assert students["narrow-teacher"]["params"] < students["layers-2"]["params"]
    assert students["narrow-teacher"]["gflops"] < students["layers-2"]["gflops"]
    assert set(compared["latency"]) == {"layers-2", "narrow-teacher"} and all(compared["latency"].values())

    metrics, table = suite.render_compared(compared, 0.5, 32, "entity F1")
    speed = metrics["narrow-teacher ONNX int8 speed vs layers-2 @ seq 32"].value
    assert speed == pytest.approx(compared["latency"]["layers-2"] / compared["latency"]["narrow-teacher"])
    assert metrics["narrow-teacher fp32 share of the teacher's test entity F1"].value == pytest.approx(
        students["narrow-teacher"]["score"] / 0.5)
    assert len(table.splitlines()) == 4 and "| narrow-teacher |" in table

    def no_training(*args, **kwargs):
        raise AssertionError("a rerun must reuse the distilled students")

    monkeypatch.setattr(task_distillation, "distill", no_training)
    assert suite.compare_students(task, ["narrow-teacher"], teacher, student, None, train, dev, encoded,
                                  encoded.select(range(8)), run, budget, False) == compared


def test_an_unknown_student_is_refused_with_the_names_that_exist(tmp_path, suite):
    from tinybert_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown student.*'wide'.*available: layers-2, narrow-teacher"):
        suite.compare_students(None, ["wide"], tmp_path, tmp_path, None, None, None, None, None, tmp_path, None, False)
    assert not (tmp_path / "compared.json").exists()


def test_another_suite_student_is_trained_in_its_own_folder_and_a_run_keeps_one(tmp_path, suite):
    from tinybert_edge.errors import ConfigError
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.tasks import get_task

    task = get_task("token-classification")
    train, dev = synthetic(40, 0), synthetic(12, 1)
    budget = tiny_budget(suite)
    run = tmp_path / "run"
    teacher, student = suite.train_student(task, train, dev, run, budget, str(tmp_path / "cache"), False,
                                           "narrow-teacher")
    assert student == run / "students" / "narrow-teacher" and not (run / "student").exists()
    assert json.loads((student / "config.json").read_text())["hidden_size"] == 16
    config = json.loads((student / "config.json").read_text())
    encoded = task.encode(load_tokenizer(student), task.align(dev, config), 32)
    compared = suite.compare_students(task, ["layers-2"], teacher, student, None, train, dev, encoded,
                                      encoded.select(range(8)), run, budget, False, own="narrow-teacher")
    assert compared["own"] == "narrow-teacher" and set(compared["students"]) == {"narrow-teacher", "layers-2"}
    assert (run / "student" / "distill.json").is_file()  # the default student's folder, wherever it is compared
    metrics, table = suite.render_compared(compared, 0.5, 32, "entity F1")
    assert "layers-2 ONNX int8 speed vs narrow-teacher @ seq 32" in metrics and "speed vs narrow-teacher" in table
    with pytest.raises(ConfigError, match="holds the results of --student narrow-teacher; pass --student "
                                          "narrow-teacher to continue it, or another --run"):
        suite.train_student(task, train, dev, run, budget, str(tmp_path / "cache"), False)


def test_an_artifact_the_export_refused_is_named_under_the_table():
    from tinybert_edge.benchmarks.suites.task_table import export_error_notes

    notes = export_error_notes({"onnx-int8": "ParityError: onnxruntime artifact 'runs/x/artifacts/.onnx-int8.ab12.partial' "
                                             "disagrees with torch on 256 examples: f1_vs_reference 0.93 < 0.95"})
    assert notes == ["not in the table: ONNX int8, refused by the export chain: ParityError: onnxruntime artifact "
                     "disagrees with torch on 256 examples: f1_vs_reference 0.93 < 0.95"]
    assert export_error_notes({}) == [] and export_error_notes(None) == []


def test_recorded_training_names_a_distillation_whose_cost_was_not_recorded(tmp_path):
    from tinybert_edge.benchmarks.suites import task_table

    teacher, student = tmp_path / "teacher", tmp_path / "student"
    teacher.mkdir()
    student.mkdir()
    (teacher / "finetune.json").write_text(json.dumps({"seconds": 120.0}))
    stages = {"intermediate": {"seconds": 60.0}, "prediction": {"seconds": 30.0}}
    (student / "distill.json").write_text(json.dumps({"stages": stages}))
    recorded = task_table.recorded_training_seconds(teacher, student)
    assert recorded == {"teacher fine-tuning": 120.0, "task distillation": 90.0}
    assert task_table.recorded_minutes(recorded) == "teacher fine-tuning 2.0, task distillation 1.5"
    stages["intermediate"]["cost_covers"] = "the steps trained after resuming"
    (student / "distill.json").write_text(json.dumps({"stages": stages}))
    recorded = task_table.recorded_training_seconds(teacher, student)
    assert recorded["task distillation"] is None
    assert "task distillation not recorded" in task_table.recorded_minutes(recorded)


def test_sst2_caption_says_which_task_distillation_was_not_recorded(tmp_path):
    from tinybert_edge.benchmarks.suites import sst2

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "finetune.json").write_text(json.dumps({"seconds": 120.0}))
    for name, stage in (("a", {"seconds": 60.0}), ("b", {"seconds": 6.0, "cost_covers": "the steps after resuming"})):
        (tmp_path / "run" / "students" / name).mkdir(parents=True)
        (tmp_path / "run" / "students" / name / "distill.json").write_text(json.dumps({"stages": {"s": stage}}))
    recorded = sst2.recorded_training_seconds(tmp_path / "run", teacher)
    assert recorded == {"teacher fine-tuning": 120.0, "task distillation (a)": 60.0, "task distillation (b)": None}
    text = sst2._cost({"recorded_training_seconds": recorded, "total_seconds": 600.0})
    assert "task distillation (a) 1.0, task distillation (b) not recorded" in text and "3 min in all" in text
