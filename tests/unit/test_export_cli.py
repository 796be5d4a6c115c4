"""`export` verifies what it says it verifies: every artifact is checked against PyTorch (on the user's data when
given, else on generated sentences), the check is recorded in its metadata, and the int8 preset follows the target
CPU the user names."""

from __future__ import annotations

import json

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.app.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("model"), layers=1, hidden=16, heads=2)


def _metadata(folder):
    return json.loads((folder / "metadata.json").read_text(encoding="utf-8"))


def test_export_without_data_checks_every_artifact_on_generated_sentences(model, tmp_path, capsys):
    out = tmp_path / "artifacts"
    assert main(["export", str(model), str(out), "--formats", "onnx", "--seq-lengths", "32"]) == 0
    for name in ("onnx-fp32", "onnx-int8"):
        parity = _metadata(out / name)["parity"]
        assert parity["inputs"] == "256 generated sentences (seed 0)"
        assert parity["passed"] and parity["n_examples"] == 256
        # label agreement on word salad says little: reported, not gated
        assert parity["thresholds"]["min_argmax_agreement"] == 0.0
    assert "verified on 256 generated sentences" in capsys.readouterr().out


def test_export_with_data_gates_label_agreement_on_it(model, tmp_path):
    data = tiny_bert.write_csv(tmp_path / "dev.csv", 40)
    out = tmp_path / "artifacts"
    assert main(["export", str(model), str(out), "--formats", "onnx", "--seq-lengths", "32", "--data", str(data)]) == 0
    parity = _metadata(out / "onnx-int8")["parity"]
    assert parity["inputs"] == f"the first 40 examples of {data}"
    assert parity["n_examples"] == 40 and parity["thresholds"]["min_argmax_agreement"] == 0.97


@pytest.mark.parametrize("target, weight_type", [("arm64", "int8"), ("avx2", "uint8")])
def test_target_cpu_picks_the_int8_preset(model, tmp_path, target, weight_type):
    out = tmp_path / "artifacts"
    assert main(["export", str(model), str(out), "--formats", "onnx", "--seq-lengths", "32",
                 "--target-cpu", target]) == 0
    quantization = _metadata(out / "onnx-int8")["quantization"]
    assert quantization["preset"] == target and quantization["weight_type"] == weight_type
    assert target in quantization["reason"]


def test_fit_buckets_gives_the_tflite_signature_lengths_of_the_users_texts(model, tmp_path, capsys):
    pytest.importorskip("litert_torch")
    data = tiny_bert.write_csv(tmp_path / "dev.csv", 40)
    out = tmp_path / "artifacts"
    assert main(["export", str(model), str(out), "--formats", "tflite", "--seq-lengths", "32", "--fit-buckets", "2",
                 "--data", str(data), "--parity-examples", "8"]) == 0
    from tinybert_edge.artifacts import Artifact

    buckets = list(Artifact.load(out / "tflite-int8" / "model.tflite").sequence_buckets)
    assert len(buckets) == 2 and buckets[-1] == 32 and buckets[0] < 32
    assert f"sequence buckets {buckets} fitted to the 40 texts of {data}" in capsys.readouterr().out


def test_fit_buckets_without_texts_is_refused_before_any_work(model, tmp_path, capsys):
    out = tmp_path / "artifacts"
    assert main(["export", str(model), str(out), "--formats", "tflite", "--fit-buckets", "2"]) != 0
    assert "--fit-buckets fits the TFLite lengths to your texts: give --data" in capsys.readouterr().err
    assert not out.exists()


def test_fit_buckets_without_a_tflite_to_fit_is_refused_before_any_work(model, tmp_path, capsys):
    out = tmp_path / "artifacts"
    assert main(["export", str(model), str(out), "--formats", "onnx", "--fit-buckets", "4"]) != 0
    assert "--formats onnx makes no TFLite; add tflite to --formats, or drop --fit-buckets" in capsys.readouterr().err
    assert not out.exists()
