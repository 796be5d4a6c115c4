"""What an exporter returns (`Artifact`), its metadata sidecar, and the checks on the model folder it starts from."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinybert_edge.errors import ExportError, ModelError
from tinybert_edge.version import __version__
from tinybert_edge.io import folder_size_bytes, sha256_tree, write_json_atomic

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8", "fp16")
METADATA_FILE = "metadata.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class Artifact:
    """An exported model: an ONNX folder (model file, config, tokenizer, metadata.json) or a .tflite file with a
    `<name>.tflite.json` sidecar."""

    path: Path
    format: str
    precision: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def model_file(self) -> Path:
        if self.path.is_dir():
            return self.path / self.metadata.get("model_file", "model.onnx")
        return self.path

    @property
    def size_bytes(self) -> int:
        """Size of the model file alone (what a device downloads and maps), without tokenizer or metadata."""
        return self.model_file.stat().st_size

    @property
    def total_size_bytes(self) -> int:
        return folder_size_bytes(self.path)

    @property
    def metadata_path(self) -> Path:
        return metadata_path(self.path)

    @classmethod
    def load(cls, path: str | Path) -> "Artifact":
        """Re-open an artifact written by this SDK from its metadata."""
        meta_file = metadata_path(Path(path))
        if not meta_file.is_file():
            raise ModelError(f"'{path}' has no metadata ('{meta_file.name}'); it was not exported by tinybert-edge")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return cls(Path(path), meta["format"], meta["precision"], meta)


def metadata_path(path: Path) -> Path:
    """metadata.json inside an artifact folder; `<file>.json` beside an artifact file."""
    if path.is_dir() or not path.suffix:
        return path / METADATA_FILE
    return path.with_name(path.name + ".json")


@dataclass(frozen=True)
class SourceModel:
    """A checked source folder: a BERT sequence classifier with config, weights and (ideally) a tokenizer."""

    folder: Path
    config: dict[str, Any]
    sha256: str

    @property
    def max_positions(self) -> int:
        return int(self.config.get("max_position_embeddings", 512))

    @property
    def num_labels(self) -> int:
        return len(self.config.get("id2label") or {}) or int(self.config.get("num_labels", 2))


def check_source(model_dir: str | Path, sequence_buckets: tuple[int, ...]) -> SourceModel:
    """Raise ModelError unless `model_dir` is a BERT sequence classifier whose position table covers every bucket."""
    from tinybert_edge.models import check_model_folder, is_classifier

    try:
        folder = check_model_folder(model_dir, role="export source")
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"export source '{model_dir}' has an unreadable config.json ({exc}); save the model again "
                         "with save_pretrained") from exc
    if not isinstance(config, dict):
        raise ModelError(f"export source '{model_dir}' has a config.json that is not a JSON object")
    if not is_classifier(folder):
        raise ModelError(
            f"export source '{folder}' has architectures {config.get('architectures')}; exports need a "
            "BertForSequenceClassification (fine-tune or distil the encoder first)"
        )
    max_positions = int(config.get("max_position_embeddings", 512))
    too_long = [b for b in sequence_buckets if b > max_positions]
    if too_long:
        raise ModelError(
            f"sequence buckets {too_long} exceed the model's max_position_embeddings ({max_positions}) in "
            f"'{folder}'; use buckets <= {max_positions}"
        )
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        log.warning("'%s' has no tokenizer files; the exported artifacts will not carry one", folder)
    return SourceModel(folder=folder, config=config, sha256=sha256_tree(folder))


def check_output_path(path: str | Path, kind: str) -> Path:
    """Refuse, before any slow work, an output that cannot become a `kind` ("folder" or "file"): an existing file
    where a folder goes, an existing folder where a file goes, or a path under a regular file."""
    out = Path(path)
    if kind == "folder" and out.exists() and not out.is_dir():
        raise ExportError(f"output '{out}' is an existing file; an ONNX export is a folder: choose another output path")
    if kind == "file" and out.is_dir():
        raise ExportError(f"output '{out}' is an existing folder; give a file path such as '{out / 'model.tflite'}'")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ExportError(f"output '{out}' lies under the regular file '{parent}'; choose a writable output path")
            break
    return out


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def base_metadata(source: SourceModel, fmt: str, precision: str, sequence_buckets: tuple[int, ...],
                  packages: tuple[str, ...]) -> dict[str, Any]:
    return {
        "format": fmt,
        "precision": precision,
        "sdk_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source_model": str(source.folder),
        "source_sha256": source.sha256,
        "sequence_buckets": list(sequence_buckets),
        "max_position_embeddings": source.max_positions,
        "label_names": [source.config.get("id2label", {}).get(str(i), str(i)) for i in range(source.num_labels)],
        "package_versions": {name: _version(name) for name in packages},
    }


def write_metadata(path: Path, metadata: dict[str, Any]) -> Path:
    return write_json_atomic(metadata_path(path), metadata)
