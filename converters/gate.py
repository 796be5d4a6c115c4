"""Accuracy-gated dynamic int8 for ONNX: quantize, compare dev accuracy with the fp32 export, and while int8 loses
more than the budget, keep the most sensitive node groups in fp32 (embeddings, then the classifier/pooler head,
then the attention matmuls) and try again. The artifact's metadata records every attempt.

Why this order: in BERT-sized classifiers the int8 error that flips labels comes mostly from the embedding table
(one scale per row over a 30k-word vocabulary) and from the few weights right before the logits; the attention
projections follow. Excluding a group costs size and speed, so the cheapest exclusions come first.

`quantize_onnx_to_agreement` is the finer search: it ranks single nodes by how far their int8 alone moves the
outputs on the parity examples and keeps them fp32 one at a time until int8 decides as the reference does on a
target share of those examples (the int8 budget's label agreement).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.artifacts import Artifact, metadata_path
from tinybert_edge.converters.artifact import check_output_path
from tinybert_edge.converters.config import QuantizationConfig
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.errors import ConfigError, ExportError
from tinybert_edge.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

# (group name, model modules whose quantizable nodes it holds, fused operator types it holds), most sensitive first.
SENSITIVE_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("embeddings", ("embeddings",), ("EmbedLayerNormalization",)),
    ("head", ("classifier", "pooler"), ()),
    ("attention", ("attention",), ("Attention", "MultiHeadAttention")),
)


class AccuracyBudgetError(ExportError):
    """Even with every sensitive node group (or the allowed share of nodes) kept in fp32, int8 loses more dev
    accuracy, or agreement with the reference, than the budget allows. `attempts` are the steps tried, the last
    with the most kept fp32; `quantizable_nodes` is how many nodes the search chose among (agreement search)."""

    def __init__(self, message: str, attempts: list[Any], quantizable_nodes: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.quantizable_nodes = quantizable_nodes


@dataclass(frozen=True)
class GateAttempt:
    """One quantization attempt: the groups kept in fp32 so far, how many nodes that is, and its dev accuracy."""

    excluded_groups: tuple[str, ...]
    excluded_nodes: int
    accuracy: float
    drop_points: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["excluded_groups"] = list(self.excluded_groups)
        return data


def node_groups(onnx_file: Path, op_types: Sequence[str]) -> dict[str, list[str]]:
    """Names of the quantizable nodes (operator type in `op_types`, with a weight matrix) of each sensitive group,
    in gate order.

    A node is in a group when the exporter's scope path in its name passes through one of the group's modules
    ("/bert/embeddings/...", "/classifier/...", ".../attention/..."), when one of its weights is a parameter of
    those modules, or when it is one of the group's fused operators (the ORT BERT optimizer names fused nodes
    "Attention_0", "EmbedLayerNormalization_0", ... and renames their weights).
    """
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    quantizable = set(_quantizable(model, op_types))
    groups: dict[str, list[str]] = {}
    for name, modules, fused in SENSITIVE_GROUPS:
        chosen = []
        for node in model.graph.node:
            if node.name not in quantizable:
                continue
            in_scope = any("/" + module + "/" in "/" + node.name for module in modules)
            by_weight = any(w in weights and f".{module}." in f".{w}" for w in node.input for module in modules)
            if in_scope or by_weight or node.op_type in fused:
                chosen.append(node.name)
        groups[name] = chosen
    return groups


def _quantizable(model: Any, op_types: Sequence[str]) -> list[str]:
    """Names of the nodes dynamic int8 rewrites, in graph order: an operator type in `op_types` with a float weight
    matrix among its inputs (MatMulConstBOnly; a Gather over an activation, such as the pooler's [CLS] pick, stays
    fp32 anyway), so only those can be worth excluding."""
    import onnx

    matrices = {init.name for init in model.graph.initializer
                if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= 2}
    return [node.name for node in model.graph.node
            if node.op_type in op_types and any(i in matrices for i in node.input)]


def dev_accuracy(session: Any, batches: Sequence[Mapping[str, np.ndarray]]) -> float:
    """Fraction of examples whose argmax logit is their label, over every batch (each needs a `labels` array)."""
    correct = total = 0
    for batch in batches:
        logits = session.run(batch)
        labels = np.asarray(batch["labels"])
        correct += int(np.sum(np.argmax(logits, axis=1) == labels))
        total += len(labels)
    return correct / total


def _check_batches(batches: Sequence[Mapping[str, np.ndarray]]) -> list[Mapping[str, np.ndarray]]:
    batches = list(batches)
    if not batches:
        raise ConfigError("dev_batches is empty; give labelled dev batches (input_ids, attention_mask, labels)")
    for i, batch in enumerate(batches):
        missing = [key for key in ("input_ids", "attention_mask", "labels") if key not in batch]
        if missing:
            raise ConfigError(f"dev_batches[{i}] lacks {missing}; each batch needs input_ids, attention_mask and labels")
    return batches


def _session(folder: Path):
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession

    return OnnxRuntimeSession(folder)


def quantize_onnx_gated(onnx: Artifact | str | Path, out_dir: str | Path,
                        dev_batches: Sequence[Mapping[str, np.ndarray]], budget_points: float = 1.0,
                        config: QuantizationConfig | None = None, parity: ParityCheck | None = None) -> Artifact:
    """Dynamic int8 whose dev accuracy is at most `budget_points` percentage points below the fp32 export's.

    Attempt 0 quantizes everything `config` allows; each later attempt also keeps the next sensitive group in fp32
    (`SENSITIVE_GROUPS`; groups with no quantizable node are skipped). The first attempt within budget is checked
    against `parity` when given and moved onto `out_dir`; its metadata carries `accuracy_gate` (fp32 accuracy,
    budget, the groups excluded and every attempt's accuracy). When the last attempt still misses the budget,
    AccuracyBudgetError lists every attempt and nothing is written.
    """
    from tinybert_edge.converters.onnx_quantize import source_onnx, quantize_onnx

    if isinstance(budget_points, bool) or not isinstance(budget_points, (int, float)) or not np.isfinite(budget_points):
        raise ConfigError(f"budget_points={budget_points!r} is not allowed; allowed: a finite number of accuracy points")
    batches = _check_batches(dev_batches)
    config = config or QuantizationConfig.for_this_cpu()
    _, source_file, _ = source_onnx(onnx)
    check_output_path(out_dir, "folder")
    fp32_accuracy = dev_accuracy(_session(source_file), batches)
    groups = node_groups(source_file, config.op_types)
    log.info("accuracy gate: fp32 dev accuracy %.4f on %d batches, budget %.2f points; groups %s", fp32_accuracy,
             len(batches), budget_points, {name: len(nodes) for name, nodes in groups.items()})

    plans: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
    for name, nodes in groups.items():
        if not nodes:
            log.info("accuracy gate: group '%s' has no quantizable node in '%s'; skipped", name, source_file)
            continue
        excluded_groups, excluded_nodes = plans[-1]
        plans.append(((*excluded_groups, name), excluded_nodes + nodes))

    attempts: list[GateAttempt] = []
    out = Path(out_dir)
    with atomic_path(out) as staging:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.gate-", dir=staging.parent))
        try:
            chosen: Artifact | None = None
            for index, (excluded_groups, excluded_nodes) in enumerate(plans):
                artifact = quantize_onnx(onnx, work / f"attempt-{index}", config, exclude_nodes=excluded_nodes)
                accuracy = dev_accuracy(_session(artifact.path), batches)
                drop = (fp32_accuracy - accuracy) * 100.0
                attempt = GateAttempt(excluded_groups, len(excluded_nodes), accuracy, drop, drop <= budget_points)
                attempts.append(attempt)
                log.info("accuracy gate attempt %d (fp32: %s): int8 dev accuracy %.4f, drop %.2f points -> %s", index,
                         ", ".join(excluded_groups) or "nothing", accuracy, drop, "pass" if attempt.passed else "miss")
                if attempt.passed:
                    chosen = artifact
                    break
            if chosen is None:
                lines = "; ".join(
                    f"fp32 {'+'.join(a.excluded_groups) or 'nothing'}: {a.accuracy:.4f} ({a.drop_points:+.2f} points)"
                    for a in attempts
                )
                raise AccuracyBudgetError(
                    f"int8 of '{source_file}' loses more than {budget_points:g} accuracy points against fp32 "
                    f"({fp32_accuracy:.4f}) on {sum(len(b['labels']) for b in batches)} dev examples in every attempt "
                    f"[{lines}]; raise budget_points, keep more modules in fp32 (QuantizationConfig.keep_fp32), or "
                    "ship the fp32 export",
                    attempts,
                )
            metadata = dict(chosen.metadata)
            if parity is not None:
                metadata["parity"] = parity.run(_session(chosen.path)).to_dict()
            metadata["accuracy_gate"] = {
                "budget_points": budget_points,
                "fp32_accuracy": fp32_accuracy,
                "n_examples": sum(len(b["labels"]) for b in batches),
                "excluded_groups": list(attempts[-1].excluded_groups),
                "group_order": [name for name, _, _ in SENSITIVE_GROUPS],
                "group_sizes": {name: len(nodes) for name, nodes in groups.items()},
                "attempts": [a.to_dict() for a in attempts],
            }
            write_json_atomic(metadata_path(chosen.path), metadata)
            os.replace(chosen.path, staging)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log.info("accuracy gate: wrote '%s' with %s kept in fp32", out, ", ".join(attempts[-1].excluded_groups) or "nothing")
    return Artifact(out, "onnx", "int8", metadata)


# The agreement search gives up when this share of the quantizable nodes would have to stay fp32: past it, int8
# keeps little of its speed over the fp32 export.
MAX_FP32_SHARE = 0.5
# An attempt passes when the lower end of its agreement's Wilson interval at this confidence reaches the target:
# the search chose on the parity examples, and the target must hold beyond them.
CONFIDENCE = 0.95


def agreement_lower_bound(agreeing: int, n: int) -> float:
    """The lower end of the Wilson score interval (CONFIDENCE) of an agreement of `agreeing` out of `n`."""
    from scipy.stats import binomtest

    return float(binomtest(agreeing, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson").low)


def examples_needed(target: float) -> int:
    """The fewest examples on which full agreement has a Wilson lower bound of at least `target`."""
    from scipy.stats import norm

    z2 = norm.ppf(0.5 + CONFIDENCE / 2) ** 2
    return math.ceil(z2 * target / (1.0 - target))


@dataclass(frozen=True)
class AgreementAttempt:
    """One step of the agreement search: the nodes kept fp32 so far, the agreement and mean |diff| it reached."""

    fp32_nodes: tuple[str, ...]
    agreement: float
    lower_bound: float  # of the agreement's Wilson interval (CONFIDENCE); the attempt passes when it reaches the target
    mean_abs_diff: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"fp32_nodes": len(self.fp32_nodes), "last_added": self.fp32_nodes[-1] if self.fp32_nodes else None,
                "agreement": self.agreement, "lower_bound": self.lower_bound, "mean_abs_diff": self.mean_abs_diff,
                "passed": self.passed}


def agreement_summary(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """An int8 ONNX's agreement search in short, from its metadata's `agreement_gate`: the target, the examples it
    searched on, the nodes kept fp32 of those quantizable, and the agreement reached; None for an int8 ONNX quantized
    without a search."""
    gate = metadata.get("agreement_gate")
    if not gate:
        return None
    return {"min_agreement": gate["min_agreement"], "examples": gate["examples"], "fp32_nodes": gate["fp32_nodes"],
            "quantizable_nodes": gate["quantizable_nodes"], "agreement": gate["attempts"][-1]["agreement"]}


def quantize_onnx_to_agreement(onnx: Artifact | str | Path, out_dir: str | Path, parity: ParityCheck,
                               config: QuantizationConfig) -> Artifact:
    """Dynamic int8 that decides as `parity`'s reference does on at least `config.min_agreement` of inputs like the
    parity examples: the lower end of the agreement's 95% Wilson interval on them must reach the target, since the
    search chooses on those examples (at 0.995 that takes at least 765 examples, and about 1,500 to pass with a
    changed decision or two).

    Attempt 0 quantizes every node `config` allows. While the agreement is short, the nodes are ranked once by how
    far int8 of that node alone moves the outputs (mean |diff| against the reference on the parity examples; in
    BERT students the embedding table and the first layers' feed-forward matrices lead), and kept fp32 one at a
    time in that order, the largest first, until the agreement's lower bound reaches the target. The chosen
    artifact still passes `parity`'s own thresholds before it is moved into place; its metadata carries
    `agreement_gate` (the target, the nodes kept fp32, the ranking and every attempt). When more than
    MAX_FP32_SHARE of the nodes would have to stay fp32, AccuracyBudgetError lists the attempts and nothing is
    written.

    Judge the result on other data than the parity examples: the search chose on them.
    """
    import onnx as onnx_lib

    from tinybert_edge.converters.onnx_quantize import nodes_in_modules, quantize_onnx, source_onnx

    target = config.min_agreement
    if target is None:
        raise ConfigError("quantize_onnx_to_agreement needs QuantizationConfig.min_agreement (e.g. 0.995)")
    _, source_file, _ = source_onnx(onnx)
    check_output_path(out_dir, "folder")
    examples = sum(len(batch["input_ids"]) for batch in parity.batches)
    needed = examples_needed(target)
    if examples < needed:
        raise ConfigError(f"the agreement search has {examples} parity examples, too few to show min_agreement "
                          f"{target:g}: even full agreement on them leaves the lower end of its {CONFIDENCE:.0%} "
                          f"interval below {target:g}; give at least {needed} examples (the CLI's --parity-examples; "
                          f"about twice that lets a changed decision or two pass)")
    kept = set(nodes_in_modules(source_file, config.keep_fp32))
    nodes = [n for n in _quantizable(onnx_lib.load(str(source_file), load_external_data=False), config.op_types)
             if n not in kept]
    limit = int(MAX_FP32_SHARE * len(nodes))
    out = Path(out_dir)
    attempts: list[AgreementAttempt] = []
    ranking: list[tuple[str, float]] = []
    with atomic_path(out) as staging:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.agreement-", dir=staging.parent))
        try:
            def attempt(fp32: list[str], name: str) -> tuple[AgreementAttempt, Artifact]:
                artifact = quantize_onnx(onnx, work / name, config, exclude_nodes=fp32)
                report = parity.measure(_session(artifact.path))
                lower = agreement_lower_bound(round(report.argmax_agreement * report.n_examples), report.n_examples)
                result = AgreementAttempt(tuple(fp32), report.argmax_agreement, lower, report.mean_abs_diff,
                                          lower >= target)
                log.info("agreement search: %d node(s) fp32%s: agreement %.4f (%.0f%% lower bound %.4f, target %.4f), "
                         "mean |diff| %.4g", len(fp32), f" (+{fp32[-1]})" if fp32 else "", result.agreement,
                         100 * CONFIDENCE, lower, target, result.mean_abs_diff)
                return result, artifact

            first, chosen = attempt([], "all")
            attempts.append(first)
            if not first.passed:
                for i, node in enumerate(nodes):  # each node alone in int8: how far it moves the outputs
                    artifact = quantize_onnx(onnx, work / f"alone-{i}", config,
                                             exclude_nodes=[n for n in nodes if n != node])
                    ranking.append((node, parity.measure(_session(artifact.path)).mean_abs_diff))
                    shutil.rmtree(artifact.path, ignore_errors=True)
                ranking.sort(key=lambda item: -item[1])
                fp32: list[str] = []
                for node, _ in ranking[:limit]:
                    fp32.append(node)
                    shutil.rmtree(chosen.path, ignore_errors=True)
                    result, chosen = attempt(list(fp32), f"fp32-{len(fp32)}")
                    attempts.append(result)
                    if result.passed:
                        break
            if not attempts[-1].passed:
                steps = "; ".join(f"{len(a.fp32_nodes)} fp32: {a.agreement:.4f} (lower bound {a.lower_bound:.4f})"
                                  for a in attempts)
                raise AccuracyBudgetError(
                    f"int8 of '{source_file}' cannot be shown to decide as {parity.reference.backend} does on "
                    f"{target:g} of the inputs: the lower end of its agreement's {CONFIDENCE:.0%} interval on "
                    f"{examples} parity examples stays below it even with {limit} of its {len(nodes)} quantizable "
                    "nodes kept fp32 "
                    f"[{steps}]; lower QuantizationConfig.min_agreement, use the TFLite int8 export (per-row "
                    "activation scales), or ship the fp32 export", attempts, len(nodes))
            report = parity.run(_session(chosen.path))  # the int8 thresholds still apply to what is kept
            metadata = dict(chosen.metadata)
            metadata["parity"] = report.to_dict()
            metadata["agreement_gate"] = {
                "min_agreement": target,
                "confidence": CONFIDENCE,
                "examples": report.n_examples,
                "inputs": parity.inputs,
                "fp32_nodes": list(attempts[-1].fp32_nodes),
                "quantizable_nodes": len(nodes),
                "ranking": [{"node": node, "mean_abs_diff_alone": diff} for node, diff in ranking],
                "attempts": [a.to_dict() for a in attempts],
            }
            write_json_atomic(metadata_path(chosen.path), metadata)
            os.replace(chosen.path, staging)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log.info("agreement search: wrote '%s' with %d of %d node(s) kept fp32 (agreement %.4f)", out,
             len(attempts[-1].fp32_nodes), len(nodes), attempts[-1].agreement)
    return Artifact(out, "onnx", "int8", metadata)

