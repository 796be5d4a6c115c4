"""The embedding task (issue 17): pooling settings read from sentence-transformers folders, corpora, the
distillation objective, the metrics, and a distillation run, on tiny in-process BERTs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.errors import ConfigError, DataError, ModelError
from tinybert_edge.tasks import get_task, task_of
from tinybert_edge.tasks.embedding import (EmbeddingTask, Pooling, TextEmbeddingData, read_pooling, read_texts,
                                           retrieval_metrics, similarity_metrics)

MINILM_MODULES = [  # all-MiniLM-L6-v2's modules.json, as published
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def pooling_config(width: int, mode: str = "mean") -> dict:
    return {"word_embedding_dimension": width, "pooling_mode_cls_token": mode == "cls",
            "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": mode == "max",
            "pooling_mode_mean_sqrt_len_tokens": False}


def encoder_folder(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0,
                   sentence_transformers: bool = True, mode: str = "mean", normalize: bool = True) -> Path:
    """A tiny BertModel with its tokenizer, laid out as a sentence-transformers folder (modules.json, 1_Pooling/,
    2_Normalize/) unless `sentence_transformers` is False (a bare encoder)."""
    import torch
    from transformers import BertModel

    config = tiny_bert.bert_config(layers=layers, hidden=hidden, heads=heads)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tiny_bert.tokenizer(folder).save_pretrained(folder)
    if sentence_transformers:
        modules = MINILM_MODULES if normalize else MINILM_MODULES[:2]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config(hidden, mode)))
        if normalize:
            (folder / "2_Normalize").mkdir()
    return folder


def sts_pairs(n: int, seed: int = 0) -> TextEmbeddingData:
    """Pairs scored by how many polar words they share (a learnable similarity for a tiny model)."""
    first, _ = tiny_bert.sentences(n, seed)
    second, _ = tiny_bert.sentences(n, seed + 1)
    scores = [float(len(set(a.split()) & set(b.split()))) + 0.01 * i for i, (a, b) in enumerate(zip(first, second))]
    return TextEmbeddingData(first, second, scores, source=f"synthetic-sts{seed}")


# --- pooling settings ------------------------------------------------------------------------------------------------

def test_pooling_is_read_from_a_sentence_transformers_folder(tmp_path):
    assert read_pooling(encoder_folder(tmp_path / "mean")) == Pooling("mean", True)
    assert read_pooling(encoder_folder(tmp_path / "cls", mode="cls", normalize=False)) == Pooling("cls", False)
    assert read_pooling(encoder_folder(tmp_path / "bare", sentence_transformers=False)) is None


def test_a_folder_without_pooling_settings_is_refused_naming_the_flag(tmp_path):
    from tinybert_edge.models import load_model

    bare = encoder_folder(tmp_path / "bare", sentence_transformers=False)
    with pytest.raises(ModelError, match="no pooling settings.*EmbeddingTask\\(pooling='mean'"):
        load_model(bare, "embedding", role="teacher")
    model = load_model(bare, EmbeddingTask(pooling="cls", normalize=False), role="teacher")
    assert model.config.sentence_embedding == {"pooling": "cls", "normalize": False}


def test_modules_that_cannot_go_into_a_graph_are_refused_by_name(tmp_path):
    folder = encoder_folder(tmp_path / "dense")
    modules = MINILM_MODULES + [{"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match=r"\['Dense'\]"):
        read_pooling(folder)
    maxed = encoder_folder(tmp_path / "max", mode="max")
    with pytest.raises(ModelError, match="pooling_mode_max_tokens"):
        read_pooling(maxed)
    with pytest.raises(ConfigError, match="pooling = 'max'"):
        EmbeddingTask(pooling="max")


def test_vectors_are_those_sentence_transformers_computes(tmp_path):
    """Mean over real tokens (padding ignored) and L2 norm, checked against sentence-transformers itself."""
    st = pytest.importorskip("sentence_transformers")
    from tinybert_edge.models import load_model, load_tokenizer

    folder = encoder_folder(tmp_path / "teacher")
    texts = ["good movie", "the film was really very bad and the actor was awful", ""]
    task = get_task("embedding")
    model = load_model(folder, task)
    encoded = task.encode(load_tokenizer(folder), TextEmbeddingData(texts), 64)
    import torch

    batch = {k: torch.from_numpy(v) for k, v in encoded.collate(range(3)).items() if k != "labels"}
    with torch.no_grad():
        ours = task.forward(model, batch).numpy()
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


# --- data ------------------------------------------------------------------------------------------------------------

def test_any_text_file_or_column_is_a_corpus(tmp_path):
    (tmp_path / "corpus.txt").write_text("first line\n\n  second line  \n", encoding="utf-8")
    assert read_texts(tmp_path / "corpus.txt").texts == ["first line", "second line"]
    tiny_bert.write_csv(tmp_path / "table.csv", 6)
    data = read_texts(tmp_path / "table.csv")
    assert len(data) == 6 and data.text_pairs is None and data.scores is None
    (tmp_path / "sts.tsv").write_text("sentence1\tsentence2\tscore\na cat\ta dog\t3.5\nrain\tsun\t0.0\n")
    sts = get_task("embedding").read(tmp_path / "sts.tsv")
    assert sts.text_pairs == ["a dog", "sun"] and sts.scores == [3.5, 0.0]
    (tmp_path / "bad.tsv").write_text("sentence1\tsentence2\tscore\na cat\ta dog\thigh\n")
    with pytest.raises(DataError, match="'high' in the score column 'score'"):
        read_texts(tmp_path / "bad.tsv")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match="no non-empty lines"):
        read_texts(tmp_path / "empty.txt")


def test_long_texts_are_truncated_and_counted(tmp_path):
    from tinybert_edge.models import load_tokenizer

    folder = encoder_folder(tmp_path / "teacher")
    data = TextEmbeddingData(["good " * 40, "bad day"])
    encoded = get_task("embedding").encode(load_tokenizer(folder), data, 16)
    assert encoded.truncated == 1 and max(len(ids) for ids in encoded.input_ids) == 16


# --- objective and metrics -------------------------------------------------------------------------------------------

def test_prediction_loss_is_the_vector_mse_plus_an_optional_cosine_term():
    import torch

    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    mse = ((1 + 1) + (0 + 1)) / 4
    assert get_task("embedding").prediction_loss(student, teacher, {}, None)["prediction"].item() == pytest.approx(mse)
    cosine = ((1 - 0.0) + (1 - 1.0)) / 2
    loss = EmbeddingTask(cosine_weight=0.5).prediction_loss(student, teacher, {}, None)["prediction"].item()
    assert loss == pytest.approx(mse + 0.5 * cosine)
    with pytest.raises(ConfigError, match="2 wide and the teacher's 3"):
        get_task("embedding").prediction_loss(student, torch.zeros(2, 3), {}, None)


def test_similarity_metrics_are_spearman_and_pearson_of_the_cosine():
    first = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    second = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.2]])  # cosines 1, 0.707, 0, -0.98
    result = similarity_metrics(first, second, np.array([4.0, 3.0, 0.5, 1.0]))
    assert result["spearman"] == pytest.approx(0.8)  # ranks (4,3,2,1) vs (4,3,1,2): 1 - 6*2/(4*15)
    cos = np.array([1.0, 1 / np.sqrt(2), 0.0, -1 / np.sqrt(1.04)])
    assert result["pearson"] == pytest.approx(np.corrcoef(cos, [4.0, 3.0, 0.5, 1.0])[0, 1])


def test_retrieval_metrics_match_a_hand_count():
    documents = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    queries = np.array([[1.0, 0.1], [1.0, 0.1], [0.0, 1.0]])
    # query 0 wants document 0 (rank 1); query 1 wants document 1 (rank 3); query 2 wants document 2 (rank 2)
    result = retrieval_metrics(queries, documents, np.array([0, 1, 2]))
    assert result["recall@1"] == pytest.approx(1 / 3) and result["recall@10"] == 1.0
    assert result["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_metrics_tell_similarity_pairs_from_retrieval_pairs(tmp_path):
    from tinybert_edge.models import load_tokenizer

    task = get_task("embedding")
    tokenizer = load_tokenizer(encoder_folder(tmp_path / "t"))
    sts = task.encode(tokenizer, sts_pairs(8), 32)
    assert set(task.metrics(np.random.default_rng(0).normal(size=(len(sts), 4)), sts)) == {"spearman", "pearson"}
    questions = TextEmbeddingData(["q one", "q two", "q three"], ["doc a", "doc b", "doc a"])
    retrieval = task.encode(tokenizer, questions, 32)
    assert len(retrieval) == 5  # three queries, two distinct documents
    vectors = np.array([[1, 0], [0, 1], [1, 0.1], [1, 0], [0, 1]], dtype=np.float32)
    assert task.metrics(vectors, retrieval) == {"recall@1": 1.0, "recall@10": 1.0, "mrr@10": 1.0}


def test_agreement_is_the_same_nearest_neighbour():
    task = get_task("embedding")
    reference = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert task.agreement(reference, reference + 0.01) == 1.0
    swapped = np.array([[1.0, 0.0], [0.1, 0.9], [0.0, 1.0], [0.9, 0.1]])
    assert task.agreement(reference, swapped) < 1.0
    # a text present twice: either copy is the nearest neighbour of the third, and rounding noise picks one
    twice = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.2], [0.0, 1.0]])
    noisy = twice + np.array([[0, 0], [0, 1e-7], [0, 0], [0, 0]])
    assert task.predictions(twice)[2] != task.predictions(noisy)[2]
    assert task.agreement(twice, noisy) == 1.0
    # a runner-up within NEIGHBOUR_TIE of the nearest is a tie; one further away is a disagreement
    from tinybert_edge.tasks.embedding import NEIGHBOUR_TIE

    def near_pair(gap: float) -> np.ndarray:  # row 0's nearest is row 1 (cosine 0.9), row 2 is `gap` less similar
        angle_1, angle_2 = np.arccos(0.9), np.arccos(0.9 - gap)
        return np.array([[1.0, 0.0, 0.0], [np.cos(angle_1), np.sin(angle_1), 0.0],
                         [np.cos(angle_2), 0.0, np.sin(angle_2)], [0.0, 0.0, -1.0]])

    for gap, agreed in ((NEIGHBOUR_TIE / 2, 1.0), (5 * NEIGHBOUR_TIE, 0.75)):
        reference = near_pair(gap)
        candidate = reference[[0, 2, 1, 3]]  # rows 1 and 2 swap vectors: row 0 now finds row 2 nearest
        assert task.predictions(reference)[0] == 1 and task.predictions(candidate)[0] == 2
        assert task.agreement(reference, candidate) == pytest.approx(agreed)


# --- distillation ----------------------------------------------------------------------------------------------------

def test_distilling_an_embedding_teacher_gives_a_student_that_pools_as_it_does(tmp_path):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.task_distillation import distill

    teacher = encoder_folder(tmp_path / "teacher", layers=4, hidden=32, heads=2)
    texts, _ = tiny_bert.sentences(48)
    train = TextEmbeddingData(texts, source="synthetic corpus")
    config = DistillConfig(student="teacher-layers:2,4", batch_size=16, max_length=32, intermediate_epochs=1.0,
                           prediction_epochs=1.0, eval_every=1)
    result = distill(teacher, train, sts_pairs(16, seed=3), tmp_path / "student", config, progress=False)
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["sentence_embedding"] == {"pooling": "mean", "normalize": True}
    assert isinstance(task_of(tmp_path / "student"), EmbeddingTask)
    summary = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert summary["task"] == "embedding" and summary["selection_metric"] == "spearman"
    assert set(result.dev_metrics) == {"spearman", "pearson"}
    assert summary["stages"]["intermediate"]["final_loss"]["hidden"] >= 0
    assert "prediction" in summary["stages"]["prediction"]["final_loss"]


def test_a_student_narrower_than_the_teacher_is_refused_with_the_fix_before_any_training(tmp_path, monkeypatch):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.training import loop

    teacher = encoder_folder(tmp_path / "teacher", layers=2, hidden=32, heads=2)
    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps({"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32,
                                  "num_hidden_layers": 1}))
    texts, _ = tiny_bert.sentences(16)
    trained = []
    monkeypatch.setattr(loop, "run_loop", lambda spec, *args, **kwargs: trained.append(spec.name))
    config = DistillConfig(student=f"config:{narrow}", batch_size=8, max_length=16, intermediate_epochs=1.0,
                           prediction_epochs=1.0)
    with pytest.raises(ConfigError, match="16 wide and the teacher's 32"):
        distill(teacher, TextEmbeddingData(texts), sts_pairs(8), tmp_path / "student", config,
                work_dir=tmp_path / "work", progress=False)
    assert trained == [] and not (tmp_path / "student").exists()  # refused before stage 1, nothing written
    # Only the prediction stage compares vectors: intermediate layers alone may use a narrower student.
    from tinybert_edge.tasks.embedding import EmbeddingTask

    narrow_config, teacher_config = type("C", (), {"hidden_size": 16}), type("C", (), {"hidden_size": 32})
    EmbeddingTask().check_student(narrow_config, teacher_config, DistillConfig(prediction_epochs=0))


# --- the pipeline ----------------------------------------------------------------------------------------------------

def test_pipeline_task_embedding_distils_exports_and_reports(tmp_path):
    from tinybert_edge.app.pipeline import pipeline
    from tinybert_edge.config import DataConfig, DistillConfig, PipelineConfig

    teacher = encoder_folder(tmp_path / "teacher", layers=2, hidden=32, heads=2)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_bert.sentences(40, seed=5)[0]) + "\n", encoding="utf-8")
    pairs = sts_pairs(24, seed=9)
    sts = tmp_path / "sts.tsv"
    sts.write_text("sentence1\tsentence2\tscore\n" + "".join(
        f"{a}\t{b}\t{y}\n" for a, b, y in zip(pairs.texts, pairs.text_pairs, pairs.scores)), encoding="utf-8")
    config = PipelineConfig(
        name="emb", runs_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"), teacher=str(teacher),
        data=DataConfig(path=str(corpus), task="embedding", dev_path=str(sts), test_path=str(sts)),
        distill=DistillConfig(student="teacher-layers:2", batch_size=16, max_length=32, eval_every=2),
        formats=["onnx"], sequence_lengths=[32], threads=1, bench_min_seconds=0.01, bench_min_iterations=3)
    report = pipeline(config, progress=False)
    assert report["task"] == "embedding" and report["primary_metric"] == "spearman"
    rows = {row["name"]: row for row in report["rows"]}
    assert {"student · PyTorch fp32", "student · ONNX int8"} <= set(rows)
    assert all("spearman" in row["metrics"] for row in rows.values())
    assert json.loads((tmp_path / "runs" / "emb" / "teacher" / "config.json").read_text())["sentence_embedding"]


def test_distill_cli_names_and_takes_the_pooling_flag(tmp_path, capsys):
    from tinybert_edge.app.cli import EXIT_USER_ERROR, main

    bare = encoder_folder(tmp_path / "bare", layers=2, sentence_transformers=False)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_bert.sentences(24)[0]) + "\n", encoding="utf-8")
    pairs = sts_pairs(12, seed=4)
    sts = tmp_path / "sts.tsv"
    sts.write_text("sentence1\tsentence2\tscore\n" + "".join(
        f"{a}\t{b}\t{y}\n" for a, b, y in zip(pairs.texts, pairs.text_pairs, pairs.scores)), encoding="utf-8")
    common = [str(bare), str(tmp_path / "student"), "--data", str(corpus), "--dev", str(sts), "--task", "embedding",
              "--student", "teacher-layers:2", "--intermediate-epochs", "1", "--prediction-epochs", "1",
              "--no-progress"]
    assert main(["distill", *common]) == EXIT_USER_ERROR
    error = capsys.readouterr().err
    assert "no pooling settings" in error and "--pooling mean|cls" in error
    assert main(["distill", *common, "--pooling", "cls", "--no-normalize"]) == 0
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["sentence_embedding"] == {"pooling": "cls", "normalize": False}


def test_pipeline_cli_takes_the_pooling_flags_for_a_teacher_without_pooling_files(tmp_path, capsys):
    from tinybert_edge.app.cli import EXIT_USER_ERROR, build_parser, main, _pipeline_config

    bare = encoder_folder(tmp_path / "bare", layers=2, sentence_transformers=False)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_bert.sentences(32, seed=2)[0]) + "\n", encoding="utf-8")
    pairs = sts_pairs(12, seed=4)
    sts = tmp_path / "sts.tsv"
    sts.write_text("sentence1\tsentence2\tscore\n" + "".join(
        f"{a}\t{b}\t{y}\n" for a, b, y in zip(pairs.texts, pairs.text_pairs, pairs.scores)), encoding="utf-8")
    settings = tmp_path / "run.toml"
    settings.write_text("bench_min_iterations = 3\n[distill]\nbatch_size = 16\nmax_length = 32\n", encoding="utf-8")
    common = ["pipeline", "--config", str(settings), "--runs-dir", str(tmp_path / "runs"), "--teacher", str(bare),
              "--data", str(corpus), "--dev", str(sts), "--test", str(sts), "--task", "embedding",
              "--student", "teacher-layers:2", "--intermediate-epochs", "1", "--prediction-epochs", "1",
              "--formats", "onnx", "--sequence-lengths", "32", "--threads", "1", "--bench-min-seconds", "0.01",
              "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    config = _pipeline_config(build_parser().parse_args([*common, "--pooling", "cls", "--no-normalize"]))
    assert (config.data.pooling, config.data.normalize) == ("cls", False)
    # Refused up front, naming the fix: the flag with another task, --no-normalize alone, no flag for a bare teacher.
    assert main([*common, "--task", "qa", "--pooling", "mean", "--name", "qa"]) == EXIT_USER_ERROR
    assert "use it with task embedding" in capsys.readouterr().err
    assert main([*common, "--no-normalize", "--name", "alone"]) == EXIT_USER_ERROR
    assert "--no-normalize goes with --pooling" in capsys.readouterr().err
    assert main([*common, "--name", "bare"]) == EXIT_USER_ERROR
    assert "--pooling mean|cls" in capsys.readouterr().err
    assert main([*common, "--pooling", "cls", "--no-normalize", "--name", "cls"]) == 0
    run = tmp_path / "runs" / "cls"
    for folder in ("teacher", "student"):
        saved = json.loads((run / folder / "config.json").read_text())
        assert saved["sentence_embedding"] == {"pooling": "cls", "normalize": False}
    assert json.loads((run / "pipeline_config.json").read_text())["data"]["pooling"] == "cls"
