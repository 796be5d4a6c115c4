"""The embeddings suite's retrieval agreement between variants: each question's top-10 paragraphs by cosine, and
the mean overlap of two variants' lists (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from tinybert_edge.benchmarks.suites.embeddings import TOP_K, VARIANTS, conll_passages, top_k, top_k_overlap
from tinybert_edge.errors import ConfigError


def test_top_k_ranks_documents_by_cosine_best_first():
    documents = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [10.0, 1.0]])
    queries = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert top_k(queries, documents, 3).tolist() == [[0, 4, 2], [1, 2, 4]]
    assert top_k(queries, documents).shape == (2, 5)  # k capped at the number of documents


def test_top_k_overlap_counts_shared_documents_whatever_their_order():
    reference = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert top_k_overlap(reference, reference[:, ::-1]) == 1.0
    assert top_k_overlap(reference, np.array([[0, 1, 8, 9], [9, 8, 10, 11]])) == pytest.approx((0.5 + 0.0) / 2)
    with pytest.raises(ConfigError, match="cannot be compared"):
        top_k_overlap(reference, reference[:, :2])


def test_an_int8_artifact_whose_vectors_drift_loses_retrieval_agreement():
    rng = np.random.default_rng(0)
    documents, queries = rng.normal(size=(300, 16)), rng.normal(size=(40, 16))
    reference = top_k(queries, documents)
    close = top_k(queries + rng.normal(scale=1e-3, size=queries.shape), documents)
    far = top_k(rng.normal(size=queries.shape), documents)
    assert top_k_overlap(reference, close) > 0.95 > 0.2 > top_k_overlap(reference, far)
    assert TOP_K == 10 and VARIANTS[-1] == "student · TFLite int8"


def test_conll_documents_become_passages_cut_at_sentence_ends(tmp_path):
    lines = ["-DOCSTART- -X- -X- O", ""]
    for document in range(2):
        for sentence in range(5):
            lines += [f"w{document}{sentence}{k} NN O O" for k in range(12)] + [""]
        lines += ["-DOCSTART- -X- -X- O", ""]
    lines += ["short NN O O", ""]  # a last document too short to be a passage
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    passages = conll_passages(path, max_words=30)
    # 60 words per document in sentences of 12: passages of 24 and 24 words; each document's 12-word tail and the
    # one-word document are under MIN_PASSAGE_WORDS and dropped; tags never reach the text.
    assert [len(p.split()) for p in passages] == [24, 24, 24, 24]
    assert passages[0].split()[:13] == [f"w00{k}" for k in range(12)] + ["w010"]
    assert passages[2].startswith("w100 ") and not any("NN" in p for p in passages)


def test_the_report_table_has_a_row_per_variant_and_names_missed_targets():
    from tinybert_edge.benchmarks.results import Metric
    from tinybert_edge.benchmarks.suites.embeddings import render_report

    rows = [{"variant": name, "spearman": 0.86, "recall@10": 0.9, "mrr@10": 0.7, "size_mb": 16.5,
             "p50_ms_b1_s128": 3.9, "throughput_b32_s128_per_s": 237.8, "peak_rss_mb_b32": 271.0,
             "index_mb_per_10k_docs": {"float32": 14.65, "int8": 3.7},
             **({"top10_overlap_with_fp32_student": 0.936} if "int8" in name and "student" in name else {})}
            for name in VARIANTS]
    extra = {"budget": {"name": "cpu", "student": "teacher-layers:2,4,6", "intermediate_epochs": 1.0,
                        "prediction_epochs": 2.0, "max_length": 256, "selection_pairs": 500},
             "corpus": {"texts": 24024, "available": {"STS-B train": 10534}},
             "squad": {"paragraphs": 2067, "questions": 1000}, "threads": 2}
    metrics = {"speedup": Metric(1.5, "x", target=2.0), "share": Metric(0.99, "fraction", target=0.97)}
    report = render_report(rows, extra, metrics)
    table = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(VARIANTS) and "| student · ONNX int8 | 0.8600 | 0.900 |" in report
    assert table[1].endswith("| — |") and table[-1].endswith("| 0.936 |")
    assert "14.65 MB float32, 3.7 MB int8" in report
    assert "- missed: speedup = 1.5 (target 2)" in report and "share =" not in report


def test_latency_rounds_rotate_the_variants_and_take_the_median_round(monkeypatch):
    from dataclasses import replace

    from tinybert_edge.benchmarks.stats import LatencyStats
    from tinybert_edge.benchmarks.suites import embeddings

    calls = []
    # The variant measured first in a round is slowed by a burst of other work (12 ms instead of its usual value).
    usual = {"a": 2.0, "b": 4.0, "c": 8.0}

    def fake_latency(backend, path, tokenizer, texts, budget, threads):
        first = len(calls) % 3 == 0
        calls.append(path)
        p50 = 12.0 if first else usual[path]
        stats = LatencyStats.from_samples([p50] * 10).summary()
        return {"b1": {"batch_size": 1, "samples_ms": [p50] * 10, "stats": stats, "peak_rss_mb": 50.0 + len(calls),
                       "error": None}}

    monkeypatch.setattr(embeddings, "latency", fake_latency)
    budget = replace(embeddings.BUDGETS["cpu"], latency_rounds=3)
    speed = embeddings.rotated_latency({name: ("onnxruntime", name) for name in "abc"}, None, [], budget, 1)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    # Each variant met the burst in exactly one round; the p50 of its pooled calls is its usual value.
    assert {name: speed[name]["b1"]["p50_ms"] for name in "abc"} == usual
    assert speed["a"]["b1"]["round_p50_ms"] == [12.0, 2.0, 2.0] and speed["a"]["b1"]["samples"] == 30
    assert speed["a"]["b1"]["peak_rss_mb"] == 50.0 + 8  # the highest of its rounds (its last call was the 8th)
