"""`tinybert-edge pipeline`: teacher -> student -> int8 artifacts -> accuracy, latency and memory, in one report.

Each stage writes its output atomically into the run folder and is skipped on `resume` when its output is
already there, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from tinybert_edge.config import PipelineConfig
from tinybert_edge.errors import RunDirExistsError

log = logging.getLogger(__name__)

PARITY_EXAMPLES = 256


RUN_CONFIG = "pipeline_config.json"


def prepare_run_dir(config: PipelineConfig, overwrite: bool = False, resume: bool = False) -> tuple[Path, PipelineConfig]:
    """Create (or reopen, with `resume`) the run folder; a resumed run uses the configuration it started with."""
    from tinybert_edge.config import from_dict
    from tinybert_edge.errors import ConfigError
    from tinybert_edge.io import write_json_atomic

    name = config.name or _dt.datetime.now().strftime("pipeline-%Y%m%d-%H%M%S")
    run_dir = Path(config.runs_dir) / name
    if run_dir.exists() and overwrite:
        shutil.rmtree(run_dir)
    elif run_dir.exists() and resume:
        saved = run_dir / RUN_CONFIG
        if not saved.is_file():
            raise ConfigError(f"run folder '{run_dir}' has no {RUN_CONFIG}, so it cannot be resumed; use --overwrite")
        config = from_dict(PipelineConfig, json.loads(saved.read_text(encoding="utf-8")), "pipeline")
        log.info("resuming %s with the configuration it started with (%s)", run_dir, saved)
        return run_dir, config
    elif run_dir.exists():
        raise RunDirExistsError(
            f"run folder '{run_dir}' already exists; pass --resume to continue it, --overwrite to replace it, "
            "or --name to start another"
        )
    elif resume:
        raise ConfigError(f"--resume: there is no run folder '{run_dir}' to continue; check --name and --runs-dir")
    run_dir.mkdir(parents=True)
    config = dataclasses.replace(config, name=name)
    write_json_atomic(run_dir / RUN_CONFIG, config.to_dict())
    return run_dir, config


def pipeline(
    config: PipelineConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole chain and return the report (also written to `runs/<name>/report.{json,md}` with a plot)."""
    from tinybert_edge.data import load_splits
    from tinybert_edge.models import check_model_folder, load_model, load_tokenizer
    from tinybert_edge.tasks import get_task
    from tinybert_edge.tasks.base import read_model_config

    run_dir, config = prepare_run_dir(config or PipelineConfig(), overwrite, resume)
    log.info("run folder: %s", run_dir.resolve())
    timings: dict[str, float] = {}
    started = time.perf_counter()

    # Data: one labelled corpus split deterministically, or separate dev/test files.
    t0 = time.perf_counter()
    train, dev, test = load_splits(config.data)
    task = get_task(train.task)
    log.info("data: %s: %d train, %d dev, %d test (%s), labels %s", config.data.path, len(train), len(dev), len(test),
             task.name, getattr(train, "label_names", None))
    timings["data_s"] = time.perf_counter() - t0

    # Teacher: fine-tune a bare encoder (cached), or check a fine-tuned model's labels against the data.
    t0 = time.perf_counter()
    teacher_folder = check_model_folder(config.teacher, role="teacher")
    if task.matches(read_model_config(teacher_folder)):
        teacher_dir = teacher_folder
        load_model(teacher_dir, task, label_names=getattr(train, "label_names", None), role="teacher")
    else:
        from tinybert_edge.training.finetune import finetune

        teacher_dir = finetune(teacher_folder, train, dev, config.finetune, config.cache_dir, progress=progress)
    timings["teacher_s"] = time.perf_counter() - t0

    # Student: TinyBERT task distillation (intermediate layers, then prediction layer).
    t0 = time.perf_counter()
    student_dir = run_dir / "student"
    if resume and (student_dir / "distill.json").is_file():
        log.info("student: already distilled at %s (resume)", student_dir)
    else:
        from tinybert_edge.distillation.task_distillation import distill

        distill(teacher_dir, train, dev, student_dir, config.distill, work_dir=run_dir / "work", resume=resume,
                progress=progress)
    distill_summary = json.loads((student_dir / "distill.json").read_text(encoding="utf-8"))
    timings["distill_s"] = time.perf_counter() - t0

    tokenizer = load_tokenizer(student_dir)
    test = task.align(test, read_model_config(student_dir))
    max_length = max(config.sequence_lengths)
    encoded_test = task.encode(tokenizer, test, max_length)

    # Artifacts: ONNX and TFLite with dynamic int8, each verified against the PyTorch student before it is kept.
    t0 = time.perf_counter()
    artifacts = export_artifacts(config, student_dir, run_dir / "artifacts", encoded_test, resume)
    timings["export_s"] = time.perf_counter() - t0

    # The task's metrics of every variant on the test split, then latency and memory, each next to the teacher.
    t0 = time.perf_counter()
    targets = _targets(teacher_dir, student_dir, artifacts)
    scores = evaluate_targets(targets, encoded_test, config.threads, progress)
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    params = {"teacher": count_parameters_of(teacher_dir), "student": distill_summary["parameters"]}
    rows = measure_targets(config, targets, scores, encoded_test, params, progress)
    timings["bench_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    from tinybert_edge.app.report import write_report

    report = {
        "schema_version": 1,
        "run_dir": str(run_dir),
        "config": config.to_dict(),
        "task": task.name,
        "primary_metric": task.primary_metric,
        "data": {"source": config.data.path, "labels": getattr(train, "label_names", None), "train": len(train),
                 "dev": len(dev), "test": len(test)},
        "teacher": {"path": str(teacher_dir), "fine_tuned": json.loads((Path(teacher_dir) / "finetune.json").read_text())
                    if (Path(teacher_dir) / "finetune.json").is_file() else None},
        "student": distill_summary,
        "artifacts": [{"path": str(a.path), "format": a.format, "precision": a.precision, "metadata": a.metadata}
                      for a in artifacts],
        "rows": rows,
        "timings_s": timings,
    }
    write_report(report, run_dir)
    return report


def count_parameters_of(folder: Path) -> int:
    from tinybert_edge.models import count_parameters, load_model

    return count_parameters(load_model(folder))


def export_artifacts(config: PipelineConfig, student_dir: Path, out_dir: Path, encoded_test, resume: bool) -> list:
    """The student's artifacts in `config.formats` (the one export chain), each checked against the PyTorch
    student on the first test examples; on `resume`, artifacts already exported from this student are kept."""
    from tinybert_edge.converters import ExportConfig, export

    batches = list(encoded_test.batches(32, order=range(min(PARITY_EXAMPLES, len(encoded_test)))))
    return export(student_dir, out_dir, formats=tuple(config.formats),
                  config=ExportConfig(sequence_buckets=tuple(config.sequence_lengths)), parity_batches=batches,
                  reuse=resume, threads=config.threads)


def _targets(teacher_dir: Path, student_dir: Path, artifacts: list) -> list[dict[str, Any]]:
    from tinybert_edge.artifacts import FORMAT_LABEL
    from tinybert_edge.benchmarks.rows import TEACHER_NAME

    targets = [
        {"name": TEACHER_NAME, "role": "teacher", "backend": "torch", "precision": "fp32", "path": Path(teacher_dir)},
        {"name": "student · PyTorch fp32", "role": "student", "backend": "torch", "precision": "fp32", "path": student_dir},
    ]
    for artifact in artifacts:
        targets.append({"name": f"student · {FORMAT_LABEL[artifact.format]} {artifact.precision}", "role": "student",
                        "backend": artifact.runtime, "precision": artifact.precision, "path": artifact.path})
    return targets


def evaluate_targets(targets: list[dict[str, Any]], encoded_test, threads: int, progress: bool) -> dict[str, dict]:
    """Every target's task metrics on the test split, and how often each artifact decides as the PyTorch student."""
    from tqdm.auto import tqdm

    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.runtime import open_session

    results: dict[str, dict] = {}
    student = None
    for target in tqdm(targets, desc="evaluate", unit="model", disable=not progress):
        session = open_session(target["backend"], target["path"], threads)
        result = evaluate_session(session, encoded_test, batch_size=64)
        entry = {"metrics": result.metrics, "n": result.n}
        if target["name"] == "student · PyTorch fp32":
            student = result
        elif target["role"] == "student" and student is not None:
            entry["agreement_with_student"] = session.task.agreement(student.outputs, result.outputs)
        results[target["name"]] = entry
        log.info("evaluate: %s %s %.4f on %d test examples", target["name"], result.primary_metric, result.score,
                 result.n)
    return results


def measure_targets(config: PipelineConfig, targets, scores, encoded_test, params: dict[str, int], progress: bool):
    from tinybert_edge.benchmarks import BenchConfig, Target, bench, compare_to_teacher

    bench_config = BenchConfig(sequence_lengths=tuple(config.sequence_lengths), batch_size=1, threads=config.threads,
                               min_seconds=config.bench_min_seconds, min_iterations=config.bench_min_iterations)
    inputs = encoded_test.fixed_length(config.sequence_lengths, rows=256)
    bench_targets = [
        Target(name=t["name"], role=t["role"], backend=t["backend"], path=Path(t["path"]), precision=t["precision"],
               accuracy=scores[t["name"]]["metrics"].get("accuracy"), params=params[t["role"]])
        for t in targets
    ]
    rows = bench(bench_targets, inputs, bench_config, progress=progress)
    for row in rows:
        row.update({k: v for k, v in scores[row["name"]].items()})
    return compare_to_teacher(rows, targets[0]["name"])
