"""Property-based fuzzing: whatever the input, only the SDK's own error types escape (a small, fixed budget)."""

from __future__ import annotations

import json
import re
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import record
from tinybert_edge.errors import BundleError, ConfigError, DataError, TinyBertEdgeError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_COUNT: dict[str, int] = {}


def _counted(name: str) -> None:
    _COUNT[name] = _COUNT.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_examples():
    yield
    for name, count in _COUNT.items():
        record("fuzz_examples", count, target=name)


def _load(path: Path, **spec):
    from tinybert_edge.data import DataSpec, load_data

    try:
        data = load_data(DataSpec(path=str(path), **spec))
    except TinyBertEdgeError:
        return None
    assert len(data.texts) == len(data.labels) > 0
    assert all(0 <= y < data.num_labels for y in data.labels)
    return data


cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
rows = st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6)


@FUZZ
@given(content=st.binary(max_size=512), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]),
       errors=st.sampled_from(["strict", "replace"]))
def test_random_bytes_in_any_format(tmp_path_factory, content, suffix, errors):
    _counted("data: random bytes")
    path = tmp_path_factory.mktemp("bytes") / f"data{suffix}"
    path.write_bytes(content)
    _load(path, encoding_errors=errors)


@FUZZ
@given(header=st.lists(st.sampled_from(["text", "label", "sentence", "x", ""]), max_size=4), body=rows,
       delimiter=st.sampled_from([",", "\t"]))
def test_random_csv_and_tsv(tmp_path_factory, header, body, delimiter):
    _counted("data: random csv/tsv")
    suffix = ".csv" if delimiter == "," else ".tsv"
    path = tmp_path_factory.mktemp("table") / f"data{suffix}"
    lines = [delimiter.join(header)] + [delimiter.join(row) for row in body]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _load(path)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | cells,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(cells, inner, max_size=3),
                           max_leaves=6)


@FUZZ
@given(records=st.lists(st.one_of(st.dictionaries(st.sampled_from(["text", "label", "sentence", "other"]),
                                                  json_values, max_size=3), json_values), max_size=6))
def test_random_jsonl(tmp_path_factory, records):
    _counted("data: random jsonl")
    path = tmp_path_factory.mktemp("jsonl") / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    _load(path)


toml_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | cells | \
    st.lists(st.integers(-5, 300), max_size=3) | st.lists(cells, max_size=2)
sections = {
    "": ["name", "runs_dir", "threads", "sequence_lengths", "formats", "bench_min_seconds", "teacher", "bogus"],
    "distill": ["student", "layer_map", "intermediate_epochs", "batch_size", "learning_rate", "temperature",
                "max_train_examples", "checkpoint_every", "warmup_ratio", "task", "bogus"],
    "data": ["path", "split", "encoding_errors", "max_dev_examples", "seed", "bogus"],
    "finetune": ["epochs", "batch_size", "warmup_ratio", "max_length"],
}


@st.composite
def config_dicts(draw):
    raw: dict = {}
    for section, keys in sections.items():
        chosen = draw(st.dictionaries(st.sampled_from(keys), toml_scalars, max_size=3))
        if section:
            raw[section] = draw(st.sampled_from([chosen, chosen, 3, "x"])) if chosen or draw(st.booleans()) else chosen
        else:
            raw.update(chosen)
    return {k: v for k, v in raw.items() if v is not None}


@FUZZ
@given(raw=config_dicts())
def test_random_config_dicts_raise_only_config_error(raw):
    from tinybert_edge.config import PipelineConfig, from_dict

    _counted("config: random dicts")
    try:
        config = from_dict(PipelineConfig, raw, "pipeline")
    except ConfigError:
        return
    assert isinstance(config, PipelineConfig)


@FUZZ
@given(text=st.text(alphabet=string.printable + "[]=\"'{}#", max_size=200))
def test_random_toml_text_raises_only_config_error(tmp_path_factory, text):
    from tinybert_edge.config import PipelineConfig

    _counted("config: random toml text")
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    path.write_text(text, encoding="utf-8")
    try:
        PipelineConfig.from_toml(path)
    except ConfigError:
        pass


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    wp = pytest.importorskip("tinybert_edge.runtime.wordpiece")
    import tiny_bert

    vocab = tiny_bert.write_vocab(tmp_path_factory.mktemp("vocab"))
    return wp.WordPieceTokenizer.from_files(vocab), len(tiny_bert.WORDS)


@FUZZ
@given(text=st.text(max_size=300), pair=st.none() | st.text(max_size=50), max_length=st.integers(2, 64))
def test_tokenizer_on_random_unicode(wordpiece, text, pair, max_length):
    tokenizer, vocab_size = wordpiece
    _counted("tokenizer: random unicode")
    try:
        encoding = tokenizer.encode(text, pair, max_length=max_length)
    except TinyBertEdgeError:
        # Only text that is not valid Unicode (a lone surrogate) may be refused.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text + (pair or ""))
        return
    ids = list(encoding.input_ids)
    assert ids and all(0 <= i < vocab_size for i in ids)
    assert len(ids) <= max_length


@FUZZ
@given(blob=st.binary(max_size=200))
def test_tokenizer_on_random_bytes(wordpiece, blob):
    tokenizer, vocab_size = wordpiece
    _counted("tokenizer: random bytes")
    try:
        ids = tokenizer.token_ids(blob)
    except TinyBertEdgeError:
        return
    assert all(0 <= i < vocab_size for i in ids)


# --- the bundle reader and the bundle runtime ------------------------------------------------------------------------

BUNDLE_FUZZ = settings(FUZZ, max_examples=40)


def _open(path: Path) -> bool:
    """load_bundle, one prediction and verify on a possibly broken bundle: True when all of it worked. Anything but
    the SDK's own errors fails the test."""
    from tinybert_edge.runtime.bundle import verify
    from tinybert_edge.runtime.bundle import Prediction, load_bundle

    try:
        model = load_bundle(path)
        prediction = model.predict("the movie was good")
        assert isinstance(prediction, Prediction) and prediction.label in model.labels
        verify(path)
    except TinyBertEdgeError:
        return False
    return True


@st.composite
def byte_edits(draw, size: int, hot: tuple[int, ...] = ()):
    """1-3 (offset, xor mask) edits; with `hot` offsets (a zip's local and central headers and its end record),
    half of them land in the 46 bytes after one of those, where zipfile reads methods, flags, sizes and names."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        if hot and draw(st.booleans()):
            offset = min(draw(st.sampled_from(hot)) + draw(st.integers(0, 45)), size - 1)
        else:
            offset = draw(st.integers(0, size - 1))
        edits.append((offset, draw(st.integers(1, 255))))
    return edits


def _mutated(data: bytes, edits, cut: float | None) -> bytes:
    out = bytearray(data)
    for offset, mask in edits:
        out[offset] ^= mask
    return bytes(out[: int(len(out) * cut)] if cut is not None else out)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundle-fuzz")


@BUNDLE_FUZZ
@given(data=st.data(), cut=st.none() | st.floats(0.0, 0.999))
def test_bundle_folder_with_flipped_or_truncated_bytes(bundle, fuzz_dir, data, cut):
    _counted("bundle: flipped/truncated folder file")
    name = data.draw(st.sampled_from(sorted(p.name for p in bundle.iterdir())), label="file")
    original = (bundle / name).read_bytes()
    changed = _mutated(original, data.draw(byte_edits(len(original)), label="edits"), cut)
    folder = fuzz_dir / "bundle"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(bundle, folder)
    (folder / name).write_bytes(changed)
    opened = _open(folder)
    if name != "manifest.json" and changed != original:
        # Every other file is checksummed: any change to it is refused before use.
        assert not opened, f"a changed {name} was accepted"
        from tinybert_edge.runtime.bundle import load_bundle

        with pytest.raises(BundleError, match="fails its checks"):
            load_bundle(folder)


@BUNDLE_FUZZ
@given(data=st.data(), cut=st.none() | st.floats(0.0, 0.999))
def test_bundle_zip_with_flipped_or_truncated_bytes(bundle_zip, fuzz_dir, data, cut):
    _counted("bundle: flipped/truncated zip")
    original = bundle_zip.read_bytes()
    headers = tuple(m.start() for m in re.finditer(b"PK\x03\x04|PK\x01\x02|PK\x05\x06", original))
    changed = _mutated(original, data.draw(byte_edits(len(original), hot=headers), label="edits"), cut)
    path = fuzz_dir / "bundle.zip"
    path.write_bytes(changed)
    _open(path)


def _paths(value, prefix=()):
    """Every (key/index path) inside a JSON value, the value itself excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


@BUNDLE_FUZZ
@given(data=st.data())
def test_bundle_manifest_with_random_values(bundle, fuzz_dir, data):
    """manifest.json is the one file without a checksum: replace or delete its values at random."""
    _counted("bundle: random manifest values")
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="ascii"))
    paths = sorted(_paths(manifest), key=repr)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(paths), label="path")
        parent = manifest
        try:
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = data.draw(json_values, label="value")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    folder = fuzz_dir / "bundle"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(bundle, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    _open(folder)


@pytest.fixture(scope="module")
def bundle_model(bundle):
    from tinybert_edge.runtime.bundle import load_bundle

    return load_bundle(bundle)


def _is_text(value: str | bytes) -> bool:
    try:
        value.decode("utf-8") if isinstance(value, bytes) else value.encode("utf-8")
    except UnicodeError:
        return False
    return True


any_text = st.text(alphabet=st.characters(exclude_categories=()) | st.characters(min_codepoint=0xD800,
                                                                                  max_codepoint=0xDFFF), max_size=200)
texts = st.one_of(st.text(max_size=300), any_text, st.binary(max_size=200))


@FUZZ
@given(batch=st.one_of(texts, st.lists(texts, max_size=4)))
def test_bundle_predict_on_random_texts_and_bytes(bundle_model, batch):
    from tinybert_edge.runtime.bundle import Prediction

    _counted("bundle runtime: random texts and bytes")
    single = isinstance(batch, (str, bytes))
    items = [batch] if single else batch
    try:
        result = bundle_model.predict(batch)
    except DataError:
        # Only bytes that are not UTF-8 or a str with a lone surrogate may be refused.
        assert not all(_is_text(item) for item in items)
        return
    assert all(_is_text(item) for item in items)
    predictions = [result] if single else result
    assert len(predictions) == len(items)
    for prediction in predictions:
        assert isinstance(prediction, Prediction) and prediction.label in bundle_model.labels
        assert 2 <= prediction.num_tokens <= bundle_model.max_length
        assert abs(sum(prediction.probabilities.values()) - 1.0) < 1e-6
