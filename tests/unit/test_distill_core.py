"""The distillation core beyond one plain run: MiniLM relations, task presets, cached teacher logits, seeding,
general distillation on a streamed corpus, and data-parallel training over two gloo processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.config import DistillConfig, GeneralDistillConfig, PipelineConfig, from_dict
from tinybert_edge.distillation.task_distillation import distill
from tinybert_edge.errors import ConfigError, DataError, DistillationError

TINY = dict(batch_size=16, learning_rate=1e-3, max_length=32, eval_every=2, checkpoint_every=2, log_every=1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("teacher"), seed=4, layers=2, hidden=32, heads=2)


@pytest.fixture(scope="module")
def data():
    return tiny_bert.text_data(48, seed=1), tiny_bert.text_data(16, seed=2)


def _student_json(root: Path, heads: int, hidden: int = 16) -> str:
    path = root / f"student_{heads}_{hidden}.json"
    path.write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": hidden, "num_attention_heads": heads,
                                "intermediate_size": 32}))
    return "config:" + str(path)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _same_weights(a: Path, b: Path, atol: float = 0.0) -> float:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


# ------------------------------------------------------------------ relations (unequal head counts)


def test_unequal_head_counts_need_relations(teacher, data, tmp_path):
    config = DistillConfig(student=_student_json(tmp_path, heads=4), **TINY)
    with pytest.raises(ConfigError, match="relation"):
        distill(teacher, data[0], data[1], tmp_path / "s", config, progress=False)


def test_relation_loss_trains_a_student_with_other_heads_and_width(teacher, data, tmp_path):
    config = DistillConfig(student=_student_json(tmp_path, heads=4, hidden=24), attention_loss="relation",
                           relation_heads=4, intermediate_epochs=1, prediction_epochs=0.5, **TINY)
    result = distill(teacher, data[0], data[1], tmp_path / "s", config, work_dir=tmp_path / "w", progress=False)
    log = [json.loads(line) for line in (tmp_path / "w" / "intermediate.jsonl").read_text().splitlines()]
    assert all("relation" in r and "attention" not in r for r in log)
    assert log[-1]["relation"] < log[0]["relation"]  # the student's relations move toward the teacher's
    assert result.dev_accuracy is not None


def test_relation_heads_must_divide_both_widths(teacher, data, tmp_path):
    config = DistillConfig(student=_student_json(tmp_path, heads=4, hidden=24), attention_loss="relation",
                           relation_heads=5, **TINY)
    with pytest.raises(ConfigError, match="relation_heads = 5"):
        distill(teacher, data[0], data[1], tmp_path / "s", config, progress=False)


# ------------------------------------------------------------------ per-task presets


def test_task_preset_applies_and_explicit_keys_win():
    config = DistillConfig.for_task("SST-2", intermediate_epochs=1.0)
    assert (config.max_length, config.prediction_epochs, config.intermediate_epochs) == (64, 3.0, 1.0)
    # Through a TOML table nested in the pipeline config: the preset beats the pipeline's own defaults.
    nested = from_dict(PipelineConfig, {"distill": {"task": "cola", "batch_size": 8}}, "pipeline")
    assert (nested.distill.max_length, nested.distill.intermediate_epochs, nested.distill.batch_size) == (64, 50.0, 8)
    assert nested.distill.max_train_examples == PipelineConfig().distill.max_train_examples
    with pytest.raises(ConfigError, match="unknown task"):
        DistillConfig.for_task("imdb")


def test_task_preset_reaches_training(teacher, data, tmp_path, caplog):
    from tinybert_edge.config import distill_config_from

    toml = tmp_path / "d.toml"
    toml.write_text('[distill]\ntask = "sst2"\nintermediate_epochs = 0.5\nprediction_epochs = 0.5\nbatch_size = 16\n')
    config = distill_config_from(toml, {"student": _student_json(tmp_path, heads=2)})
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        distill(teacher, data[0], data[1], tmp_path / "s", config, progress=False)
    summary = json.loads((tmp_path / "s" / "distill.json").read_text())
    assert summary["config"]["max_length"] == 64 and summary["config"]["prediction_learning_rate"] == 3e-5
    assert "task preset sst2 in effect for" in caplog.text and "max_length=64" in caplog.text


# ------------------------------------------------------------------ cached teacher logits, seeding


def test_cached_teacher_logits_and_seeded_student_give_identical_students(teacher, data, tmp_path):
    # A config student is randomly initialised: only seeding before it is built makes two runs agree.
    common = dict(TINY, intermediate_epochs=0.5, prediction_epochs=1, student=_student_json(tmp_path, heads=2))
    for name, cached in (("a", True), ("b", False), ("c", True)):
        distill(teacher, data[0], data[1], tmp_path / name, DistillConfig(cache_teacher_logits=cached, **common),
                progress=False)
    assert _same_weights(tmp_path / "a", tmp_path / "c") == 0.0  # same seed, same student
    assert _same_weights(tmp_path / "a", tmp_path / "b") < 1e-5  # cached logits = the teacher run every step


@pytest.mark.parametrize("settings_file", ["current", "without stage digests"])
def test_resume_with_other_stage_2_settings_keeps_stage_1_and_redoes_stage_2(teacher, data, tmp_path, caplog,
                                                                             settings_file):
    # Stage 1 is read from its checkpoint, not trained again; stage 2 under the new settings gives the student a
    # fresh run with those settings gives; stage 2's old checkpoint is kept aside, not loaded.
    first = DistillConfig(student="teacher-layers:1", intermediate_epochs=1, prediction_epochs=1, **TINY)
    work = tmp_path / "work"
    distill(teacher, data[0], data[1], tmp_path / "s", first, work_dir=work, progress=False)
    assert {path.name for path in work.glob("*.ckpt")} == {"intermediate.ckpt", "prediction.ckpt"}  # finished ones
    if settings_file == "without stage digests":  # as a run before stage digests wrote it
        saved = json.loads((work / "distill_settings.json").read_text(encoding="utf-8"))
        del saved["digests"]
        (work / "distill_settings.json").write_text(json.dumps(saved), encoding="utf-8")
    stage_1_log = (work / "intermediate.jsonl").read_text(encoding="utf-8")
    second = DistillConfig(student="teacher-layers:1", intermediate_epochs=1, prediction_epochs=2,
                           prediction_learning_rate=5e-4, **TINY)
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        resumed = distill(teacher, data[0], data[1], tmp_path / "s", second, work_dir=work, resume=True,
                          progress=False)
    assert "prediction_epochs: 1 then, 2 now" in caplog.text and "stage 1 continues" in caplog.text
    assert "intermediate: resumed from" in caplog.text and "at step 3 of 3" in caplog.text
    assert (work / "intermediate.jsonl").read_text(encoding="utf-8") == stage_1_log  # not trained again
    assert len(list(work.glob("prediction.ckpt.*.superseded"))) == 1
    assert resumed.stages["intermediate"]["steps"] == 3 and resumed.stages["intermediate"]["final_loss"]
    fresh = distill(teacher, data[0], data[1], tmp_path / "fresh", second, work_dir=tmp_path / "fresh-work",
                    progress=False)
    assert _same_weights(tmp_path / "s", tmp_path / "fresh") < 1e-5
    assert resumed.dev_metrics == pytest.approx(fresh.dev_metrics, abs=1e-6)

    # The same settings again: both stages are finished, so nothing trains; a stage 1 change is still refused.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        distill(teacher, data[0], data[1], tmp_path / "s", second, work_dir=work, resume=True, progress=False)
    assert "prediction: resumed from" in caplog.text and "at step 6 of 6" in caplog.text
    with pytest.raises(DistillationError, match="intermediate_epochs: 1 then, 2 now"):
        distill(teacher, data[0], data[1], tmp_path / "s", DistillConfig(
            student="teacher-layers:1", intermediate_epochs=2, prediction_epochs=2, prediction_learning_rate=5e-4,
            **TINY), work_dir=work, resume=True, progress=False)


def test_caching_the_teacher_logits_logs_its_progress_off_a_terminal(teacher, data, tmp_path, caplog, monkeypatch):
    from tinybert_edge.training import loop

    monkeypatch.setattr(loop, "PROGRESS_LOG_SECONDS", 0.0)  # every batch of the pass logs its line
    common = dict(TINY, intermediate_epochs=0, prediction_epochs=0.5, student=_student_json(tmp_path, heads=2))
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        distill(teacher, data[0], data[1], tmp_path / "s", DistillConfig(cache_teacher_logits=True, **common),
                progress=False)
    assert "the teacher's outputs on 48 examples, computed once" in caplog.text
    # batches of 4 x batch_size = 64 rows: one pass covers the 48 examples and says so with its ETA
    assert "teacher outputs: 48/48, ETA 0m00s" in caplog.text


# ------------------------------------------------------------------ general distillation


def _corpus(path: Path, n: int) -> Path:
    texts, _ = tiny_bert.sentences(n, seed=7)
    path.write_text("\n".join(texts[: n // 2]) + "\n\n" + "\n".join(texts[n // 2 :]) + "\n", encoding="utf-8")
    return path


def test_general_distillation_streams_a_corpus_and_feeds_task_distillation(teacher, data, tmp_path):
    from tinybert_edge.distillation.general import TextStream, general_distill
    from tinybert_edge.models import load_tokenizer

    corpus = _corpus(tmp_path / "corpus.txt", 40)
    stream = TextStream(corpus, load_tokenizer(teacher), max_length=16, shuffle_buffer=8)
    assert len(stream) == 40  # the blank line is skipped
    first = [batch for _, (_, batch) in zip(range(3), stream.global_batches(16, seed=0))]
    again = [batch for _, (_, batch) in zip(range(3), stream.global_batches(16, seed=0))]
    assert all((a["input_ids"] == b["input_ids"]).all() for a, b in zip(first, again))
    assert [len(b["labels"]) for b in first] == [16, 16, 8]

    config = GeneralDistillConfig(student=_student_json(tmp_path, heads=2), max_steps=4, batch_size=8,
                                  learning_rate=1e-3, max_length=16, log_every=1, checkpoint_every=2)
    result = general_distill(teacher, corpus, tmp_path / "general", config, work_dir=tmp_path / "gw", progress=False)
    assert result.steps == 4 and set(result.final_loss) >= {"embedding", "attention", "hidden", "total"}
    saved = json.loads((tmp_path / "general" / "config.json").read_text())
    assert saved["architectures"] == ["BertModel"]
    # The general-distilled encoder is a task distillation's starting point.
    task = distill(teacher, data[0], data[1], tmp_path / "task",
                   DistillConfig(student=str(tmp_path / "general"), intermediate_epochs=0.5, prediction_epochs=0.5,
                                 **TINY), progress=False)
    assert task.dev_accuracy is not None


def test_general_distillation_refuses_an_empty_corpus(teacher, tmp_path):
    from tinybert_edge.distillation.general import general_distill

    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="no non-empty lines"):
        general_distill(teacher, tmp_path / "empty.txt", tmp_path / "g", GeneralDistillConfig(max_steps=1),
                        progress=False)


# ------------------------------------------------------------------ data parallel (torchrun, gloo)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(teacher, tmp_path):
    train = tiny_bert.write_csv(tmp_path / "train.csv", 48, seed=1)
    dev = tiny_bert.write_csv(tmp_path / "dev.csv", 16, seed=2)
    script = str(Path(__file__).with_name("ddp_distill.py"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}

    def run(out: str, processes: int, attention: str) -> None:
        launch = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                      str(processes)] if processes > 1 else [])
        done = subprocess.run(launch + [script, str(teacher), str(train), str(dev), str(tmp_path / out), "16", attention],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((tmp_path / out / "distill.json").read_text())["processes"] == processes

    # Embedding, hidden and prediction terms are means over equally padded rows, so two processes training on half
    # of each global batch and averaging gradients reach the single process's student (up to summation order).
    run("one", 1, "0")
    run("two", 2, "0")
    assert _same_weights(tmp_path / "one", tmp_path / "two") < 1e-5
    # The attention term divides by the real token pairs each process sees, so with it the match is close, not exact.
    run("one-attn", 1, "1")
    run("two-attn", 2, "1")
    assert _same_weights(tmp_path / "one-attn", tmp_path / "two-attn") < 1e-2


# ------------------------------------------------------------------ loss log plot


def test_loss_curves_plot_every_logged_term(tmp_path):
    from tinybert_edge.app.report import plot_loss_curves, read_loss_log

    log_path = tmp_path / "intermediate.jsonl"
    records = [{"stage": "intermediate", "step": s, "epoch": 0, "lr": 1e-4, "embedding": 1.0 / s, "hidden": 2.0 / s,
                "attention": 3.0 / s, "total": 6.0 / s} for s in range(1, 6)]
    log_path.write_text("\n".join(json.dumps(r) for r in records) + '\n{"stage": "intermediate", "step": 5, '
                        '"dev_score": 0.5}\n')
    assert len(read_loss_log(log_path)) == 5
    png = plot_loss_curves([log_path], tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
