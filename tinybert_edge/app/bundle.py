"""`tinybert_edge.package`: write an on-device bundle (docs/bundle_format.md) from exported artifacts
(`tinybert_edge.verify`, which checks one, is the runtime's: tinybert_edge.runtime.bundle).

`package` finds the int8 artifacts of an export folder (or takes one artifact), copies the model files, the
vocabulary and the tokenizer's Unicode tables, computes golden vectors by running each artifact through the
bundle runtime itself (plus the PyTorch student's logits when torch is installed), verifies the result and only
then renames it into place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.artifacts import Artifact, find_artifacts
from tinybert_edge.errors import BundleError, ModelError, RunDirExistsError
from tinybert_edge.version import __version__
from tinybert_edge.io import atomic_path, check_output_location
from tinybert_edge.runtime import bundle as rt
from tinybert_edge.runtime.tokenizer_corpus import settings_dict
from tinybert_edge.tasks.base import stack_rows
from tinybert_edge.runtime.wordpiece import TABLES_FILE, TokenizerSettings, WordPieceTokenizer, load_vocab

log = logging.getLogger(__name__)

GOLDEN_TEXTS = (
    "",
    "the movie was great and i loved every minute of it!",
    "What a terrible, boring waste of time.",
    "Customer service answered quickly but the product broke after two days.",
    "meh. it's okay i guess",
    "Crème brûlée à la française, naïve café",
    "ΟΔΟΣ Σοφίας — Москва и Київ",
    "中文字符测试 and 日本語のテキスト",
    "I ❤️ this 👍🏽 so much 😂😂 🧑🏻‍💻",
    "[CLS] special tokens typed by a user [SEP] [cls]",
    "tabs\tnew\nlines\r\nand\u00a0odd\u2028spaces\u200bzero-width\x00nul",
    "supercalifragilisticexpialidocious" * 4,
    "1,234.56 %$#@! ??? ... --- ***",
    "مرحبا بالعالم नमस्ते दुनिया สวัสดีชาวโลก 안녕하세요",
    "I can't believe it's already Friday; the weather is nice, isn't it?",
    " ".join(["unbelievably overpriced food at the restaurant downtown"] * 40),
)
TOLERANCE = {"max_abs_logit_diff": 0.05, "argmax_margin": 0.1}


# --- finding the artifacts -------------------------------------------------------------------------------------------

def bundle_artifacts(model: str | os.PathLike[str], precision: str = "int8",
                     runtimes: Sequence[str] = rt.DEFAULT_RUNTIMES) -> list[Artifact]:
    """The artifacts to bundle: of `precision`, one per runtime in `runtimes` order (a single artifact path is
    taken as it is)."""
    path = Path(model)
    candidates = find_artifacts(path)
    if len(candidates) == 1 and candidates[0].path == path:
        return candidates
    chosen = []
    for runtime in runtimes:
        matching = [a for a in candidates if a.runtime == runtime and a.precision == precision]
        if matching:
            chosen.append(matching[0])
    if not chosen:
        have = ", ".join(f"{a.format} {a.precision} ({a.path.name})" for a in candidates) or "none"
        raise ModelError(f"'{path}' has no {precision} artifact for {', '.join(runtimes)} (it has: {have}); export "
                         "the model with `tinybert-edge export`, or pass --precision / --runtime to match")
    return chosen


def _tokenizer_folder(artifacts: Sequence[Artifact], tokenizer: str | os.PathLike[str] | None) -> Path:
    candidates = [Path(tokenizer)] if tokenizer else []
    candidates += [folder for a in artifacts for folder in (a.tokenizer_dir(), a.source_dir) if folder is not None]
    for folder in candidates:
        if (folder / "vocab.txt").is_file():
            return folder
    raise ModelError(f"no vocab.txt found in {[str(c) for c in candidates] or 'the artifacts'}; pass the model or "
                     "tokenizer folder with --tokenizer")


def _student_folder(artifacts: Sequence[Artifact], student: str | os.PathLike[str] | None) -> Path | None:
    candidates = [Path(student)] if student else [a.source_dir for a in artifacts if a.source_dir is not None]
    for folder in candidates:
        if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
            return folder
    return None


# --- model entries ---------------------------------------------------------------------------------------------------

def _model_entry(artifact: Artifact) -> tuple[str, dict[str, Any]]:
    meta = artifact.metadata
    if artifact.format == "tflite":
        from tinybert_edge.runtime.litert import load_interpreter

        interpreter = load_interpreter(artifact.model_file)
        signatures = sorted(interpreter.get_signature_list(), key=lambda k: int(k.split("_")[-1]))
        runner = interpreter.get_signature_runner(signatures[0])
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        names = _output_order(artifact, sorted(outputs))
        buckets = [int(runner_details["shape"][1]) for key in signatures
                   for runner_details in [interpreter.get_signature_runner(key).get_input_details()["input_ids"]]]
        return "model.tflite", {
            "file": "model.tflite", "runtime": "litert", "precision": artifact.precision,
            "input_names": [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in inputs],
            "input_dtype": np.dtype(inputs["input_ids"]["dtype"]).name, "output_name": names[0],
            **({"output_names": names} if len(names) > 1 else {}),
            "output_dtype": np.dtype(outputs[names[0]]["dtype"]).name,
            "batch_size": int(inputs["input_ids"]["shape"][0]), "sequence_buckets": buckets,
            "signatures": signatures, "quantization": meta.get("quantization") or {},
        }
    if artifact.format == "executorch":
        # Dynamic length up to the tokenizer's max_length, batch 1, int64 inputs: read one text per call, unpadded.
        return "model.pte", {
            "file": "model.pte", "runtime": "executorch", "precision": artifact.precision,
            "input_names": list(meta.get("input_names") or ("input_ids", "attention_mask", "token_type_ids")),
            "input_dtype": "int64", "output_name": (meta.get("output_names") or ["logits"])[0],
            "output_dtype": "float32", "batch_size": 1, "sequence_buckets": [], "signatures": [],
            "quantization": meta.get("quantization") or {}, "executorch_version": meta.get("executorch_version", ""),
        }
    import onnxruntime as ort

    session = ort.InferenceSession(_onnx_bytes(artifact), providers=["CPUExecutionProvider"])
    names = _output_order(artifact, [o.name for o in session.get_outputs()])
    return "model.onnx", {
        "file": "model.onnx", "runtime": "onnxruntime", "precision": artifact.precision,
        "input_names": [i.name for i in session.get_inputs()], "input_dtype": "int64",
        "output_name": names[0], **({"output_names": names} if len(names) > 1 else {}), "output_dtype": "float32",
        "batch_size": 0, "sequence_buckets": [],
        "signatures": [], "quantization": meta.get("quantization") or {},
    }


def _onnx_bytes(artifact: Artifact) -> bytes:
    """The ONNX graph a bundle ships: the artifact's, less outputs its task does not name (an embedding export also
    carries last_hidden_state, for sentence-transformers' ONNX backend; a device needs only the sentence vector)."""
    import onnx

    model = onnx.load(str(artifact.model_file))
    wanted = [o for o in model.graph.output if o.name in artifact.task.output_names]
    if len(model.graph.output) > 1 and wanted:
        del model.graph.output[:]
        model.graph.output.extend(wanted)
        return model.SerializeToString()
    return artifact.model_file.read_bytes()


def _output_order(artifact: Artifact, names: Sequence[str]) -> list[str]:
    """A model's output names in the order its task stacks them (Task.output_names; a TFLite signature's
    output_0, output_1, ... are in that order already). Outputs the task does not expect are refused."""
    expected = artifact.task.output_names
    if set(names) == set(expected):
        return list(expected)
    if len(names) != len(expected):
        raise ModelError(f"'{artifact.model_file}' has outputs {list(names)} but a {artifact.task.name} model has "
                         f"{len(expected)} ({', '.join(expected)}); export it again with `tinybert-edge export`")
    return sorted(names)


def _file_entry(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=True) + "\n", encoding="ascii")


# --- package ----------------------------------------------------------------------------------------------

def package(model: str | os.PathLike[str], out: str | os.PathLike[str], *, tokenizer: str | os.PathLike[str] | None = None,
            student: str | os.PathLike[str] | None = None, runtimes: Sequence[str] = rt.DEFAULT_RUNTIMES,
            precision: str = "int8", max_length: int | None = None, texts: Sequence[str] = GOLDEN_TEXTS,
            overwrite: bool = False) -> Path:
    """Write a bundle for `model` (an export folder or one artifact) to `out`: a folder, or a zip when `out` ends
    in .zip. `tokenizer` is the folder holding vocab.txt/tokenizer_config.json when the artifact does not carry
    them; `student` the PyTorch model folder for the cross-check logits (found from the artifact's metadata when
    not given). Returns `out`."""
    out = Path(out)
    unknown = [r for r in runtimes if r not in rt.RUNTIMES]
    if unknown or not runtimes:
        raise BundleError(f"runtimes={list(runtimes)!r} is not allowed; allowed: a non-empty subset of "
                          f"{', '.join(rt.RUNTIMES)}")
    if out.exists() and not overwrite:
        raise RunDirExistsError(f"'{out}' already exists; pass overwrite=True (--overwrite) or choose another path")
    check_output_location(out, "bundle")  # an output under a regular file or in a read-only folder: refused up front
    artifacts = bundle_artifacts(model, precision, runtimes)
    token_dir = _tokenizer_folder(artifacts, tokenizer)
    buckets = sorted({int(b) for a in artifacts if a.format == "tflite" for b in a.metadata.get("sequence_buckets", [])})
    settings = TokenizerSettings.from_hf_folder(token_dir)
    # Unasked, read inputs up to the longest length the artifacts were exported and checked at, when that is beyond
    # the tokenizer's own limit: a QA model exported at 384 tokens must see 384-token windows, not the tokenizer
    # config's 128 (which would double its windows and calls).
    exported = max((int(b) for a in artifacts for b in a.metadata.get("sequence_buckets", [])), default=0)
    limit = max_length or max(settings.max_length, exported)
    if buckets:
        limit = min(limit, buckets[-1])
    # An ExecuTorch program takes lengths up to the one it was exported for.
    limit = min([limit] + [int(a.metadata["max_sequence_length"]) for a in artifacts
                           if a.format == "executorch" and a.metadata.get("max_sequence_length")])
    positions = _max_positions(token_dir, artifacts)
    if positions is not None and limit > positions:
        # A longer input would index past the position-embedding table (onnxruntime fails, LiteRT reads garbage).
        limit = positions
    if max_length is not None and limit < max_length:
        log.info("package: max_length %d capped at %d by the model's buckets or positions", max_length, limit)
    settings = TokenizerSettings(**{**settings.__dict__, "max_length": limit})

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        models = []
        for artifact in artifacts:
            name, entry = _model_entry(artifact)
            if artifact.format == "onnx":
                (staging / name).write_bytes(_onnx_bytes(artifact))
            else:
                shutil.copyfile(artifact.model_file, staging / name)
            models.append(entry)
        shutil.copyfile(token_dir / "vocab.txt", staging / "vocab.txt")
        shutil.copyfile(TABLES_FILE, staging / "unicode_tables.txt")
        _write_json(staging / "golden.json", _golden(staging, models, settings, artifacts[0].task.golden_inputs(texts),
                                                     _student_folder(artifacts, student)))
        manifest = {
            "format": rt.FORMAT_NAME, "schema_version": rt.SCHEMA_VERSION, "sdk_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "models": models, "tokenizer": {**settings_dict(settings), **_special_ids(staging / "vocab.txt", settings)},
            **artifacts[0].task.manifest_fields(artifacts[0].label_names, artifacts[0].config),
            "golden_file": "golden.json",
            "files": {p.name: _file_entry(p) for p in sorted(staging.iterdir())},
        }
        _write_json(staging / rt.MANIFEST, manifest)
        staging.chmod(0o755)  # mkdtemp's 0700 is not what a shipped folder should have
        rt.verify(staging)  # nothing reaches `out` unless it passes its own checks
        with atomic_path(out) as final:
            if out.suffix == ".zip":
                _zip(staging, final)
            else:
                os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("bundle written to %s", out)
    return out


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            # models stay uncompressed so a device can map them straight from the archive
            method = zipfile.ZIP_STORED if path.suffix in (".tflite", ".onnx") else zipfile.ZIP_DEFLATED
            archive.write(path, path.name, compress_type=method)


def _golden(folder: Path, models: Sequence[dict[str, Any]], settings: TokenizerSettings, texts: Sequence[str],
            student: Path | None) -> dict[str, Any]:
    """Token ids of each text and the logits every model returns for them through the bundle runtime."""
    tokenizer = WordPieceTokenizer(load_vocab(folder / "vocab.txt"), settings)
    inputs = [(text, None) if isinstance(text, str) else tuple(text) for text in texts]
    encodings = [tokenizer.encode(text, pair) for text, pair in inputs]
    logits = {}
    for model in models:
        runner = rt.open_runner((folder / model["file"]).read_bytes(), model)
        logits[model["file"]] = runner.run(encodings)
    torch_logits = _torch_logits(student, encodings)

    def values(outputs: np.ndarray, index: int) -> Any:
        row = np.asarray(outputs[index], dtype=np.float64)
        return (row[: len(encodings[index])] if row.ndim >= 2 else row).tolist()  # per-token rows: real tokens only

    cases = []
    for index, ((text, pair), encoding) in enumerate(zip(inputs, encodings)):
        cases.append({
            "text": text, **({"text_pair": pair} if pair is not None else {}), "input_ids": encoding.input_ids,
            "attention_mask": encoding.attention_mask, "token_type_ids": encoding.token_type_ids,
            "logits": {name: values(outputs, index) for name, outputs in logits.items()},
            "torch_logits": values(torch_logits, index) if torch_logits is not None else [],
        })
    if torch_logits is not None:
        for name, outputs in logits.items():
            log.info("golden: %s vs the PyTorch student: max |logit diff| %.4f", name,
                     float(np.nanmax(np.abs(outputs - torch_logits))))
    return {"tolerance": dict(TOLERANCE), "cases": cases}


def _torch_logits(student: Path | None, encodings: Sequence[Any]) -> np.ndarray | None:
    if student is None:
        return None
    try:
        from tinybert_edge.runtime.sessions import TorchSession

        session = TorchSession(student)
    except ImportError:
        log.info("torch is not installed; golden.json carries no PyTorch cross-check logits")
        return None
    rows = [session.run({"input_ids": np.array([e.input_ids]), "attention_mask": np.array([e.attention_mask]),
                         "token_type_ids": np.array([e.token_type_ids])})[0] for e in encodings]
    return stack_rows(rows)


def _max_positions(token_dir: Path, artifacts: Sequence[Any]) -> int | None:
    """max_position_embeddings of the model behind the artifacts (its config.json beside the tokenizer, or the
    exported model's source folder); None when no config says."""
    candidates = [token_dir / "config.json"]
    for artifact in artifacts:
        source = (artifact.metadata or {}).get("source_model")
        if isinstance(source, str):
            candidates.append(Path(source) / "config.json")
    for path in candidates:
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("max_position_embeddings")
        except (OSError, ValueError):
            continue
        if isinstance(value, int) and value > 0:
            return value
    return None


def _special_ids(vocab_file: Path, settings: TokenizerSettings) -> dict[str, int]:
    """unk_id, cls_id, sep_id and pad_id as docs/bundle_format.md lists them (readers check them against vocab.txt)."""
    vocab = load_vocab(vocab_file)
    return {f"{name}_id": vocab[getattr(settings, f"{name}_token")] for name in ("unk", "cls", "sep", "pad")}
