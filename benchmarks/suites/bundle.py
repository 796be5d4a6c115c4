"""The `bundle` suite: package a real student as an on-device bundle and measure what the device side gets.

    python -m tinybert_edge.benchmarks.suites.bundle [--run runs/<name>] [--parity-n 100000] [--java-report j.json]

Takes the artifacts of an existing run folder (`--run`, default runs/default); without one it exports the
fine-tuned teacher cached under ~/.cache/tinybert-edge/teachers/ (`tinybert_edge.export`). Then measures tokenizer
mismatches of the runtime against Hugging Face's fast tokenizer over the generated corpus (must be 0), the
runtime's cold start (load bundle + first prediction, in a fresh process), per-call p50 latency of the runtime
against the SDK's torch path (transformers tokenizer + PyTorch student) on the same texts, and the bundle's size;
writes benchmarks/results/bundle.json. `--java-report` merges the Java bridge's parity/latency report (a JSON object
with a `metrics` mapping in the same shape) into the same file.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main
from tinybert_edge.errors import BenchmarkError

log = logging.getLogger(__name__)

TEACHERS = Path.home() / ".cache" / "tinybert-edge" / "teachers"
_COLD_START = """
import sys, time, json
start = time.perf_counter()
from tinybert_edge.runtime.bundle import load_bundle
model = load_bundle(sys.argv[1], model=sys.argv[2], threads=int(sys.argv[3]))
loaded = time.perf_counter()
model.predict(sys.argv[4])
done = time.perf_counter()
print(json.dumps({"load_s": loaded - start, "first_s": done - loaded, "total_s": done - start,
                  "torch_loaded": "torch" in sys.modules}))
"""


def _artifacts(run: Path | None, work: Path) -> tuple[Path, Path]:
    """(export folder, PyTorch model folder) from a run folder, else by exporting the cached teacher."""
    if run is not None:
        if not (run / "artifacts").is_dir():
            raise BenchmarkError(f"'{run}' has no artifacts/ folder; pass a run folder written by `tinybert-edge "
                                 "pipeline`, or leave out --run to export the cached teacher")
        return run / "artifacts", run / "student"
    teachers = sorted(TEACHERS.glob("*/model.safetensors"))
    if not teachers:
        raise BenchmarkError(f"no run folder given and no cached teacher under '{TEACHERS}'; run `tinybert-edge "
                             "pipeline` first or pass --run")
    from tinybert_edge.converters.chain import export

    model = teachers[0].parent
    export(model, work / "artifacts")
    return work / "artifacts", model


def _cold_start(bundle: Path, runtime: str, threads: int, text: str, repeats: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _COLD_START, str(bundle), runtime, str(threads), text],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise BenchmarkError(f"the cold-start probe failed: {out.stderr.strip()[-400:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


def _per_call_ms(call: Any, texts: Sequence[str], warmup: int = 5) -> list[float]:
    for text in texts[:warmup]:
        call(text)
    samples = []
    for text in texts:
        start = time.perf_counter()
        call(text)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def measure(run: Path | None, parity_n: int, seed: int, threads: int, latency_texts: int, cold_repeats: int,
            work: Path) -> tuple[dict[str, Metric], dict[str, Any]]:
    from tinybert_edge.app.bundle import package
    from tinybert_edge.runtime.bundle import verify
    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.runtime.tokenizer_corpus import generate_corpus, parity_mismatches

    export_dir, student = _artifacts(run, work)
    bundle = package(export_dir, work / "bundle.zip", student=student if student.is_dir() else None)
    verified = verify(bundle)
    model = load_bundle(bundle, model="litert", threads=threads)
    settings = model.tokenizer.settings
    vocab = work / "vocab.txt"
    vocab.write_bytes(_read_member(bundle, "vocab.txt"))

    log.info("tokenizer parity over %d strings", parity_n)
    started = time.perf_counter()
    parity = parity_mismatches(parity_n, seed, vocab, settings)
    parity_s = time.perf_counter() - started

    texts = [t for t in generate_corpus(latency_texts, seed + 1, list(model.tokenizer.vocab)) if t.strip()]
    runtime_ms = {}
    for runtime in [m["runtime"] for m in model.manifest["models"]]:
        session = load_bundle(bundle, model=runtime, threads=threads)
        runtime_ms[runtime] = _per_call_ms(session.predict, texts)
    torch_ms = _torch_path_ms(student, texts, settings.max_length, threads)
    cold = {runtime: _cold_start(bundle, runtime, threads, "the movie was great", cold_repeats)
            for runtime in runtime_ms}

    p50 = {runtime: float(np.percentile(samples, 50)) for runtime, samples in runtime_ms.items()}
    torch_p50 = float(np.percentile(torch_ms, 50)) if torch_ms else None
    metrics = {
        f"tokenizer mismatches vs HF BertTokenizerFast ({parity_n} strings)": Metric(
            parity["mismatches"], "strings", direction="lower_is_better", target=0),
        "bundle size (zip)": Metric(bundle.stat().st_size / 2**20, "MiB", direction="lower_is_better"),
    }
    for runtime, value in p50.items():
        metrics[f"runtime per-call p50, {runtime} (tokenize + run) vs SDK torch path"] = Metric(
            value, "ms", direction="lower_is_better", baseline=torch_p50)
        metrics[f"runtime cold start p50, {runtime} (fresh process: import + load + first prediction)"] = Metric(
            float(np.median([c["total_s"] for c in cold[runtime]])), "s", direction="lower_is_better")
    extra = {
        "bundle": str(bundle), "export_dir": str(export_dir), "student": str(student),
        "manifest_models": model.manifest["models"], "tokenizer": model.manifest["tokenizer"],
        "parity": {**parity, "seconds": parity_s}, "verify": verified, "threads": threads,
        "latency_ms": {**runtime_ms, "torch": torch_ms}, "latency_texts": len(texts), "cold_start": cold,
        "files": model.manifest["files"],
    }
    return metrics, extra


def _read_member(bundle: Path, name: str) -> bytes:
    from tinybert_edge.runtime.bundle import read_bundle_files

    return read_bundle_files(bundle)[name]


def _torch_path_ms(student: Path, texts: Sequence[str], max_length: int, threads: int) -> list[float]:
    """The SDK's torch path on the same texts: transformers' tokenizer + the PyTorch student, one text per call."""
    if not (student / "config.json").is_file():
        return []
    from transformers import AutoTokenizer

    from tinybert_edge.runtime.sessions import TorchSession

    tokenizer = AutoTokenizer.from_pretrained(student)
    session = TorchSession(student, threads=threads)

    def call(text: str) -> np.ndarray:
        encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="np")
        return session.run({k: v.astype(np.int64) for k, v in encoded.items()})

    return _per_call_ms(call, texts)


def merge_java_report(metrics: dict[str, Metric], extra: dict[str, Any], path: Path) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    for name, data in (report.get("metrics") or {}).items():
        metrics[f"java: {name}"] = Metric.from_dict(data)
    extra["java_report"] = {"path": str(path), **{k: v for k, v in report.items() if k != "metrics"}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.bundle")
    parser.add_argument("--run", type=Path, default=Path("runs/default"),
                        help="run folder with artifacts/ and student/ (default runs/default; 'none' to export the "
                             "cached teacher)")
    parser.add_argument("--parity-n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-texts", type=int, default=300)
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument("--java-report", type=Path, default=None, help="Java bridge report to merge")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    run = None if str(args.run) == "none" else args.run
    with tempfile.TemporaryDirectory(prefix="bundle-suite-") as work:
        metrics, extra = measure(run, args.parity_n, args.seed, args.threads, args.latency_texts,
                                 args.cold_repeats, Path(work))
    if args.java_report:
        merge_java_report(metrics, extra, args.java_report)
    # A tokenizer that disagrees with Hugging Face's on any string fails the run, after its numbers are written.
    return SuiteOutcome(metrics, extra, exit_code=0 if extra["parity"]["mismatches"] == 0 else 1)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("bundle", build_parser(), _measure, argv)


if __name__ == "__main__":
    raise SystemExit(main())
