"""What a model path is and where its pieces are: one on-disk layout for every export, and one lookup.

Layout of an export folder, written by `tinybert_edge.converters.export` and read by the pipeline, every benchmark
suite and `package`:

    <out>/onnx-fp32/                 model.onnx, config.json, tokenizer files, metadata.json
    <out>/onnx-int8/                 model_quantized.onnx, config.json, tokenizer files, metadata.json
    <out>/tflite-int8/model.tflite   one `seq_<L>` signature per sequence bucket, metadata in model.tflite.json
    <out>/tflite-fp32/model.tflite   (fp32 exports; fp16 likewise)
    <out>/executorch-int8/model.pte  ExecuTorch program (XNNPACK), metadata in model.pte.json (executorch-fp32 likewise)
    <out>/onnx-text-int8/            model.onnx with the tokenizer in its graph (strings in), config.json, metadata.json
    <out>/mediapipe-int8/model.tflite  MediaPipe Text Classifier (vocab and labels inside), metadata in model.tflite.json

`Artifact.open(path)` answers, for an exported artifact or a PyTorch model folder alike: which file the runtime
loads, which runtime that is, where the tokenizer is, which labels the outputs stand for, which model folder it was
exported from, and which task it serves. Everything that needs one of those answers asks here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinybert_edge.errors import ModelError
from tinybert_edge.io import folder_size_bytes

METADATA_FILE = "metadata.json"
EXPORT_FORMATS = ("onnx", "tflite", "executorch", "onnx-text", "mediapipe")
FORMATS = ("pytorch", *EXPORT_FORMATS)
PRECISIONS = ("fp32", "int8", "fp16")
# The runtime (inference session backend) that runs each format.
# onnx-text (ONNX with the tokenizer in its graph) and mediapipe (a MediaPipe Text Classifier .tflite) take strings,
# not token ids: their runtimes are not inference sessions of SESSIONS (runtime/onnx_text.py, runtime/mediapipe_text.py).
RUNTIME_OF = {"pytorch": "torch", "onnx": "onnxruntime", "tflite": "litert", "executorch": "executorch",
              "onnx-text": "onnxruntime-extensions", "mediapipe": "mediapipe"}
FORMAT_LABEL = {"pytorch": "PyTorch", "onnx": "ONNX", "tflite": "TFLite", "executorch": "ExecuTorch",
                "onnx-text": "ONNX with tokenizer", "mediapipe": "MediaPipe"}
# The model file of each format whose artifact is one file (its metadata in `<file>.json`); ONNX is a folder.
FILE_OF = {"tflite": "model.tflite", "executorch": "model.pte", "mediapipe": "model.tflite"}
SUFFIX_OF = {"onnx": ".onnx", "tflite": ".tflite", "executorch": ".pte", "onnx-text": ".onnx", "mediapipe": ".tflite"}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
# Operators that exist only in an integer-quantized ONNX graph: their presence is what "this ONNX model is int8"
# means (dynamic int8 writes the first five, static QDQ/QOperator graphs the others).
INT8_ONNX_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention",
                 "QEmbedLayerNormalization", "ConvInteger", "DynamicQuantizeLSTM", "QLinearMatMul", "QLinearConv",
                 "QuantizeLinear")


def export_path(out_dir: str | Path, fmt: str, precision: str) -> Path:
    """Where the `fmt` artifact of `precision` lives in the export folder `out_dir` (see the module docstring)."""
    if fmt not in EXPORT_FORMATS or precision not in PRECISIONS:
        raise ModelError(f"no layout for format {fmt!r} and precision {precision!r}; formats: "
                         f"{', '.join(EXPORT_FORMATS)}, precisions: {', '.join(PRECISIONS)}")
    folder = Path(out_dir) / f"{fmt}-{precision}"
    return folder / FILE_OF[fmt] if fmt in FILE_OF else folder


def metadata_path(path: str | Path) -> Path:
    """metadata.json inside an artifact folder; `<file>.json` beside an artifact file."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        return path / METADATA_FILE
    return path.with_name(path.name + ".json")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The export metadata of an artifact, or of the artifact folder a model file lies in ({} when there is none
    or it is unreadable)."""
    path = Path(path)
    candidates = [metadata_path(path)] + ([path.parent / METADATA_FILE] if path.is_file() else [])
    for candidate in candidates:
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def model_file(path: str | Path, suffix: str) -> Path:
    """The `suffix` (".onnx", ".tflite") model file of `path`: the file itself, or the one such file in a folder."""
    path = Path(path)
    if path.is_file():
        return path
    candidates = sorted(path.glob(f"*{suffix}")) if path.is_dir() else []
    if len(candidates) != 1:
        raise ModelError(f"'{path}' holds {len(candidates)} {suffix} files; pass the path of the one to load")
    return candidates[0]


def onnx_file(path: str | Path) -> Path:
    return model_file(path, ".onnx")


def tflite_file(path: str | Path) -> Path:
    return model_file(path, ".tflite")


def has_tokenizer(folder: Path | None) -> bool:
    return folder is not None and folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES)


def _read_config(folder: Path | None) -> dict[str, Any]:
    if folder is None:
        return {}
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Artifact:
    """A model the SDK can run: an exported artifact (an ONNX folder with metadata.json, or a .tflite file with its
    `<name>.tflite.json` sidecar) or a PyTorch model folder (format "pytorch")."""

    path: Path
    format: str
    precision: str
    metadata: dict[str, Any] = field(default_factory=dict)

    # --- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "Artifact":
        """Re-open an artifact exported by this SDK from its metadata."""
        path = Path(path)
        meta_file = metadata_path(path)
        if not meta_file.is_file():
            raise ModelError(f"'{path}' has no metadata ('{meta_file.name}'); it was not exported by tinybert-edge")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            return cls(path, meta["format"], meta["precision"], meta)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"the metadata '{meta_file}' of '{path}' is unreadable ({exc}); export the model "
                             "again") from exc

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        """An exported artifact (from its metadata) or a PyTorch model folder (config.json and weights)."""
        path = Path(path)
        if metadata_path(path).is_file():
            return cls.load(path)
        if path.is_file() and (path.parent / METADATA_FILE).is_file():  # the model file inside an ONNX export
            return cls.load(path.parent)
        if path.is_dir() and (path / "config.json").is_file():
            return cls(path, "pytorch", "fp32", {})
        by_suffix = {".onnx": "onnx", ".tflite": "tflite", ".pte": "executorch"}  # a bare file's likeliest format
        if path.suffix in by_suffix and path.is_file():
            return cls(path, by_suffix[path.suffix], "unknown", {})  # a file exported elsewhere: no metadata to read
        if path.is_dir():
            for suffix, fmt in by_suffix.items():
                if any(path.glob(f"*{suffix}")):
                    return cls(path, fmt, "unknown", {})
        raise ModelError(f"'{path}' is neither a model folder (config.json and weights) nor an artifact exported by "
                         "tinybert-edge (an ONNX folder, or a .tflite or .pte file with its metadata); pass one of those")

    # --- the model file and its runtime ------------------------------------------------------------------------

    @property
    def runtime(self) -> str:
        """The inference backend that runs this artifact (see tinybert_edge.runtime.SESSIONS)."""
        return RUNTIME_OF[self.format]

    @property
    def model_file(self) -> Path:
        if self.format == "pytorch":
            return self.path
        if self.path.is_dir():
            named = self.metadata.get("model_file")
            if named:
                return self.path / named
            return model_file(self.path, SUFFIX_OF[self.format])
        return self.path

    @property
    def size_bytes(self) -> int:
        """Size of the model file alone (what a device downloads and maps), without tokenizer or metadata."""
        if self.format == "pytorch":
            from tinybert_edge.io import model_size_bytes

            return model_size_bytes(self.path)
        return self.model_file.stat().st_size

    @property
    def total_size_bytes(self) -> int:
        return folder_size_bytes(self.path)

    @property
    def metadata_path(self) -> Path:
        return metadata_path(self.path)

    @property
    def sequence_buckets(self) -> tuple[int, ...]:
        return tuple(int(b) for b in self.metadata.get("sequence_buckets") or ())

    # --- what it was made from -----------------------------------------------------------------------------

    def _source_candidates(self) -> list[Path]:
        source = self.metadata.get("source_model")
        if not isinstance(source, str) or not source:
            return []
        recorded = Path(source)
        if recorded.is_absolute():
            candidates = [recorded]
        else:  # recorded relative to where the export ran: try it against every folder above the artifact
            candidates = [recorded] + [parent / recorded for parent in self.path.resolve().parents]
        # The source folder copied or moved beside the artifact's export folder (runs/x/student beside
        # runs/x/artifacts/onnx-int8 when the run was made on another machine).
        folder = self.path if self.path.is_dir() else self.path.parent
        candidates += [folder.parent / recorded.name, folder.parent.parent / recorded.name]
        return candidates

    @property
    def source_dir(self) -> Path | None:
        """The PyTorch model folder the artifact was exported from (itself for a PyTorch folder); None when it is
        gone."""
        if self.format == "pytorch":
            return self.path
        for candidate in self._source_candidates():
            if (candidate / "config.json").is_file():
                return candidate
        return None

    @property
    def model_dir(self) -> Path | None:
        """The folder holding this model's config.json: the artifact's own folder (an ONNX export carries it),
        else the source model folder."""
        folder = self.path if self.path.is_dir() else self.path.parent
        return folder if (folder / "config.json").is_file() else self.source_dir

    def tokenizer_dir(self, fallback: str | Path | None = None) -> Path | None:
        """Where the tokenizer is: the artifact's folder, else the folder it was exported from, else `fallback`
        (a TinyBERT student shares its teacher's vocabulary); None when none holds one."""
        folder = self.path if self.path.is_dir() else self.path.parent
        for candidate in (folder, self.source_dir, Path(fallback) if fallback is not None else None):
            if has_tokenizer(candidate):
                return candidate
        return None

    @property
    def config(self) -> dict[str, Any]:
        """The model's config.json (from the artifact's folder or its source), {} when neither has one."""
        return _read_config(self.model_dir)

    @property
    def label_names(self) -> list[str] | None:
        """The labels the outputs stand for, in output order: the export metadata's, else config.json's id2label."""
        names = self.metadata.get("label_names")
        if isinstance(names, list) and names:
            return [str(n) for n in names]
        try:
            return self.task.label_names(self.config)  # a regression model has none
        except ModelError:  # a config.json that names no task's architecture (a graph exported elsewhere): its id2label
            from tinybert_edge.tasks.classification import config_label_names

            return config_label_names(self.config)

    @property
    def task(self) -> Any:
        """The Task this model serves: recorded in the export metadata, else read from its config.json."""
        from tinybert_edge.tasks import DEFAULT_TASK, get_task, task_of_config

        name = self.metadata.get("task")
        if isinstance(name, str) and name:
            return get_task(name)
        config = self.config
        return task_of_config(config, f"'{self.path}'") if config else get_task(DEFAULT_TASK)


def find_artifacts(path: str | Path) -> list[Artifact]:
    """The exported artifacts under an export folder (the layout above), or `path` itself when it is one."""
    path = Path(path)
    if metadata_path(path).is_file():
        return [Artifact.load(path)]
    if not path.is_dir():
        raise ModelError(f"'{path}' is neither an artifact exported by tinybert-edge nor an export folder; pass the "
                         "output folder of `tinybert-edge export` or one artifact in it")
    found = []
    for fmt in EXPORT_FORMATS:
        for precision in PRECISIONS:
            candidate = export_path(path, fmt, precision)
            if metadata_path(candidate).is_file():
                found.append(Artifact.load(candidate))
    return found
