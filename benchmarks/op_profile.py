"""Where an artifact's time goes: per-operator profiles grouped into GEMMs, attention, LayerNorm/GELU,
quantize/dequantize and the rest, with the runtime's overhead (wall time of a run not spent inside any operator).

ONNX Runtime: its own profiler (`SessionOptions.enable_profiling`), one trace of `runs` timed calls after warm-up;
each node's kernel time is summed by operator type, then by category. LiteRT: its Python API (ai-edge-litert's
`Interpreter` and `CompiledModel`) exposes no operator profiler (that lives in the C++ `benchmark_model
--enable_op_profiling`, not shipped in the wheel), so a TFLite profile is a record that says so instead of numbers.

Fused operators keep their work together: ONNX Runtime's `Attention`/`QAttention` include the Q, K and V
projections as well as softmax(QK^T)V, so "attention" holds those three GEMMs where the graph fuses them; the
breakdown says which fused operators it saw.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

CATEGORIES = ("gemm", "attention", "layernorm_gelu", "quantize", "other")
OP_CATEGORY = {
    **dict.fromkeys(("MatMul", "Gemm", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                     "QLinearMatMul", "QGemm", "FusedMatMul", "MatMulNBits"), "gemm"),
    **dict.fromkeys(("Attention", "QAttention", "MultiHeadAttention", "Softmax", "QOrderedAttention"), "attention"),
    **dict.fromkeys(("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization",
                     "QEmbedLayerNormalization", "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
                     "Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf", "Tanh"), "layernorm_gelu"),
    # DynamicQuantizeMatMul (ORT's fusion of DynamicQuantizeLinear + MatMulInteger + scale) counts as a GEMM.
    **dict.fromkeys(("DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"), "quantize"),
}
FUSED_WITH_PROJECTIONS = ("Attention", "QAttention")
LITERT_UNAVAILABLE = ("ai-edge-litert's Python API has no operator profiler (Interpreter and CompiledModel expose no "
                      "profiling hook; LiteRT's op profiling is the C++ benchmark_model --enable_op_profiling, which "
                      "the wheel does not ship); no TFLite breakdown is measured")


def op_category(op_type: str) -> str:
    """The category of an ONNX operator type ("other" for anything not named in `OP_CATEGORY`)."""
    return OP_CATEGORY.get(op_type, "other")


def full_length_inputs(input_names: Sequence[str], vocab_size: int, batch_size: int, seq_len: int,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of `seq_len` real-length rows (no padding: every position is work) of random ids below `vocab_size`."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000 if vocab_size > 2000 else 1, vocab_size, (batch_size, seq_len), dtype=np.int64)
    columns = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {name: columns[name] for name in input_names if name in columns}


def summarize_trace(events: Sequence[Mapping[str, Any]], runs: int) -> dict[str, Any]:
    """Per-run milliseconds by operator type and by category, and the share of each, from an ORT profile trace.

    Only the last `runs` "model_run" events and the node events inside them count (the trace also holds session
    set-up and warm-up). Each figure is the median over the runs (a run preempted by another process on a shared
    machine moves a mean, not the median); overhead = the run's wall time - its operator time."""
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])[-runs:]
    if not model_runs:
        raise ValueError("the profile holds no model_run event")
    per_run: list[dict[str, float]] = [{} for _ in model_runs]
    starts = [e["ts"] for e in model_runs]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        index = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if index < 0 or e["ts"] > model_runs[index]["ts"] + model_runs[index]["dur"]:
            continue
        op = (e.get("args") or {}).get("op_name", "?")
        per_run[index][op] = per_run[index].get(op, 0.0) + e["dur"] / 1000.0
    walls = [e["dur"] / 1000.0 for e in model_runs]
    for run, wall in zip(per_run, walls):
        run["(overhead)"] = max(wall - sum(run.values()), 0.0)
    ops = sorted({op for run in per_run for op in run if op != "(overhead)"})
    op_ms = {op: float(np.median([run.get(op, 0.0) for run in per_run])) for op in ops}
    op_ms = dict(sorted(op_ms.items(), key=lambda kv: -kv[1]))
    category_ms = {c: 0.0 for c in CATEGORIES}
    for op, ms in op_ms.items():
        category_ms[op_category(op)] += ms
    category_ms["overhead"] = float(np.median([run["(overhead)"] for run in per_run]))
    total = sum(category_ms.values())
    return {
        "runs": len(model_runs),
        "wall_ms": float(np.median(walls)),
        "category_ms": category_ms,
        # Shares of the sum of the medians, so they add up to 1.
        "share": {c: ms / total if total > 0 else None for c, ms in category_ms.items()},
        "op_ms": op_ms,
        "fused_attention_with_projections": sorted(op for op in op_ms if op in FUSED_WITH_PROJECTIONS),
    }


def profile_onnx(path: str | os.PathLike[str], batch_size: int, seq_len: int, threads: int = 2, runs: int = 20,
                 warmup: int = 3, session_config: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ONNX Runtime's operator profile of one artifact at one (batch, seq) point, `threads` intra-op threads."""
    import onnxruntime as ort

    from tinybert_edge.artifacts import onnx_file

    file = onnx_file(Path(path))
    with tempfile.TemporaryDirectory(prefix="tinybert-edge-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        for key, value in (session_config or {}).items():
            options.add_session_config_entry(key, value)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        vocab = _vocab_size(file)
        feed = full_length_inputs([i.name for i in session.get_inputs()], vocab, batch_size, seq_len)
        for _ in range(warmup + runs):
            session.run(None, feed)
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text(encoding="utf-8"))
    summary = summarize_trace(events, runs)
    summary.update({"runtime": "onnxruntime", "version": ort.__version__, "batch_size": batch_size,
                    "seq_len": seq_len, "threads": threads, "artifact": str(path)})
    return summary


def _vocab_size(onnx_path: Path) -> int:
    """The word-embedding rows of the model (config.json beside it, else a safe 1000)."""
    config = onnx_path.parent / "config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["vocab_size"])
    except (OSError, ValueError, KeyError):
        return 1000


def profile_litert(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TFLite operator profile: not measurable from Python with this LiteRT, recorded with the reason."""
    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - metadata lookups raise PackageNotFoundError and friends
        litert = None
    return {"runtime": "litert", "version": litert, "artifact": str(path), "available": False,
            "reason": LITERT_UNAVAILABLE}


def profile_grid(artifacts: Mapping[str, Path], batch_sizes: Sequence[int] = (1, 8),
                 seq_lens: Sequence[int] = (64, 128), threads: int = 2, runs: int = 20) -> dict[str, Any]:
    """Profiles of every artifact (name -> ONNX folder/file or .tflite) at every (batch, seq); an artifact that
    cannot be profiled is an entry with its error, the rest complete."""
    out: dict[str, Any] = {}
    for name, path in artifacts.items():
        if Path(path).suffix == ".tflite" or (Path(path).is_dir() and any(Path(path).glob("*.tflite"))):
            out[name] = profile_litert(path)
            continue
        points = []
        for batch in batch_sizes:
            for seq in seq_lens:
                try:
                    points.append(profile_onnx(path, batch, seq, threads, runs))
                except Exception as exc:  # noqa: BLE001 - one failing point is reported, the others measured
                    points.append({"batch_size": batch, "seq_len": seq, "threads": threads, "error": str(exc)})
                    log.warning("profile of %s at b%d/s%d failed: %s", name, batch, seq, exc)
        out[name] = {"runtime": "onnxruntime", "available": True, "artifact": str(path), "points": points}
    return out


def render_profile_markdown(profiles: Mapping[str, Any]) -> str:
    """The "Where the time goes" section: one table per artifact, share of wall time by category."""
    out = ["", "## Where the time goes (operator profiles)", "",
           "Share of each run's wall time by operator category; overhead = wall time not inside any operator. "
           "Fused Attention/QAttention include the Q, K, V projections (GEMMs) as well as softmax(QK^T)V.", ""]
    if not profiles:
        return "\n".join(out + ["not profiled"]) + "\n"
    for name, profile in profiles.items():
        out.append(f"### {name}")
        out.append("")
        if not profile.get("available", True):
            out += [f"{profile.get('reason')}", ""]
            continue
        out += ["| batch | seq | wall ms | " + " | ".join(list(CATEGORIES) + ["overhead"]) + " | top operators |",
                "|---:|---:|---:|" + "---:|" * (len(CATEGORIES) + 1) + "---|"]
        for p in profile["points"]:
            if p.get("error"):
                out.append(f"| {p['batch_size']} | {p['seq_len']} | — |" + " — |" * (len(CATEGORIES) + 1)
                           + f" {p['error']} |")
                continue
            shares = " | ".join(f"{p['share'][c]:.1%}" for c in list(CATEGORIES) + ["overhead"])
            top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(p["op_ms"].items())[:4])
            out.append(f"| {p['batch_size']} | {p['seq_len']} | {p['wall_ms']:.2f} | {shares} | {top} |")
        out.append("")
    return "\n".join(out) + "\n"
