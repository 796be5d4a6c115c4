"""Which teacher layer each student layer learns from (TinyBERT section 3.2, "uniform" is g(m) = m * N / M)."""

from __future__ import annotations

from typing import Sequence

from tinybert_edge.errors import ConfigError


def layer_map(student_layers: int, teacher_layers: int, strategy: str | Sequence[int] = "uniform") -> list[int]:
    """Teacher layer (1-based) for student layers 1..M; index 0 (embeddings) always maps to 0 and is not listed.

    strategy: "uniform" (every N/M-th teacher layer), "last" (the last M teacher layers), or an explicit list of
    M teacher layer numbers in 1..N.
    """
    if student_layers < 1 or teacher_layers < 1:
        raise ConfigError(f"layer counts must be positive, got student {student_layers}, teacher {teacher_layers}")
    if not isinstance(strategy, str):
        mapping = [int(x) for x in strategy]
        if len(mapping) != student_layers:
            raise ConfigError(
                f"layer_map lists {len(mapping)} teacher layers but the student has {student_layers}; give one per student layer"
            )
        bad = [x for x in mapping if not 1 <= x <= teacher_layers]
        if bad:
            raise ConfigError(f"layer_map entries {bad} are out of range; teacher layers are numbered 1..{teacher_layers}")
        return mapping
    if student_layers > teacher_layers:
        raise ConfigError(
            f"the student has {student_layers} layers but the teacher only {teacher_layers}; "
            "give an explicit layer_map or a shallower student"
        )
    if strategy == "uniform":
        if teacher_layers % student_layers:
            # Non-divisible depths: round to the nearest teacher layer, keeping the last layer mapped to the last.
            return [round(m * teacher_layers / student_layers) for m in range(1, student_layers + 1)]
        step = teacher_layers // student_layers
        return [m * step for m in range(1, student_layers + 1)]
    if strategy == "last":
        return list(range(teacher_layers - student_layers + 1, teacher_layers + 1))
    raise ConfigError(f"unknown layer_map strategy '{strategy}'; available: uniform, last, or a list of teacher layers")
