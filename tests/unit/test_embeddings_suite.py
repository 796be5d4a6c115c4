"""The embeddings suite's retrieval agreement between variants: each question's top-10 paragraphs by cosine, and
the mean overlap of two variants' lists (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from tinybert_edge.benchmarks.suites.embeddings import TOP_K, VARIANTS, top_k, top_k_overlap
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
