"""distill() end to end on a tiny teacher: what it writes, what it logs, and what it refuses before training."""

from __future__ import annotations

import json

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.config import DistillConfig
from tinybert_edge.distillation.task_distillation import distill
from tinybert_edge.errors import ModelError

TINY = dict(batch_size=16, learning_rate=1e-3, max_length=32, eval_every=2, checkpoint_every=2, log_every=1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("teacher"), seed=4, layers=2, hidden=32, heads=2)


@pytest.fixture(scope="module")
def data():
    return tiny_bert.text_data(64, seed=1), tiny_bert.text_data(16, seed=2)


def _log(work_dir, stage):
    path = work_dir / f"{stage}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def distilled(teacher, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = DistillConfig(student="config:" + str(_student_json(root)), intermediate_epochs=1, prediction_epochs=1,
                           **TINY)
    result = distill(teacher, data[0], data[1], root / "student", config, work_dir=root / "work", progress=False)
    return root, result


def _student_json(root):
    path = root / "student_config.json"
    path.write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                                "intermediate_size": 32}))
    return path


def test_student_folder_is_complete(distilled):
    root, result = distilled
    folder = root / "student"
    assert result.student_dir == folder
    for name in ("config.json", "model.safetensors", "distill.json", "vocab.txt", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (1, 16, len(tiny_bert.WORDS))
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert not any(p.name.startswith(".") or p.name.endswith(".partial") for p in root.iterdir())


def test_student_folder_loads_back(distilled):
    from tinybert_edge.models import load_classifier, load_tokenizer

    root, result = distilled
    model = load_classifier(root / "student", label_names=["neg", "pos"])
    assert model.config.num_hidden_layers == 1
    assert load_tokenizer(root / "student")("good movie")["input_ids"][0] == tiny_bert.WORDS.index("[CLS]")


def test_distill_json_records_layer_map_and_stages(distilled):
    root, result = distilled
    summary = json.loads((root / "student" / "distill.json").read_text())
    # One student layer under a two-layer teacher: uniform maps it to the teacher's last layer.
    assert summary["layer_map"] == result.layer_map == [2]
    assert summary["train_examples"] == 64
    assert summary["config"]["intermediate_epochs"] == 1
    assert set(summary["stages"]) == {"intermediate", "prediction"}
    assert summary["stages"]["intermediate"]["steps"] == 4 and summary["stages"]["prediction"]["steps"] == 4
    assert set(summary["stages"]["intermediate"]["final_loss"]) >= {"embedding", "attention", "hidden", "total"}
    assert set(summary["stages"]["prediction"]["final_loss"]) >= {"prediction", "total"}
    prediction = summary["stages"]["prediction"]
    assert prediction["best_step"] in (2, 4) and 0.0 <= prediction["best_dev_accuracy"] <= 1.0
    assert summary["dev_accuracy"] == result.dev_accuracy
    assert summary["parameters"] == result.parameters > 0


def test_loss_log_has_every_term_per_stage(distilled):
    root, _ = distilled
    intermediate = [line for line in _log(root / "work", "intermediate") if "total" in line]
    assert [line["step"] for line in intermediate] == [1, 2, 3, 4]
    for line in intermediate:
        assert line["stage"] == "intermediate"
        assert {"embedding", "attention", "hidden", "total"} <= set(line)
        assert "prediction" not in line
    prediction = _log(root / "work", "prediction")
    losses = [line for line in prediction if "total" in line]
    assert [line["step"] for line in losses] == [1, 2, 3, 4]
    for line in losses:
        assert line["stage"] == "prediction" and "prediction" in line and "hidden" not in line
        assert "hard_label" not in line  # hard_label_weight defaults to 0
    assert [line["step"] for line in prediction if "dev_score" in line] == [2, 4]


def test_teacher_with_other_labels_fails_before_training(tmp_path, data):
    teacher = tiny_bert.save_classifier(tmp_path / "teacher", labels=("negative", "positive"))
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=1, prediction_epochs=1, **TINY)
    with pytest.raises(ModelError) as info:
        distill(teacher, data[0], data[1], tmp_path / "student", config, work_dir=tmp_path / "work", progress=False)
    message = str(info.value)
    assert "['negative', 'positive']" in message and "['neg', 'pos']" in message
    assert not (tmp_path / "student").exists()
    assert not list(tmp_path.glob("work/*.jsonl")) and not list(tmp_path.glob("work/*.ckpt"))


def test_teacher_with_labels_in_another_order_reindexes_the_data(tmp_path, data):
    teacher = tiny_bert.save_classifier(tmp_path / "teacher", labels=("pos", "neg"))
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=0, prediction_epochs=1, **TINY)
    result = distill(teacher, data[0], data[1], tmp_path / "student", config, progress=False)
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["id2label"] == {"0": "pos", "1": "neg"}
    assert result.stages.keys() == {"prediction"}


def test_hard_label_weight_adds_a_term(tmp_path, teacher, data):
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=0, prediction_epochs=1,
                           hard_label_weight=0.5, **TINY)
    distill(teacher, data[0], data[1], tmp_path / "student", config, work_dir=tmp_path / "work", progress=False)
    assert not (tmp_path / "work" / "intermediate.jsonl").exists()
    losses = [line for line in _log(tmp_path / "work", "prediction") if "total" in line]
    assert losses
    for line in losses:
        assert {"prediction", "hard_label", "total"} <= set(line)
        assert line["total"] == pytest.approx(line["prediction"] + 0.5 * line["hard_label"], rel=1e-5)


def test_attention_weight_zero_allows_other_head_counts(tmp_path, teacher, data):
    from tinybert_edge.errors import ConfigError

    student = tmp_path / "student.json"
    student.write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 4}))
    config = DistillConfig(student=f"config:{student}", intermediate_epochs=1, prediction_epochs=0, **TINY)
    with pytest.raises(ConfigError, match="attention_weight = 0"):
        distill(teacher, data[0], data[1], tmp_path / "refused", config, progress=False)
    config = DistillConfig(student=f"config:{student}", intermediate_epochs=1, prediction_epochs=0,
                           attention_weight=0.0, **TINY)
    distill(teacher, data[0], data[1], tmp_path / "student", config, work_dir=tmp_path / "work", progress=False)
    losses = [line for line in _log(tmp_path / "work", "intermediate") if "total" in line]
    assert losses and all(line["attention"] == 0.0 and line["hidden"] > 0 for line in losses)
