"""A MediaPipe Text Classifier model: the task's TFLite (int8 with ai-edge-quantizer's dynamic_wi8_afp32, or fp32) at
one sequence length and batch 1, with MediaPipe's Text Classifier metadata (the WordPiece vocabulary and the labels,
`text_classifier.MetadataWriter.create_for_bert_model`) inside the file, so that MediaPipe Tasks on Android, iOS,
the web or Python (`mediapipe.tasks.python.text.TextClassifier`) classify raw strings with it.

MediaPipe's constraints, checked before any work: three int32 inputs (ids, mask, segment ids) of one static length,
batch 1, one signature (`check_mediapipe_config`). Its BertTokenizer metadata holds a vocabulary and nothing else: the
tokenizer always lower-cases and strips accents, so a cased vocabulary is refused (`tokenizer_gate.check_vocabulary`).

Three things are handled here that the libraries leave broken:
- mediapipe 1.2's wheel lacks `mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`, which the metadata
  writer imports for one function (the metadata's minimum parser version); `_metadata_version_module` provides it,
  computed from the metadata as the C++ original does (from the schema's version history), when the import fails.
- ai-edge-quantizer may store weight buffers past the flatbuffer's end (a buffer with `offset`/`size` instead of
  inline `data`); MediaPipe's metadata populator re-packs the model and drops them. `inline_buffers` moves every
  such buffer back inside the flatbuffer first, and the parity check runs on the finished file.
- MediaPipe exposes no token ids, so its tokenizer is compared with Hugging Face's through a probe: a model with the
  same metadata whose "scores" are the ids it was fed (`MediaPipeTokenizerProbe`).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.converters.artifact import (Artifact, base_metadata, check_output_path, check_source,
                                               write_metadata)
from tinybert_edge.converters.config import ExportConfig
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.converters.tflite_export import (INPUT_NAMES, compact_flatbuffer, convert_buckets, quantize_tflite,
                                                    signature_name)
from tinybert_edge.converters.tokenizer_gate import TokenizerGate, check_vocabulary, tokenizer_agreement
from tinybert_edge.errors import ConfigError, ExportError, require
from tinybert_edge.io import atomic_path

log = logging.getLogger(__name__)

MEDIAPIPE_FILE = "model.tflite"
MEDIAPIPE_PACKAGES = ("mediapipe", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "torch", "transformers")
CONSUMER = "MediaPipe's BertTokenizer"
_VERSION_MODULE = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


def check_mediapipe_config(config: ExportConfig, batch_size: int = 1) -> None:
    """ConfigError unless the export asks for what a MediaPipe Text Classifier model can be: one sequence length,
    batch 1."""
    if len(config.sequence_buckets) != 1:
        raise ConfigError(f"sequence_buckets = {config.sequence_buckets} is not allowed for a MediaPipe Text Classifier: "
                          "MediaPipe runs one signature whose inputs have one static length; give one length "
                          "(--seq-lengths 128), or export MediaPipe separately from the multi-length TFLite")
    if batch_size != 1:
        raise ConfigError(f"batch_size = {batch_size} is not allowed for a MediaPipe Text Classifier: MediaPipe "
                          "classifies one text per call with inputs of batch 1")


# --- the metadata writer's missing module ---------------------------------------------------------------------------

def minimum_parser_version(metadata_buffer: bytes) -> str:
    """The lowest metadata parser version that reads `metadata_buffer`, from the schema's version history
    (mediapipe/tasks/metadata/metadata_schema.fbs), as `GetMinimumMetadataParserVersion` computes it."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    metadata = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buffer), 0))
    needed = [(1, 0, 0)]
    files = list(metadata.associatedFiles or [])
    units: list[Any] = []
    tensors: list[Any] = []
    for subgraph in metadata.subgraphMetadata or []:
        files += list(subgraph.associatedFiles or [])
        if subgraph.inputProcessUnits or subgraph.outputProcessUnits:
            needed.append((1, 1, 0))
        units += list(subgraph.inputProcessUnits or []) + list(subgraph.outputProcessUnits or [])
        if subgraph.inputTensorGroups or subgraph.outputTensorGroups:
            needed.append((1, 2, 0))
        if getattr(subgraph, "customMetadata", None):
            needed.append((1, 5, 0))
        tensors += list(subgraph.inputTensorMetadata or []) + list(subgraph.outputTensorMetadata or [])
    for tensor in tensors:
        files += list(tensor.associatedFiles or [])
        units += list(tensor.processUnits or [])
        content = tensor.content
        if content is not None and content.contentPropertiesType == fb.ContentProperties.AudioProperties:
            needed.append((1, 3, 0))
    options = fb.ProcessUnitOptions
    for unit in units:
        if unit.optionsType in (options.BertTokenizerOptions, options.SentencePieceTokenizerOptions):
            needed.append((1, 1, 0))
            inner = getattr(unit.options, "vocabFile", None) or getattr(unit.options, "sentencePieceModel", None) or []
            files += list(inner)
        elif unit.optionsType == options.RegexTokenizerOptions:
            needed.append((1, 2, 1))
            files += list(getattr(unit.options, "vocabFile", None) or [])
    for file in files:
        if file.type == fb.AssociatedFileType.VOCABULARY:
            needed.append((1, 0, 1))
        if file.type == getattr(fb.AssociatedFileType, "SCANN_INDEX_FILE", -1):
            needed.append((1, 4, 0))
        if getattr(file, "version", None):
            needed.append((1, 4, 1))
    return ".".join(map(str, max(needed)))


def _metadata_version_module() -> None:
    """Make `mediapipe.tasks.cc.metadata.python._pywrap_metadata_version` importable when the wheel lacks it."""
    try:
        __import__(_VERSION_MODULE)
        return
    except ImportError:
        pass
    module = types.ModuleType(_VERSION_MODULE)
    module.GetMinimumMetadataParserVersion = minimum_parser_version  # type: ignore[attr-defined]
    parent = None
    for name in ("mediapipe.tasks.cc", "mediapipe.tasks.cc.metadata", "mediapipe.tasks.cc.metadata.python"):
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__path__ = []  # type: ignore[attr-defined]
        if parent is not None:
            setattr(parent, name.rpartition(".")[2], sys.modules[name])
        parent = sys.modules[name]
    sys.modules[_VERSION_MODULE] = module
    setattr(parent, "_pywrap_metadata_version", module)


# --- weights past the flatbuffer's end ------------------------------------------------------------------------------

def inline_buffers(flatbuffer: bytes) -> tuple[bytes, int]:
    """The model with every buffer stored past the flatbuffer's end (offset/size) moved inside it as inline data;
    returns (flatbuffer, buffers moved). A model without such buffers comes back unchanged."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    raw = schema.Model.GetRootAsModel(bytearray(flatbuffer), 0)
    outside = [i for i in range(raw.BuffersLength()) if raw.Buffers(i).Offset() > 1]
    if not outside:
        return flatbuffer, 0
    model = schema.ModelT.InitFromObj(raw)
    for index in outside:
        buffer = model.buffers[index]
        start, size = int(buffer.offset), int(buffer.size)
        if start + size > len(flatbuffer):
            raise ExportError(f"buffer {index} of the quantized model lies past the file's end ({start}+{size} > "
                              f"{len(flatbuffer)}); the quantizer's output is truncated")
        buffer.data = list(flatbuffer[start : start + size]) if size else None
        buffer.offset, buffer.size = 0, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), len(outside)


# --- metadata and the tokenizer probe -------------------------------------------------------------------------------

def with_metadata(flatbuffer: bytes, vocab_file: Path, labels: Sequence[str], length: int) -> bytes:
    """`flatbuffer` with MediaPipe's Text Classifier metadata (BertTokenizer over `vocab_file`, `labels`)."""
    require("mediapipe", package="mediapipe", extra="mediapipe", purpose="MediaPipe Text Classifier export")
    _metadata_version_module()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, text_classifier

    prefix = signature_name(length)
    writer = None
    try:
        writer = text_classifier.MetadataWriter.create_for_bert_model(
            bytearray(flatbuffer), metadata_writer.BertTokenizer(str(vocab_file)),
            metadata_writer.Labels().add(list(labels)), ids_name=f"{prefix}_input_ids",
            mask_name=f"{prefix}_attention_mask", segment_name=f"{prefix}_token_type_ids")
        model, _ = writer.populate()
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise ExportError(f"MediaPipe's metadata writer failed: {exc}") from exc
    finally:
        writer = None  # its __del__ removes a temporary folder; at interpreter exit it fails (mediapipe 1.2)
    return bytes(model)


def probe_flatbuffer(length: int) -> bytes:
    """A Text Classifier-shaped model whose scores are the token ids it was fed (ids * mask; segment ids add 0 for a
    single text): MediaPipe's tokenizer made visible."""
    litert_torch = require("litert_torch", package="litert-torch", extra="tflite", purpose="MediaPipe tokenizer probe")
    import torch

    class Ids(torch.nn.Module):
        def forward(self, input_ids, attention_mask, token_type_ids):
            return ((input_ids * attention_mask).float() + token_type_ids.float() * 1e-6,)

    shape = (1, length)
    sample = {"input_ids": torch.ones(shape, dtype=torch.int32), "attention_mask": torch.ones(shape, dtype=torch.int32),
              "token_type_ids": torch.zeros(shape, dtype=torch.int32)}
    converter = litert_torch.Converter()
    converter.signature(signature_name(length), Ids().eval(), sample_kwargs=sample)
    return converter.convert().model_content()


class MediaPipeTokenizerProbe:
    """Texts -> the token ids MediaPipe's Text Classifier feeds a model of this vocabulary and length (a probe model
    with the same metadata whose scores are its input ids; padding, id 0, is dropped from the end)."""

    def __init__(self, vocab_file: Path, length: int) -> None:
        from tinybert_edge.runtime.mediapipe_text import text_classifier

        self.length = length
        probe = with_metadata(probe_flatbuffer(length), vocab_file, [f"p{i}" for i in range(length)], length)
        with tempfile.TemporaryDirectory(prefix="mediapipe-probe-") as folder:
            (Path(folder) / "probe.tflite").write_bytes(probe)
            self.classifier = text_classifier(Path(folder) / "probe.tflite")  # reads the file when created

    def __call__(self, texts: list[str]) -> list[list[int]]:
        out = []
        for text in texts:
            ids = [0] * self.length
            for category in self.classifier.classify(text).classifications[0].categories:
                ids[category.index] = int(round(category.score))
            while ids and ids[-1] == 0:
                ids.pop()
            out.append(ids)
        return out

    def close(self) -> None:
        self.classifier.close()


def export_mediapipe(model_dir: str | Path, out_path: str | Path, config: ExportConfig | None = None,
                     quantize: bool = True, parity: ParityCheck | None = None, *, texts: Sequence[str],
                     texts_description: str = "", gate: TokenizerGate | None = None, batch_size: int = 1) -> Artifact:
    """Export a fine-tuned text classifier to a MediaPipe Text Classifier .tflite at the one length of
    `config.sequence_buckets`, batch 1, vocabulary and labels inside; int8 with `quantize`.

    Refused up front for several lengths, batch > 1, a task without labels, or a vocabulary MediaPipe's tokenizer
    cannot represent; kept only when its tokenizer's ids agree with Hugging Face's on `texts` as `gate` asks
    (recorded with the corpus agreement) and the finished file passes `parity`."""
    config = config or ExportConfig(sequence_buckets=(128,))
    check_mediapipe_config(config, batch_size)
    require("mediapipe", package="mediapipe", extra="mediapipe", purpose="MediaPipe Text Classifier export")
    require("litert_torch", package="litert-torch", extra="tflite", purpose="MediaPipe Text Classifier export")
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime.wordpiece import load_vocab

    gate = gate or TokenizerGate()
    source = check_source(model_dir, config.sequence_buckets)
    if not source.task.name.endswith("classification") or source.task.per_token or not source.label_names:
        raise ExportError(f"a MediaPipe Text Classifier scores labels per text; '{source.folder}' is a "
                          f"{source.task.name} model{'' if source.label_names else ' without label names'}")
    settings = check_vocabulary(source.folder, CONSUMER, cased=False, keep_accents=False)
    length = config.sequence_buckets[0]
    out = Path(out_path)
    out_file = check_output_path(out if out.suffix == ".tflite" else out / MEDIAPIPE_FILE, "file")
    vocab_file = source.folder / "vocab.txt"
    started = time.perf_counter()
    probe = MediaPipeTokenizerProbe(vocab_file, length)
    try:
        agreement = tokenizer_agreement(probe, load_tokenizer(source.folder), texts,
                                        texts_description or f"{len(texts)} texts", length, gate, CONSUMER,
                                        vocab_words=list(load_vocab(vocab_file)))
    finally:
        probe.close()
    with atomic_path(out_file) as tmp:
        flatbuffer = convert_buckets(source, config)
        if quantize:
            flatbuffer = quantize_tflite(flatbuffer, "dynamic_int8")
        flatbuffer, moved = inline_buffers(flatbuffer)
        flatbuffer, compaction = compact_flatbuffer(flatbuffer)
        flatbuffer = with_metadata(flatbuffer, vocab_file, source.label_names, length)
        tmp.write_bytes(flatbuffer)
        metadata: dict[str, Any] = base_metadata(source, "mediapipe", "int8" if quantize else "fp32",
                                                 config.sequence_buckets, MEDIAPIPE_PACKAGES)
        metadata.update({
            "model_file": MEDIAPIPE_FILE,
            "signatures": {signature_name(length): length},
            "batch_size": 1,
            "sequence_length": length,
            "input_names": list(INPUT_NAMES),
            "input_dtype": "int32",
            "mediapipe_metadata": {"writer": "text_classifier.MetadataWriter.create_for_bert_model",
                                   "tokenizer": "BertTokenizer (vocab.txt inside)", "labels": list(source.label_names)},
            "quantization": None if not quantize else {"method": "ai-edge-quantizer", "recipe": "dynamic_wi8_afp32"},
            "buffers_moved_inside": moved,
            "compaction": compaction,
            "tokenizer": {"lower_case": settings.do_lower_case, "strip_accents": settings.effective_strip_accents},
            "tokenizer_agreement": agreement,
            "export_seconds": round(time.perf_counter() - started, 3),
        })
        if parity is not None:
            from tinybert_edge.runtime.litert import LiteRtSession

            metadata["parity"] = parity.run(LiteRtSession(tmp)).to_dict()
    write_metadata(out_file, metadata)
    log.info("wrote MediaPipe Text Classifier '%s' (seq %d, %s): tokenizer ids agree on %d/%d of %s", out_file, length,
             metadata["precision"], agreement["dev"]["agreeing"], agreement["dev"]["n"], agreement["dev"]["texts"])
    return Artifact(out_file, "mediapipe", metadata["precision"], metadata)

