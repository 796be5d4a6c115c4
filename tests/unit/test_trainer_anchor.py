"""The distill suite's Trainer anchor runs the same steps and losses as our loop, on tiny random BERTs."""

from __future__ import annotations

import json
import math

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)

pytest.importorskip("accelerate")  # the Trainer refuses to start without it (tinybert-edge[train])


def test_trainer_finetune_takes_the_loops_steps_and_scores_the_dev_set(tmp_path):
    from tinybert_edge.benchmarks.trainer_anchor import trainer_finetune

    encoder = tiny_bert.save_encoder(tmp_path / "encoder")
    train, dev = tiny_bert.text_data(20, seed=1), tiny_bert.text_data(8, seed=2)
    result = trainer_finetune(encoder, train, dev, batch_size=8, learning_rate=1e-3, weight_decay=0.01,
                              warmup_ratio=0.1, epochs=1.0, max_length=16, precision="fp32", seed=0,
                              work=tmp_path / "work")
    assert result["steps"] == math.ceil(20 / 8) and result["examples"] == 20
    assert result["samples_per_second"] > 0 and 0.0 <= result["dev_metrics"]["accuracy"] <= 1.0
    assert math.isfinite(result["final_loss"])


def test_trainer_task_distillation_trains_both_stages_on_the_sdks_losses(tmp_path):
    from tinybert_edge.benchmarks.trainer_anchor import trainer_task_distill
    from tinybert_edge.config import DistillConfig

    teacher = tiny_bert.save_classifier(tmp_path / "teacher", layers=2)
    train, dev = tiny_bert.text_data(16, seed=1), tiny_bert.text_data(8, seed=2)
    config = DistillConfig(student="teacher-layers:2", batch_size=8, max_length=16, intermediate_epochs=1.0,
                           prediction_epochs=1.0)
    result = trainer_task_distill(teacher, train, dev, config, tmp_path / "work")
    for stage in ("intermediate", "prediction"):
        assert result[stage]["steps"] == 2 and result[stage]["examples"] == 16
        assert math.isfinite(result[stage]["final_loss"]) and result[stage]["final_loss"] > 0
    assert 0.0 <= result["dev_metrics"]["accuracy"] <= 1.0


def test_skipped_parts_keep_their_previous_metrics_with_their_provenance(tmp_path):
    from tinybert_edge.benchmarks.results import Metric
    from tinybert_edge.benchmarks.suites.distill import _carry_over

    previous = tmp_path / "distill.json"
    previous.write_text(json.dumps({
        "timestamp": "then", "command": "cmd", "git": None, "environment": {"cpu_model": "old"},
        "metrics": {"augmentation throughput, x, ours": {"value": 2.0, "unit": "sentences/s", "baseline": 1.0},
                    "Trainer anchor, fine-tuning fp32, ours": {"value": 9.0, "unit": "samples/s"}},
        "extra": {"augment": {"sentences": 3}},
    }))
    metrics = {"Trainer anchor, fine-tuning fp32, ours": Metric(10.0, "samples/s")}
    extra: dict = {}
    _carry_over(previous, {"augment"}, metrics, extra)
    assert metrics["augmentation throughput, x, ours"].ratio == 2.0
    assert metrics["Trainer anchor, fine-tuning fp32, ours"].value == 10.0  # this run's own number stays
    assert extra["augment"] == {"sentences": 3}
    assert extra["carried_over"]["augment"]["timestamp"] == "then"
    assert extra["carried_over"]["augment"]["environment"] == {"cpu_model": "old"}
