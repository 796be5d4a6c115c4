"""OpenVINO as a runtime for the ONNX exports: the precision it ran at is recorded, bf16 is refused without the
instructions, and fp32 gives ONNX Runtime's logits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))

from test_converters import BUCKETS, _bert_config, _write_tokenizer  # noqa: E402

from tinybert_edge.errors import ConfigError  # noqa: E402
from tinybert_edge.runtime import openvino_session  # noqa: E402
from tinybert_edge.runtime.sessions import open_session  # noqa: E402


@pytest.fixture(scope="module")
def onnx_fp32(tmp_path_factory) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    from tinybert_edge.converters import ExportConfig, export_onnx

    folder = tmp_path_factory.mktemp("tiny-bert")
    _write_tokenizer(folder).save_pretrained(folder)
    torch.manual_seed(0)
    BertForSequenceClassification(_bert_config()).eval().save_pretrained(folder, safe_serialization=True)
    return export_onnx(folder, tmp_path_factory.mktemp("x") / "onnx", ExportConfig(sequence_buckets=BUCKETS,
                                                                                 optimize=False)).path


def _batch() -> dict[str, np.ndarray]:
    ids = np.asarray([[2, 10, 11, 12, 3, 0], [2, 20, 21, 22, 23, 3]], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}


def test_fp32_matches_onnxruntime_and_records_the_precision(onnx_fp32):
    session = open_session("openvino", onnx_fp32, 1, precision="fp32")
    assert session.inference_precision == "f32" and session.backend == "openvino"
    reference = open_session("onnxruntime", onnx_fp32, 1).run(_batch())
    np.testing.assert_allclose(session.run(_batch()), reference, atol=1e-4)


def test_bf16_is_refused_with_the_reason_where_the_cpu_lacks_it(onnx_fp32, monkeypatch):
    monkeypatch.setattr(openvino_session, "cpu_capabilities", lambda core: ["FP32", "INT8"])
    with pytest.raises(ConfigError, match=r"bf16 refused.*AVX512_BF16 or AMX-BF16.*precision='fp32'"):
        open_session("openvino", onnx_fp32, 1, precision="bf16")
    with pytest.raises(ConfigError, match="allowed: fp32, bf16"):
        open_session("openvino", onnx_fp32, 1, precision="fp16")


def test_bf16_runs_where_openvino_reports_it(onnx_fp32):
    import openvino as ov

    if "BF16" not in openvino_session.cpu_capabilities(ov.Core()):
        pytest.skip("this CPU has no native bf16")
    session = open_session("openvino", onnx_fp32, 1, precision="bf16")
    assert session.inference_precision == "bf16"
    reference = open_session("onnxruntime", onnx_fp32, 1).run(_batch())
    np.testing.assert_allclose(session.run(_batch()), reference, atol=0.1)
