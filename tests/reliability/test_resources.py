"""Resource limits: a 1e6-character text, one huge batch, and a full disk (a write that fails) end either in a
correct result or in one clear error, with the previous output intact and no temporary files left."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

import tiny_bert
from conftest import cli_env, error_lines, record, temp_leftovers
from tinybert_edge.errors import TinyBertEdgeError


def test_million_character_text_is_truncated_not_fatal(teacher):
    from tinybert_edge.data import TextClassificationData
    from tinybert_edge.evaluation import evaluate

    long_text = ("good " * 200_000)[:1_000_000]
    assert len(long_text) == 1_000_000
    data = TextClassificationData(texts=[long_text, "bad day", long_text[:999_999] + "x"], labels=[1, 0, 1],
                                  label_names=["neg", "pos"], source="long")
    result = evaluate(teacher, data, backend="torch", max_length=64)
    assert result.n == 3 and np.isfinite(result.logits).all()
    # The truncated long text is the same input as its first 64 tokens: same logits as a short copy of it.
    short = evaluate(teacher, TextClassificationData(texts=["good " * 62], labels=[1], label_names=["neg", "pos"]),
                     backend="torch", max_length=64)
    np.testing.assert_allclose(result.logits[0], short.logits[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_bundle_runtime_on_a_million_character_text_and_an_empty_text(bundle, bundle_zip, form):
    from tinybert_edge.runtime.bundle import load_bundle

    model = load_bundle(bundle if form == "folder" else bundle_zip)
    words = ("good bad " * 125_000)[:1_000_000]
    one_word = "x" * 1_000_000  # longer than max_input_chars_per_word: a single [UNK]
    assert len(words) == len(one_word) == 1_000_000
    long, single, empty = model.predict([words, one_word, ""])
    assert long.num_tokens == model.max_length  # truncated, as the tokenizer's max_length says
    short = model.predict(" ".join(["good", "bad"] * model.max_length))
    np.testing.assert_allclose(long.logits, short.logits, rtol=1e-5, atol=1e-5)  # same first max_length tokens
    unk = model.tokenizer.vocab[model.tokenizer.settings.unk_token]
    assert single.num_tokens == 3 and model.encode([one_word])[0].input_ids[1] == unk
    assert empty.num_tokens == 2  # [CLS] [SEP]
    for prediction in (long, single, empty):
        assert prediction.label in model.labels and np.isfinite(prediction.logits).all()
        assert abs(sum(prediction.probabilities.values()) - 1.0) < 1e-6
    assert model.predict("").logits == pytest.approx(empty.logits, abs=1e-6)  # alone or in a batch: the same
    assert model.logits([]).shape == (0, len(model.labels)) and model.predict([]) == []


def test_one_huge_batch_matches_small_batches(teacher):
    from tinybert_edge.data import encode
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime.sessions import TorchSession

    data = tiny_bert.text_data(4096, seed=5)
    encoded = encode(load_tokenizer(teacher), data, 32)
    session = TorchSession(teacher)
    huge = evaluate_session(session, encoded, batch_size=1_000_000)  # one batch of 4096 rows
    small = evaluate_session(session, encoded, batch_size=64)
    assert huge.n == small.n == 4096
    np.testing.assert_allclose(huge.logits, small.logits, rtol=1e-4, atol=1e-5)
    assert huge.accuracy == small.accuracy


def _fail_writes_on(monkeypatch, code: int):
    """Every os.replace (the last step of an atomic write) fails like a full disk would."""
    def full(src, dst):
        record("failing_write", errno=errno.errorcode[code])
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", full)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_while_saving_a_model_keeps_the_previous_one(tmp_path, teacher, monkeypatch, code):
    from tinybert_edge.models import load_classifier, load_tokenizer, save_model

    model, tokenizer = load_classifier(teacher), load_tokenizer(teacher)
    out = save_model(model, tokenizer, tmp_path / "student")
    before = (out / "model.safetensors").read_bytes()
    _fail_writes_on(monkeypatch, code)
    with pytest.raises(TinyBertEdgeError, match="free disk space"):
        save_model(model, tokenizer, out)
    monkeypatch.undo()
    assert (out / "model.safetensors").read_bytes() == before
    assert temp_leftovers(tmp_path) == []


def test_full_disk_while_writing_json_keeps_the_previous_file(tmp_path, monkeypatch):
    from tinybert_edge.io import write_json_atomic

    path = write_json_atomic(tmp_path / "report.json", {"version": 1})
    _fail_writes_on(monkeypatch, errno.ENOSPC)
    with pytest.raises(TinyBertEdgeError, match="No space left"):
        write_json_atomic(path, {"version": 2, "rows": list(range(1000))})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": 1}
    assert temp_leftovers(tmp_path) == []


def _limit_file_size(limit: int):
    def apply() -> None:
        # Past the limit the kernel sends SIGXFSZ (which kills by default); ignored, the write fails with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_export_under_a_file_size_limit_fails_clearly_and_keeps_the_previous_export(tmp_path, teacher):
    pytest.importorskip("onnx")
    from tinybert_edge.converters.chain import export
    from tinybert_edge.converters.config import ExportConfig

    out = tmp_path / "artifacts"
    export(teacher, out, formats=("onnx",), quantize=False, config=ExportConfig(sequence_buckets=(16,)))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    model_bytes = max(len(b) for b in before.values())
    # --overwrite: this export replaces the previous one on purpose (export refuses an existing folder without it).
    done = subprocess.run([sys.executable, "-m", "tinybert_edge.app.cli", "export", str(teacher), str(out), "--formats",
                           "onnx", "--no-quantize", "--seq-lengths", "16", "--overwrite"], capture_output=True, text=True,
                          timeout=300, env=cli_env(), preexec_fn=_limit_file_size(model_bytes // 4))
    record("failing_write", errno="EFBIG")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "File too large" in lines[0], done.stderr[-3000:]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert temp_leftovers(out) == []
