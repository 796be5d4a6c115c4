"""The `platforms` suite: every way to run a user's model on a device, side by side, string in and label out.

    python -m tinybert_edge.benchmarks.suites.platforms --student runs/default/student \
        --data ../shared/data/sst2/dev.tsv

From one fine-tuned student folder and the user's dev texts, in one run and one process, with the same thread count
for every runtime that takes one:
- the reference: the Hugging Face tokenizer and the PyTorch fp32 model (its labels are what every path must give);
- our bundle runtime (`tinybert-edge package` + `load_bundle`) with the Rust and with the pure-Python tokenizer, on
  the int8 TFLite and on the int8 ONNX;
- ONNX with the tokenizer in the graph (`onnx-text`, onnxruntime-extensions);
- the MediaPipe Text Classifier .tflite through mediapipe's Python `TextClassifier` (MediaPipe picks its own threads);
- the int8 ExecuTorch .pte (XNNPACK) fed by the Rust tokenizer;
- the anchor a user would pick: `transformers.pipeline("text-classification")` over optimum's
  `ORTModelForSequenceClassification` on the same int8 ONNX file.
Every artifact comes from the one export chain, each parity-checked, the tokenizer-carrying ones through the
tokenizer-agreement gate on the same dev texts: MediaPipe at the one sequence length it allows, ONNX and ExecuTorch
with dynamic lengths up to it, and the int8 TFLite of our bundle with `--tflite-buckets` signature lengths fitted to
the user's texts (converters.buckets; the texts of `--search-split`, apart from the judged ones), as a user packaging
for a device would export it.

Each path classifies every dev text once, one call per text (its labels against PyTorch's), then is timed in
`--rounds` rounds of `--texts-per-round` texts, the paths in a rotated order each round (benchmarks.rounds), so that
a change in machine load falls on every path alike; per-call latency is a path's p50 over the pooled calls.
Targets (issue 19): every path agrees with PyTorch's labels on >= 99.5% of the dev texts; the fastest path is >= 2x
faster than the anchor (batch 1, same threads); the int8 .pte is <= 1.05x the size of our int8 TFLite.
Writes benchmarks/results/platforms.json, with the CPU's instruction sets in its environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main
from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

AGREEMENT_TARGET = 0.995
SPEEDUP_TARGET = 2.0
PTE_SIZE_TARGET = 1.05  # of our int8 TFLite's size
REFERENCE = "PyTorch fp32 + HF tokenizer (reference)"
ANCHOR = "transformers pipeline + optimum ORTModel (int8 ONNX)"
# Not a string-to-label path: the int8 ONNX model alone on token ids encoded beforehand, timed in the same rounds. It is
# the floor under every path that runs that file, so anchor / floor bounds the speedup any of them can reach.
FLOOR = "floor: int8 ONNX model alone, ids encoded beforehand (not a path)"
# The same for our bundle's int8 TFLite: its signature runner alone on feeds padded to their buckets beforehand.
FLOOR_TFLITE = "floor: our int8 TFLite model alone, ids encoded and padded beforehand (not a path)"
FLOORS = (FLOOR, FLOOR_TFLITE)
CONFIDENCE = 0.95
SEARCH_TEXTS = 2000  # the int8 search's texts (--int8-agreement): enough for a 99.5% lower bound with a flip or two


def build_artifacts(student: Path, work: Path, texts: Sequence[str], length: int, threads: int,
                    min_tokenizer_agreement: float, qconfig: Any = None,
                    search_texts: Sequence[str] | None = None,
                    buckets: Sequence[int] | None = None) -> tuple[dict[str, Any], Path]:
    """Every artifact through the one chain (the TFLite with the signature lengths `buckets`, default the one
    `length`, the others at `length`), and our bundle of the int8 TFLite and ONNX.

    Each artifact is parity-checked on `search_texts` when given (texts apart from the judged ones, on which a
    `qconfig` with min_agreement searches the int8 ONNX's fp32 nodes), else on the judged texts."""
    from tinybert_edge.app.bundle import package
    from tinybert_edge.artifacts import Artifact, export_path, metadata_path
    from tinybert_edge.converters import ExportConfig, export
    from tinybert_edge.converters.chain import PARITY_EXAMPLES, parity_inputs
    from tinybert_edge.converters.tokenizer_gate import TokenizerGate
    from tinybert_edge.data import TextClassificationData

    checked = list(search_texts if search_texts is not None else texts)
    data = TextClassificationData(texts=checked, labels=[0] * len(checked), label_names=["-"],
                                  source="search texts" if search_texts is not None else "dev texts")
    # every search text (the search needs hundreds to show its target), else the chain's default sample of the texts
    batches, described = parity_inputs(student, data, max_length=length,
                                       n=len(checked) if search_texts is not None else PARITY_EXAMPLES)
    common = dict(qconfig=qconfig, parity_batches=batches, parity_description=described, reuse=True, threads=threads,
                  texts=list(texts), texts_description="dev texts",
                  tokenizer_gate=TokenizerGate(min_dev_agreement=min_tokenizer_agreement))
    artifacts = export(student, work / "artifacts", formats=("onnx", "executorch", "onnx-text", "mediapipe"),
                       config=ExportConfig(sequence_buckets=(length,)), **common)
    tflite_config = ExportConfig(sequence_buckets=tuple(buckets or (length,)))
    # The chain reuses a TFLite whose signatures cover the lengths asked, but the bundle runs each text in the
    # smallest signature that holds it: one with other lengths besides (an earlier --tflite-buckets) is made again.
    tflite = export_path(work / "artifacts", "tflite", "int8")
    if metadata_path(tflite).is_file() and Artifact.load(tflite).sequence_buckets != tflite_config.sequence_buckets:
        shutil.rmtree(tflite.parent)
    artifacts += export(student, work / "artifacts", formats=("tflite",), config=tflite_config, **common)
    made = {f"{a.format}-{a.precision}": a for a in artifacts}
    bundle = work / "bundle"
    package(work / "artifacts", bundle, runtimes=("litert", "onnxruntime"), overwrite=True, student=student)
    return made, bundle


def paths(student: Path, made: dict[str, Any], bundle: Path, length: int, threads: int,
          margins: dict[str, float]) -> tuple[dict[str, Callable[[str], str]], dict[str, str], list[Any]]:
    """{path name: text -> label}, {path name: what it runs}, and objects to close afterwards. The reference fills
    `margins` with each text's PyTorch probability margin (top-1 minus top-2 softmax probability)."""
    import torch
    from transformers import AutoTokenizer

    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.runtime.executorch_session import ExecuTorchSession
    from tinybert_edge.runtime.mediapipe_text import MediaPipeTextSession
    from tinybert_edge.runtime.onnx_text import OnnxTextSession
    from tinybert_edge.runtime.sessions import TorchSession

    torch.set_num_threads(threads)
    labels = made["onnx-int8"].label_names
    hf = AutoTokenizer.from_pretrained(student)
    reference = TorchSession(student, threads=threads)

    def torch_label(text: str) -> str:
        encoded = hf(text, truncation=True, max_length=length, return_tensors="np")
        outputs = reference.run({k: v.astype(np.int64) for k, v in encoded.items()})
        logits = np.asarray(outputs[0], np.float64).reshape(-1)  # batch 1: one row
        probabilities = np.sort(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())
        margins[text] = float(probabilities[-1] - probabilities[-2]) if len(probabilities) > 1 else 1.0
        return labels[int(np.argmax(logits))]

    run: dict[str, Callable[[str], str]] = {REFERENCE: torch_label}
    what = {REFERENCE: f"{type(hf).__name__} + torch {torch.__version__} fp32, {student}"}
    for runtime, artifact in (("litert", "tflite-int8"), ("onnxruntime", "onnx-int8")):
        for kind in ("rust", "python"):
            model = load_bundle(bundle, model=runtime, threads=threads, tokenizer=kind)
            name = f"our runtime · {'TFLite' if runtime == 'litert' else 'ONNX'} int8 · {kind} tokenizer"
            run[name] = lambda text, model=model: model.predict(text).label
            what[name] = f"load_bundle(model={runtime!r}, tokenizer={kind!r}) on {made[artifact].path.name}"
    onnx_text = OnnxTextSession(made["onnx-text-int8"].path, threads=threads)
    run["ONNX, tokenizer in the graph (int8)"] = lambda text: onnx_text.run_text(text)[1]
    what["ONNX, tokenizer in the graph (int8)"] = "onnxruntime + onnxruntime-extensions BertTokenizer op"
    mediapipe = MediaPipeTextSession(made["mediapipe-int8"].path)
    run["MediaPipe Text Classifier (int8)"] = lambda text: mediapipe.run_text(text)[1]
    what["MediaPipe Text Classifier (int8)"] = "mediapipe.tasks.python.text.TextClassifier (its own threads)"
    pte = ExecuTorchSession(made["executorch-int8"].path, threads=threads)
    rust = load_bundle(bundle, model="litert", threads=threads, tokenizer="rust").tokenizer

    def executorch_label(text: str) -> str:
        encoding = rust.encode(text)
        feed = {"input_ids": np.array([encoding.input_ids], dtype=np.int64),
                "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([encoding.token_type_ids], dtype=np.int64)}
        return labels[int(np.argmax(pte.run(feed)[0]))]

    run["ExecuTorch int8 (XNNPACK) · rust tokenizer"] = executorch_label
    what["ExecuTorch int8 (XNNPACK) · rust tokenizer"] = "executorch.runtime.Runtime + our Rust tokenizer"
    run[ANCHOR], what[ANCHOR] = optimum_pipeline(made["onnx-int8"].path, length, threads)
    run[FLOOR], what[FLOOR] = model_alone(made["onnx-int8"].model_file, rust, labels, threads)
    run[FLOOR_TFLITE], what[FLOOR_TFLITE] = tflite_alone(load_bundle(bundle, model="litert", threads=threads,
                                                                     tokenizer="rust"), labels)
    return run, what, [mediapipe]


def optimum_pipeline(onnx_folder: Path, length: int, threads: int) -> tuple[Callable[[str], str], str]:
    """What a user would write: transformers' text-classification pipeline over optimum's ORTModel, same file."""
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = ORTModelForSequenceClassification.from_pretrained(onnx_folder, file_name="model_quantized.onnx",
                                                              session_options=options)
    classifier = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(onnx_folder))

    def label(text: str) -> str:
        return classifier(text, truncation=True, max_length=length)[0]["label"]

    return label, "transformers.pipeline('text-classification', ORTModelForSequenceClassification(model_quantized.onnx))"


def model_alone(onnx_file: Path, tokenizer: Any, labels: Sequence[str], threads: int,
                ) -> tuple[Callable[[str], str], str]:
    """The int8 ONNX session by itself: each text's feed is encoded on its first call and kept, so every later call
    (the timed rounds follow a pass over all texts) times the model alone."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds: dict[str, dict[str, np.ndarray]] = {}

    def label(text: str) -> str:
        feed = feeds.get(text)
        if feed is None:
            encoding = tokenizer.encode(text)
            feed = feeds[text] = {name: np.array([getattr(encoding, name)], dtype=np.int64) for name in names}
        return labels[int(np.argmax(session.run(None, feed)[0]))]

    return label, f"onnxruntime.InferenceSession({onnx_file.name}) on cached token ids"


def tflite_alone(model: Any, labels: Sequence[str]) -> tuple[Callable[[str], str], str]:
    """Our bundle's int8 TFLite by itself: each text's padded feed (and the signature of its bucket) is made on its
    first call and kept, so every later call times the signature runner alone."""
    feeds: dict[str, tuple[Any, dict[str, np.ndarray], Sequence[str]]] = {}

    def label(text: str) -> str:
        prepared = feeds.get(text)
        if prepared is None:
            prepared = feeds[text] = model.runner.feed(model.tokenizer.encode(text))
        runner, feed, outputs = prepared
        return labels[int(np.argmax(runner(**feed)[outputs[0]][0]))]

    return label, f"the bundle's LiteRT signature runners ({model.file}) on cached padded feeds"


def timed_calls(call: Callable[[str], str], texts: Sequence[str]) -> tuple[list[float], list[str]]:
    samples, labels = [], []
    for text in texts:
        start = time.perf_counter()
        labels.append(call(text))
        samples.append((time.perf_counter() - start) * 1e3)
    return samples, labels


def dev_texts(data: str, split: str = "all", encoding_errors: str = "strict") -> list[str]:
    """The texts of a labelled data file: all of them, or one part of the pipeline's seeded 80/10/10 split."""
    from tinybert_edge.data import DataSpec, load_data, split_data

    loaded = load_data(DataSpec(path=data, encoding_errors=encoding_errors))
    if split == "all":
        return list(loaded.texts)
    train, dev, test = split_data(loaded)
    return list({"train": train, "dev": dev, "test": test}[split].texts)


def run(student: str | Path, data: str, work_dir: str | Path, *, length: int = 128, threads: int = 2,
        max_texts: int | None = None, rounds: int = 5, texts_per_round: int = 200, warmup: int = 10,
        min_tokenizer_agreement: float = 0.99, split: str = "all", encoding_errors: str = "strict",
        int8_agreement: float | None = None, search_split: str = "train", tflite_buckets: int = 8,
        ) -> tuple[dict[str, Metric], dict[str, Any]]:
    from tinybert_edge.benchmarks.rounds import pooled_stats, rotated, round_p50s, settle
    from tinybert_edge.benchmarks.stats import paired_p50_ratio_interval
    from tinybert_edge.converters.artifact import check_source

    student = check_source(student, (length,)).folder
    apart = split != "all" and search_split != split
    if int8_agreement is not None and not apart:
        raise ConfigError(f"--int8-agreement searches the int8 ONNX on --search-split {search_split!r} texts, "
                          f"which must be apart from the judged ones (--split {split!r}): pass --split dev (or "
                          "test) and --search-split train")
    texts = dev_texts(data, split, encoding_errors)[: max_texts or None]
    # Up to SEARCH_TEXTS texts apart from the judged ones: the int8 search chooses on them and the TFLite's lengths
    # are fitted to them (to the judged texts themselves when there are none apart).
    pool = dev_texts(data, search_split, encoding_errors) if apart else texts
    chosen = random.Random(0).sample(pool, min(SEARCH_TEXTS, len(pool)))
    qconfig, search_texts = None, None
    if int8_agreement is not None:
        from tinybert_edge.converters import QuantizationConfig

        qconfig, search_texts = QuantizationConfig.for_this_cpu(min_agreement=int8_agreement), chosen
    fit = fit_tflite_buckets(student, chosen, search_split if apart else f"judged ({split})", length, tflite_buckets)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    made, bundle = build_artifacts(student, work, texts, length, threads, min_tokenizer_agreement, qconfig,
                                   search_texts, fit["buckets"])
    built_s = time.perf_counter() - started
    margins: dict[str, float] = {}
    calls, what, to_close = paths(student, made, bundle, length, threads, margins)
    try:
        labels, first_pass = {}, {}
        for name, call in calls.items():
            timed_calls(call, texts[:warmup])
            first_pass[name], labels[name] = timed_calls(call, texts)
            log.info("%s: labels of %d texts, p50 %.2f ms", name, len(texts), float(np.median(first_pass[name])))
        # The reference is timed once, in the first pass: its labels are what it is here for.
        names = [name for name in calls if name != REFERENCE]
        by_round: dict[str, list[list[float]]] = {name: [] for name in names}
        load_average = os.getloadavg()
        for index in range(rounds):
            start = (index * texts_per_round) % max(1, len(texts))
            chunk = (texts + texts)[start : start + min(texts_per_round, len(texts))]
            for name in rotated(names, index):
                settle()  # the previous path's runtime threads park first (rounds.SETTLE_SECONDS)
                by_round[name].append(timed_calls(calls[name], chunk)[0])
    finally:
        for item in to_close:
            item.close()
    reference = labels[REFERENCE]
    agreement = {name: float(np.mean([a == b for a, b in zip(got, reference)])) for name, got in labels.items()}
    disagreeing = {name: [t for t, a, b in zip(texts, got, reference) if a != b][:10] for name, got in labels.items()}
    # Where the paths part from PyTorch: the reference's own probability margin on those texts, against all texts.
    disagreeing_margins = {name: sorted(margins[t] for t, a, b in zip(texts, got, reference) if a != b)
                           for name, got in labels.items() if name != REFERENCE}
    margin_quantiles = {f"p{q}": float(np.percentile(list(margins.values()), q)) for q in (1, 5, 10, 50)}
    stats = {name: pooled_stats(r).summary() for name, r in by_round.items()}
    stats[REFERENCE] = pooled_stats([first_pass[REFERENCE]]).summary()
    p50 = {name: s["p50_ms"] for name, s in stats.items()}
    candidates = [name for name in calls if name not in (REFERENCE, ANCHOR, *FLOORS)]
    fastest = min(candidates, key=lambda name: p50[name])
    speedup_interval = paired_p50_ratio_interval(by_round[ANCHOR], by_round[fastest], confidence=CONFIDENCE)
    sizes = {key: artifact.size_bytes for key, artifact in made.items()}
    mb = 2**20

    metrics: dict[str, Metric] = {}
    for name in candidates + [ANCHOR]:
        metrics[f"label agreement with PyTorch, {name}"] = Metric(agreement[name], "fraction", target=AGREEMENT_TARGET)
    metrics["lowest label agreement with PyTorch over every path"] = Metric(
        min(agreement[n] for n in candidates + [ANCHOR]), "fraction", target=AGREEMENT_TARGET)
    metrics[f"per-call p50 (string to label), {REFERENCE}, first pass"] = Metric(
        p50[REFERENCE], "ms", direction="lower_is_better", baseline=p50[ANCHOR])
    for name in candidates:
        metrics[f"per-call p50 (string to label), {name}"] = Metric(p50[name], "ms", direction="lower_is_better",
                                                                     baseline=p50[ANCHOR])
    metrics[f"per-call p50 (string to label), {ANCHOR}"] = Metric(p50[ANCHOR], "ms", direction="lower_is_better")
    for floor, artifact in ((FLOOR, "the int8 ONNX"), (FLOOR_TFLITE, "our int8 TFLite")):
        metrics[f"per-call p50, {floor}"] = Metric(p50[floor], "ms", direction="lower_is_better",
                                                   baseline=p50[ANCHOR])
        metrics[f"largest speedup over the anchor any path on {artifact} could reach (anchor / floor)"] = Metric(
            p50[ANCHOR] / p50[floor], "x")
    metrics[f"speedup of the fastest path ({fastest}) vs {ANCHOR}, batch 1, {threads} threads"] = Metric(
        p50[ANCHOR] / p50[fastest], "x", target=SPEEDUP_TARGET)
    metrics["ExecuTorch int8 .pte size vs our int8 TFLite"] = Metric(
        sizes["executorch-int8"] / mb, "MiB", direction="lower_is_better", baseline=sizes["tflite-int8"] / mb,
        target=PTE_SIZE_TARGET * sizes["tflite-int8"] / mb)
    for key, label in (("onnx-text-int8", "ONNX in-graph tokenizer"), ("mediapipe-int8", "MediaPipe tokenizer")):
        record = made[key].metadata["tokenizer_agreement"]
        metrics[f"{label}: token ids equal to Hugging Face's on the dev texts"] = Metric(
            record["dev"]["agreement"], "fraction")
        metrics[f"{label}: token ids equal to Hugging Face's on the tokenizer corpus"] = Metric(
            record["corpus"]["agreement"], "fraction")

    extra = {
        "student": str(student), "data": str(data), "split": split, "texts": len(texts), "sequence_length": length,
        "threads": threads, "load_average_1_5_15m_at_start": load_average, "rounds": rounds,
        "texts_per_round": texts_per_round, "warmup_calls": warmup,
        "paths": what, "agreement_with_pytorch": agreement, "disagreeing_texts": disagreeing,
        "reference_margin_of_disagreeing_texts": disagreeing_margins,
        "reference_margin_quantiles_all_texts": margin_quantiles,
        "latency_ms": stats, "p50_ms_per_round": {name: round_p50s(r) for name, r in by_round.items()},
        "first_pass_p50_ms": {name: float(np.median(v)) for name, v in first_pass.items()},
        "fastest_path": fastest, "speedup_ratio_interval": speedup_interval, "confidence": CONFIDENCE,
        "size_bytes": sizes, "artifacts": {key: str(a.path) for key, a in made.items()},
        "tokenizer_agreement": {key: {part: {k: v for k, v in made[key].metadata["tokenizer_agreement"][part].items()
                                             if k != "disagreeing"}
                                      | {"disagreeing": [d["text"] for d in
                                                         made[key].metadata["tokenizer_agreement"][part]["disagreeing"]]}
                                      for part in ("dev", "corpus")}
                                for key in ("onnx-text-int8", "mediapipe-int8")},
        "min_tokenizer_agreement": min_tokenizer_agreement,
        "parity": {key: a.metadata.get("parity", {}).get("argmax_agreement") for key, a in made.items()},
        "int8_onnx_search": _search_record(made["onnx-int8"], search_split, search_texts),
        "tflite_buckets": fit,
        "build_seconds": round(built_s, 1), "seconds": round(time.perf_counter() - started, 1),
    }
    extra["report_markdown"] = report_markdown(extra, candidates, p50)
    return metrics, extra


def report_markdown(extra: dict[str, Any], candidates: Sequence[str], p50: dict[str, float]) -> str:
    """The side-by-side table the README shows under the metrics."""
    stats, agreement = extra["latency_ms"], extra["agreement_with_pytorch"]
    anchor = p50[ANCHOR]
    lines = ["# platforms", "",
             f"String in, label out, one call per text: {extra['texts']} texts ({extra['split']}) of "
             f"`{extra['data']}` for the "
             f"labels; latency pooled over {extra['rounds']} rotated rounds of {extra['texts_per_round']} texts; "
             f"texts truncated at {extra['sequence_length']} tokens, {extra['threads']} thread(s) for every runtime that takes "
             f"a count (MediaPipe picks its own); the reference is timed in its labelling pass only. Load average of "
             f"the shared machine at the start: {extra['load_average_1_5_15m_at_start'][0]:.1f}. Student: "
             f"`{extra['student']}`.", "",
             "| path | p50 ms | p90 ms | p99 ms | speedup vs anchor | agreement with PyTorch |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in [REFERENCE, *candidates, ANCHOR, *FLOORS]:
        s = stats[name]
        lines.append(f"| {name} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | "
                     f"{anchor / p50[name]:.2f}x | {agreement[name]:.2%} |")
    tok = extra["tokenizer_agreement"]
    lines += ["", "Token ids equal to Hugging Face's: ONNX in-graph tokenizer "
              f"{tok['onnx-text-int8']['dev']['agreement']:.2%} of the dev texts, "
              f"{tok['onnx-text-int8']['corpus']['agreement']:.1%} of the adversarial tokenizer corpus; MediaPipe "
              f"{tok['mediapipe-int8']['dev']['agreement']:.2%} of the dev texts, "
              f"{tok['mediapipe-int8']['corpus']['agreement']:.1%} of the corpus. Sizes (bytes): "
              + ", ".join(f"{k} {v:,}" for k, v in extra["size_bytes"].items()) + "."]
    fit = extra.get("tflite_buckets")
    if fit:
        lines += ["", f"Our bundle's int8 TFLite has signatures at lengths {', '.join(map(str, fit['buckets']))} "
                  f"(`--tflite-buckets {len(fit['buckets'])}`), fitted to {fit['texts']:,} {fit['fitted_on']} texts "
                  f"(converters.buckets): those texts run at {fit['mean_padded_length']:.1f} tokens on average "
                  f"(mean length {fit['mean_length']:.1f}), against {fit['required_mean_padded_length']:.1f} at the "
                  f"one length {', '.join(map(str, fit['required']))}. The ONNX and ExecuTorch paths run each text "
                  "at its own length; MediaPipe at the one length."]
    search = extra.get("int8_onnx_search")
    if search:
        lines += ["", f"The int8 ONNX (every ONNX path and the anchor run it) keeps {len(search['fp32_nodes'])} of its "
                  f"{search['quantizable_nodes']} quantizable nodes fp32, searched until it decides as the fp32 "
                  f"student on at least {search['min_agreement']:.1%} (the lower end of the 95% interval) of "
                  f"{search['texts']:,} {search['split']} texts apart from the judged ones "
                  f"(`QuantizationConfig(min_agreement=...)`); there it agreed on {search['agreement']:.2%}."]
    interval = extra["speedup_ratio_interval"]
    if interval is not None:
        lines += ["", f"Speedup of the fastest path ({extra['fastest_path']}) over the anchor: "
                  f"{anchor / p50[extra['fastest_path']]:.2f}x, {extra['confidence']:.0%} interval over the rounds "
                  f"{interval[0]:.2f}–{interval[1]:.2f}x."]
    margins, quantiles = extra["reference_margin_of_disagreeing_texts"], extra["reference_margin_quantiles_all_texts"]
    parted = {name: values for name, values in margins.items() if values}
    if parted:
        lines += ["", "Where a path's label differs from PyTorch's, PyTorch's own top-1 minus top-2 probability on "
                  "that text (median / largest): " + "; ".join(
                      f"{name} {np.median(values):.3f} / {max(values):.3f} ({len(values)} texts)"
                      for name, values in parted.items())
                  + f". Over all texts the margin's 5th percentile is {quantiles['p5']:.3f}, its median "
                  f"{quantiles['p50']:.3f}."]
    return "\n".join(lines) + "\n"


def fit_tflite_buckets(student: Path, texts: Sequence[str], fitted_on: str, length: int,
                       count: int) -> dict[str, Any]:
    """The TFLite signature lengths (`count`, the longest `length`) fitted to the token lengths of `texts`."""
    from tinybert_edge.converters.buckets import fit_to_data
    from tinybert_edge.data import TextClassificationData

    unlabelled = TextClassificationData(texts=list(texts), labels=[0] * len(texts), label_names=["-"], source=fitted_on)
    return {**fit_to_data(student, unlabelled, length, count, fixed=(length,)).to_dict(), "fitted_on": fitted_on}


def _search_record(onnx: Any, split: str, texts: Sequence[str] | None) -> dict[str, Any] | None:
    """What the int8 ONNX's agreement search kept fp32 and on which texts (None: the all-int8 default)."""
    from tinybert_edge.converters.gate import agreement_summary

    summary = agreement_summary(onnx.metadata)
    if summary is None or texts is None:
        return None
    return {**summary, "split": split, "texts": len(texts)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.platforms",
                                     description="every on-device path side by side: string in, label out")
    parser.add_argument("--student", required=True, help="fine-tuned text classifier folder")
    parser.add_argument("--data", required=True, help="the user's dev texts (labelled data file; labels unused)")
    parser.add_argument("--split", choices=["all", "train", "dev", "test"], default="all",
                        help="all rows of --data, or one part of the pipeline's seeded 80/10/10 split (default: all)")
    parser.add_argument("--encoding-errors", choices=["strict", "replace", "ignore"], default="strict")
    parser.add_argument("--work-dir", default="runs/platforms", help="artifacts and bundle (reused when current)")
    parser.add_argument("--seq-length", type=int, default=128, help="the one sequence length (MediaPipe takes one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-texts", type=int, default=None, help="use the first N texts (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts-per-round", type=int, default=200)
    parser.add_argument("--min-tokenizer-agreement", type=float, default=0.99,
                        help="tokenizer-agreement gate of the onnx-text and MediaPipe exports on the dev texts")
    parser.add_argument("--int8-agreement", type=float, default=None, metavar="FRACTION",
                        help="search the int8 ONNX (every ONNX path runs it) to decide as the fp32 student on at "
                             f"least this share of up to {SEARCH_TEXTS:,} --search-split texts, keeping the nodes "
                             "that move its outputs most fp32 (default: the all-int8 dynamic default)")
    parser.add_argument("--search-split", choices=["train", "dev", "test"], default="train",
                        help="the part of --data the int8 search chooses on, and the TFLite's lengths are fitted "
                             "to; apart from --split (default: train)")
    parser.add_argument("--tflite-buckets", type=int, default=8, metavar="N",
                        help="signature lengths of our bundle's int8 TFLite, fitted to the --search-split texts, the "
                             "longest --seq-length (default: 8; 1: --seq-length alone)")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    metrics, extra = run(args.student, args.data, args.work_dir, length=args.seq_length, threads=args.threads,
                         max_texts=args.max_texts, rounds=args.rounds, texts_per_round=args.texts_per_round,
                         min_tokenizer_agreement=args.min_tokenizer_agreement, split=args.split,
                         encoding_errors=args.encoding_errors, int8_agreement=args.int8_agreement,
                         search_split=args.search_split, tflite_buckets=args.tflite_buckets)
    return SuiteOutcome(metrics, extra, details=extra["report_markdown"])


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("platforms", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
