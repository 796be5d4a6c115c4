"""Typed settings for export (`ExportConfig`) and int8 quantization (`QuantizationConfig`), checked on creation."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from tinybert_edge.config import DEFAULT_SEQUENCE_LENGTHS
from tinybert_edge.validation import (check_bool, check_choice, check_number, freeze, int_tuple, invalid,
                                      string_tuple)

log = logging.getLogger(__name__)

# torch's TorchScript-based ONNX exporter (what optimum-onnx drives) writes opsets 14 to 20; BERT needs >= 14
# for its attention-mask arithmetic to export without fallbacks.
OPSET_RANGE = (14, 20)
WEIGHT_TYPES = ("int8", "uint8")
ACTIVATION_TYPES = ("uint8", "int8")
# dynamic: activations quantized per batch at run time (quantize_dynamic); static: QDQ with activation ranges
# calibrated on dev texts (quantize_static), which ONNX Runtime runs as QLinearMatMul.
QUANTIZATION_MODES = ("dynamic", "static")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Operators onnxruntime's dynamic quantizer turns into integer kernels in a (fused) BERT graph.
# The CPUs an int8 ONNX export can be made for (QuantizationConfig.for_target): the exporting machine, or a preset.
TARGET_CPUS = ("this", "avx2", "avx512_vnni", "arm64")
QUANTIZABLE_OPS = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization")
# How a dynamic int8 ONNX stores the word-embedding table of a fused graph (QuantizationConfig.embedding_table).
# "int8-rows": converters.embedding_int8 (one scale per row); "ort": onnxruntime's QEmbedLayerNormalization (one scale).
ROWWISE_EMBEDDING = "int8-rows"
EMBEDDING_TABLES = (ROWWISE_EMBEDDING, "ort")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class ExportConfig:
    """How a model folder becomes ONNX and TFLite artifacts.

    `sequence_buckets` are the fixed sequence lengths of the TFLite signatures (`seq_<L>`), sorted on creation;
    ONNX keeps dynamic batch and sequence axes and records the buckets only as metadata.
    """

    opset: int = 17
    sequence_buckets: tuple[int, ...] = DEFAULT_SEQUENCE_LENGTHS
    optimize: bool = True
    # Fixed batch of the TFLite signatures; the LiteRT session runs a larger batch row by row.
    tflite_batch_size: int = 1
    # Keep the torch module-path names of every TFLite tensor (for op-level profiling); they cost ~145 KB per
    # signature on a 6-layer MiniLM. Names of signature inputs and outputs are always kept.
    tflite_tensor_names: bool = False

    def __post_init__(self) -> None:
        check_number(None, "opset", self.opset, minimum=OPSET_RANGE[0], maximum=OPSET_RANGE[1], integer=True)
        freeze(self, "sequence_buckets", int_tuple(None, "sequence_buckets", self.sequence_buckets, minimum=2,
                                                   sort=True))
        check_bool(None, "optimize", self.optimize)
        check_bool(None, "tflite_tensor_names", self.tflite_tensor_names)
        if self.tflite_batch_size != 1:
            raise invalid(None, "tflite_batch_size", self.tflite_batch_size, "1 (larger batches run row by row)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QuantizationConfig:
    """int8 settings for ONNX Runtime: dynamic (`quantize_dynamic`, the default) or static QDQ calibrated on dev
    texts (`quantize_static`, `mode="static"`; `activation_type` "int8" is S8S8, "uint8" U8S8; it needs at least
    `calibration_examples` calibration rows and the unoptimized fp32 export, `ExportConfig(optimize=False)`).

    Presets follow optimum's `AutoQuantizationConfig` and ONNX Runtime's guidance per instruction set; use
    `for_this_cpu()` to pick one for the machine that runs the export (it records why in `reason`).
    `keep_fp32` names model modules (e.g. "embeddings", "classifier", "encoder.layer.0") whose operators stay fp32.
    `min_agreement` (dynamic mode): the share of the parity examples on which int8 must decide as the reference
    does (the task's decision: a label, a tag, an answer); below it, the nodes whose int8 moves the outputs most are
    kept fp32 one at a time until it is met (converters.gate.quantize_onnx_to_agreement). None (the default)
    quantizes every node and leaves the judgement to the parity thresholds.
    `embedding_table` (dynamic mode, fused graph): "int8-rows" (the default) stores the word-embedding table int8 with
    one scale per row and unfuses EmbedLayerNormalization into standard operators (converters.embedding_int8);
    "ort" keeps onnxruntime's QEmbedLayerNormalization, one scale for the whole table.
    """

    preset: str = "custom"
    weight_type: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    keep_fp32: tuple[str, ...] = ()
    op_types: tuple[str, ...] = QUANTIZABLE_OPS
    reason: str = ""
    mode: str = "dynamic"
    activation_type: str = "uint8"
    calibration_method: str = "minmax"
    calibration_examples: int = 128
    min_agreement: float | None = None
    embedding_table: str = ROWWISE_EMBEDDING

    def __post_init__(self) -> None:
        check_choice(None, "weight_type", self.weight_type, WEIGHT_TYPES, quoted=False)
        check_choice(None, "mode", self.mode, QUANTIZATION_MODES, quoted=False)
        check_choice(None, "activation_type", self.activation_type, ACTIVATION_TYPES, quoted=False)
        check_choice(None, "calibration_method", self.calibration_method, CALIBRATION_METHODS, quoted=False)
        check_choice(None, "embedding_table", self.embedding_table, EMBEDDING_TABLES, quoted=False)
        check_number(None, "calibration_examples", self.calibration_examples, minimum=1, integer=True)
        check_number(None, "min_agreement", self.min_agreement, minimum=0.0, maximum=1.0, exclusive=True,
                     optional=True)
        if self.min_agreement is not None and self.mode != "dynamic":
            raise invalid(None, "min_agreement", self.min_agreement,
                          "None with mode='static' (the agreement search keeps nodes fp32 in dynamic int8)")
        if self.mode == "dynamic" and self.activation_type != "uint8":
            raise invalid(None, "activation_type", self.activation_type,
                          "uint8 with mode='dynamic' (ONNX Runtime quantizes activations to uint8 at run time); "
                          "int8 activations need mode='static'")
        check_bool(None, "per_channel", self.per_channel)
        check_bool(None, "reduce_range", self.reduce_range)
        keep = string_tuple(None, "keep_fp32", self.keep_fp32, allow_empty=True)
        if not all(_MODULE_NAME.match(module) for module in keep):
            raise invalid(None, "keep_fp32", self.keep_fp32, "module names such as 'embeddings', 'classifier'")
        freeze(self, "keep_fp32", keep)
        freeze(self, "op_types", string_tuple(None, "op_types", self.op_types, QUANTIZABLE_OPS, quoted=False))

    @classmethod
    def avx2(cls, **overrides: Any) -> "QuantizationConfig":
        """x86 without VNNI: u8 weights, as optimum's avx2 preset, so ONNX Runtime never uses its saturating u8 x s8
        kernel. (`weight_type="int8", reduce_range=True` is the other safe choice.)"""
        return cls(**{"preset": "avx2", "weight_type": "uint8", "per_channel": True, "reduce_range": False, **overrides})

    @classmethod
    def avx512_vnni(cls, **overrides: Any) -> "QuantizationConfig":
        """x86 with VNNI: s8 weights at full range; VNNI accumulates in 32 bits, so nothing saturates."""
        return cls(**{"preset": "avx512_vnni", "weight_type": "int8", "per_channel": True, "reduce_range": False, **overrides})

    @classmethod
    def arm64(cls, **overrides: Any) -> "QuantizationConfig":
        """ARM64 (phones, Raspberry Pi, Graviton): s8 weights at full range, as optimum's arm64 preset."""
        return cls(**{"preset": "arm64", "weight_type": "int8", "per_channel": True, "reduce_range": False, **overrides})

    @classmethod
    def for_target(cls, target: str = "this", **overrides: Any) -> "QuantizationConfig":
        """The preset for the CPU the model will run on: "this" (the exporting machine, see `for_this_cpu`) or a
        preset name ("avx2", "avx512_vnni", "arm64") for another target; the choice is recorded in `reason`."""
        check_choice(None, "target", target, TARGET_CPUS, quoted=False)
        if target == "this":
            return cls.for_this_cpu(**overrides)
        return getattr(cls, target)(**{"reason": f"target CPU '{target}' chosen at export", **overrides})

    @classmethod
    def for_this_cpu(cls, **overrides: Any) -> "QuantizationConfig":
        """The preset for the CPU this process runs on, chosen from its instruction-set flags; logs the reason."""
        from tinybert_edge.converters.cpu import choose_preset, this_cpu

        name, reason = choose_preset(this_cpu())
        log.info("int8 preset '%s' for this CPU: %s", name, reason)
        return getattr(cls, name)(**{"reason": reason, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
