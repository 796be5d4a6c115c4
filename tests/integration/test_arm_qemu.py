"""The ARM target under QEMU user-mode emulation: a tiny BERT classifier exported in-process to int8 ONNX and int8
TFLite runs in the arm64 root filesystem and must agree with the same runner on x86.

Needs the root filesystem (`sudo scripts/build_arm64_rootfs.sh`, or TINYBERT_EDGE_ARM_ROOTFS pointing at one) and
root for chroot; skips with the build command otherwise. The emulated run is kept short (few iterations): its
timings prove nothing about ARM speed; the logits are the point.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.benchmarks.arm import (
    DEFAULT_ROOTFS,
    RunnerSettings,
    build_command,
    cross_platform_check,
    qemu_problem,
    run_local,
    run_qemu,
)

pytestmark = pytest.mark.slow

ROOTFS = Path(os.environ.get("TINYBERT_EDGE_ARM_ROOTFS", DEFAULT_ROOTFS))
BUCKETS = (16, 32)
SEQ_LEN = 24  # below the 32 bucket: the TFLite side pads, the ONNX side runs 24 as is
WORDS = [f"w{i}" for i in range(120)]
# Few iterations: under emulation each call is tens of times slower than native.
EMULATED = RunnerSettings(threads=1, warmup=1, min_iterations=3, min_seconds=0.0, timeout_s=900)


@pytest.fixture(scope="module")
def rootfs() -> Path:
    problem = qemu_problem(ROOTFS)
    if problem is not None:
        hint = "" if build_command(ROOTFS) in problem else f" (the root filesystem builds with: {build_command(ROOTFS)})"
        pytest.skip(f"arm64 emulation unavailable: {problem}{hint}")
    return ROOTFS


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # random init gives logits near zero; a larger head makes argmax comparisons meaningful
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def inputs_npz(tiny_model, tmp_path_factory) -> Path:
    from tinybert_edge.benchmarks.arm import tokenize_to_npz

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 20))) for _ in range(20)]
    return tokenize_to_npz(tiny_model, texts, tmp_path_factory.mktemp("inputs") / "inputs.npz", SEQ_LEN)


@pytest.fixture(scope="module")
def artifacts(tiny_model, tmp_path_factory) -> dict[str, Path]:
    from tinybert_edge.converters import ExportConfig, QuantizationConfig, export_onnx, export_tflite, quantize_onnx

    out = tmp_path_factory.mktemp("artifacts")
    fp32 = export_onnx(tiny_model, out / "onnx", ExportConfig(sequence_buckets=BUCKETS))
    int8 = quantize_onnx(fp32, out / "onnx-int8", QuantizationConfig.for_this_cpu())  # as runs ship today
    tflite = export_tflite(tiny_model, out / "model_int8.tflite", ExportConfig(sequence_buckets=BUCKETS), "dynamic_int8")
    return {"onnx-int8": int8.model_file, "tflite-int8": tflite.model_file}


@pytest.mark.parametrize("name", ["onnx-int8", "tflite-int8"])
def test_emulated_arm64_logits_agree_with_x86(name, rootfs, artifacts, inputs_npz, record_property):
    artifact = artifacts[name]
    x86 = run_local(artifact, inputs_npz, RunnerSettings(warmup=1, min_iterations=3, min_seconds=0.0))
    assert x86.ok, x86.error
    emulated = run_qemu(rootfs, artifact, inputs_npz, EMULATED)
    assert emulated.ok, emulated.error

    assert emulated.emulated and emulated.to_dict()["stats"]["emulated"] is True
    assert emulated.platform["machine"] == "aarch64"
    assert emulated.runtime == x86.runtime
    assert emulated.stats.n >= EMULATED.min_iterations
    if name.startswith("tflite"):
        assert emulated.bucket == 32 and x86.bucket == 32

    check = cross_platform_check(x86, emulated)
    difference = check["difference"]
    record_property("arm_qemu", json.dumps({"artifact": name, **difference,
                                            "emulated_p50_ms": emulated.stats.p50_ms, "x86_p50_ms": x86.stats.p50_ms,
                                            "arm_versions": emulated.versions}))
    print(f"\n{name}: x86 vs emulated aarch64 {difference}; p50 {x86.stats.p50_ms:.3f} ms native x86, "
          f"{emulated.stats.p50_ms:.3f} ms emulated; aarch64 versions {emulated.versions}")
    assert difference["rows"] == 20
    assert difference["argmax_agreement"] == 1.0
    # int8 kernels differ between x86 (AVX2/VNNI) and ARM (NEON/dot-product); the logits may differ a little.
    scale = float(np.abs(x86.logits).max())
    assert difference["max_abs_diff"] <= 0.05 * scale + 1e-3, (difference, scale)
    assert difference["min_cosine"] >= 0.999
