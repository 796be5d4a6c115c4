"""What an exporter starts from (`SourceModel`, checked before any slow work) and the metadata it writes beside
every artifact (`base_metadata`, `write_metadata`). The artifact type itself and the lookup of its pieces are in
`tinybert_edge.artifacts`."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinybert_edge.artifacts import Artifact, metadata_path
from tinybert_edge.errors import ExportError, ModelError
from tinybert_edge.io import sha256_tree, write_json_atomic
from tinybert_edge.tasks import Task, task_of_config
from tinybert_edge.version import __version__

__all__ = ["Artifact", "SourceModel", "base_metadata", "check_output_path", "check_source", "metadata_path",
           "write_metadata"]

log = logging.getLogger(__name__)

MODEL_CARD = "README.md"

@dataclass(frozen=True)
class SourceModel:
    """A checked source folder: a fine-tuned BERT model of some task with config, weights and (ideally) a
    tokenizer."""

    folder: Path
    config: dict[str, Any]
    sha256: str
    task: Task

    @property
    def max_positions(self) -> int:
        return int(self.config.get("max_position_embeddings", 512))

    @property
    def label_names(self) -> list[str] | None:
        return self.task.label_names(self.config)


def check_source(model_dir: str | Path, sequence_buckets: tuple[int, ...]) -> SourceModel:
    """Raise ModelError unless `model_dir` is a fine-tuned BERT model of a known task whose position table covers
    every bucket."""
    from tinybert_edge.models import check_model_folder

    try:
        folder = check_model_folder(model_dir, role="export source")
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"export source '{model_dir}' has an unreadable config.json ({exc}); save the model again "
                         "with save_pretrained") from exc
    if not isinstance(config, dict):
        raise ModelError(f"export source '{model_dir}' has a config.json that is not a JSON object")
    task = task_of_config(config, f"export source '{folder}'")
    max_positions = int(config.get("max_position_embeddings", 512))
    too_long = [b for b in sequence_buckets if b > max_positions]
    if too_long:
        raise ModelError(
            f"sequence buckets {too_long} exceed the model's max_position_embeddings ({max_positions}) in "
            f"'{folder}'; use buckets <= {max_positions}"
        )
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        log.warning("'%s' has no tokenizer files; the exported artifacts will not carry one", folder)
    # The model card (README.md, written by the pipeline after the artifacts are measured) is documentation: it
    # must not make the artifacts exported before it look stale.
    return SourceModel(folder=folder, config=config, sha256=sha256_tree(folder, exclude=(MODEL_CARD,)), task=task)


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
        "task": source.task.name,
        "label_names": source.label_names or [],
        "package_versions": {name: _version(name) for name in packages},
    }


def write_metadata(path: Path, metadata: dict[str, Any]) -> Path:
    return write_json_atomic(metadata_path(path), metadata)
