"""The torch-free side of sentence embeddings (issue 17): `embed(texts)` from a bundle, and the on-device index
with `search(query, k)`, including the issue's bad inputs (empty texts, long texts, another model's index, a
corrupted index file)."""

from __future__ import annotations

import numpy as np
import pytest

from test_embedding_export import TEXTS, _batch, exported  # noqa: F401  (module fixture)
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.errors import BundleError, ConfigError

DOCUMENTS = ["good movie and great actor", "awful film and bad plot", "sun and rain on the road",
             "coffee and cake in the city", "the team won the game", "a warm day by the river"]


@pytest.fixture(scope="module")
def bundle(exported, tmp_path_factory):  # noqa: F811
    from tinybert_edge.app.bundle import package

    student, artifacts = exported
    out = tmp_path_factory.mktemp("embedding-bundle") / "bundle"
    package(artifacts["int8"].path.parent, out, runtimes=("onnxruntime",), precision="int8", student=student)
    return out


def test_embed_gives_the_exported_models_vectors(bundle, exported):  # noqa: F811
    from tinybert_edge.runtime.bundle import load_bundle, verify
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession

    student, artifacts = exported
    assert verify(bundle)["passed"]
    model = load_bundle(bundle)
    vectors = model.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    session = OnnxRuntimeSession(artifacts["int8"].path)
    # one text per call, unpadded, as the bundle runs
    expected = np.concatenate([session.run(_batch(student, [text])) for text in TEXTS])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(vectors[2], vectors[3], atol=1e-6)  # empty and whitespace-only: one defined vector
    assert model.embed([]).shape == (0, 32)
    assert model.predict("good movie").num_tokens == 4


def test_long_texts_are_truncated_and_counted(bundle):
    from tinybert_edge.runtime.bundle import load_bundle

    model = load_bundle(bundle)
    long = "good " * (model.max_length + 20)
    vectors, truncated = model.embed(["good movie", long], return_truncated=True)
    assert truncated == [1] and np.isfinite(vectors).all()
    exact = "good " * (model.max_length - 2)  # exactly max_length tokens with [CLS] and [SEP]: not truncated
    assert model.embed([exact], return_truncated=True)[1] == []


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_search_finds_each_document_by_its_own_text(bundle, tmp_path, precision):
    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.runtime.index import build_index, load_index

    model = load_bundle(bundle)
    built = build_index(model, DOCUMENTS, ids=[f"doc{i}" for i in range(len(DOCUMENTS))], precision=precision)
    assert built.vectors.dtype == (np.int8 if precision == "int8" else np.float32)
    index = load_index(built.save(tmp_path / "notes.npz"), model)
    for i, text in enumerate(DOCUMENTS):
        hits = index.search(text, k=3)
        assert [h.rank for h in hits] == [1, 2, 3] and hits[0].id == f"doc{i}"
        assert hits[0].score == pytest.approx(1.0, abs=0.02) and hits[0].score >= hits[1].score >= hits[2].score
    exact = model.embed(DOCUMENTS) @ model.embed(["sun on the road"])[0]
    top = index.search("sun on the road", k=len(DOCUMENTS))
    if precision == "float32":
        assert [h.id for h in top] == [f"doc{i}" for i in np.argsort(-exact, kind="stable")]
    else:  # int8 vectors move each score a little: documents further apart than that keep their exact order
        scores, order = {h.id: h.score for h in top}, [h.id for h in top]
        assert all(abs(scores[f"doc{i}"] - value) <= 0.01 for i, value in enumerate(exact))
        assert all(order.index(f"doc{a}") < order.index(f"doc{b}") for a in range(len(exact))
                   for b in range(len(exact)) if exact[a] > exact[b] + 0.02)
    assert len(index.search(["good", "bad"], k=100)[1]) == len(DOCUMENTS)
    with pytest.raises(ConfigError, match="k = 0"):
        index.search("good", k=0)


def test_an_index_from_another_model_is_refused(bundle, tmp_path, exported):  # noqa: F811
    from tinybert_edge.app.bundle import package
    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.runtime.index import build_index, load_index

    student, artifacts = exported
    other = package(artifacts["fp32"].path.parent, tmp_path / "fp32-bundle", runtimes=("onnxruntime",),
                    precision="fp32", student=student)
    path = build_index(load_bundle(other), DOCUMENTS).save(tmp_path / "fp32.npz")
    with pytest.raises(BundleError, match="built by another model"):
        load_index(path, load_bundle(bundle))


def test_a_corrupted_index_is_refused_before_use(bundle, tmp_path):
    import zipfile

    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.runtime.index import build_index, load_index

    model = load_bundle(bundle)
    path = build_index(model, DOCUMENTS).save(tmp_path / "good.npz")
    data = bytearray(path.read_bytes())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="corrupted or not an index"):
        load_index(truncated, model)
    # a consistent zip whose vectors were changed: the sha256 in the header catches it
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    vectors = np.load(path)["vectors"].copy()
    vectors[0, 0] += 0.5
    import io

    buffer = io.BytesIO()
    np.save(buffer, vectors)
    members["vectors.npy"] = buffer.getvalue()
    edited = tmp_path / "edited.npz"
    with zipfile.ZipFile(edited, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(BundleError, match="vectors' sha256 differs"):
        load_index(edited, model)
    (tmp_path / "text.npz").write_text("not an index")
    with pytest.raises(BundleError, match="corrupted or not an index"):
        load_index(tmp_path / "text.npz", model)
