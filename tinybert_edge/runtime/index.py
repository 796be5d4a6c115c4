"""A small on-device search index over a bundle's sentence vectors: exact top-k by dot product in numpy.

The index is one .npz file (numpy arrays only, read with allow_pickle=False) holding the document vectors as a
float32 matrix, or as an int8 matrix with one float32 scale per row (symmetric per-row quantization: a quarter of
the bytes, scores within about 1% of the float32 ones), and a JSON header: the documents' ids, the sha256 of the
bundle model file that embedded them and the sha256 of every array. `load_index` checks all of it before any
search: a file that is not such an index, an array whose bytes changed (a corrupted or edited file) and an index
built by another model (its vectors live in another space, so its results would be meaningless) are refused.

    model = load_bundle("bundle/")
    build_index(model, documents).save("notes.index.npz")
    index = load_index("notes.index.npz", model)
    index.search("where did I park", k=5)   # [Hit(rank=1, id=..., score=...), ...]

Scores are dot products of the query vector and the document vectors, i.e. cosine similarities for a model that
normalises its vectors (all-MiniLM-L6-v2 and its students do).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.errors import BundleError, ConfigError, DataError

FORMAT_NAME = "tinybert-edge-index"
SCHEMA_VERSION = 1
PRECISIONS = ("float32", "int8")
_HEADER = "header"


@dataclass(frozen=True)
class Hit:
    """One search result: its rank (1 = best), the document's id and the dot-product score."""

    rank: int
    id: str
    score: float


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def model_sha256(model: Any) -> str:
    """The sha256 of the bundle model file that produces a BundleModel's vectors (from its checked manifest)."""
    entry = model.manifest["files"].get(model.file)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise BundleError(f"the bundle '{model.where}' lists no sha256 for '{model.file}'; repackage it")
    return entry["sha256"]


class SentenceIndex:
    """Document vectors with their ids, bound to the model that embedded them (see the module docstring)."""

    def __init__(self, vectors: np.ndarray, ids: Sequence[str], model_hash: str, model_file: str,
                 scales: np.ndarray | None = None, model: Any = None) -> None:
        self.vectors = vectors
        self.scales = scales
        self.ids = [str(i) for i in ids]
        self.model_hash = model_hash
        self.model_file = model_file
        self.model = model
        if len(self.ids) != len(vectors) or (scales is not None and len(scales) != len(vectors)):
            raise DataError(f"{len(vectors)} vectors but {len(self.ids)} ids"
                            + ("" if scales is None else f" and {len(scales)} scales"))

    @property
    def precision(self) -> str:
        return "int8" if self.vectors.dtype == np.int8 else "float32"

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors (and scales): what the index costs in memory and, nearly, on disk."""
        return int(self.vectors.nbytes + (0 if self.scales is None else self.scales.nbytes))

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Dot products [queries, documents] of float32 query vectors with every document vector."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise DataError(f"query vectors of shape {queries.shape} do not match the index's dimension "
                            f"{self.dimension}")
        if self.scales is None:
            return queries @ self.vectors.T
        return (queries @ self.vectors.astype(np.float32).T) * self.scales[None, :]

    def search_vectors(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """The top `k` documents of each query vector, best first (exact; ties by document order)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"k = {k!r} must be a positive integer")
        scores = self.scores(queries)
        k = min(k, scores.shape[1])
        results = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            top = top[np.lexsort((top, -row[top]))]
            results.append([Hit(rank + 1, self.ids[i], float(row[i])) for rank, i in enumerate(top)])
        return results

    def search(self, query: str | Sequence[str], k: int = 10) -> list[Hit] | list[list[Hit]]:
        """The top `k` documents for a query text (a list of Hit), or for each of a list of texts."""
        if self.model is None:
            raise ConfigError("this index is not bound to a model; open it with load_index(path, model) to search "
                              "with texts, or use search_vectors")
        single = isinstance(query, (str, bytes, bytearray))
        hits = self.search_vectors(self.model.embed([query] if single else list(query)), k)
        return hits[0] if single else hits

    def save(self, path: str | Path) -> Path:
        """Write the index to `path` (.npz) atomically: a temporary file, renamed when complete."""
        from tinybert_edge.io import atomic_path

        header = {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, "precision": self.precision,
                  "count": len(self), "dimension": self.dimension, "ids": self.ids, "model_sha256": self.model_hash,
                  "model_file": self.model_file, "vectors_sha256": _sha256(self.vectors),
                  "scales_sha256": None if self.scales is None else _sha256(self.scales)}
        arrays = {"vectors": self.vectors,
                  _HEADER: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
        if self.scales is not None:
            arrays["scales"] = self.scales
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        return Path(path)


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: q = round(v / s) with s = max|v| / 127 (s = 1 for an all-zero row)."""
    values = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(values).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    return np.clip(np.rint(values / scales[:, None]), -127, 127).astype(np.int8), scales.astype(np.float32)


def build_index(model: Any, documents: Sequence[str], ids: Sequence[str] | None = None,
                precision: str = "float32", batch_size: int = 64) -> SentenceIndex:
    """Embed `documents` with a BundleModel of the embedding task and index them; `ids` default to the texts."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision = {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
    documents = list(documents)
    if not documents:
        raise DataError("no documents to index; give at least one text")
    if ids is not None and len(ids) != len(documents):
        raise DataError(f"{len(documents)} documents but {len(ids)} ids; give one id per document")
    vectors = np.concatenate([model.embed(documents[i : i + batch_size])
                              for i in range(0, len(documents), batch_size)])
    scales = None
    if precision == "int8":
        vectors, scales = quantize_rows(vectors)
    return SentenceIndex(vectors, list(ids) if ids is not None else documents, model_sha256(model), model.file,
                         scales, model)


def load_index(path: str | Path, model: Any = None) -> SentenceIndex:
    """Read and check an index file (see the module docstring); with `model` (a BundleModel), refuse an index
    that another model built and bind it for `search`."""
    where = str(path)
    fix = "rebuild it with build_index(model, documents).save(path)"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise DataError(f"index '{where}' does not exist; {fix}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise BundleError(f"index '{where}' is corrupted or not an index file ({type(exc).__name__}: {exc}); "
                          f"{fix}") from exc
    try:
        header = json.loads(arrays[_HEADER].tobytes().decode("utf-8"))
        if header.get("format") != FORMAT_NAME or not isinstance(header.get("ids"), list):
            raise ValueError(f"format {header.get('format')!r}")
    except (KeyError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise BundleError(f"'{where}' is not a {FORMAT_NAME} file ({exc}); {fix}") from exc
    if header.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"index '{where}' has schema version {header.get('schema_version')!r}; this runtime reads "
                          f"{SCHEMA_VERSION}: {fix}")
    vectors = arrays.get("vectors")
    scales = arrays.get("scales")
    problems = []
    expected_dtype = np.int8 if header.get("precision") == "int8" else np.float32
    if vectors is None or vectors.dtype != expected_dtype or vectors.ndim != 2 or \
            vectors.shape != (header.get("count"), header.get("dimension")):
        problems.append(f"vectors {None if vectors is None else (vectors.dtype.name, vectors.shape)} are not the "
                        f"{header.get('count')} x {header.get('dimension')} {header.get('precision')} the header says")
    elif _sha256(vectors) != header.get("vectors_sha256"):
        problems.append("the vectors' sha256 differs from the header's (the file was changed or damaged)")
    if header.get("precision") == "int8":
        if scales is None or scales.dtype != np.float32 or scales.shape != (header.get("count"),):
            problems.append("the int8 vectors' scales are missing or misshapen")
        elif _sha256(scales) != header.get("scales_sha256"):
            problems.append("the scales' sha256 differs from the header's (the file was changed or damaged)")
    if len(header["ids"]) != header.get("count"):
        problems.append(f"{len(header['ids'])} ids for {header.get('count')} vectors")
    if problems:
        raise BundleError(f"index '{where}' is corrupted: {'; '.join(problems)}; {fix}")
    index = SentenceIndex(vectors, header["ids"], header["model_sha256"], header.get("model_file", ""),
                          scales if header.get("precision") == "int8" else None)
    if model is not None:
        if model.task.name != "embedding":
            raise BundleError(f"the bundle '{model.where}' is a {model.task.name} bundle; an index needs an "
                              "embedding bundle")
        found = model_sha256(model)
        if found != index.model_hash:
            raise BundleError(
                f"index '{where}' was built by another model (its model file sha256 {index.model_hash[:12]}..., "
                f"'{index.model_file}'; this bundle's '{model.file}' is {found[:12]}...): its vectors would not be "
                f"comparable with this model's queries; {fix} using this bundle")
        index.model = model
    return index


__all__ = ["Hit", "SentenceIndex", "build_index", "load_index", "model_sha256", "quantize_rows"]
