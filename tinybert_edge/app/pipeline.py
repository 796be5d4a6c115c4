"""`tinybert-edge pipeline`: teacher -> student -> int8 artifacts -> accuracy, latency and memory, in one report.

Each stage writes its output atomically into the run folder and is skipped on `resume` when its output is
already there, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tinybert_edge.config import PipelineConfig
from tinybert_edge.errors import RunDirExistsError

log = logging.getLogger(__name__)

PARITY_EXAMPLES = 256


RUN_CONFIG = "pipeline_config.json"
# Settings a resumed run may change without making its finished stages wrong: they only affect how the remaining
# measurements are taken. Any other difference is refused, naming the setting.
RESUME_SAFE_SETTINGS = ("threads", "bench_min_seconds", "bench_min_iterations", "cache_dir")


def saved_run_config(run_dir: str | Path) -> PipelineConfig:
    """The configuration a run folder was started with (what `--resume` continues)."""
    from tinybert_edge.config import from_dict
    from tinybert_edge.errors import ConfigError

    saved = Path(run_dir) / RUN_CONFIG
    if not saved.is_file():
        raise ConfigError(f"run folder '{run_dir}' has no {RUN_CONFIG}, so it cannot be resumed; use --overwrite")
    return from_dict(PipelineConfig, json.loads(saved.read_text(encoding="utf-8")), "pipeline")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def resume_differences(saved: PipelineConfig, given: PipelineConfig) -> list[tuple[str, Any, Any]]:
    """(setting, value the run started with, value given now) for every setting that differs; `name` and
    `runs_dir` locate the run and are not settings of it."""
    old, new = _flatten(saved.to_dict()), _flatten(given.to_dict())
    return [(key, old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
            if key not in ("name", "runs_dir") and old.get(key) != new.get(key)]


def plan_run_dir(config: PipelineConfig, overwrite: bool = False, resume: bool = False) -> tuple[Path, PipelineConfig]:
    """Where the run goes and with which configuration, checked without creating or deleting anything.

    A resumed run keeps the configuration it started with; a setting given now that differs is applied when it
    only affects measurement (RESUME_SAFE_SETTINGS, said in the log) and refused otherwise, naming the setting.
    """
    from tinybert_edge.errors import ConfigError

    name = config.name or _dt.datetime.now().strftime("pipeline-%Y%m%d-%H%M%S")
    config = dataclasses.replace(config, name=name)
    run_dir = Path(config.runs_dir) / name
    if run_dir.exists() and resume and not overwrite:
        saved = saved_run_config(run_dir)
        differences = resume_differences(saved, config)
        unsafe = [d for d in differences if d[0] not in RESUME_SAFE_SETTINGS]
        if unsafe:
            listed = "; ".join(f"{key}: {old!r} then, {new!r} now" for key, old, new in unsafe)
            raise ConfigError(
                f"--resume: run '{run_dir}' was started with other settings ({listed}); resume with the settings it "
                f"started with (leave those flags out: they are read from {run_dir / RUN_CONFIG}), or start it "
                "again with --overwrite, or use another --name"
            )
        for key, old, new in differences:
            log.info("resume: applying %s = %r (the run started with %r); it only affects measurement", key, new, old)
        resumed = dataclasses.replace(saved, name=name, **{key: new for key, _, new in differences})
        log.info("resuming %s with the configuration it started with (%s)", run_dir, run_dir / RUN_CONFIG)
        return run_dir, resumed
    if run_dir.exists() and not overwrite:
        raise RunDirExistsError(
            f"run folder '{run_dir}' already exists; pass --resume to continue it, --overwrite to replace it, "
            "or --name to start another"
        )
    if resume and not run_dir.exists():
        raise ConfigError(f"--resume: there is no run folder '{run_dir}' to continue; check --name and --runs-dir")
    return run_dir, config


def prepare_run_dir(config: PipelineConfig, overwrite: bool = False, resume: bool = False) -> tuple[Path, PipelineConfig]:
    """Create (or reopen, with `resume`) the run folder; a resumed run uses the configuration it started with."""
    run_dir, config = plan_run_dir(config, overwrite, resume)
    if not (resume and run_dir.exists() and not overwrite):
        _create_run_dir(run_dir, config)
    return run_dir, config


def _create_run_dir(run_dir: Path, config: PipelineConfig) -> None:
    from tinybert_edge.io import write_json_atomic

    if run_dir.exists():  # --overwrite, only once every input was checked
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / RUN_CONFIG, config.to_dict())


def _has_progress(run_dir: Path) -> bool:
    """True once a stage has left something worth resuming (a student, artifacts, a checkpoint)."""
    return any((run_dir / name).exists() for name in ("student", "artifacts")) or any(run_dir.glob("work/*.ckpt"))


def _loss_log_every(config: PipelineConfig, train_examples: int) -> int:
    """Log the distillation losses often enough for the report's loss curves to be read (about 50 points per
    stage), never less often than the configuration asks."""
    examples = min(train_examples, config.distill.max_train_examples or train_examples)
    steps = max(1, math.ceil(examples / config.distill.batch_size))
    return max(1, min(config.distill.log_every, steps // 50))


def pipeline(
    config: PipelineConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole chain and return the report (also written to `runs/<name>/report.{json,md}` with a plot).

    The data and the teacher are checked before the run folder is created (or, with `overwrite`, replaced), and a
    fresh run that fails on bad input before any stage finished removes its folder, so the corrected command then
    works as typed.
    """
    from tinybert_edge.data import load_splits
    from tinybert_edge.tasks import get_task
    from tinybert_edge.errors import TinyBertEdgeError
    from tinybert_edge.models import check_model_folder

    run_dir, config = plan_run_dir(config or PipelineConfig(), overwrite, resume)
    started = time.perf_counter()
    train, dev, test = load_splits(config.data)
    get_task(train.task).check_training_data(train, "training")
    check_model_folder(config.teacher, role="teacher")
    data_seconds = time.perf_counter() - started
    fresh = not (resume and run_dir.exists() and not overwrite)
    if fresh:
        _create_run_dir(run_dir, config)
    try:
        return _run(config, run_dir, (train, dev, test), data_seconds, started, resume, progress)
    except TinyBertEdgeError:
        if fresh and run_dir.exists() and not _has_progress(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            log.info("removed the run folder %s: the run failed on its input before any stage finished", run_dir)
        raise


def _run(config: PipelineConfig, run_dir: Path, splits: tuple, data_seconds: float, started: float, resume: bool,
         progress: bool) -> dict[str, Any]:
    from tinybert_edge.models import check_model_folder, load_model, load_tokenizer
    from tinybert_edge.tasks import get_task
    from tinybert_edge.tasks.base import read_model_config

    log.info("run folder: %s", run_dir.resolve())
    timings: dict[str, float] = {"data_s": data_seconds}
    train, dev, test = splits  # one corpus split deterministically, or separate dev/test files
    task = get_task(train.task)
    log.info("data: %s: %d train, %d dev, %d test (%s), labels %s", config.data.path, len(train), len(dev), len(test),
             task.name, getattr(train, "label_names", None))

    # Teacher: fine-tune a bare encoder (cached), or check a fine-tuned model's labels against the data.
    t0 = time.perf_counter()
    teacher_folder = check_model_folder(config.teacher, role="teacher")
    if task.matches(read_model_config(teacher_folder)):
        teacher_dir = teacher_folder
        load_model(teacher_dir, task, label_names=getattr(train, "label_names", None), role="teacher")
    elif task.teacher_as_is(teacher_folder, run_dir / "teacher") is not None:  # used as it is (embeddings)
        teacher_dir = run_dir / "teacher"
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

        distill_config = dataclasses.replace(config.distill, log_every=_loss_log_every(config, len(train)))
        distill(teacher_dir, train, dev, student_dir, distill_config, work_dir=run_dir / "work", resume=resume,
                progress=progress)
    distill_summary = json.loads((student_dir / "distill.json").read_text(encoding="utf-8"))
    timings["distill_s"] = time.perf_counter() - t0

    tokenizer = load_tokenizer(student_dir)
    test = task.align(test, read_model_config(student_dir))
    max_length = max(config.sequence_lengths)
    encoded_test = task.encode(tokenizer, test, max_length)

    # Artifacts: ONNX and TFLite with dynamic int8, each verified against the PyTorch student before it is kept.
    t0 = time.perf_counter()
    fit = None
    if config.fit_buckets is not None:
        from tinybert_edge.converters.buckets import fit_to_data

        fit = fit_to_data(student_dir, task.align(train, read_model_config(student_dir)), max_length,
                          config.fit_buckets, fixed=config.sequence_lengths)
        log.info("export: TFLite sequence buckets %s fitted to the %d train texts: mean padded length %.1f tokens "
                 "(mean length %.1f; %.1f in %s alone)", list(fit.buckets), fit.texts, fit.mean_padded_length,
                 fit.mean_length, fit.required_mean_padded_length, list(fit.required))
    artifacts = export_artifacts(config, student_dir, run_dir / "artifacts", encoded_test, resume,
                                 buckets=fit.buckets if fit else None)
    timings["export_s"] = time.perf_counter() - t0

    # The task's metrics of every variant on the test split, then latency and memory, each next to the teacher.
    t0 = time.perf_counter()
    targets = _targets(teacher_dir, student_dir, artifacts)
    scores = evaluate_targets(targets, encoded_test, config.threads, progress)
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    params = {"teacher": count_parameters_of(teacher_dir), "student": distill_summary["parameters"]}
    with contextlib.redirect_stdout(sys.stderr):  # the measurement's progress bar prints to stdout, which is the caller's
        rows = measure_targets(config, targets, scores, encoded_test, params, progress)
    timings["bench_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    from tinybert_edge.app.report import write_report

    from tinybert_edge.benchmarks.environment import environment

    report = {
        "schema_version": 1,
        "run_dir": str(run_dir),
        "config": config.to_dict(),
        "task": task.name,
        "primary_metric": task.primary_metric,
        "data": {"source": config.data.path, "labels": getattr(train, "label_names", None), "train": len(train), "dev": len(dev),
                 "test": len(test), "dev_file": config.data.dev_path,
                 # With --dev and no --test, the "test" rows are the dev file's: the report must say so.
                 "test_file": config.data.test_path or config.data.dev_path,
                 "test_is_dev": bool(config.data.dev_path and not config.data.test_path),
                 **({"iob_repairs": train.iob_repairs + dev.iob_repairs + test.iob_repairs}
                    if hasattr(train, "iob_repairs") else {})},
        "teacher": {"path": str(teacher_dir), "source": config.teacher,
                    "fine_tuned": json.loads((Path(teacher_dir) / "finetune.json").read_text())
                    if (Path(teacher_dir) / "finetune.json").is_file() else None},
        "environment": environment(),
        "student": distill_summary,
        "artifacts": [{"path": str(a.path), "format": a.format, "precision": a.precision, "metadata": a.metadata}
                      for a in artifacts],
        "rows": rows,
        "timings_s": timings,
        **({"tflite_buckets": {**fit.to_dict(), "fitted_on": "train"}} if fit else {}),
    }
    from tinybert_edge.app.model_card import write_model_card

    report["model_card"] = str(write_model_card(report, student_dir))
    write_report(report, run_dir)
    return report


def count_parameters_of(folder: Path) -> int:
    from tinybert_edge.models import count_parameters, load_model

    return count_parameters(load_model(folder))


def export_artifacts(config: PipelineConfig, student_dir: Path, out_dir: Path, encoded_test, resume: bool,
                     buckets: tuple[int, ...] | None = None) -> list:
    """The student's artifacts in `config.formats` (the one export chain), each checked against the PyTorch
    student on the first test examples; on `resume`, artifacts already exported from this student are kept. The
    TFLite signatures are at `buckets` (the fitted ones), else at `config.sequence_lengths`."""
    from tinybert_edge.converters import ExportConfig, export

    first = encoded_test.select(range(min(PARITY_EXAMPLES, len(encoded_test))))
    return export(student_dir, out_dir, formats=tuple(config.formats),
                  config=ExportConfig(sequence_buckets=tuple(buckets or config.sequence_lengths)), parity_encoded=first,
                  parity_description=f"the first {len(first)} test examples", reuse=resume, threads=config.threads)


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
        entry = {"metrics": result.metrics, "n": result.n, "primary_metric": result.primary_metric,
                 **({"details": result.extra} if result.extra else {})}
        if target["name"] == "student · PyTorch fp32":
            student = result
        elif target["role"] == "student" and student is not None:
            entry["agreement_with_student"] = session.task.agreement(student.outputs, result.outputs,
                                                                     encoded_test)
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
               accuracy=scores[t["name"]]["metrics"].get("accuracy"), params=params[t["role"]],
               metrics=scores[t["name"]]["metrics"], primary_metric=scores[t["name"]]["primary_metric"])
        for t in targets
    ]
    rows = bench(bench_targets, inputs, bench_config, progress=progress)
    for row in rows:
        row.update({k: v for k, v in scores[row["name"]].items() if k != "primary_metric"})
    return compare_to_teacher(rows, targets[0]["name"])
