"""The student folder's model card: README.md with the Hugging Face Hub's `model-index` metadata, so that the folder
can be published as it is.

The metadata block is YAML front matter (`---` ... `---`) the Hub reads: the task, the dataset and split the numbers
were measured on, and one metric entry per model variant (the fp32 student and each int8 artifact, each named so),
with the teacher it was distilled from and the budget it was trained on in the text below. Strings are written as
JSON strings, which YAML reads as double-quoted scalars, so no value can break the block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinybert_edge.io import write_text_atomic

MODEL_CARD = "README.md"
# Our metric names -> the Hub's metric types (the `evaluate` library's ids) and readable names.
HUB_METRICS = {
    "accuracy": ("accuracy", "Accuracy"), "f1": ("f1", "F1"), "mcc": ("matthews_correlation", "Matthews correlation"),
    "macro_f1": ("f1", "Macro F1"), "macro_precision": ("precision", "Macro precision"),
    "macro_recall": ("recall", "Macro recall"), "pearson": ("pearsonr", "Pearson correlation"),
    "spearman": ("spearmanr", "Spearman correlation"), "mse": ("mse", "Mean squared error"),
}
GLUE_NAMES = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI",
              "rte": "RTE", "stsb": "STS-B"}


def _q(value: Any) -> str:
    """A YAML scalar: numbers as they are, everything else as a JSON (= YAML double-quoted) string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))


def dataset_entry(report: dict[str, Any]) -> dict[str, str]:
    """The Hub's dataset of the numbers: GLUE with its config when a GLUE preset ran, else the data file."""
    data = report["data"]
    preset = ((report.get("config") or {}).get("distill") or {}).get("task")
    split = "validation" if data.get("test_is_dev") else "test"
    if preset:
        key = preset.lower().replace("-", "").replace("_", "")
        return {"type": "glue", "name": f"GLUE {GLUE_NAMES.get(key, preset)}", "config": key, "split": split}
    source = str(data.get("test_file") or data["source"])
    return {"type": Path(source).stem or source, "name": Path(source).name or source, "split": split}


def variant_name(row: dict[str, Any]) -> str:
    """'fp32 PyTorch', 'int8 ONNX', 'int8 TFLite': what a metric entry is about (from the row's name)."""
    kind = row["name"].split(" · ", 1)[-1]  # "PyTorch fp32"
    parts = kind.rsplit(" ", 1)
    return f"{parts[1]} {parts[0]}" if len(parts) == 2 else kind


def model_index(report: dict[str, Any], name: str) -> list[str]:
    """The `model-index` lines: one result (task, dataset) with a metric entry per metric and student variant."""
    task = report.get("task", "text-classification")
    dataset = dataset_entry(report)
    lines = ["model-index:", f"- name: {_q(name)}", "  results:", "  - task:",
             f"      type: {_q('text-classification')}",
             f"      name: {_q('Text Regression' if task == 'regression' else 'Text Classification')}",
             "    dataset:"]
    lines += [f"      {key}: {_q(value)}" for key, value in dataset.items()]
    lines.append("    metrics:")
    for row in report["rows"]:
        if row.get("role") != "student" or not row.get("metrics"):
            continue
        for metric, value in row["metrics"].items():
            if not isinstance(value, (int, float)) or value != value:  # NaN is no measurement
                continue
            hub_type, label = HUB_METRICS.get(metric, (metric, metric))
            lines += [f"    - type: {_q(hub_type)}", f"      value: {_q(round(float(value), 4))}",
                      f"      name: {_q(f'{label} ({variant_name(row)})')}"]
    return lines


def budget_line(report: dict[str, Any]) -> str:
    config, student, data = report.get("config") or {}, report["student"], report["data"]
    tuned = (report.get("teacher") or {}).get("fine_tuned") or {}
    distill = config.get("distill") or {}
    teacher = (f"teacher fine-tuned on {tuned.get('train_examples')} examples for "
               f"{(tuned.get('config') or {}).get('epochs', '?')} epoch(s)" if tuned else "teacher used as given")
    seconds = (report.get("timings_s") or {}).get("total_s")
    return (f"{teacher}; student distilled on {student['train_examples']} of {data['train']} train examples, "
            f"{distill.get('intermediate_epochs', '?')} epoch(s) of intermediate-layer and "
            f"{distill.get('prediction_epochs', '?')} of prediction-layer distillation"
            + (f" (preset {distill['task']})" if distill.get("task") else "")
            + (f"; the whole run took {seconds / 60:.0f} min on {(report.get('environment') or {}).get('usable_cores', '?')} CPU cores"
               if isinstance(seconds, (int, float)) else ""))


def render_model_card(report: dict[str, Any]) -> str:
    """README.md of the student folder: front matter with `model-index`, then a short description and the table."""
    from tinybert_edge.benchmarks.readme import format_number, markdown_cell

    run = Path(report["run_dir"]).name
    task = report.get("task", "text-classification")
    teacher = (report.get("teacher") or {}).get("source") or (report.get("teacher") or {}).get("path")
    student = report["student"]
    data = report["data"]
    name = f"tinybert-edge-{run}-student"
    front = ["---", f"library_name: {_q('transformers')}", f"pipeline_tag: {_q('text-classification')}",
             "tags:", *[f"- {_q(tag)}" for tag in ("tinybert", "knowledge-distillation", "onnx", "tflite", "int8",
                                                    task)],
             f"base_model: {_q(teacher)}" if teacher and "://" not in str(teacher) and not str(teacher).startswith("/")
             else f"# base_model: {_q(teacher)} (a local or packaged teacher, not a Hub id)",
             *model_index(report, name), "---"]
    metrics = list(dict.fromkeys(m for row in report["rows"] for m in (row.get("metrics") or {})))
    table = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for row in report["rows"]:
        values = row.get("metrics") or {}
        table.append("| " + " | ".join([markdown_cell(row["name"])]
                                       + [format_number(values.get(m), 4) for m in metrics]) + " |")
    labels = data.get("labels")
    body = [
        f"# {name}",
        "",
        f"A TinyBERT student ({student['config']['student']}, {student['parameters'] / 1e6:.1f}M parameters, "
        f"layer map {student['layer_map']}) distilled by tinybert-edge from the teacher `{teacher}` for "
        f"{task}" + (f" ({', '.join(labels)})" if labels else " (one score per text or pair)") + ".",
        "",
        f"- data: `{data['source']}`; metrics on {data['test']} examples of "
        f"`{data.get('test_file') or 'the held-out test split'}`"
        + (" (the dev file: no separate test file was given)" if data.get("test_is_dev") else ""),
        f"- checkpoint selected by dev {student.get('selection_metric') or report.get('primary_metric')}",
        f"- budget: {budget_line(report)}",
        f"- artifacts: int8 ONNX and TFLite exports in `{Path(report['run_dir']) / 'artifacts'}`, each checked "
        "against this model (parity) before it was kept",
        "",
        *table,
        "",
    ]
    return "\n".join(front + [""] + body)


def write_model_card(report: dict[str, Any], student_dir: str | Path) -> Path:
    """Write the model card into the student folder (atomically) and return its path."""
    return write_text_atomic(Path(student_dir) / MODEL_CARD, render_model_card(report))
