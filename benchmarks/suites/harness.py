"""The `harness` suite: every variant of the teacher and of its student through the whole harness, in one run.

    python -m tinybert_edge.benchmarks.suites.harness [--run runs/<name>] [--min-seconds S] [--no-arm]

From one pipeline run folder (its teacher, `student/` and `artifacts/`), in one run:
- the teacher and the student, each as PyTorch fp32, PyTorch dynamic int8, ONNX fp32, ONNX int8 and TFLite int8
  (the teacher's ONNX and TFLite are exported here, parity-checked, and kept in the work folder for the next run);
- each measured by `bench` over batch size (1, 8) x sequence length (32, 64, 128) x threads (1, 2), one subprocess
  per point, on real tokenized rows of the run's test split, with accuracy on a fixed sample of that split;
- cold start (load + first inference) and peak RSS with its increase over an idle interpreter, reported apart;
  on-disk size; the roofline column against this machine's GEMM peaks measured in the same run;
- every row next to the teacher (speedup, size, memory, accuracy retained), and a speedup at every grid point;
- where the time goes: ONNX Runtime operator profiles of the student's int8 ONNX at batch 1 and 8, seq 64 and 128
  (share in GEMMs, attention, LayerNorm/GELU, quantize, other and runtime overhead), and a line for its TFLite
  saying why LiteRT's Python API cannot profile operators (`benchmarks/op_profile.py`);
- `cuda`: fp32 PyTorch rows on torch.cuda and ONNX rows through ONNX Runtime's CUDA execution provider, each when
  present (with the device memory the process holds), otherwise one line that says
  why it was skipped (no numbers are made up for it);
- `arm64 (QEMU-emulated)`: the student's int8 TFLite and ONNX run by `benchmarks/arm_runner.py` inside the arm64
  root filesystem and compared with the same runner on x86 (max |logit diff|, argmax agreement), in a section of
  their own: emulated timings are never put beside native ones.
A target that cannot be built or measured (an export that fails, an artifact that does not load, a missing
runtime, a missing root filesystem) is a row that says why; the rest of the report completes.

Writes benchmarks/results/harness.json (headline metrics, each against the teacher measured in this run),
benchmarks/results/harness/ (report.md, report.json without raw samples, two PNG plots) and, with every raw
timed value, <work-dir>/report.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import DEFAULT_RESULTS_DIR, Metric
from tinybert_edge.benchmarks.rows import TEACHER_NAME, Row, as_row, measurement_ms, succeeded, sweep_point
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main

log = logging.getLogger(__name__)

SEQUENCE_LENGTHS = (32, 64, 128)
BATCH_SIZES = (1, 8)
THREAD_COUNTS = (1, 2)
# The point every headline metric is read at: one request of a full-length sentence on two cores.
HEADLINE = {"seq_len": 128, "batch_size": 1, "threads": 2}
DEFAULT_WORK_DIR = Path("runs/harness")
DEFAULT_REPORT_DIR = DEFAULT_RESULTS_DIR / "harness"
ARM_LABEL = "arm64 (QEMU-emulated)"
CUDA_LABEL = "cuda"
PARITY_EXAMPLES = 64
ARM_ROWS = 16
PROFILE_POINTS = {"batch_sizes": (1, 8), "seq_lens": (64, 128), "threads": 2}
PIPELINE_HINT = ("run the pipeline first (tinybert-edge pipeline --name NAME) and pass --run runs/NAME")

# (variant label, bench backend, precision, artifact key in the run's or the teacher's artifacts; None: the folder)
VARIANTS = (
    ("PyTorch fp32", "torch", "fp32", None),
    ("PyTorch int8 (dynamic)", "torch-int8", "int8", None),
    ("ONNX fp32", "onnxruntime", "fp32", "onnx-fp32"),
    ("ONNX int8", "onnxruntime", "int8", "onnx-int8"),
    ("TFLite int8", "litert", "int8", "tflite-int8"),
    ("ExecuTorch int8", "executorch", "int8", "executorch-int8"),
)
# The export formats measured unless `--formats` asks for more (ExecuTorch: `--formats onnx tflite executorch`).
DEFAULT_FORMATS = ("onnx", "tflite")


def target_name(role: str, variant: str) -> str:
    """The row name of a role's variant; the teacher's PyTorch fp32 one is `rows.TEACHER_NAME`, the row `bench` adds
    and every report shares, so `bench compare` matches it."""
    return f"{role} · {variant}"


# --- where the models are ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunSources:
    """What a pipeline run folder provides: the teacher, the student, its artifacts by key, and its data."""

    run_dir: Path
    teacher: Path
    student: Path
    artifacts: dict[str, Path]
    data: Any  # tinybert_edge.config.DataConfig of the run


def find_run(runs_dir: str | Path = "runs") -> Path:
    """The most recent finished pipeline run under `runs_dir` (report.json, student/ and artifacts/ present)."""
    from tinybert_edge.errors import ConfigError

    candidates = [d for d in Path(runs_dir).glob("*") if (d / "report.json").is_file() and (d / "student").is_dir()
                  and (d / "artifacts").is_dir()]
    if not candidates:
        raise ConfigError(f"no finished pipeline run under '{runs_dir}'; {PIPELINE_HINT}")
    return max(candidates, key=lambda d: (d / "report.json").stat().st_mtime)


def load_run(run_dir: str | Path) -> RunSources:
    """Read a pipeline run folder: the teacher path from report.json, the data from pipeline_config.json."""
    from tinybert_edge.config import PipelineConfig, from_dict
    from tinybert_edge.errors import ConfigError

    run_dir = Path(run_dir)
    report_file, config_file = run_dir / "report.json", run_dir / "pipeline_config.json"
    for needed in (report_file, config_file, run_dir / "student"):
        if not needed.exists():
            raise ConfigError(f"'{run_dir}' is not a finished pipeline run: '{needed.name}' is missing; {PIPELINE_HINT}")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    config = from_dict(PipelineConfig, json.loads(config_file.read_text(encoding="utf-8")), "pipeline")
    teacher = Path((report.get("teacher") or {}).get("path") or "")
    if not (teacher / "config.json").is_file():
        raise ConfigError(f"the teacher of '{run_dir}' ('{teacher}') is gone; rerun the pipeline to fine-tune it again")
    from tinybert_edge.artifacts import find_artifacts

    folder = run_dir / "artifacts"
    found = find_artifacts(folder) if folder.is_dir() else []
    artifacts = {f"{a.format}-{a.precision}": a.path for a in found}
    return RunSources(run_dir, teacher, run_dir / "student", artifacts, config.data)


def export_variants(model: Path, out: Path, lengths: Sequence[int], parity_batches: list,
                    reuse_from: Sequence[Path] = (), formats: Sequence[str] = DEFAULT_FORMATS,
                    ) -> tuple[dict[str, Path], dict[str, str]]:
    """The ONNX fp32, ONNX int8 and TFLite int8 artifacts of `model` through the one export chain, each
    parity-checked against PyTorch; one already in `out` or in an export folder of `reuse_from` (the pipeline run's)
    is reused when it was exported from this model and covers `lengths`. Returns ({key: path}, {key: why it could
    not be made}), keys as the layout's folder names; a failed export never stops the others."""
    from tinybert_edge.converters import ExportConfig, export

    errors: dict[str, str] = {}
    artifacts = export(model, out, formats=tuple(formats), config=ExportConfig(sequence_buckets=tuple(lengths)),
                       parity_batches=parity_batches, reuse=True, reuse_from=reuse_from, threads=2, errors=errors)
    return {f"{a.format}-{a.precision}": a.path for a in artifacts}, errors


def variant_targets(role: str, model: Path, artifacts: Mapping[str, Path], errors: Mapping[str, str],
                    params: int | None = None, formats: Sequence[str] = DEFAULT_FORMATS) -> tuple[list, dict[str, str]]:
    """One Target per variant of `model` (the teacher's PyTorch fp32 row excepted: `bench` adds it); returns
    (targets, {target name: why it is missing}) for variants whose artifact could not be made."""
    from tinybert_edge.benchmarks.config import Target

    targets, missing = [], {}
    for variant, backend, precision, key in VARIANTS:
        if key is not None and key.split("-")[0] not in formats:
            continue
        name = target_name(role, variant)
        if role == "teacher" and key is None and backend == "torch":
            continue
        path = model if key is None else artifacts.get(key, model.parent / f"{model.name}-{key}-not-built")
        if key is not None and key in errors:
            missing[name] = errors[key]
        targets.append(Target(name=name, role=role, backend=backend, path=path, precision=precision, params=params))
    return targets, missing


# --- CUDA ---------------------------------------------------------------------------------------------------------


def cuda_status() -> dict[str, Any]:
    """Whether this machine can run the `cuda` target: torch.cuda (fp32 PyTorch rows) and ONNX Runtime's CUDA
    execution provider (ONNX rows). Either is enough; the note names what is missing."""
    status: dict[str, Any] = {"torch_cuda": None, "onnxruntime_cuda": None}
    try:
        import torch

        status["torch_cuda"] = bool(torch.cuda.is_available())
        if status["torch_cuda"]:
            status["device_name"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import onnxruntime

        status["onnxruntime_cuda"] = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        status["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    status["available"] = bool(status["torch_cuda"] or status["onnxruntime_cuda"])
    torch_why = ("torch.cuda.is_available() is False (a CPU build of torch, or no NVIDIA driver)"
                 if status["torch_cuda"] is False else "torch is not installed")
    ort_why = ("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)"
               if status["onnxruntime_cuda"] is False else "onnxruntime is not installed")
    if status["available"]:
        measured = [what for what, ok in (("fp32 PyTorch on torch.cuda", status["torch_cuda"]),
                                          ("ONNX through the CUDAExecutionProvider", status["onnxruntime_cuda"])) if ok]
        missing = [why for why, ok in ((torch_why, status["torch_cuda"]), (ort_why, status["onnxruntime_cuda"]))
                   if not ok]
        status["note"] = ("measured: " + " and ".join(measured) + (f" (not measured: {'; '.join(missing)})"
                                                                    if missing else ""))
    else:
        status["note"] = f"skipped: no CUDA target on this machine ({torch_why}; {ort_why})"
    return status


def cuda_targets(targets: Sequence[Any], status: Mapping[str, Any]) -> list:
    """The CPU targets that can run on CUDA, again on `device="cuda"`: ONNX ones when ONNX Runtime has its CUDA
    execution provider, fp32 PyTorch ones when torch sees a device (dynamic int8 is CPU-only); none otherwise."""
    runnable = {"onnxruntime": bool(status.get("onnxruntime_cuda")), "torch": bool(status.get("torch_cuda"))}
    return [dataclasses.replace(t, name=f"{t.name} ({CUDA_LABEL})", device="cuda") for t in targets
            if runnable.get(t.backend) and t.device == "cpu"]


# --- ARM under QEMU -----------------------------------------------------------------------------------------------


def arm_rows(artifacts: Mapping[str, Path], inputs_npz: Path, rootfs: Path, settings: Any) -> list[dict[str, Any]]:
    """Each artifact run by the torch-free runner on x86 and in the arm64 root filesystem under QEMU; one row per
    artifact with the emulated timings (labelled) and the x86-vs-ARM output difference, or the reason it failed."""
    from tinybert_edge.benchmarks.arm import cross_platform_check, run_local, run_qemu

    rows = []
    for name, artifact in artifacts.items():
        reference = run_local(artifact, inputs_npz, settings)
        emulated = run_qemu(rootfs, artifact, inputs_npz, settings)
        check = cross_platform_check(reference, emulated)
        row = {"name": f"{name} · {ARM_LABEL}", "label": ARM_LABEL, "emulated": True, "artifact": str(artifact),
               "reference": reference.to_dict(), "result": emulated.to_dict(), "difference": check.get("difference"),
               "error": check.get("error")}
        if row["error"]:
            log.warning("%s: %s", row["name"], row["error"])
        else:
            log.info("%s: max |logit diff| %.3g vs x86, argmax agreement %.3f", row["name"],
                     row["difference"]["max_abs_diff"], row["difference"]["argmax_agreement"])
        rows.append(row)
    return rows


def _onnx_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    files = sorted(path.glob("*.onnx")) if path.is_dir() else []
    return files[0] if len(files) == 1 else None


# --- the numbers next to the teacher --------------------------------------------------------------------------------


def attach_point_speedups(rows: Sequence[Row | Mapping[str, Any]], teacher_name: str) -> None:
    """Add `speedup_vs_teacher` (teacher p50 / row p50 at the same seq, batch and threads) to every sweep entry of
    every row, in place; None where either side failed."""
    rows = [as_row(row) for row in rows]  # the same measurement dicts: the annotation lands in the caller's rows
    teacher = next((row for row in rows if row.name == teacher_name), None)
    for row in rows:
        for m in row.sweep:
            ref = sweep_point(teacher, int(m["seq_len"]), int(m["batch_size"]), int(m["threads"])) if teacher else None
            m["speedup_vs_teacher"] = (measurement_ms(ref) / measurement_ms(m)) if ref and succeeded(m) else None


def best_int8_student(rows: Sequence[Row], point: Mapping[str, int] = HEADLINE) -> Row | None:
    """The student int8 row with the lowest p50 at `point` (measured on the CPU), or None."""
    measured = [(measurement_ms(sweep_point(r, **point)), i) for i, r in enumerate(rows)
                if r.role == "student" and r.precision == "int8" and r.device == "cpu"
                and sweep_point(r, **point) is not None]
    return rows[min(measured)[1]] if measured else None


def harness_metrics(rows: Sequence[Row | Mapping[str, Any]], teacher_name: str, arm: Sequence[Mapping[str, Any]],
                    point: Mapping[str, int] = HEADLINE) -> dict[str, Metric]:
    """Headline numbers at `point`: the fastest student int8 artifact against the teacher in PyTorch fp32, both
    measured in this run; the teacher's own values are the baselines. Numbers that could not be measured are left
    out (the report says why)."""
    rows = [as_row(row) for row in rows]
    teacher = next((row for row in rows if row.name == teacher_name), None)
    metrics: dict[str, Metric] = {}
    at = f"b{point['batch_size']}/s{point['seq_len']}/{point['threads']} threads"
    ref = sweep_point(teacher, **point) if teacher else None
    best = best_int8_student(rows, point)
    if ref is None or best is None:
        log.warning("no teacher or no student int8 measurement at %s; no speed metrics", at)
    else:
        m = sweep_point(best, **point)
        label = f"({best.name})"
        metrics[f"best student int8 p50 @ {at} {label}"] = Metric(
            measurement_ms(m), "ms", direction="lower_is_better", baseline=measurement_ms(ref))
        metrics[f"speedup of best student int8 vs teacher fp32 @ {at}"] = Metric(
            measurement_ms(ref) / measurement_ms(m), "x")
        if best.size_bytes and teacher.size_bytes:
            metrics["size reduction of best student int8 vs teacher fp32"] = Metric(
                teacher.size_bytes / best.size_bytes, "x")
        if m.get("peak_rss_mb") and ref.get("peak_rss_mb"):
            metrics[f"peak RSS of best student int8 @ {at}"] = Metric(
                m["peak_rss_mb"], "MiB", direction="lower_is_better", baseline=ref["peak_rss_mb"])
            metrics[f"memory reduction (peak RSS) of best student int8 vs teacher fp32 @ {at}"] = Metric(
                ref["peak_rss_mb"] / m["peak_rss_mb"], "x")
        if m.get("rss_increase_mb") and ref.get("rss_increase_mb"):
            metrics[f"RSS increase over an idle interpreter, best student int8 @ {at}"] = Metric(
                m["rss_increase_mb"], "MiB", direction="lower_is_better", baseline=ref["rss_increase_mb"])
        if best.score is not None and teacher.score:
            metrics["accuracy retained by best student int8 (fraction of teacher accuracy)"] = Metric(
                best.score / teacher.score, "fraction")
            metrics["accuracy of best student int8"] = Metric(best.score, "fraction", baseline=teacher.score)
        if m.get("cold_start_ms") and ref.get("cold_start_ms"):
            metrics[f"cold start (load + first inference) of best student int8 @ {at}"] = Metric(
                m["cold_start_ms"], "ms", direction="lower_is_better", baseline=ref["cold_start_ms"])
            metrics[f"cold-start ratio teacher fp32 / best student int8 @ {at}"] = Metric(
                ref["cold_start_ms"] / m["cold_start_ms"], "x")
        fraction = (m.get("roofline") or {}).get("fraction_of_roofline")
        if fraction is not None:
            teacher_fraction = (ref.get("roofline") or {}).get("fraction_of_roofline")
            metrics[f"fraction of the GEMM roofline, best student int8 @ {at}"] = Metric(
                fraction, "fraction", baseline=teacher_fraction)
    diffs = [row["difference"] for row in arm if row.get("difference")]
    if diffs:
        metrics[f"{ARM_LABEL} max |logit diff| vs x86 (student int8 artifacts)"] = Metric(
            max(d["max_abs_diff"] for d in diffs), "logit", direction="lower_is_better")
        metrics[f"{ARM_LABEL} argmax agreement with x86 (lowest over student int8 artifacts)"] = Metric(
            min(d["argmax_agreement"] for d in diffs), "fraction", target=0.99)
    return metrics


# --- the report -----------------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    from tinybert_edge.benchmarks.readme import format_number

    return "—" if value is None else format_number(value) if digits == 3 else f"{value:.{digits}f}"


def render_harness_sections(report: Mapping[str, Any]) -> str:
    """What the harness adds to the `bench` report: skipped targets, cold start, memory, speedup at every grid
    point and the emulated ARM rows (their own section)."""
    from tinybert_edge.benchmarks.readme import markdown_cell
    from tinybert_edge.benchmarks.sweep import grid_of

    rows = [as_row(row) for row in report["rows"]]
    point = report["headline_point"]
    at = f"batch {point['batch_size']}, seq {point['seq_len']}, {point['threads']} threads"
    out = ["", "## Targets", ""]
    cuda = report.get("cuda") or {}
    out.append("- `cpu`: this machine, every row above.")
    out.append(f"- `cuda`: {cuda.get('note', 'not checked')}")
    arm = report.get("arm") or {}
    out.append(f"- `arm`: {arm.get('note', 'not run')}")
    failed = [row for row in rows if row.error]
    if failed:
        out += ["", "Rows that could not be measured (the rest of the report is complete):", ""]
        out += [f"- {markdown_cell(row.name)}: {markdown_cell(row.error)}" for row in failed]

    out += ["", f"## Cold start and memory ({at})", "",
            "Cold start = session load + first inference, in a fresh process; import of the runtime apart. Peak RSS "
            "is the measuring process's high-water mark; the increase is over an interpreter that imported the same "
            "runtime and loaded no model.", "",
            "| model | import ms | load ms | first inference ms | cold start ms | cold start × vs teacher | "
            "peak RSS MB | increase over idle MB | memory × vs teacher |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    teacher = next((row for row in rows if row.name == report.get("teacher")), None)
    ref = sweep_point(teacher, **point) if teacher else None
    for row in rows:
        m = sweep_point(row, **point)
        if m is None:
            out.append(f"| {markdown_cell(row.name)} |" + " — |" * 8)
            continue
        cold = (ref["cold_start_ms"] / m["cold_start_ms"]) if ref and m.get("cold_start_ms") else None
        memory = (ref["peak_rss_mb"] / m["peak_rss_mb"]) if ref and m.get("peak_rss_mb") else None
        out.append(f"| {markdown_cell(row.name)} | {_num(m.get('import_ms'))} | {_num(m.get('load_ms'))} | "
                   f"{_num(m.get('first_inference_ms'))} | {_num(m.get('cold_start_ms'))} | "
                   f"{'—' if cold is None else f'{cold:.2f}×'} | {_num(m.get('peak_rss_mb'))} | "
                   f"{_num(m.get('rss_increase_mb'))} | {'—' if memory is None else f'{memory:.2f}×'} |")

    grid = grid_of(rows)
    if grid:
        out += ["", "## Speedup against the teacher (PyTorch fp32) at every point", "",
                "Columns are seq/batch/threads; each cell is teacher p50 / row p50 at that same point.", "",
                "| model | " + " | ".join(f"{s}/{b}/{t}" for s, b, t in grid) + " |",
                "|---|" + "---:|" * len(grid)]
        for row in rows:
            cells = []
            for s, b, t in grid:
                value = (sweep_point(row, s, b, t) or {}).get("speedup_vs_teacher")
                cells.append("—" if value is None else f"{value:.2f}×")
            out.append(f"| {markdown_cell(row.name)} | " + " | ".join(cells) + " |")

    if report.get("op_profile") is not None:
        from tinybert_edge.benchmarks.op_profile import render_profile_markdown

        out.append(render_profile_markdown(report["op_profile"]).rstrip("\n"))

    arm_rows_ = arm.get("rows") or []
    out += ["", f"## {ARM_LABEL}", "",
            "Run by the torch-free `arm_runner.py` inside the arm64 root filesystem under QEMU user-mode emulation. "
            "These times are emulated: they show that the artifact loads and runs on aarch64, not how fast an ARM "
            "CPU is, and they are never compared with the native rows above. The output difference is against the "
            "same runner on this x86 machine, on the same real tokenized rows.", ""]
    if not arm_rows_:
        out.append(str(arm.get("note", "not run")))
    else:
        out += ["| model | runtime | seq (bucket) | emulated p50 ms | rows | max abs logit diff vs x86 | "
                "mean abs diff | argmax agreement | min cosine | status |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in arm_rows_:
            result, d = row.get("result") or {}, row.get("difference")
            stats = result.get("stats") or {}
            seq = "—" if result.get("seq_len") is None else f"{result['seq_len']}" + (
                f" ({result['bucket']})" if result.get("bucket") else "")
            if d is None:
                out.append(f"| {markdown_cell(row['name'])} | {result.get('runtime') or '—'} | {seq} | "
                           f"{_num(stats.get('p50_ms'))} | — | — | — | — | — | {markdown_cell(row.get('error') or '')} |")
            else:
                out.append(f"| {markdown_cell(row['name'])} | {result.get('runtime')} | {seq} | {_num(stats.get('p50_ms'))} | "
                           f"{d['rows']} | {d['max_abs_diff']:.3g} | {d['mean_abs_diff']:.3g} | "
                           f"{d['argmax_agreement']:.4f} | {d['min_cosine']:.6f} | ok |")
    return "\n".join(out) + "\n"


def slim_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report without raw samples (kept in the work folder's report.json): small enough for the repository."""
    slim = copy.deepcopy(dict(report))
    for row in slim["rows"]:
        for m in list((row.get("latency") or {}).values()) + list(row.get("sweep") or []):
            if m:
                m.pop("samples_ms", None)
    for row in (slim.get("arm") or {}).get("rows") or []:
        for side in ("reference", "result"):
            if row.get(side):
                row[side].pop("samples_ms", None)
    slim["raw_samples"] = "dropped here; every timed value is in the work folder's report.json"
    return slim


def write_reports(report: Mapping[str, Any], work_dir: Path, report_dir: Path) -> None:
    """The full report (raw samples) into `work_dir`, the slim one into `report_dir`; each as report.json,
    report.md (bench's tables plus the harness sections) and the two plots, each folder replaced as a whole."""
    from tinybert_edge.benchmarks.report import render_bench_markdown, write_bench_report
    from tinybert_edge.io import write_text_atomic

    for folder, document in ((work_dir, report), (report_dir, slim_report(report))):
        write_bench_report(document, folder)
        markdown = render_bench_markdown(document).replace("# tinybert-edge benchmark", "# tinybert-edge harness", 1)
        write_text_atomic(folder / "report.md", markdown + render_harness_sections(document))


# --- the run ----------------------------------------------------------------------------------------------------


def harness_config(min_seconds: float = 0.5, min_iterations: int = 10, warmup: int = 3, timeout_s: float = 600):
    from tinybert_edge.benchmarks.config import BenchConfig

    return BenchConfig(sequence_lengths=SEQUENCE_LENGTHS, batch_size=HEADLINE["batch_size"], threads=HEADLINE["threads"],
                       batch_sizes=BATCH_SIZES, thread_counts=THREAD_COUNTS, warmup=warmup,
                       min_iterations=min_iterations, min_seconds=min_seconds, timeout_s=timeout_s)


def run(run_dir: str | Path | None = None, work_dir: str | Path = DEFAULT_WORK_DIR, config: Any = None,
        max_examples: int = 500, arm: bool = True, rootfs: str | Path | None = None, progress: bool = True,
        report_dir: str | Path | None = DEFAULT_REPORT_DIR, formats: Sequence[str] = DEFAULT_FORMATS,
        profile: bool = True) -> tuple[dict[str, Metric], dict[str, Any]]:
    """Build what is missing, measure everything, write the reports; return (metrics, report)."""
    from tinybert_edge.benchmarks.runner import bench
    from tinybert_edge.benchmarks.arm import DEFAULT_ROOTFS, RunnerSettings
    from tinybert_edge.data import encode, load_splits, sample
    from tinybert_edge.models import load_tokenizer

    started = time.perf_counter()
    config = config or harness_config()
    sources = load_run(run_dir if run_dir is not None else find_run())
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    _, _, test = load_splits(sources.data)
    log.info("harness: run %s, teacher %s, %d test examples", sources.run_dir, sources.teacher, len(test))

    longest = max(config.sequence_lengths)
    parity_rows = encode(load_tokenizer(sources.student), test.subset(range(min(PARITY_EXAMPLES, len(test)))), longest)
    parity_batches = list(parity_rows.batches(32))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    teacher_paths, teacher_errors = export_variants(sources.teacher, work / "teacher-artifacts", config.sequence_lengths,
                                                    parity_batches, formats=formats)
    # The run's student artifacts are reused; its TFLite is re-exported only when its buckets miss a length.
    student_paths, student_errors = export_variants(sources.student, work / "student-artifacts", config.sequence_lengths,
                                                    parity_batches, reuse_from=[sources.run_dir / "artifacts"],
                                                    formats=formats)
    timings["exports_s"] = time.perf_counter() - t0

    teacher_targets, missing = variant_targets("teacher", sources.teacher, teacher_paths, teacher_errors,
                                               formats=formats)
    student_targets, student_missing = variant_targets("student", sources.student, student_paths, student_errors,
                                                       formats=formats)
    missing.update(student_missing)
    targets = teacher_targets + student_targets
    cuda = cuda_status()
    targets += cuda_targets(targets, cuda)
    log.info("cuda: %s", cuda["note"])

    t0 = time.perf_counter()
    labelled = sample(test, max_examples, seed=0)
    # bench's own report (raw samples, GEMM peaks) goes to work/bench; the harness report is built on its rows.
    rows = bench(targets, config=config, teacher=sources.teacher, data=labelled, max_examples=None, progress=progress,
                 out=work / "bench")
    peaks = json.loads((work / "bench" / "report.json").read_text(encoding="utf-8")).get("gemm_peaks") or {}
    timings["bench_s"] = time.perf_counter() - t0
    rows = [dataclasses.replace(row, error=f"not built: {missing[row.name]}") if row.name in missing else row
            for row in map(as_row, rows)]
    attach_point_speedups(rows, TEACHER_NAME)

    op_profile = None
    if profile:
        from tinybert_edge.benchmarks.op_profile import profile_grid

        t0 = time.perf_counter()
        profiled = {target_name("student", variant): student_paths[key] for variant, key in
                    (("ONNX int8", "onnx-int8"), ("TFLite int8", "tflite-int8")) if key in student_paths}
        op_profile = profile_grid(profiled, **PROFILE_POINTS)
        timings["op_profile_s"] = time.perf_counter() - t0

    arm_section: dict[str, Any] = {"label": ARM_LABEL, "rows": []}
    if not arm:
        arm_section["note"] = "not run (--no-arm)"
    else:
        t0 = time.perf_counter()
        root = Path(rootfs) if rootfs is not None else DEFAULT_ROOTFS
        inputs = encode(load_tokenizer(sources.student), labelled.subset(range(min(ARM_ROWS, len(labelled)))),
                        longest).fixed_length([longest])[longest]
        inputs_npz = work / "arm-inputs.npz"
        np.savez(inputs_npz, **{k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()})
        artifacts = {target_name("student", "TFLite int8"): student_paths.get("tflite-int8"),
                     target_name("student", "ONNX int8"): _onnx_file(student_paths["onnx-int8"])
                     if "onnx-int8" in student_paths else None}
        settings = RunnerSettings(threads=1, warmup=1, min_iterations=3, min_seconds=0.0, timeout_s=900)
        present = {name: path for name, path in artifacts.items() if path is not None}
        arm_section["rows"] = arm_rows(present, inputs_npz, root, settings)
        arm_section["rows"] += [{"name": f"{name} · {ARM_LABEL}", "label": ARM_LABEL, "emulated": True,
                                 "artifact": None, "result": None, "difference": None,
                                 "error": "the x86 artifact was not built, so there is nothing to run on ARM"}
                                for name, path in artifacts.items() if path is None]
        arm_section["note"] = (f"the student's int8 artifacts under QEMU user-mode emulation in '{root}', "
                               f"{len(inputs['input_ids'])} real test rows at seq {longest}, see the {ARM_LABEL} section")
        arm_section["settings"] = dataclasses.asdict(settings)
        timings["arm_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    from tinybert_edge.benchmarks.report import bench_report

    report = bench_report(rows, config, {int(t): p for t, p in peaks.items()}, labelled)
    report.update({"kind": "harness", "headline_point": dict(HEADLINE), "cuda": cuda, "arm": arm_section,
                   "op_profile": op_profile,
                   "run_dir": str(sources.run_dir), "work_dir": str(work), "timings_s": timings})
    metrics = harness_metrics(rows, TEACHER_NAME, arm_section["rows"])
    write_reports(report, work, Path(report_dir) if report_dir is not None else work)
    return metrics, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.harness",
                                     description="every variant of a teacher and its student through the harness")
    parser.add_argument("--run", default=None, help="pipeline run folder (default: the newest finished one under runs/)")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help="teacher artifacts and the full report")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="minimum timed seconds per grid point")
    parser.add_argument("--min-iterations", type=int, default=10, help="minimum timed calls per grid point")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    parser.add_argument("--max-examples", type=int, default=500, help="test examples for accuracy (fixed-seed sample)")
    parser.add_argument("--no-arm", action="store_true", help="skip the emulated arm64 check")
    parser.add_argument("--no-profile", action="store_true", help="skip the operator profiles of the student's int8")
    parser.add_argument("--rootfs", default=None, help="arm64 root filesystem (default: .arm64-rootfs)")
    parser.add_argument("--report-dir", default=None, help="report.md, report.json and plots (default: RESULTS_DIR/harness)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--formats", nargs="+", choices=["onnx", "tflite", "executorch"], default=list(DEFAULT_FORMATS),
                        help="export formats measured beside PyTorch (default: onnx tflite)")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    config = harness_config(args.min_seconds, args.min_iterations, args.warmup)
    report_dir = Path(args.report_dir) if args.report_dir else Path(args.results_dir) / "harness"
    metrics, report = run(args.run, args.work_dir, config, max_examples=args.max_examples, arm=not args.no_arm,
                          rootfs=args.rootfs, progress=not args.no_progress, report_dir=report_dir,
                          formats=args.formats, profile=not args.no_profile)
    extra = {"report_dir": str(report_dir), "work_dir": report["work_dir"], "run_dir": report["run_dir"],
             "headline_point": report["headline_point"], "cuda": report["cuda"],
             "arm": {k: v for k, v in report["arm"].items() if k != "rows"},
             "timings_s": report["timings_s"], "config": report["config"], "op_profile": report.get("op_profile"),
             "rows": [{k: row.get(k) for k in ("name", "role", "backend", "precision", "device", "size_bytes",
                                               "accuracy", "error", "speedup", "size_reduction", "memory_reduction",
                                               "accuracy_retained")} for row in report["rows"]]}
    return SuiteOutcome(metrics, extra, details=f"report: {report_dir}/report.md")


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("harness", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
