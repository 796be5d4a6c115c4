"""Bundles end to end on a tiny random BERT exported to ONNX: package, load, predict, verify, and every way a
bundle can be broken (tampered, truncated, missing, unknown schema, unsafe zip entries)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.errors import BundleError, DataError, RunDirExistsError

pytest.importorskip("onnxruntime")

WORDS = ["good", "great", "bad", "awful", "the", "movie", "was", "is", "very", "not", "film", "plot"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from tinybert_edge.converters.chain import export
    from tinybert_edge.converters.config import ExportConfig

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n",
                                      encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)  # spread the logits so that argmax means something
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    out = tmp_path_factory.mktemp("exported") / "artifacts"
    export(folder, out, formats=("onnx",), config=ExportConfig(sequence_buckets=(16, 32)))
    return out


@pytest.fixture(scope="module")
def bundle_dir(export_dir, tmp_path_factory) -> Path:
    from tinybert_edge.app.bundle import package

    return package(export_dir, tmp_path_factory.mktemp("bundles") / "bundle", runtimes=("onnxruntime",))


@pytest.fixture()
def copy(bundle_dir, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)
    return target


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="ascii"))


def test_package_writes_a_complete_verified_bundle(bundle_dir):
    from tinybert_edge.runtime.bundle import verify

    manifest = _manifest(bundle_dir)
    assert manifest["format"] == "tinybert-edge-bundle" and manifest["schema_version"] == 1
    assert manifest["labels"] == ["neg", "neu", "pos"]
    assert sorted(manifest["files"]) == ["golden.json", "model.onnx", "unicode_tables.txt", "vocab.txt"]
    (model,) = manifest["models"]
    assert model["runtime"] == "onnxruntime" and model["precision"] == "int8" and model["output_name"] == "logits"
    assert model["quantization"]["method"]  # copied from the artifact's metadata
    assert manifest["tokenizer"]["max_length"] == 64 and manifest["tokenizer"]["strip_accents"] is True
    golden = json.loads((bundle_dir / "golden.json").read_text(encoding="ascii"))
    assert len(golden["cases"]) == 16 and golden["cases"][0]["input_ids"] == [2, 3]  # empty text: [CLS] [SEP]
    assert all(len(case["torch_logits"]) == 3 for case in golden["cases"])  # the PyTorch cross-check was recorded
    torch_gap = max(abs(a - b) for case in golden["cases"]
                    for a, b in zip(case["torch_logits"], case["logits"]["model.onnx"]))
    assert torch_gap < 1.0
    summary = verify(bundle_dir)
    assert summary["passed"] and summary["models"]["model.onnx"]["cases"] == 16


def test_load_and_predict_one_text_and_a_batch(bundle_dir):
    from tinybert_edge.runtime.bundle import load_bundle

    model = load_bundle(bundle_dir)
    one = model.predict("the movie was great")
    assert one.label in ("neg", "neu", "pos") and abs(sum(one.probabilities.values()) - 1.0) < 1e-6
    batch = model.predict(["the movie was great", "awful plot", ""])
    assert [p.label for p in batch][0] == one.label and batch[0].logits == pytest.approx(one.logits, abs=1e-5)
    golden = model.golden["cases"]
    logits = model.logits([case["text"] for case in golden])
    expected = np.array([case["logits"]["model.onnx"] for case in golden])
    assert np.abs(logits - expected).max() < 1e-4


def test_empty_and_huge_texts(bundle_dir):
    from tinybert_edge.runtime.bundle import load_bundle

    model = load_bundle(bundle_dir)
    assert model.predict("").num_tokens == 2
    huge = model.predict(" ".join(["great movie"] * 5000))  # 10,000 words
    assert huge.num_tokens == model.max_length == 64


def test_non_utf8_bytes_are_a_clear_error(bundle_dir):
    from tinybert_edge.runtime.bundle import load_bundle

    model = load_bundle(bundle_dir)
    with pytest.raises(DataError, match="not valid UTF-8"):
        model.predict(b"great \xff\xfe movie")
    assert model.predict("great".encode("utf-8")).label == model.predict("great").label


def test_zip_bundle_loads_and_verifies(export_dir, tmp_path):
    from tinybert_edge.app.bundle import package
    from tinybert_edge.runtime.bundle import verify
    from tinybert_edge.runtime.bundle import load_bundle

    path = package(export_dir, tmp_path / "b.zip", runtimes=("onnxruntime",))
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["golden.json", "manifest.json", "model.onnx", "unicode_tables.txt",
                                              "vocab.txt"]
    assert verify(path)["passed"]
    assert load_bundle(path).predict("good film").label in ("neg", "neu", "pos")
    with pytest.raises(RunDirExistsError, match="overwrite"):
        package(export_dir, path, runtimes=("onnxruntime",))


def test_tampered_byte_is_refused(copy):
    from tinybert_edge.runtime.bundle import load_bundle

    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx' does not match its sha256"):
        load_bundle(copy)


def test_tampered_vocab_is_refused_even_with_the_same_size(copy):
    from tinybert_edge.runtime.bundle import verify

    text = (copy / "vocab.txt").read_text(encoding="utf-8").replace("good", "goad")
    (copy / "vocab.txt").write_text(text, encoding="utf-8")
    with pytest.raises(BundleError, match="tampered"):
        verify(copy)


def test_truncated_and_missing_files_are_refused(copy):
    from tinybert_edge.runtime.bundle import load_bundle

    data = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(data[: len(data) // 3])
    (copy / "golden.json").unlink()
    with pytest.raises(BundleError) as error:
        load_bundle(copy)
    assert "truncated" in str(error.value) and "'golden.json' is missing" in str(error.value)


def test_truncated_zip_is_refused(export_dir, tmp_path):
    from tinybert_edge.app.bundle import package
    from tinybert_edge.runtime.bundle import load_bundle

    path = package(export_dir, tmp_path / "b.zip", runtimes=("onnxruntime",))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(path)


def test_unknown_schema_and_foreign_manifests_are_refused(copy):
    from tinybert_edge.runtime.bundle import load_bundle

    manifest = _manifest(copy)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 2}), encoding="ascii")
    with pytest.raises(BundleError, match="schema_version 2"):
        load_bundle(copy)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format": "something-else"}), encoding="ascii")
    with pytest.raises(BundleError, match="format 'something-else'"):
        load_bundle(copy)
    (copy / "manifest.json").write_text('{"format": "tinybert-edge-bundle", "schema', encoding="ascii")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(copy)


def _zip_with(bundle_dir: Path, target: Path, extra: zipfile.ZipInfo, payload: bytes = b"x") -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(bundle_dir.iterdir()):
            archive.write(path, path.name)
        archive.writestr(extra, payload)
    return target


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "sub/../../evil", "folder/vocab.txt", "..\\evil"])
def test_zip_with_unsafe_paths_is_refused(bundle_dir, tmp_path, name):
    from tinybert_edge.runtime.bundle import load_bundle

    path = _zip_with(bundle_dir, tmp_path / "bad.zip", zipfile.ZipInfo(name))
    with pytest.raises(BundleError, match="plain names"):
        load_bundle(path)
    assert not (tmp_path / "evil.txt").exists()


def test_zip_with_a_symlink_is_refused(bundle_dir, tmp_path):
    from tinybert_edge.runtime.bundle import load_bundle

    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = _zip_with(bundle_dir, tmp_path / "bad.zip", link, b"/etc/passwd")
    with pytest.raises(BundleError, match="symlink"):
        load_bundle(path)


def test_folder_with_a_symlink_is_refused(copy):
    from tinybert_edge.runtime.bundle import load_bundle

    os.symlink("/etc/hostname", copy / "extra")
    with pytest.raises(BundleError, match="symlink"):
        load_bundle(copy)


def test_runtime_imports_neither_torch_nor_transformers(bundle_dir):
    """Import and use the runtime with torch and transformers made unimportable (sys.modules poisoning)."""
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'tokenizers'):\n"
        "    sys.modules[name] = None  # any import of them now raises ImportError\n"
        "from tinybert_edge.runtime.bundle import load_bundle\n"
        f"model = load_bundle({str(bundle_dir)!r})\n"
        "p = model.predict('the movie was great')\n"
        "print(p.label, len(p.probabilities))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers') and sys.modules[m]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    label, count = result.stdout.splitlines()[0].split()
    assert label in ("neg", "neu", "pos") and count == "3"
    assert result.stdout.splitlines()[1] == "[]"


def test_cli_package_and_verify(export_dir, tmp_path, capsys):
    from tinybert_edge.app.cli import main

    out = tmp_path / "cli-bundle.zip"
    assert main(["package", str(export_dir), str(out), "--runtime", "onnxruntime"]) == 0
    assert main(["verify", str(out)]) == 0
    assert "16 golden cases" in capsys.readouterr().out
    out.write_bytes(out.read_bytes()[:100])
    assert main(["verify", str(out)]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_zip_declaring_more_than_the_bundle_limit_is_refused_before_inflating(tmp_path, monkeypatch):
    import zipfile

    from tinybert_edge.errors import BundleError
    from tinybert_edge.runtime import bundle as rt

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", b"\0" * 200_000)  # compresses to a few hundred bytes
    monkeypatch.setattr(rt, "MAX_BUNDLE_BYTES", 100_000)
    with pytest.raises(BundleError, match="declares"):
        rt.load_bundle(path)


def test_the_rust_and_python_tokenizers_give_the_same_predictions(bundle_dir):
    pytest.importorskip("tokenizers")
    from tinybert_edge.runtime.bundle import load_bundle, verify

    texts = ["a gripping, funny film", "ΟΔΟΣ Σοφίας", "", "[CLS] typed [SEP]", "word " * 300]
    rust = load_bundle(bundle_dir, tokenizer="rust")
    python = load_bundle(bundle_dir, tokenizer="python")
    assert (rust.tokenizer.kind, python.tokenizer.kind) == ("rust", "python")
    assert rust.encode(texts) == python.encode(texts)
    assert rust.predict(texts) == python.predict(texts)
    assert verify(bundle_dir, tokenizer="python")["passed"] and verify(bundle_dir, tokenizer="rust")["passed"]
