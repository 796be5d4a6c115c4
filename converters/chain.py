"""`tinybert_edge.export`: the one export entry point. fp32 ONNX, int8 ONNX, int8 (or fp32) TFLite and, when asked,
int8 (or fp32) ExecuTorch from one model folder, in the one on-disk layout of `tinybert_edge.artifacts` (onnx-fp32/,
onnx-int8/, tflite-int8/model.tflite, executorch-int8/model.pte), each verified against the PyTorch model when parity batches are given. The CLI, the pipeline, every benchmark suite
and `package` go through here."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Mapping, MutableMapping, Sequence

import numpy as np

from tinybert_edge.artifacts import Artifact, export_path, metadata_path
from tinybert_edge.converters.artifact import SourceModel, check_output_path, check_source
from tinybert_edge.converters.config import ExportConfig, QuantizationConfig
from tinybert_edge.converters.parity import ParityCheck, ParityThresholds
from tinybert_edge.converters.tokenizer_gate import TokenizerGate
from tinybert_edge.errors import ConfigError, TinyBertEdgeError

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite")  # what an export makes unless told
# What it can make: also ExecuTorch, ONNX with the tokenizer in the graph (built from the ONNX export of the same
# precision) and a MediaPipe Text Classifier (one sequence length, batch 1).
ALL_FORMATS = (*FORMATS, "executorch", "onnx-text", "mediapipe")
PARITY_EXAMPLES = 256
GENERATED = "generated sentences"


class ExportFailure(str):
    """Why `export` could not make an artifact, as the "ErrorType: message" string that reports print, with the
    exception itself kept as `error`, for callers that read its fields (AccuracyBudgetError.attempts)."""

    error: TinyBertEdgeError

    def __new__(cls, error: TinyBertEdgeError) -> "ExportFailure":
        failure = super().__new__(cls, f"{type(error).__name__}: {error}")
        failure.error = error
        return failure


def generated_texts(tokenizer, n: int = PARITY_EXAMPLES, seed: int = 0) -> list[str]:
    """`n` seeded sentences of 4 to 40 whole words drawn from the model's own vocabulary: parity inputs for a model
    exported without data. They exercise every position and most of the vocabulary, but they are not the task's
    text, so a label flip on them says little: parity on them gates the outputs' numbers, not label agreement."""
    import random

    words = sorted(w for w in tokenizer.get_vocab() if w.isascii() and w.isalpha() and len(w) > 1)
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 40))) for _ in range(n)]


def parity_examples(model_dir: str | Path, data=None, max_length: int = 128,
                    n: int = PARITY_EXAMPLES) -> tuple[Any, str, bool]:
    """Encoded parity examples for `model_dir`, what they are, and whether they are the task's own data: the first
    `n` examples of `data` (the task's loaded examples, encoded with the model's tokenizer), else `n` generated
    sentences (see `generated_texts`)."""
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.tasks import get_task

    tokenizer = load_tokenizer(model_dir)
    if data is None:
        from tinybert_edge.data import TextClassificationData

        texts = generated_texts(tokenizer, n)
        data = TextClassificationData(texts=texts, labels=[0] * len(texts), label_names=["-"], source=GENERATED)
        described = f"{len(texts)} {GENERATED} (seed 0)"
        own = False
    else:
        data = data.subset(range(min(n, len(data))))
        described = f"the first {len(data)} examples of {data.source}"
        own = True
    return get_task(data.task).encode(tokenizer, data, max_length), described, own


def parity_inputs(model_dir: str | Path, data=None, max_length: int = 128, n: int = PARITY_EXAMPLES,
                  batch_size: int = 32) -> tuple[list[dict[str, np.ndarray]], str]:
    """Parity batches for `model_dir` and what they are (see `parity_examples`)."""
    encoded, described, _ = parity_examples(model_dir, data, max_length, n)
    return list(encoded.batches(batch_size)), described


def _thresholds_for(inputs: str, precision: str) -> ParityThresholds:
    """The precision's limits; on generated sentences the argmax agreement is reported but not gated."""
    chosen = ParityThresholds.for_precision(precision)
    if inputs.endswith(f"{GENERATED} (seed 0)"):
        chosen = ParityThresholds(chosen.max_abs_diff, chosen.min_cosine, min_argmax_agreement=0.0,
                                  min_task_metric=0.0)
    return chosen


def planned(formats: Sequence[str], quantize: bool) -> list[tuple[str, str]]:
    """The (format, precision) artifacts an export of `formats` makes, in the order they are made (the int8 ONNX
    is quantized from the fp32 one)."""
    plan = []
    if "onnx" in formats or "onnx-text" in formats:
        plan.append(("onnx", "fp32"))
        if quantize:
            plan.append(("onnx", "int8"))
    if "tflite" in formats:
        plan.append(("tflite", "int8" if quantize else "fp32"))
    if "executorch" in formats:
        plan.append(("executorch", "int8" if quantize else "fp32"))
    if "onnx-text" in formats:
        plan.append(("onnx-text", "int8" if quantize else "fp32"))
    if "mediapipe" in formats:
        plan.append(("mediapipe", "int8" if quantize else "fp32"))
    return plan


def _reusable(path: Path, source: SourceModel, config: ExportConfig,
              quantization: QuantizationConfig | None = None) -> Artifact | None:
    """The artifact at `path` when it was exported from this very model, covers every sequence bucket and, for
    int8 ONNX (and the in-graph-tokenizer ONNX built from it), was quantized with `quantization`, the settings asked
    for now (given for those two)."""
    if not metadata_path(path).is_file():
        return None
    try:
        artifact = Artifact.load(path)
    except TinyBertEdgeError:
        return None
    if artifact.metadata.get("source_sha256") != source.sha256:
        return None
    # ONNX has dynamic axes: any length runs. TFLite has fixed buckets: reuse only when they cover every length.
    if artifact.format == "tflite" and not set(config.sequence_buckets) <= set(artifact.sequence_buckets):
        return None
    if artifact.format in ("onnx", "onnx-text") and artifact.precision == "int8":  # onnx-text wraps the int8 ONNX
        import json

        asked = json.loads(json.dumps(quantization.to_dict()))
        made = artifact.metadata.get("quantization") or {}
        if any(made.get(key) != value for key, value in asked.items() if key != "reason"):
            return None
    if artifact.format == "onnx-text":
        from tinybert_edge.converters.onnx_text_export import TOKENIZER_GRAPH_VERSION

        if artifact.metadata.get("tokenizer_graph_version") != TOKENIZER_GRAPH_VERSION:
            return None
    # ExecuTorch takes any length up to the one it was exported for.
    if artifact.format == "executorch" and max(config.sequence_buckets) > int(artifact.metadata.get(
            "max_sequence_length") or 0):
        return None
    return artifact


def export(model_dir: str | Path, out_dir: str | Path, formats: Sequence[str] = FORMATS, quantize: bool = True,
           config: ExportConfig | None = None, qconfig: QuantizationConfig | None = None,
           parity_batches: Sequence[Mapping[str, np.ndarray]] | None = None,
           thresholds: Mapping[str, ParityThresholds] | ParityThresholds | None = None, *,
           verify: bool = True, parity_description: str = "", reuse: bool = False,
           reuse_from: Sequence[str | Path] = (), threads: int | None = None,
           errors: MutableMapping[str, ExportFailure] | None = None, parity_encoded: Any = None,
           texts: Sequence[str] | None = None, texts_description: str = "",
           tokenizer_gate: TokenizerGate | None = None) -> list[Artifact]:
    """Export `model_dir` into `out_dir`: onnx-fp32/, onnx-int8/ (dynamic int8) and tflite-int8/model.tflite
    (tflite-fp32/model.tflite when quantize=False); with "executorch" in `formats`, executorch-int8/model.pte
    (executorch-fp32/ when quantize=False).

    Every artifact is checked against the PyTorch model before it is kept: on `parity_batches` (described in the
    metadata by `parity_description`) when given, else, unless `verify=False`, on generated sentences (see
    `parity_inputs`; pass batches of the user's own data to gate label agreement too). `thresholds` is one
    ParityThresholds for every artifact or a mapping by precision ("fp32", "int8"); missing precisions use
    ParityThresholds.for_precision. `parity_encoded` (a tinybert_edge.data.EncodedData of the task's own examples)
    may stand for `parity_batches`: its rows are batched in order, and each report then also carries the task's
    agreement measures (entity F1, answer F1; Task.parity_metrics). With `reuse`, an artifact already in
    `out_dir` (or in an export folder of `reuse_from`) that was exported from this very model and covers every
    sequence bucket is kept instead of made again. With `errors` (a dict), an artifact that cannot be made is
    recorded there under "<format>-<precision>" with the reason (an ExportFailure: the message, and the exception as
    `.error`), and the others are still made; without it the first failure raises.

    "onnx-text" and "mediapipe" carry their own tokenizer: its ids are compared with the model's Hugging Face
    tokenizer on `texts` (the user's dev texts, described by `texts_description`; else generated sentences) and on
    the SDK's tokenizer corpus, gated by `tokenizer_gate` (default: 100% on the texts). A MediaPipe export takes one
    sequence length (`config.sequence_buckets` of one length) at batch 1.
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if not formats or unknown:
        raise ConfigError(f"formats={formats!r} is not allowed; allowed: a non-empty subset of {', '.join(ALL_FORMATS)}")
    config = config or ExportConfig()
    if "mediapipe" in formats:
        from tinybert_edge.converters.mediapipe_export import check_mediapipe_config

        check_mediapipe_config(config)
    source = check_source(model_dir, config.sequence_buckets)  # fail before any slow work
    out = check_output_path(out_dir, "folder")

    reference = None
    batches, described = (list(parity_batches), parity_description or "the batches given") \
        if parity_batches is not None else (None, "")
    if parity_encoded is not None:
        batches = list(parity_encoded.batches(32))
        described = parity_description or f"{len(parity_encoded)} encoded examples"

    def check(precision: str) -> ParityCheck | None:
        nonlocal reference, batches, described
        if batches is None and not verify:
            return None
        if batches is None:
            batches, described = parity_inputs(source.folder, max_length=max(config.sequence_buckets))
        if reference is None:
            from tinybert_edge.runtime.sessions import TorchSession

            reference = TorchSession(source.folder, threads=threads)
        if isinstance(thresholds, ParityThresholds):
            chosen = thresholds
        else:
            chosen = (thresholds or {}).get(precision) or _thresholds_for(described, precision)
        return ParityCheck(reference, batches, chosen, described, parity_encoded)

    gate_texts: tuple[list[str], str] | None = None

    def user_texts() -> tuple[list[str], str]:
        nonlocal gate_texts
        if gate_texts is None:
            if texts is not None:
                gate_texts = (list(texts), texts_description or f"{len(texts)} texts given")
            else:
                from tinybert_edge.models import load_tokenizer

                generated = generated_texts(load_tokenizer(source.folder))
                gate_texts = (generated, f"{len(generated)} {GENERATED} (seed 0)")
        return gate_texts

    @functools.cache
    def quantization() -> QuantizationConfig:
        """The int8 ONNX settings asked for: `qconfig`, or this CPU's preset (looked up once per export)."""
        return qconfig or QuantizationConfig.for_this_cpu()

    made: dict[tuple[str, str], Artifact] = {}
    for fmt, precision in planned(formats, quantize):
        key = f"{fmt}-{precision}"
        target = export_path(out, fmt, precision)
        found = None
        if reuse:
            for folder in (out, *map(Path, reuse_from)):
                found = _reusable(export_path(folder, fmt, precision), source, config,
                                  quantization() if fmt in ("onnx", "onnx-text") and precision == "int8" else None)
                if found is not None:
                    log.info("%s: reusing %s", key, found.path)
                    break
        try:
            if found is not None:
                made[fmt, precision] = found
            elif fmt == "onnx" and precision == "fp32":
                from tinybert_edge.converters.onnx_export import export_onnx

                made[fmt, precision] = export_onnx(source.folder, target, config, parity=check(precision))
            elif fmt == "onnx":
                from tinybert_edge.converters.onnx_quantize import quantize_onnx

                if ("onnx", "fp32") not in made:
                    raise TinyBertEdgeError(f"onnx-int8 is quantized from onnx-fp32, which failed: "
                                            f"{(errors or {}).get('onnx-fp32')}")
                settings = quantization()
                if settings.min_agreement is not None:
                    from tinybert_edge.converters.gate import quantize_onnx_to_agreement

                    parity = check(precision)
                    if parity is None:
                        raise ConfigError("QuantizationConfig.min_agreement needs parity examples to search on; "
                                          "leave verify on and give parity_batches (the user's dev data)")
                    made[fmt, precision] = quantize_onnx_to_agreement(made["onnx", "fp32"], target, parity, settings)
                else:
                    made[fmt, precision] = quantize_onnx(made["onnx", "fp32"], target, settings,
                                                         parity=check(precision))
            elif fmt == "onnx-text":
                from tinybert_edge.converters.onnx_text_export import export_onnx_text

                if ("onnx", precision) not in made:
                    raise TinyBertEdgeError(f"onnx-text-{precision} is built from onnx-{precision}, which failed: "
                                            f"{(errors or {}).get(f'onnx-{precision}')}")
                gate_inputs, gate_described = user_texts()
                made[fmt, precision] = export_onnx_text(made["onnx", precision], target, gate_inputs, gate_described,
                                                        gate=tokenizer_gate)
            elif fmt == "mediapipe":
                from tinybert_edge.converters.mediapipe_export import export_mediapipe

                gate_inputs, gate_described = user_texts()
                made[fmt, precision] = export_mediapipe(source.folder, target, config, quantize=precision == "int8",
                                                        parity=check(precision), texts=gate_inputs,
                                                        texts_description=gate_described, gate=tokenizer_gate)
            elif fmt == "executorch":
                from tinybert_edge.converters.executorch_export import export_executorch

                made[fmt, precision] = export_executorch(source.folder, target, config, quantize=precision == "int8",
                                                         parity=check(precision))
            else:
                from tinybert_edge.converters.tflite_export import export_tflite

                made[fmt, precision] = export_tflite(source.folder, target, config,
                                                     quantization="dynamic_int8" if precision == "int8" else None,
                                                     parity=check(precision))
        except TinyBertEdgeError as exc:
            if errors is None:
                raise
            errors[key] = ExportFailure(exc)
            log.warning("%s of %s could not be made: %s", key, source.folder, errors[key])
    artifacts = list(made.values())
    for artifact in artifacts:
        log.info("%s %s: %s (%d bytes)", artifact.format, artifact.precision, artifact.path, artifact.size_bytes)
    return artifacts
