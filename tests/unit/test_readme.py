"""The README's Python blocks run as printed, the way a doc-test harness runs them: the code text is the README's,
only the paths (and the few budgets that would take hours) are substituted with tiny in-process models and data.

Each substitution must match the README text exactly; when the README changes, this test fails instead of quietly
running something else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)

README = Path(__file__).resolve().parents[2] / "README.md"

# README text -> what runs instead. Paths become tiny local files; budgets meant for real corpora become tiny ones.
SUBSTITUTIONS = {
    '"../shared/data/sst2/train.tsv"': "TRAIN_TSV",
    '"path/to/bert-encoder"': "ENCODER",
    '"path/to/pretrained-encoder"': "ENCODER",
    '"corpus.txt"': "CORPUS",
    "GeneralDistillConfig(max_steps=20_000)": "GeneralDistillConfig(max_steps=2)",
    "AugmentConfig(n_augmented=20, p_t=0.4, top_k=15)": "AugmentConfig(n_augmented=1, p_t=0.4, top_k=15)",
    '"../shared/data/glue/STS-B/train.tsv"': "STSB_TSV",
    '"../shared/data/glue/STS-B/dev.tsv"': "STSB_TSV",
    '"../shared/data/glue/CoLA/train.tsv"': "COLA_TSV",
    '"../shared/data/glue/MRPC/train.tsv"': "MRPC_TSV",
    'DistillConfig.for_task("stsb", max_train_examples=2000)':
        'DistillConfig.for_task("stsb", max_train_examples=32, intermediate_epochs=1, prediction_epochs=1)',
}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def tiny_encoder(folder: Path) -> Path:
    """A bare 6-layer, 48-wide, 12-head BERT (what `finetune` and general distillation start from): deep enough for
    the default `teacher-layers:2,4,6` student, heads equal to TinyBERT4's, positions for the 128-token bucket."""
    import torch
    from transformers import BertModel

    config = tiny_bert.bert_config(layers=6, hidden=48, heads=12)
    config.max_position_embeddings = 128
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tiny_bert.tokenizer(folder).save_pretrained(folder)
    return folder


def tiny_pipeline_config(runs: Path, cache: Path, teacher: Path, data: Path):
    """`PipelineConfig` as the README's first block builds it, with the embedded default's teacher and corpus
    replaced by tiny ones (and a measurement budget for a test), every explicit argument still applied."""
    from tinybert_edge.config import DataConfig, DistillConfig, FinetuneConfig, PipelineConfig

    def build(**explicit):
        tiny = dict(runs_dir=str(runs), cache_dir=str(cache), teacher=str(teacher), data=DataConfig(path=str(data)),
                    finetune=FinetuneConfig(max_train_examples=40), distill=DistillConfig(max_train_examples=32),
                    formats=["onnx"], threads=1, bench_min_seconds=0.01, bench_min_iterations=3)
        return PipelineConfig(**{**tiny, **explicit})

    return build


@pytest.fixture()
def tiny_world(tmp_path, monkeypatch):
    encoder = tiny_encoder(tmp_path / "encoder")
    texts, labels = tiny_bert.sentences(48)
    train_tsv = tmp_path / "train.tsv"
    train_tsv.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_bert.sentences(64, seed=5)[0]) + "\n", encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # the README writes out/... relative to where it runs
    monkeypatch.setenv("TINYBERT_EDGE_CACHE", str(tmp_path / "cache"))
    import tinybert_edge.app.pipeline
    import tinybert_edge.config

    # Both bindings, so that the swap ends with the test: app.pipeline imports PipelineConfig at module level, and a
    # first import of it while only config's binding is swapped would keep the tiny builder for later tests.
    tiny_config = tiny_pipeline_config(tmp_path / "runs", tmp_path / "cache", encoder, train_tsv)
    monkeypatch.setattr(tinybert_edge.config, "PipelineConfig", tiny_config)
    monkeypatch.setattr(tinybert_edge.app.pipeline, "PipelineConfig", tiny_config)
    # GLUE-shaped files: STS-B's scored pairs, CoLA without a header, MRPC with its BOM and headers.
    seconds = tiny_bert.sentences(48, seed=2)[0]
    stsb = tmp_path / "stsb.tsv"
    stsb.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{i % 5 + 0.5 * (y == 1):.2f}\n" for i, (a, b, y)
                                                          in enumerate(zip(texts, seconds, labels))), encoding="utf-8")
    cola = tmp_path / "cola.tsv"
    cola.write_text("".join(f"src\t{y}\t\t{t}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    mrpc = tmp_path / "mrpc.tsv"
    mrpc.write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                    + "".join(f"{y}\t1\t2\t{a}\t{b}\n" for a, b, y in zip(texts, seconds, labels)), encoding="utf-8")
    return {"ENCODER": str(encoder), "TRAIN_TSV": str(train_tsv), "CORPUS": str(corpus), "STSB_TSV": str(stsb),
            "COLA_TSV": str(cola), "MRPC_TSV": str(mrpc)}


def test_every_substitution_matches_the_readme():
    code = "\n".join(python_blocks(README.read_text(encoding="utf-8")))
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 2
    for text in SUBSTITUTIONS:
        assert text in code, f"the README no longer contains {text!r}; update SUBSTITUTIONS"


def test_readme_python_blocks_run_as_printed(tiny_world, capsys):
    namespace: dict = dict(tiny_world)
    for number, block in enumerate(python_blocks(README.read_text(encoding="utf-8")), start=1):
        code = block
        for text, replacement in SUBSTITUTIONS.items():
            code = code.replace(text, replacement)
        exec(compile(code, f"README.md python block {number}", "exec"), namespace)
        print(f"--- end of block {number}")
    blocks = [b.strip().splitlines() for b in re.split(r"--- end of block \d+\n", capsys.readouterr().out)]
    # What the block prints comes first and last: pipeline() keeps its measurement progress off stdout. (export()
    # lets LiteRT-Torch print its conversion steps in between; only the CLI silences those, see logs.py.)
    assert float(blocks[0][0]) > 0, blocks[0]  # the pipeline's p50 at 128 tokens
    assert 0.0 <= float(blocks[0][-1]) <= 1.0, blocks[0]  # evaluate(...).accuracy
    assert len(blocks[1]) == 1 and blocks[1][0].startswith("[Prediction("), blocks[1]  # the bundle's predictions
    for name in ("pipeline", "load_data", "finetune", "distill", "export", "evaluate", "package", "load_bundle"):
        assert callable(namespace[name]), name  # every imported name is the function it documents
    assert (Path("out/bundle.zip")).is_file()
