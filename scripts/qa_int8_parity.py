"""The QA parity criterion on a real model and SQuAD data (issue 16).

    python scripts/qa_int8_parity.py MODEL_DIR OUT_DIR [SQUAD_DEV_JSON]

Exports MODEL_DIR (a BertForQuestionAnswering folder, e.g. the qa suite's teacher or student) to fp32 ONNX, int8 ONNX
and int8 TFLite at 384 tokens with the logit limits only, adds an int8 ONNX with the QA head (qa_outputs) kept fp32,
then judges each against PyTorch on the qa suite's parity inputs (the first 256 features of the 300 sampled dev
questions of articles 36-38) under ParityThresholds.int8(): the decoded-answer agreement and answer F1 that gate, and
the per-window start/end argmax agreement that used to. Writes OUT_DIR/parity_check.json. A diagnostic, not a suite:
no timing.
"""
import json
import logging
import sys
from pathlib import Path
import torch
torch.set_num_threads(2)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
from tinybert_edge.converters import ExportConfig, export
from tinybert_edge.converters.config import QuantizationConfig
from tinybert_edge.converters.onnx_quantize import quantize_onnx
from tinybert_edge.converters.parity import ParityThresholds, compare_logits
from tinybert_edge.data import sample
from tinybert_edge.models import load_tokenizer
from tinybert_edge.runtime.sessions import open_session
from tinybert_edge.tasks import get_task
from tinybert_edge.tasks.question_answering import load_squad, split_by_article

model, out = Path(sys.argv[1]), Path(sys.argv[2])
task = get_task("qa")
full = load_squad(sys.argv[3] if len(sys.argv) > 3 else "../shared/data/squad/dev-v1.1.json")
_, dev, _ = split_by_article(full, test_articles=10, dev_articles=3)
dev = sample(dev, 300, seed=0)
encoded = task.encode(load_tokenizer(model), dev, 384)
encoded = encoded.select(range(min(256, len(encoded))))
batches = list(encoded.batches(32))
masks = [b["attention_mask"] for b in batches]


def outputs(backend, path):
    session = open_session(backend, path, 2, task=task)
    return task.concatenate([session.run({k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
                             for b in batches], masks)


reference = outputs("torch", model)  # once; every artifact is judged against it below
results = {}


def judge(name, backend, path):
    cand = outputs(backend, path)
    report = compare_logits(reference, cand, ParityThresholds.int8(), "torch", backend, task, encoded)
    results[name] = {"passed": report.passed, "failures": list(report.failures), "max_abs_diff": report.max_abs_diff,
                     "mean_abs_diff": report.mean_abs_diff, "cosine": report.cosine,
                     "answer_agreement": report.argmax_agreement, **report.task_metrics}
    print("PARITY", name, json.dumps(results[name]), flush=True)
    (out / "parity_check.json").write_text(json.dumps({"model": str(model), "features": len(encoded),
                                                       "questions": len(set(encoded.features["example_index"])),
                                                       "results": results}, indent=2))


# Made without the export chain's own parity check (verify=False): this script judges them, once each.
config = ExportConfig(sequence_buckets=(384,))
onnx = {a.precision: a for a in export(model, out, formats=("onnx",), config=config, verify=False, reuse=True)}
judge("onnx-int8", "onnxruntime", onnx["int8"].path)
head = out / "onnx-int8-head-fp32"
if not head.exists():
    quantize_onnx(onnx["fp32"], head, QuantizationConfig.for_this_cpu(keep_fp32=("qa_outputs",)))
judge("onnx-int8 (qa_outputs fp32)", "onnxruntime", head)
tflite = export(model, out, formats=("tflite",), config=config, verify=False, reuse=True)[0]
judge("tflite-int8", "litert", tflite.path)
