"""GLUE beyond SST-2 (issue 15): regression as a Task, each task's official metric cross-checked against a hand
computation, per-task presets that take effect, and the bad input of GLUE files, each a one-line error that names
the fix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.config import DistillConfig, PipelineConfig, DataConfig, task_defaults
from tinybert_edge.data import EncodedData, load_data, split_data
from tinybert_edge.errors import ConfigError, DataError, ModelError
from tinybert_edge.tasks import get_task, task_of_config
from tinybert_edge.tasks.regression import Score, SequenceRegression, TextRegressionData

GLUE = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _encoded(labels) -> EncodedData:
    labels = np.asarray(labels)
    return EncodedData(input_ids=[[1]] * len(labels), token_type_ids=[[0]] * len(labels), labels=labels)


# --- metrics, against a hand computation -------------------------------------------------------------------------------


def _one_hot(predicted, width):
    logits = np.zeros((len(predicted), width))
    logits[np.arange(len(predicted)), predicted] = 1.0
    return logits


def test_binary_metrics_match_a_hand_computation():
    gold = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    pred = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
    tp, tn, fp, fn = 3, 4, 1, 2  # counted by hand from the two rows above
    metrics = get_task("text-classification").metrics(_one_hot(pred, 2), _encoded(gold))
    assert metrics["accuracy"] == pytest.approx((tp + tn) / 10)
    assert metrics["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))  # MRPC's F1: class 1 is positive
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics["mcc"] == pytest.approx(mcc)  # CoLA's Matthews correlation
    precision = [tn / (tn + fn), tp / (tp + fp)]
    recall = [tn / (tn + fp), tp / (tp + fn)]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert metrics["macro_precision"] == pytest.approx(sum(precision) / 2)
    assert metrics["macro_recall"] == pytest.approx(sum(recall) / 2)
    assert metrics["macro_f1"] == pytest.approx(sum(f1) / 2)


def test_multiclass_mcc_and_confusion_matrix_match_a_hand_computation():
    gold = [0, 0, 1, 1, 2, 2, 2, 0]
    pred = [0, 1, 1, 1, 2, 0, 2, 0]
    task = get_task("text-classification")
    outputs = _one_hot(pred, 3)
    matrix = np.zeros((3, 3), dtype=int)
    for g, p in zip(gold, pred):
        matrix[g, p] += 1
    assert task.details(outputs, _encoded(gold))["confusion_matrix"] == matrix.tolist()
    # Gorodkin's R_K: (c s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    c, s = np.trace(matrix), matrix.sum()
    p, t = matrix.sum(axis=0), matrix.sum(axis=1)
    expected = (c * s - p @ t) / math.sqrt((s * s - p @ p) * (s * s - t @ t))
    metrics = task.metrics(outputs, _encoded(gold))
    assert metrics["mcc"] == pytest.approx(expected)
    assert "f1" not in metrics  # the positive-class F1 is defined for two classes only


def _ranks(values):
    """1-based ranks, ties given their average rank (Spearman's convention), by hand."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_regression_metrics_match_a_hand_computation():
    gold = [4.8, 0.2, 3.0, 3.0, 1.6, 2.5]
    scores = [4.1, 0.9, 2.2, 3.5, 1.0, 2.5]
    metrics = get_task("regression").metrics(np.asarray(scores)[:, None], _encoded(gold))
    assert metrics["pearson"] == pytest.approx(_pearson(scores, gold))
    assert metrics["spearman"] == pytest.approx(_pearson(_ranks(scores), _ranks(gold)))  # a tie in gold
    assert metrics["mse"] == pytest.approx(sum((s - g) ** 2 for s, g in zip(scores, gold)) / len(gold))
    # A constant model has no measurable correlation: 0, not NaN (which no best-checkpoint comparison can order).
    flat = get_task("regression").metrics(np.full((6, 1), 2.0), _encoded(gold))
    assert flat["pearson"] == 0.0 and flat["spearman"] == 0.0


# --- the regression task ---------------------------------------------------------------------------------------------


def test_a_regression_folder_is_told_from_a_classifier():
    classifier = {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "neg", "1": "pos"}}
    regression = {"architectures": ["BertForSequenceClassification"], "problem_type": "regression",
                  "id2label": {"0": "score"}}
    assert task_of_config(classifier).name == "text-classification"
    assert task_of_config(regression).name == "regression"
    assert get_task("stsb").name == "regression" and get_task("STS-B").name == "regression"
    assert get_task("mrpc").name == "text-classification"
    with pytest.raises(ConfigError, match="unknown task 'summarization'.*regression.*ner, qa.*stsb"):
        get_task("summarization")
    assert get_task("ner").name == "token-classification" and get_task("qa").name == "question-answering"


def test_losses_are_mse_and_results_are_scores(tmp_path):
    import torch

    task = SequenceRegression()
    encoder = tiny_bert.save_classifier(tmp_path / "enc")  # a classifier folder: refused for regression data
    with pytest.raises(ModelError, match="fine-tuned text-classification model, but the data is for regression"):
        from tinybert_edge.models import load_model

        load_model(encoder, task, role="teacher")
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert.bert_config(**{}, labels=("score",))).eval()
    model.config.problem_type = "regression"
    batch = {"input_ids": torch.tensor([[2, 7, 3], [2, 9, 3]]), "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "token_type_ids": torch.zeros(2, 3, dtype=torch.long), "labels": torch.tensor([1.5, 4.0])}
    scores = task.forward(model, batch)
    assert tuple(scores.shape) == (2, 1)
    by_hand = ((scores[0, 0] - 1.5) ** 2 + (scores[1, 0] - 4.0) ** 2) / 2
    assert task.fine_tune_loss(model, batch).item() == pytest.approx(by_hand.item(), rel=1e-5)
    teacher = torch.tensor([[3.0], [1.0]])
    config = DistillConfig(hard_label_weight=1.0)
    terms = task.prediction_loss(scores, teacher, batch, config)
    assert terms["prediction"].item() == pytest.approx((((scores - teacher) ** 2).mean()).item(), rel=1e-5)
    assert terms["hard_label"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    results = task.postprocess(np.array([[3.25], [0.5]], dtype=np.float32), [[1, 2, 3], [1, 2]], {})
    assert results == [Score(3.25, 3), Score(0.5, 2)]
    assert task.manifest_fields(None) == {"task": "regression", "labels": []} and task.output_width({}) == 1


def test_agreement_of_scores_is_within_five_percent_of_their_scale():
    task = SequenceRegression()
    reference = np.array([[0.0], [2.5], [5.0], [1.0]])
    # Scale 5 (range and magnitude): a quarter point is the tolerance.
    assert task.agreement(reference, reference + 0.2) == 1.0
    assert task.agreement(reference, reference + np.array([[0.2], [0.3], [0.0], [-0.3]])) == 0.5
    # A broken kernel that moves scores by whole points disagrees everywhere.
    assert task.agreement(reference, reference + 1.0) == 0.0


# --- data: regression scores, and the errors that name the fix ---------------------------------------------------------


def test_regression_data_is_read_through_the_same_readers(tmp_path):
    path = write(tmp_path / "sts.tsv", "sentence1\tsentence2\tscore\na man\ta person\t4.5\na cat\ta car\t0.25\n"
                                       "the sky\tthe sea\t1.0\n")
    data = load_data(path, task="regression")
    assert isinstance(data, TextRegressionData) and data.task == "regression"
    assert data.labels == [4.5, 0.25, 1.0] and data.text_pairs == ["a person", "a car", "the sea"]
    assert load_data(path, task="stsb").labels == data.labels  # a GLUE preset name implies the task
    assert data.label_of(1) == 0.25


def test_float_labels_given_to_a_classifier_point_to_the_regression_task(tmp_path):
    path = write(tmp_path / "sts.csv", "text,label\na,4.5\nb,0.25\nc,3.8\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "sts.csv:2" in message and "--task regression" in message and "task='regression'" in message


def test_class_labels_given_to_regression_point_to_classification(tmp_path):
    names = write(tmp_path / "rte.tsv", "sentence1\tsentence2\tlabel\na\tb\tentailment\nc\td\tnot_entailment\n")
    with pytest.raises(DataError) as info:
        load_data(names, task="regression")
    assert "rte.tsv:2" in str(info.value) and "not a number" in str(info.value) and "--task regression" in str(info.value)
    ids = write(tmp_path / "mrpc.tsv", "sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t0\ne\tf\t1\n")
    with pytest.raises(DataError, match="only the values 0, 1: class ids, not scores.*leave out --task regression"):
        load_data(ids, task="regression")
    with pytest.raises(DataError, match="scores, not classes; drop --label-names"):
        load_data(write(tmp_path / "s.tsv", "sentence\tscore\na\t1.5\nb\t2.5\n"), task="regression",
                  label_names=["a", "b"])


def test_a_label_outside_the_declared_set_names_its_line_and_the_fix(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,pos\nb,neg\nc,maybe\n")
    with pytest.raises(DataError) as info:
        load_data(path, label_names=["neg", "pos"])
    assert "d.csv:4" in str(info.value) and "'maybe'" in str(info.value) and "--label-names" in str(info.value)


def test_a_pair_column_empty_or_missing_in_some_rows_is_an_error_with_the_line(tmp_path):
    empty = write(tmp_path / "p.tsv", "sentence1\tsentence2\tlabel\na\tb\t1\nc\t\t0\n")
    with pytest.raises(DataError) as info:
        load_data(empty)
    message = str(info.value)
    assert "p.tsv:3" in message and "second text (column 'sentence2') is empty" in message and "--text-pair-column" in message
    missing = write(tmp_path / "p.jsonl", '{"question": "q", "sentence": "s", "label": "a"}\n'
                                          '{"question": "q2", "label": "b"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: the second text \(column 'sentence'\) is missing"):
        load_data(missing)


def test_a_tsv_whose_quoting_breaks_a_row_names_the_line(tmp_path):
    path = write(tmp_path / "q.tsv", 'sentence\tlabel\ngood\t1\n"a quoted\ttab"\t0\n')
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "q.tsv:3" in message and "without quoting" in message and "convert the file to CSV" in message


def test_a_headerless_file_is_named_so_and_read_with_no_header_and_positions(tmp_path):
    rows = "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\ngj04\t1\t\tIt is.\n"
    path = write(tmp_path / "cola.tsv", rows)
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert message.startswith(f"{path}:1: the first line is read as the header, but it looks like data")
    assert "--no-header --text-column 3 --label-column 1" in message
    data = load_data(path, header=False, text_column="3", label_column="1")
    assert data.texts[0] == "Our friends won't buy this analysis." and data.labels == [1, 0, 1] and len(data) == 3
    with pytest.raises(DataError, match="no header \\(--no-header\\), so name its label column by 0-based position"):
        load_data(path, header=False, text_column="3")


def test_a_byte_order_mark_does_not_rename_the_first_column(tmp_path):
    path = write(tmp_path / "mrpc.tsv", "\ufeffQuality\t#1 String\t#2 String\n1\ta\tb\n0\tc\td\n".encode("utf-8"))
    data = load_data(path)  # MRPC's own headers are among the guesses
    assert data.labels == [1, 0] and data.texts == ["a", "c"] and data.text_pairs == ["b", "d"]


def test_a_regression_split_keeps_the_score_distribution():
    scores = [float(i % 50) / 10 for i in range(200)]
    data = TextRegressionData(texts=[f"t{i}" for i in range(200)], labels=scores, source="s")
    train, dev, test = split_data(data, (0.8, 0.1, 0.1))
    assert len(train) + len(dev) + len(test) == 200
    for part in (dev, test):  # every score quintile is in each part
        assert len(set(np.searchsorted(np.quantile(scores, [0.2, 0.4, 0.6, 0.8]), part.labels, side="right"))) == 5


@pytest.mark.skipif(not GLUE.is_dir(), reason="the shared GLUE files are not in this checkout")
def test_the_real_glue_files_read_unchanged():
    cola = load_data(GLUE / "CoLA" / "train.tsv", header=False, text_column="3", label_column="1")
    assert len(cola) == 8551 and cola.label_names == ["0", "1"]
    assert len(load_data(GLUE / "CoLA" / "dev.tsv", header=False, text_column="3", label_column="1")) == 1043
    mrpc = load_data(GLUE / "MRPC" / "train.tsv")
    assert len(mrpc) == 3668 and mrpc.text_pairs is not None and mrpc.label_names == ["0", "1"]
    rte = load_data(GLUE / "RTE" / "dev.tsv")
    assert len(rte) == 277 and rte.label_names == ["entailment", "not_entailment"]
    stsb = load_data(GLUE / "STS-B" / "train.tsv", task="stsb")
    assert len(stsb) == 5749 and min(stsb.labels) == 0.0 and max(stsb.labels) == 5.0
    assert len(load_data(GLUE / "STS-B" / "dev.tsv", task="regression")) == 1500
    assert len(load_data(GLUE / "QNLI" / "dev.tsv")) == 5463


# --- presets and the metric that selects checkpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("task, epochs, length, metric", [
    ("mrpc", 20.0, 128, "f1"), ("rte", 20.0, 128, "accuracy"), ("cola", 50.0, 64, "mcc"),
    ("stsb", 20.0, 128, "spearman"), ("sst2", 10.0, 64, "accuracy")])
def test_presets_take_effect(task, epochs, length, metric):
    config = DistillConfig.for_task(task, batch_size=8)
    assert (config.intermediate_epochs, config.max_length, config.metric, config.prediction_epochs) == (
        epochs, length, metric, 3.0)
    assert config.batch_size == 8 and config.task == task  # explicit keys win


def test_a_preset_implies_its_data_task_and_a_contradiction_is_refused():
    config = PipelineConfig(distill=DistillConfig.for_task("stsb"))
    assert config.data.task == "regression"
    assert PipelineConfig(distill=DistillConfig.for_task("mrpc")).data.task is None
    with pytest.raises(ConfigError, match="data.task = 'text-classification' but distill.task = 'stsb'"):
        PipelineConfig(data=DataConfig(task="text-classification"), distill=DistillConfig.for_task("stsb"))
    with pytest.raises(ConfigError, match="data.task"):
        DataConfig(task="summarization")
    assert DataConfig(task="ner").task == "token-classification"  # an alias is stored as the registered name
    with pytest.raises(ConfigError, match="data.task = 'token-classification' but distill.task = 'stsb'"):
        PipelineConfig(data=DataConfig(task="ner"), distill=DistillConfig.for_task("stsb"))


def _regression_world(tmp_path: Path, n: int = 48):
    """A bare tiny encoder and sentence pairs scored by how many positive words they hold."""
    from test_readme import tiny_encoder

    encoder = tiny_encoder(tmp_path / "encoder")
    texts, _ = tiny_bert.sentences(n)
    seconds, _ = tiny_bert.sentences(n, seed=7)
    scores = [float(sum(w in tiny_bert.POSITIVE for w in (a + " " + b).split())) + 0.1 * (i % 3)
              for i, (a, b) in enumerate(zip(texts, seconds))]
    return encoder, TextRegressionData(texts=texts, labels=scores, text_pairs=seconds, source="synthetic-sts")


def test_distill_selects_by_the_preset_metric_and_records_it(tmp_path):
    from tinybert_edge.config import FinetuneConfig
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.training.finetune import finetune

    encoder, data = _regression_world(tmp_path)
    train, dev = data.subset(range(32)), data.subset(range(32, 48))
    teacher = finetune(encoder, train, dev, FinetuneConfig(epochs=1, batch_size=16, max_length=32),
                       cache_dir=tmp_path / "cache", progress=False)
    assert json.loads((teacher / "config.json").read_text())["problem_type"] == "regression"
    tiny = dict(student="teacher-layers:1,2", batch_size=16, max_length=32, intermediate_epochs=1.0,
                prediction_epochs=1.0, eval_every=1)
    with pytest.raises(ConfigError, match="distill.metric = 'mcc' cannot select checkpoints of this regression data"):
        distill(teacher, train, dev, tmp_path / "bad", DistillConfig(metric="mcc", **tiny), progress=False)
    assert not (tmp_path / "bad").exists()
    result = distill(teacher, train, dev, tmp_path / "student", DistillConfig.for_task("stsb", **tiny),
                     progress=False)
    saved = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert saved["selection_metric"] == "spearman" and saved["task"] == "regression"
    assert "best_dev_spearman" in saved["stages"]["prediction"]
    assert result.selection_metric == "spearman" and set(result.dev_metrics) == {"pearson", "spearman", "mse"}
    assert task_defaults("stsb")["metric"] == saved["config"]["metric"]


def test_int8_parity_of_a_score_is_judged_on_the_score():
    from tinybert_edge.converters.parity import ParityThresholds, compare_logits

    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 5, size=(200, 1)).astype(np.float32)
    close = reference + rng.normal(0, 0.02, size=reference.shape).astype(np.float32)  # int8-sized noise
    assert compare_logits(reference, close, ParityThresholds.int8(), task="regression").passed
    shifted = reference.copy()
    shifted[:40] += 0.6  # a fifth of the scores off by more than a quarter point (5% of the 0-5 scale)
    report = compare_logits(reference, shifted, ParityThresholds.int8(), task="regression")
    assert not report.passed and report.argmax_agreement == pytest.approx(0.8)
    assert "agreement here means a score within 5% of the reference's score scale" in report.failures[0]
