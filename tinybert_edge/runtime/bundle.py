"""Load an on-device bundle (docs/bundle_format.md) and run its task on text, without torch or transformers.

Only numpy and one of ai-edge-litert (tflite_runtime as a fallback) or onnxruntime are needed:
`load_bundle(path).predict("some text")`. A folder or a .zip is read into memory, every file's sha256 is checked
before use, and the model runs from those bytes (nothing is extracted to disk).
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tinybert_edge.errors import BundleError, DataError, MissingDependencyError
from tinybert_edge.runtime.litert import smallest_bucket
from tinybert_edge.runtime.rust_tokenizer import make_tokenizer
from tinybert_edge.runtime.wordpiece import Encoding, TokenizerSettings, UnicodeTables, parse_vocab
from tinybert_edge.tasks.base import stack_rows
from tinybert_edge.tasks.classification import Prediction, softmax

__all__ = ["BundleModel", "Prediction", "load_bundle", "read_bundle_files", "softmax", "verify"]

log = logging.getLogger(__name__)

FORMAT_NAME = "tinybert-edge-bundle"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
RUNTIMES = ("litert", "onnxruntime", "executorch")
# What `package` puts in a bundle unless asked: the runtimes every reader (this one, the Java bridge) knows. An
# ExecuTorch program rides along only with runtimes=(..., "executorch"); the Java bridge reads litert models only.
DEFAULT_RUNTIMES = ("litert", "onnxruntime")
_MANIFEST_KEYS = ("format", "schema_version", "sdk_version", "created", "models", "tokenizer", "labels",
                  "golden_file", "files")
_MODEL_KEYS = ("file", "runtime", "input_names", "input_dtype", "output_name", "sequence_buckets")
MAX_BUNDLE_BYTES = 2 * 2**30  # far above any on-device model; refuses decompression bombs before inflating them

# What zipfile raises for a corrupt entry: besides bad data and CRCs, a compression method it lacks
# (NotImplementedError), an encryption flag (RuntimeError) and broken lzma streams.
_ZIP_READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError, NotImplementedError,
                    RuntimeError, ValueError)


# --- reading the files ----------------------------------------------------------------------------------------------

def _safe_name(name: str, where: str) -> str:
    """A bundle file name: one plain component, no path tricks."""
    pure = PurePosixPath(name)
    if (not name or "\\" in name or name.startswith("/") or ":" in name or len(pure.parts) != 1
            or pure.parts[0] in (".", "..")):
        raise BundleError(f"{where} names the file {name!r}; bundle files must be plain names at the bundle's root "
                          "(no folders, absolute paths or '..'); the bundle is corrupt or malicious: repackage it")
    return name


def read_bundle_files(path: str | Path) -> dict[str, bytes]:
    """Every file of a bundle folder or .zip, by name. Refuses zip entries with absolute paths, '..', folders,
    symlinks or duplicate names, and symlinks in a folder."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"the bundle '{path}' does not exist; pass the folder or .zip that `tinybert-edge package` "
                          "wrote")
    if path.is_dir():
        files = {}
        for entry in sorted(path.iterdir()):
            if entry.is_symlink():
                raise BundleError(f"the bundle folder '{path}' holds the symlink '{entry.name}'; a bundle holds plain "
                                  "files only: repackage it")
            if entry.is_file():
                files[_safe_name(entry.name, f"the bundle folder '{path}'")] = entry.read_bytes()
        return files
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # ValueError: an entry name that is not valid UTF-8
        raise BundleError(f"'{path}' is neither a bundle folder nor a readable .zip ({exc}); it may be truncated: "
                          "copy or download it again") from exc
    files = {}
    with archive:
        # zipfile never inflates an entry past its declared size, so the declared sizes bound memory (a zip bomb
        # declares its real size or fails its CRC check).
        declared = sum(info.file_size for info in archive.infolist())
        if declared > MAX_BUNDLE_BYTES:
            raise BundleError(f"the zip '{path}' declares {declared / 2**30:.1f} GiB of contents, more than the "
                              f"{MAX_BUNDLE_BYTES / 2**30:.0f} GiB a bundle may hold; it is corrupt or malicious")
        for info in archive.infolist():
            name = info.filename
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BundleError(f"the zip '{path}' holds the symlink '{name}'; a bundle holds plain files only: "
                                  "the bundle is corrupt or malicious, repackage it")
            _safe_name(name.rstrip("/") if info.is_dir() else name, f"the zip '{path}'")
            if info.is_dir():
                raise BundleError(f"the zip '{path}' holds the folder '{name}'; bundle files lie at the zip's root")
            if name in files:
                raise BundleError(f"the zip '{path}' holds '{name}' twice; repackage the bundle")
            try:
                files[name] = archive.read(info)
            except _ZIP_READ_ERRORS as exc:
                raise BundleError(f"'{name}' in the zip '{path}' cannot be read ({exc}); the zip is truncated or "
                                  "corrupt: copy or download it again") from exc
    return files


def parse_manifest(files: Mapping[str, bytes], where: str) -> dict[str, Any]:
    """manifest.json, checked for the format name, the schema version and the keys schema 1 requires."""
    if MANIFEST not in files:
        raise BundleError(f"the bundle '{where}' has no {MANIFEST}; it is not a tinybert-edge bundle or it is "
                          "incomplete: repackage it with `tinybert-edge package`")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST} of '{where}' is not valid JSON ({exc}); it is truncated or corrupt: "
                          "repackage the bundle") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleError(f"{MANIFEST} of '{where}' has format {found!r}, not {FORMAT_NAME!r}; pass a bundle "
                          "written by `tinybert-edge package`")
    version = manifest.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # true == 1 and 1.0 == 1 in Python, not in the format
        raise BundleError(f"'{where}' has schema_version {version!r}; this runtime reads schema_version "
                          f"{SCHEMA_VERSION} only: upgrade tinybert-edge or repackage the model with this version")
    missing = [key for key in _MANIFEST_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{MANIFEST} of '{where}' lacks {', '.join(missing)}; repackage the bundle")
    if not manifest["models"]:
        raise BundleError(f"{MANIFEST} of '{where}' lists no models; repackage the bundle")
    wrong = _wrong_types(manifest)
    if wrong:
        raise BundleError(f"{MANIFEST} of '{where}' has values of the wrong type: {'; '.join(wrong[:5])}; it is "
                          "corrupt or was not written by `tinybert-edge package`: repackage the bundle")
    for model in manifest["models"]:
        lacking = [key for key in _MODEL_KEYS if key not in model]
        if lacking:
            raise BundleError(f"a model entry of {MANIFEST} in '{where}' lacks {', '.join(lacking)}; repackage it")
        if model["runtime"] not in RUNTIMES:
            raise BundleError(f"model '{model['file']}' of '{where}' needs the runtime {model['runtime']!r}; "
                              f"known: {', '.join(RUNTIMES)}")
    return manifest


def _wrong_types(manifest: Mapping[str, Any]) -> list[str]:
    """The manifest fields this reader uses whose JSON type is not the one docs/bundle_format.md gives. The manifest
    is the one file without a checksum, so nothing in it is trusted to have the right shape."""
    def is_str(value: Any) -> bool:
        return isinstance(value, str)

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def str_list(value: Any) -> bool:
        return isinstance(value, list) and all(map(is_str, value))

    def file_entry(value: Any) -> bool:
        return isinstance(value, dict) and is_int(value.get("bytes")) and is_str(value.get("sha256"))

    models, files, tokenizer = manifest["models"], manifest["files"], manifest["tokenizer"]
    checks: list[tuple[str, Any, Callable[[Any], bool]]] = [
        ("models", models, lambda v: isinstance(v, list)), ("files", files, lambda v: isinstance(v, dict)),
        ("tokenizer", tokenizer, lambda v: isinstance(v, dict)), ("labels", manifest["labels"], str_list),
        ("golden_file", manifest["golden_file"], is_str)]
    model_fields = {"file": is_str, "runtime": is_str, "input_names": str_list, "output_name": is_str,
                    "output_names": lambda v: str_list(v) and bool(v),
                    "sequence_buckets": lambda v: isinstance(v, list) and all(map(is_int, v))}
    for index, model in enumerate(models if isinstance(models, list) else []):
        checks.append((f"models[{index}]", model, lambda v: isinstance(v, dict)))
        if isinstance(model, dict):
            checks += [(f"models[{index}].{key}", model[key], test)
                       for key, test in model_fields.items() if key in model]
    if isinstance(files, dict):
        checks += [(f"files.{name}", entry, file_entry) for name, entry in files.items()]
    if isinstance(tokenizer, dict):
        checks += [(f"tokenizer.{key}", tokenizer.get(key), is_str) for key in ("vocab_file", "unicode_tables_file")]
    return [f"{name} = {json.dumps(value)[:40]}" for name, value, test in checks if not test(value)]


def check_files(files: Mapping[str, bytes], manifest: Mapping[str, Any], where: str) -> None:
    """Every file in manifest.json#files is present, has its size and its sha256; every file the manifest uses is
    listed. Gathers every problem before raising once."""
    listed = manifest["files"]
    problems = []
    for name, expected in listed.items():
        _safe_name(name, f"{MANIFEST} of '{where}'")
        if name not in files:
            problems.append(f"'{name}' is missing")
            continue
        data = files[name]
        if len(data) != expected.get("bytes"):
            problems.append(f"'{name}' has {len(data)} bytes, not {expected.get('bytes')} (truncated or replaced)")
        elif hashlib.sha256(data).hexdigest() != expected.get("sha256"):
            problems.append(f"'{name}' does not match its sha256 (tampered or corrupt)")
    used = [m["file"] for m in manifest["models"]] + [manifest["golden_file"], manifest["tokenizer"].get("vocab_file"),
                                                      manifest["tokenizer"].get("unicode_tables_file")]
    problems += [f"'{name}' is used but not listed in files (no checksum)" for name in used if name not in listed]
    if problems:
        raise BundleError(f"the bundle '{where}' fails its checks: {'; '.join(problems)}; copy it again or "
                          "repackage it with `tinybert-edge package`")


def tokenizer_settings(manifest: Mapping[str, Any]) -> TokenizerSettings:
    t = manifest["tokenizer"]
    if t.get("type") != "bert-wordpiece":
        raise BundleError(f"the bundle's tokenizer type is {t.get('type')!r}; this runtime knows 'bert-wordpiece'")
    tokens = ("continuing_subword_prefix", "unk_token", "cls_token", "sep_token", "pad_token", "mask_token")
    not_strings = [key for key in tokens if key in t and not isinstance(t[key], str)]
    specials = t.get("special_tokens", [])
    if not isinstance(specials, list) or not all(isinstance(v, str) for v in specials):
        not_strings.append("special_tokens")
    if not_strings:
        raise BundleError(f"the bundle's tokenizer settings {', '.join(not_strings)} are not strings; repackage it")
    try:
        return TokenizerSettings(
            do_lower_case=bool(t["do_lower_case"]), strip_accents=bool(t["strip_accents"]),
            tokenize_chinese_chars=bool(t["tokenize_chinese_chars"]), clean_text=bool(t["clean_text"]),
            max_length=int(t["max_length"]), max_input_chars_per_word=int(t["max_input_chars_per_word"]),
            continuing_subword_prefix=t["continuing_subword_prefix"], unk_token=t["unk_token"],
            cls_token=t["cls_token"], sep_token=t["sep_token"], pad_token=t["pad_token"], mask_token=t["mask_token"],
            special_tokens=tuple(t["special_tokens"]))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise BundleError(f"the bundle's tokenizer settings are incomplete or malformed ({exc!r}); repackage it") \
            from exc


# --- runtimes -------------------------------------------------------------------------------------------------------

def output_names(model: Mapping[str, Any]) -> list[str]:
    """The outputs a model entry declares, in the order the task stacks them: `output_names` when the model has
    several (question answering's start and end logits), else `output_name` alone."""
    return list(model.get("output_names") or [model["output_name"]])


def _one_row(named: Mapping[str, Any], names: Sequence[str], length: int) -> np.ndarray:
    """One example's output array from a runtime's named outputs (batch row 0): several outputs stacked on a new
    last axis in `names` order; an output with a sequence axis cut to the example's `length` tokens."""
    arrays = [np.asarray(named[name][0], dtype=np.float32) for name in names]
    row = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-1)
    return row[:length] if row.ndim >= 2 else row


class _LiteRtRunner:
    """A .tflite held in memory, one fixed-shape `seq_<L>` signature per bucket (see runtime/litert.py)."""

    def __init__(self, content: bytes, model: Mapping[str, Any], threads: int | None) -> None:
        from tinybert_edge.runtime.litert import interpreter_class

        Interpreter = interpreter_class("Running a bundle's .tflite")
        try:
            interpreter = Interpreter(model_content=content, num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"LiteRT cannot load the bundle's '{model['file']}': {exc}; repackage it") from exc
        self.signatures: dict[int, tuple[Any, int, str]] = {}
        for key in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(key)
            batch, length = (int(d) for d in runner.get_input_details()["input_ids"]["shape"])
            self.signatures[length] = (runner, batch, output_names(model))
        self.interpreter = interpreter  # the signature runners need it alive
        declared = sorted(int(b) for b in model["sequence_buckets"])
        if sorted(self.signatures) != declared:
            raise BundleError(f"'{model['file']}' has signatures for lengths {sorted(self.signatures)} but the "
                              f"manifest declares buckets {declared}; repackage the bundle")
        self.buckets = declared
        self.input_names = list(model["input_names"])

    def bucket_for(self, length: int) -> int:
        """The smallest bucket that fits (as benchmarks/arm_runner.select_bucket); the tokenizer's max_length never
        exceeds the largest bucket, so one always does."""
        bucket = smallest_bucket(self.buckets, length)
        if bucket is not None:
            return bucket
        raise BundleError(f"{length} tokens are more than the largest bucket ({self.buckets[-1]}); the bundle's "
                          "tokenizer max_length is wrong: repackage it")

    def feed(self, encoding: Encoding) -> tuple[Any, dict[str, np.ndarray], Sequence[str]]:
        """The signature runner of the smallest bucket that holds `encoding`, its padded feed and its output names."""
        bucket = self.bucket_for(len(encoding))
        runner, batch, output = self.signatures[bucket]
        feed = {}
        for name, values in (("input_ids", encoding.input_ids), ("attention_mask", encoding.attention_mask),
                             ("token_type_ids", encoding.token_type_ids)):
            if name in self.input_names:
                row = np.zeros((batch, bucket), dtype=np.int32)  # pad id 0, mask 0, segment 0
                row[0, : len(values)] = values
                feed[name] = row
        return runner, feed, output

    def run(self, encodings: Sequence[Encoding]) -> np.ndarray:
        rows = []
        for encoding in encodings:
            runner, feed, output = self.feed(encoding)
            rows.append(_one_row(runner(**feed), output, len(encoding)))
        return stack_rows(rows)


class _OnnxRunner:
    """An .onnx held in memory, with dynamic batch and sequence axes."""

    def __init__(self, content: bytes, model: Mapping[str, Any], threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "onnx", "Running a bundle's .onnx") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unloadable graphs
            raise BundleError(f"ONNX Runtime cannot load the bundle's '{model['file']}': {exc}; repackage it") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = output_names(model)
        self.buckets: list[int] = []

    def run(self, encodings: Sequence[Encoding]) -> np.ndarray:
        # One row per call, unpadded: dynamic int8 quantizes activations with ranges taken over the whole input,
        # so padding a text next to longer batch-mates would change its logits.
        rows = []
        for encoding in encodings:
            feed = {name: np.array([values], dtype=np.int64) for name, values in
                    (("input_ids", encoding.input_ids), ("attention_mask", encoding.attention_mask),
                     ("token_type_ids", encoding.token_type_ids)) if name in self.input_names}
            try:
                named = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, feed)))
                rows.append(_one_row(named, [n for n in self.output_names if n in named] or list(named)[:1],
                                     len(encoding)))
            except Exception as exc:  # onnxruntime's untyped errors, e.g. a max_length past the model's positions
                raise BundleError(f"ONNX Runtime failed on the bundle's model with {len(encoding)} tokens: {exc}; the "
                                  "manifest does not match the model (tokenizer max_length?): repackage it") from exc
        return stack_rows(rows)


class _ExecuTorchRunner:
    """A .pte held in memory (batch 1, any length up to the tokenizer's max_length), one text per call, unpadded.
    Needs executorch and with it torch: this runtime is for PyTorch-side devices, not the torch-free install."""

    def __init__(self, content: bytes, model: Mapping[str, Any], threads: int | None) -> None:
        from tinybert_edge.errors import ModelError
        from tinybert_edge.runtime.executorch_session import check_version, load_runtime

        try:
            check_version(Path(model["file"]), content, model)
        except ModelError as exc:
            raise BundleError(f"the bundle's {exc}") from exc
        runtime = load_runtime("Running a bundle's .pte")
        if threads:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(int(threads))
        try:
            self.program = runtime.load_program(content)
            self.method = self.program.load_method("forward")
        except Exception as exc:  # the pybindings raise RuntimeError/ValueError with an error code
            raise BundleError(f"ExecuTorch cannot load the bundle's '{model['file']}': {exc}; repackage it") from exc
        import torch

        self._torch = torch
        self.input_names = list(model["input_names"])
        self.buckets: list[int] = []

    def run(self, encodings: Sequence[Encoding]) -> np.ndarray:
        rows = []
        for encoding in encodings:
            values = {"input_ids": encoding.input_ids, "attention_mask": encoding.attention_mask,
                      "token_type_ids": encoding.token_type_ids}
            feed = [self._torch.tensor([values[name]], dtype=self._torch.long) for name in self.input_names]
            rows.append(np.asarray(self.method.execute(feed)[0][0], dtype=np.float32))
        return np.stack(rows)


def open_runner(content: bytes, model: Mapping[str, Any], threads: int | None = None) -> Any:
    runner = {"litert": _LiteRtRunner, "onnxruntime": _OnnxRunner, "executorch": _ExecuTorchRunner}[model["runtime"]]
    return runner(content, model, threads)


# --- the model ------------------------------------------------------------------------------------------------------

class BundleModel:
    """A loaded bundle: tokenizer, the task (manifest "task", text-classification when absent) with its fields
    (labels), and one model in its runtime."""

    def __init__(self, where: str, manifest: dict[str, Any], files: Mapping[str, bytes], model: Mapping[str, Any],
                 threads: int | None = None, tokenizer: str = "auto") -> None:
        self.where = where
        self.manifest = manifest
        self.model = dict(model)
        self.labels: list[str] = list(manifest["labels"])
        self.task = bundle_task(manifest, where)
        settings = tokenizer_settings(manifest)
        tables = UnicodeTables(files[manifest["tokenizer"]["unicode_tables_file"]].decode("ascii"),
                               f"{where}/{manifest['tokenizer']['unicode_tables_file']}")
        self.tokenizer = make_tokenizer(parse_vocab(files[manifest["tokenizer"]["vocab_file"]], where), settings,
                                        tables, tokenizer)
        self.runner = open_runner(files[model["file"]], model, threads)
        if self.runner.buckets and settings.max_length > self.runner.buckets[-1]:
            raise BundleError(f"the bundle's tokenizer max_length ({settings.max_length}) exceeds the largest bucket "
                              f"of '{model['file']}' ({self.runner.buckets[-1]}); repackage it")
        golden = files[manifest["golden_file"]]
        try:
            self.golden = json.loads(golden.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{manifest['golden_file']} of '{where}' is not valid JSON ({exc}); repackage it") \
                from exc

    @property
    def runtime(self) -> str:
        return self.model["runtime"]

    @property
    def file(self) -> str:
        return self.model["file"]

    @property
    def max_length(self) -> int:
        return self.tokenizer.settings.max_length

    def encode(self, texts: Sequence[str | bytes], pairs: Sequence[str | bytes] | None = None) -> list[Encoding]:
        """Each text (with its second text, for sentence-pair models such as STS-B's) as [CLS] a [SEP] (b [SEP])."""
        if pairs is None:
            return self.tokenizer.encode_batch(texts)
        if len(pairs) != len(texts):
            raise DataError(f"{len(texts)} texts but {len(pairs)} second texts; give one second text per text")
        return [self.tokenizer.encode(text, pair) for text, pair in zip(texts, pairs)]

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.task.output_width(self.manifest) or 0), dtype=np.float32)

    def encode_inputs(self, inputs: Sequence[Any], pairs: Sequence[Any] | None = None) -> list[Any]:
        """The encodings of each input as the task encodes them on a device, in order: texts (with `pairs`, their
        second texts) through the tokenizer's batch encoder for text tasks; otherwise through Task.runtime_encode,
        where an input may give several encodings (question answering's windows, each with its `input_index`)."""
        if self.task.text_inputs:
            return self.encode(inputs, pairs)
        if pairs is not None:
            raise DataError(f"pairs are second texts of sentence-pair classifiers and regressions; a "
                            f"{self.task.name} model takes its inputs whole ({self.task.input_description}); call "
                            "predict(inputs) without pairs")
        return [encoding for index, item in enumerate(inputs)
                for encoding in self.task.runtime_encode(self.tokenizer, item, index, self.manifest)]

    def logits(self, texts: str | bytes | Sequence[str | bytes],
               pairs: str | bytes | Sequence[str | bytes] | None = None) -> np.ndarray:
        """The task's float32 output array for the texts, or text pairs (logits [n, labels] for a classifier, the
        score [n, 1] for regression); texts longer than max_length tokens are truncated."""
        batch, second = _batch(texts, pairs)
        if not batch:
            return self._empty()
        return self.run_encodings(self.encode(batch, second))

    def run_encodings(self, encodings: Sequence[Encoding]) -> np.ndarray:
        """The task's output array for these encodings (per-token rows padded with NaN past each encoding's
        length, see tasks.base.stack_rows)."""
        if not encodings:
            return self._empty()
        outputs = self.runner.run(encodings)
        width = self.task.output_width(self.manifest)
        expected = (len(encodings), width) if width is not None else (len(encodings),)
        if outputs.shape[: len(expected)] != expected or (width is not None and outputs.ndim != 2):
            raise BundleError(f"'{self.file}' returned outputs of shape {outputs.shape}, expected {expected} for its "
                              f"{self.task.name} fields; repackage it")
        return outputs

    def predict(self, inputs: Any, pairs: str | bytes | Sequence[str | bytes] | None = None) -> Any:
        """The task's result for one input or a list of them: a classifier's Prediction (label and probabilities)
        or a regression's Score per text (`pairs` gives sentence-pair models their second texts: one string with
        one text, a list with a list), a tagger's TaggedText (entities with character offsets) per text, a question
        answerer's Answer (text, character span, score) per (question, context) pair."""
        single = self.task.is_single_input(inputs)
        batch = [inputs] if single else list(inputs)
        second = None if pairs is None else _batch(inputs, pairs)[1]
        encodings = self.encode_inputs(batch, second)
        outputs = self.run_encodings(encodings) if encodings else self._empty()
        out = self.task.postprocess(outputs, encodings, self.manifest)
        return out[0] if single else out


    def embed(self, texts: str | bytes | Sequence[str | bytes], return_truncated: bool = False) -> Any:
        """The sentence vectors [n, width] (float32) of an embedding bundle's model for the texts. A text longer
        than max_length tokens is truncated (kept: [CLS], its first tokens, [SEP]) and counted in the log; with
        `return_truncated`, also the indices of those texts. An empty or whitespace-only text is embedded as
        "[CLS] [SEP]": the same defined vector for each."""
        if self.task.name != "embedding":
            raise BundleError(f"the bundle '{self.where}' is a {self.task.name} bundle, not an embedding one; use "
                              "predict() for its results")
        batch, _ = _batch(texts, None)
        limit = self.max_length
        encodings = self.tokenizer.encode_batch(batch, max_length=limit + 1)  # one token past: is it longer?
        truncated = [i for i, encoding in enumerate(encodings) if len(encoding) > limit]
        for i in truncated:
            encodings[i] = self.tokenizer.encode(batch[i], max_length=limit)
        if truncated:
            log.info("embed: %d of %d texts are longer than %d tokens and were truncated", len(truncated), len(batch),
                     limit)
        if encodings:
            vectors = self.run_encodings(encodings)
        else:
            width = len(next(iter(self.golden["cases"][0]["logits"].values()))) if self.golden.get("cases") else 0
            vectors = np.zeros((0, width), dtype=np.float32)
        return (vectors, truncated) if return_truncated else vectors


def _batch(texts: Any, pairs: Any) -> tuple[list[Any], list[Any] | None]:
    """Texts (and second texts) as lists: a single string is a batch of one."""
    single = isinstance(texts, (str, bytes, bytearray))
    batch = [texts] if single else list(texts)
    if pairs is None:
        return batch, None
    return batch, ([pairs] if isinstance(pairs, (str, bytes, bytearray)) else list(pairs))


def bundle_task(manifest: Mapping[str, Any], where: str) -> Any:
    """The Task a manifest names (bundles written before tasks existed are text classifiers), its fields checked."""
    from tinybert_edge.tasks import DEFAULT_TASK, TASKS, get_task

    name = manifest.get("task", DEFAULT_TASK)
    if not isinstance(name, str) or name not in TASKS:
        raise BundleError(f"the bundle '{where}' is for the task {name!r}, which this runtime does not know (it knows "
                          f"{', '.join(TASKS.names())}); upgrade tinybert-edge")
    task = get_task(name)
    task.check_manifest(manifest, where)
    return task


def _pick_model(manifest: Mapping[str, Any], model: str | None, where: str) -> Mapping[str, Any]:
    models = manifest["models"]
    if model is not None:
        chosen = [m for m in models if model in (m["file"], m["runtime"])]
        if not chosen:
            raise BundleError(f"'{where}' has no model {model!r}; it has "
                              f"{', '.join(m['file'] + ' (' + m['runtime'] + ')' for m in models)}")
        return chosen[0]
    import importlib.util

    def available(runtime: str) -> bool:
        modules = {"litert": ("ai_edge_litert", "tflite_runtime"), "onnxruntime": ("onnxruntime",),
                   "executorch": ("executorch",)}[runtime]
        return any(importlib.util.find_spec(name) is not None for name in modules)

    for entry in models:
        if available(entry["runtime"]):
            return entry
    first = models[0]
    package, extra = {"litert": ("ai-edge-litert", "tflite"), "onnxruntime": ("onnxruntime", "onnx"),
                      "executorch": ("executorch", "executorch")}[first["runtime"]]
    raise MissingDependencyError(package, extra, f"Running the bundle '{where}'")


def load_bundle(path: str | Path, model: str | None = None, threads: int | None = None,
                tokenizer: str = "auto") -> BundleModel:
    """Open a bundle folder or .zip. `model` picks a model by file name or runtime ("litert", "onnxruntime");
    by default the first listed whose runtime is installed. `tokenizer` is "auto" (Hugging Face's Rust
    `tokenizers` when installed, else the pure-Python WordPiece), "rust" or "python"; both give the same ids.
    Raises BundleError for anything wrong with the bundle."""
    where = str(path)
    files = read_bundle_files(path)
    manifest = parse_manifest(files, where)
    check_files(files, manifest, where)
    return BundleModel(where, manifest, files, _pick_model(manifest, model, where), threads, tokenizer)


def verify(bundle: str | Path, threads: int | None = None, tokenizer: str = "auto") -> dict[str, Any]:
    """Check a bundle: every checksum, then every golden case on every model whose runtime is installed (the
    tokenizer must reproduce the ids exactly; logits within the tolerance; same argmax unless the expected top two
    are closer than `argmax_margin`). Gathers every failure, then raises BundleError once. Returns a summary."""
    where = str(bundle)
    files = read_bundle_files(bundle)
    manifest = parse_manifest(files, where)
    check_files(files, manifest, where)
    summary: dict[str, Any] = {"bundle": where, "files_checked": len(manifest["files"]), "models": {}}
    failures: list[str] = []
    for entry in manifest["models"]:
        try:
            model = BundleModel(where, manifest, files, entry, threads, tokenizer)
        except ImportError as exc:  # MissingDependencyError: a runtime this machine lacks is skipped, not failed
            summary["models"][entry["file"]] = {"skipped": str(exc)}
            continue
        tolerance = model.golden["tolerance"]
        cases = model.golden["cases"]
        encodings = [model.tokenizer.encode(case["text"], case.get("text_pair")) for case in cases]
        for case, encoding in zip(cases, encodings):
            if encoding.input_ids != case["input_ids"]:
                failures.append(f"tokenizer ids differ on {case['text'][:40]!r}")
        outputs = model.run_encodings(encodings)
        diff, flips = 0.0, []
        for index, (case, encoding) in enumerate(zip(cases, encodings)):
            got = np.asarray(outputs[index], dtype=np.float64)
            got = got[: len(encoding)] if got.ndim >= 2 else got
            want = np.asarray(case["logits"][entry["file"]], dtype=np.float64)
            if got.shape != want.shape:
                failures.append(f"{entry['file']}: case {index} gives outputs of shape {got.shape}, golden "
                                f"{want.shape}")
                continue
            diff = max(diff, float(np.abs(got - want).max())) if got.size else diff
            # The decision of each row (a classifier's label, a token's tag, a start or an end) may flip only
            # where the expected top two are closer than the margin: int8 kernels of another CPU may break a tie.
            for got_row, want_row in zip(model.task.decision_rows(got), model.task.decision_rows(want)):
                top = np.sort(want_row)[-2:] if want_row.size > 1 else np.array([0.0, np.inf])
                if int(np.argmax(got_row)) != int(np.argmax(want_row)) and top[1] - top[0] >= tolerance["argmax_margin"]:
                    flips.append(index)
                    break
        if diff > tolerance["max_abs_logit_diff"]:
            failures.append(f"{entry['file']}: max |logit diff| {diff:.4g} > {tolerance['max_abs_logit_diff']}")
        if flips:
            failures.append(f"{entry['file']}: argmax differs on golden cases {flips}")
        summary["models"][entry["file"]] = {"runtime": entry["runtime"], "cases": len(cases),
                                            "max_abs_logit_diff": diff, "argmax_flips": len(flips)}
    if not any("cases" in m for m in summary["models"].values()):
        raise BundleError(f"no runtime for any model of '{where}' is installed, so its golden vectors cannot be "
                          "re-run; install tinybert-edge[tflite] or tinybert-edge[onnx]")
    if failures:
        raise BundleError(f"the bundle '{where}' fails verification: {'; '.join(failures)}")
    summary["passed"] = True
    return summary
