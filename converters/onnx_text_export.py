"""ONNX with the tokenizer in the graph: strings in, logits and the label out, for teams that want one ONNX file and
no tokenizer code (onnxruntime-extensions' `BertTokenizer` custom op, run by registering its library in the session;
see `tinybert_edge.runtime.onnx_text`).

The graph is the chain's ONNX export of the same precision with this prepended and appended:

    text (string[1], or [2] for a pair) -> StringRegexReplace (Hugging Face's clean_text: control characters and
    U+FFFD dropped, Unicode white space made a space; lone combining marks dropped where accents are stripped)
    -> BertTokenizer (ai.onnx.contrib; vocabulary, lower-casing, accent stripping, CJK spacing and max_length from
    the model's tokenizer) -> Unsqueeze -> input_ids, attention_mask, token_type_ids [1, n] -> the model
    -> logits [1, labels] -> ArgMax -> label_id [1] -> Gather(label names) -> label [1]

The op does not follow Hugging Face's `strip_accents=None` (it defaults to keeping accents), so every setting is
passed explicitly; it has no clean_text step (U+FFFD and format characters such as U+200B became [UNK] or split
words), so the graph does it first with the code point classes of the SDK's own WordPiece tables; truncation needs
`max_length`, set to the artifact's longest sequence bucket. The op takes one text or one pair per call, never a
batch (see runtime/onnx_text.py). Before the artifact is kept, the op's ids are compared with the Hugging Face
tokenizer's (`tokenizer_gate`), and the whole graph is run on the texts and compared with the source ONNX model fed
Hugging Face's ids.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.artifacts import Artifact, metadata_path
from tinybert_edge.converters.artifact import check_output_path
from tinybert_edge.converters.tokenizer_gate import TokenizerGate, check_vocabulary, tokenizer_agreement
from tinybert_edge.errors import ExportError, ModelError, ParityError, require
from tinybert_edge.io import atomic_path, write_json_atomic
from tinybert_edge.runtime.onnx_text import OUTPUTS, TEXT_INPUT, OnnxTextSession, session_options
from tinybert_edge.runtime.tokenizer_corpus import settings_dict
from tinybert_edge.runtime.wordpiece import TokenizerSettings, load_vocab

log = logging.getLogger(__name__)

TEXT_FILE = "model.onnx"
CONTRIB_DOMAIN = "ai.onnx.contrib"
CONSUMER = "onnxruntime-extensions' BertTokenizer op"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# 2: the graph cleans text before the op (clean_text, lone marks); an artifact of another version is made again
TOKENIZER_GRAPH_VERSION = 2
GRAPH_CHECK_TEXTS = 64
GRAPH_CHECK_MAX_DIFF = 1e-3  # same model, same ids: only the session differs


def _re2_class(ranges: Sequence[tuple[int, int]]) -> str:
    """An RE2 character class for inclusive code point ranges."""
    return "[" + "".join(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges) + "]"


def _replace_nodes(source: str, target: str, name: str, pattern: str, rewrite: str) -> list[Any]:
    """`target` = `source` with every match of the RE2 `pattern` replaced by `rewrite` (onnxruntime-extensions'
    StringRegexReplace, fed its pattern and rewrite as string constants)."""
    from onnx import TensorProto, helper

    def constant(suffix: str, value: str) -> Any:
        return helper.make_node("Constant", [], [f"{name}_{suffix}"], name=f"{name}_{suffix}",
                                value=helper.make_tensor(f"{name}_{suffix}", TensorProto.STRING, [1],
                                                         [value.encode("utf-8")]))

    return [constant("pattern", pattern), constant("rewrite", rewrite),
            helper.make_node("StringRegexReplace", [source, f"{name}_pattern", f"{name}_rewrite"], [target], name=name,
                             domain=CONTRIB_DOMAIN, global_replace=1)]


def clean_text_nodes(source: str, target: str) -> list[Any]:
    """Hugging Face's BertNormalizer clean_text as graph nodes: control, format and unassigned characters and U+FFFD
    removed, then every Unicode white space character made a space (the SDK's WordPiece tables, which the Python
    runtime's parity tests pin to Hugging Face's Rust tokenizer)."""
    from tinybert_edge.runtime.wordpiece import default_tables

    ranges = default_tables().ranges
    return (_replace_nodes(source, "text_no_control", "text_drop_control", _re2_class(ranges["control"]), "")
            + _replace_nodes("text_no_control", target, "text_spaces", _re2_class(ranges["whitespace"]), " "))


def mark_nodes(source: str, target: str) -> list[Any]:
    """The combining marks that Hugging Face's strip_accents drops (after NFD) dropped where they stand alone in the
    text (an Arabic damma, a Devanagari sign): the op strips the marks of the letters it decomposes, not these."""
    from tinybert_edge.runtime.wordpiece import default_tables

    return _replace_nodes(source, target, "text_drop_marks", _re2_class(default_tables().ranges["mark"]), "")


def tokenizer_nodes(vocab_file: Path, settings: TokenizerSettings, max_length: int, outputs: Sequence[str]) -> list[Any]:
    """The BertTokenizer node with every setting given explicitly (its defaults are not Hugging Face's), behind the
    clean_text nodes when the tokenizer cleans text (Hugging Face's default) and the lone-mark node when it strips
    accents."""
    from onnx import helper

    words = sorted(load_vocab(vocab_file).items(), key=lambda item: item[1])
    nodes, text = [], TEXT_INPUT
    if settings.clean_text:
        nodes += clean_text_nodes(text, "text_cleaned")
        text = "text_cleaned"
    if settings.effective_strip_accents:
        nodes += mark_nodes(text, "text_unmarked")
        text = "text_unmarked"
    return nodes + [helper.make_node(
        "BertTokenizer", [text], list(outputs), name="text_tokenizer", domain=CONTRIB_DOMAIN,
        vocab_file="\n".join(word for word, _ in words), do_lower_case=int(settings.do_lower_case),
        strip_accents=int(settings.effective_strip_accents), tokenize_chinese_chars=int(settings.tokenize_chinese_chars),
        max_length=int(max_length), truncation_strategy_name="longest_first", unk_token=settings.unk_token,
        sep_token=settings.sep_token, pad_token=settings.pad_token, cls_token=settings.cls_token,
        mask_token=settings.mask_token, suffix_indicator=settings.continuing_subword_prefix)]


def tokenizer_model(nodes: Sequence[Any]) -> Any:
    """A graph of the tokenizer nodes alone (text -> ids, types, mask): what the agreement gate runs."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(list(nodes), "tokenizer",
                              [helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, [None])],
                              [helper.make_tensor_value_info(name, TensorProto.INT64, [None])
                               for name in nodes[-1].output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(CONTRIB_DOMAIN, 1)])


def text_graph(model: Any, nodes: Sequence[Any], label_names: Sequence[str]) -> Any:
    """`model` (inputs input_ids, attention_mask, token_type_ids; output logits) with the tokenizer `nodes` in front
    and the label's id and name behind."""
    from onnx import TensorProto, helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    if not set(MODEL_INPUTS) >= inputs or "input_ids" not in inputs:
        raise ExportError(f"the ONNX model takes {sorted(inputs)}; the tokenizer can feed {', '.join(MODEL_INPUTS)}")
    outputs = [o.name for o in graph.output]
    if len(outputs) != 1:
        raise ExportError(f"the ONNX model has outputs {outputs}; strings-in export needs one logits output")
    logits = outputs[0]
    # BertTokenizer's outputs are 1-D [n]: ids, token types, mask (in that order).
    raw = {"input_ids": "text_ids", "token_type_ids": "text_types", "attention_mask": "text_mask"}
    front = [*nodes, helper.make_node("Constant", [], ["text_axis0"], name="text_axis0",
                                    value=helper.make_tensor("axis0", TensorProto.INT64, [1], [0]))]
    front += [helper.make_node("Unsqueeze", [raw[name], "text_axis0"], [name], name=f"text_unsqueeze_{name}")
              for name in MODEL_INPUTS if name in inputs]
    back = [helper.make_node("ArgMax", [logits], ["label_id"], name="text_argmax", axis=-1, keepdims=0),
            helper.make_node("Constant", [], ["text_label_names"], name="text_label_names",
                             value=helper.make_tensor("label_names", TensorProto.STRING, [len(label_names)],
                                                      [name.encode("utf-8") for name in label_names])),
            helper.make_node("Gather", ["text_label_names", "label_id"], ["label"], name="text_label", axis=0)]
    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, [None]))
    width = len(label_names)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, width]),
                         helper.make_tensor_value_info("label_id", TensorProto.INT64, [1]),
                         helper.make_tensor_value_info("label", TensorProto.STRING, [1])])
    if logits != "logits":
        for n in graph.node:
            n.output[:] = ["logits" if o == logits else o for o in n.output]
            n.input[:] = ["logits" if i == logits else i for i in n.input]
    if not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return model


def _graph_check(session: OnnxTextSession, source_file: Path, reference: Any, texts: Sequence[str], max_length: int,
                 ) -> dict[str, Any]:
    """The whole graph on `texts` against the source ONNX model fed the Hugging Face tokenizer's ids."""
    import onnxruntime as ort

    source = ort.InferenceSession(str(source_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in source.get_inputs()}
    diffs, same = [], 0
    for text in texts:
        encoded = reference(text, truncation=True, max_length=max_length, return_tensors="np")
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in names}
        want = np.asarray(source.run(None, feed)[0][0], dtype=np.float32)
        got, _ = session.run_text(text)
        diffs.append(float(np.abs(got - want).max()))
        same += int(np.argmax(got) == np.argmax(want))
    report = {"n": len(texts), "max_abs_diff": max(diffs), "label_agreement": same / len(texts),
              "reference": f"the source ONNX model ({source_file.name}) on Hugging Face's ids"}
    if not report["max_abs_diff"] <= GRAPH_CHECK_MAX_DIFF:
        raise ParityError(f"the strings-in graph's logits differ from its source model's by {report['max_abs_diff']:.3g} "
                          f"(> {GRAPH_CHECK_MAX_DIFF}) on texts whose ids agree; the assembled graph is wrong")
    return report


def export_onnx_text(onnx: Artifact, out_dir: str | Path, texts: Sequence[str], texts_description: str = "",
                     gate: TokenizerGate | None = None, max_length: int | None = None,
                     tokenizer_dir: str | Path | None = None) -> Artifact:
    """Write `out_dir` (model.onnx with the tokenizer in its graph, config.json, metadata.json) from the ONNX export
    `onnx` (an Artifact of the chain, fp32 or int8), truncating to `max_length` tokens (default: its longest bucket).

    Refused before anything is built when the tokenizer cannot be represented (see `check_vocabulary`); kept only
    when the op's ids agree with Hugging Face's on `texts` (the user's dev texts; `texts_description` says what they
    are) as `gate` asks, and the assembled graph matches its source on them."""
    require("onnxruntime_extensions", package="onnxruntime-extensions", extra="onnx-text",
            purpose="ONNX export with the tokenizer in the graph")
    import onnx as onnx_lib

    from tinybert_edge.models import load_tokenizer

    gate = gate or TokenizerGate()
    if onnx.format != "onnx":
        raise ModelError(f"'{onnx.path}' is a {onnx.format} artifact; the tokenizer goes into an ONNX export")
    task = onnx.task
    if not task.name.endswith("classification") or task.per_token:
        raise ExportError(f"the strings-in ONNX graph ends in a label (ArgMax over logits); the {task.name} task has "
                          "no single label per text")
    labels = onnx.label_names
    if not labels:
        raise ModelError(f"'{onnx.path}' records no label names; export it again from a fine-tuned model folder")
    folder = onnx.tokenizer_dir()
    if folder is None:
        raise ModelError(f"no tokenizer beside '{onnx.path}' or its source model; pass tokenizer_dir")
    folder = Path(tokenizer_dir) if tokenizer_dir is not None else folder
    settings = check_vocabulary(folder, CONSUMER, cased=True, keep_accents=False)
    length = int(max_length or max(onnx.sequence_buckets or (settings.max_length,)))
    check_output_path(out_dir, "folder")
    reference = load_tokenizer(folder)
    started = time.perf_counter()
    nodes = tokenizer_nodes(folder / "vocab.txt", settings, length, ["text_ids", "text_types", "text_mask"])

    import onnxruntime as ort

    tokenizer_session = ort.InferenceSession(tokenizer_model(nodes).SerializeToString(), session_options(1),
                                             providers=["CPUExecutionProvider"])

    def op_ids(batch: list[str]) -> list[list[int]]:
        return [tokenizer_session.run(["text_ids"], {TEXT_INPUT: np.array([t], dtype=object)})[0].tolist()
                for t in batch]

    agreement = tokenizer_agreement(op_ids, reference, texts, texts_description or f"{len(texts)} texts", length, gate,
                                    CONSUMER, vocab_words=list(load_vocab(folder / "vocab.txt")))
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        model = text_graph(onnx_lib.load(str(onnx.model_file)), nodes, labels)
        onnx_lib.save(model, str(tmp / TEXT_FILE))
        for name in ("config.json",):
            if (onnx.model_dir is not None) and (onnx.model_dir / name).is_file():
                shutil.copyfile(onnx.model_dir / name, tmp / name)
        session = OnnxTextSession(tmp, threads=1)
        candidates = list(texts[: 4 * GRAPH_CHECK_TEXTS])
        expected = reference(candidates, truncation=True, max_length=length)["input_ids"]
        check_texts = [t for t, ids, want in zip(candidates, op_ids(candidates), expected)
                       if ids == list(want)][:GRAPH_CHECK_TEXTS]
        graph_check = _graph_check(session, onnx.model_file, reference, check_texts, length)
        metadata = {k: v for k, v in onnx.metadata.items() if k not in ("parity", "export_seconds", "op_types")}
        metadata.update({
            "format": "onnx-text",
            "precision": onnx.precision,
            "model_file": TEXT_FILE,
            "built_from": str(onnx.path),
            "source_parity": onnx.metadata.get("parity"),
            "input_names": [TEXT_INPUT],
            "output_names": list(OUTPUTS),
            "batch": "one text, or one pair as two strings, per call (the BertTokenizer op's limit)",
            "max_length": length,
            "tokenizer": {"op": f"{CONTRIB_DOMAIN}.BertTokenizer", **settings_dict(
                TokenizerSettings(**{**settings.__dict__, "max_length": length}))},
            "tokenizer_graph_version": TOKENIZER_GRAPH_VERSION,
            "tokenizer_graph": [node.op_type for node in nodes if node.op_type != "Constant"],
            "tokenizer_agreement": agreement,
            "graph_check": graph_check,
            "export_seconds": round(time.perf_counter() - started, 3),
        })
        metadata.get("package_versions", {}).update({"onnxruntime-extensions": _version("onnxruntime-extensions")})
        write_json_atomic(metadata_path(tmp), metadata)
    log.info("wrote strings-in ONNX '%s' (%s, max_length %d): tokenizer ids agree on %d/%d of %s", out_dir,
             onnx.precision, length, agreement["dev"]["agreeing"], agreement["dev"]["n"], agreement["dev"]["texts"])
    return Artifact(Path(out_dir), "onnx-text", onnx.precision, metadata)


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None

