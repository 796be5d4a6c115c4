"""The benchmark plots: accuracy (a task's primary metric) against latency with its Pareto front, and latency
against sequence length; `figure` and `save_png` for any other plot of the SDK (the pipeline's loss curves).

matplotlib is optional (`pip install 'tinybert-edge[demo]'`): `figure` raises MissingDependencyError without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinybert_edge.benchmarks.rows import Row, as_row, latency_ms, sequence_lengths
from tinybert_edge.errors import require
from tinybert_edge.io import atomic_path


def figure(width: float = 7.0, height: float = 4.5) -> Any:
    """A matplotlib Figure of `width` x `height` inches at 120 dpi, laid out so labels are not clipped."""
    # A bare Figure renders with the Agg canvas and leaves pyplot's global backend and state alone.
    Figure = require("matplotlib.figure", package="matplotlib", extra="demo", purpose="Plotting the benchmark report").Figure
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def save_png(figure: Any, png_path: str | os.PathLike[str]) -> Path:
    """Write `figure` as a PNG atomically: an interrupted save leaves the previous picture, never half of one."""
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(png_path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats on both: lower latency, higher accuracy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def plot_accuracy_vs_latency(rows: Sequence[Row | Mapping[str, Any]], png_path: str | os.PathLike[str],
                             seq_len: int = 128) -> Path:
    """The primary metric (accuracy for classification) against p50 latency at `seq_len`, one point per row with
    both numbers; the Pareto front is drawn as a step line, the teacher as a star. Rows without either are listed
    in the caption."""
    canvas = figure()
    axes = canvas.add_subplot()
    plotted: list[Row] = []
    missing: list[Row] = []
    for row in map(as_row, rows):
        (plotted if latency_ms(row, seq_len) is not None and row.score is not None else missing).append(row)
    points = [(latency_ms(r, seq_len), 100 * r.score) for r in plotted]
    metric = plotted[0].primary_metric if plotted else "accuracy"
    front = set(pareto_front(points))
    for index, (row, (x, y)) in enumerate(zip(plotted, points)):
        teacher = row.role == "teacher"
        axes.scatter(
            [x],
            [y],
            marker="*" if teacher else "o",
            s=220 if teacher else 60,
            color="tab:red" if teacher else ("tab:blue" if index in front else "tab:gray"),
            edgecolors="black" if index in front else "none",
            zorder=3,
        )
        # Alternate above and below the point, so labels of points close together do not print over each other.
        axes.annotate(row.name, (x, y), textcoords="offset points", xytext=(6, 4 if index % 2 == 0 else -11), fontsize=8)
    if front:
        ordered = sorted((points[i] for i in front), key=lambda p: p[0])
        axes.step([p[0] for p in ordered], [p[1] for p in ordered], where="post", color="tab:blue", alpha=0.5,
                  linestyle="--", label="Pareto front", zorder=2)
        axes.legend(loc="lower right", fontsize=8)
    if not plotted:
        axes.text(0.5, 0.5, f"no row has both {metric} and latency", ha="center", va="center", transform=axes.transAxes)
    if points and min(p[0] for p in points) > 0 and max(p[0] for p in points) / min(p[0] for p in points) > 20:
        axes.set_xscale("log")  # teachers and int8 students can be orders of magnitude apart
    axes.set_xlabel(f"p50 latency at sequence length {seq_len} (ms)")
    axes.set_ylabel(f"{metric} (%)")
    if points:  # a score cannot pass 100%: the axis stops there instead of showing room no model can reach
        lower, upper = axes.get_ylim()
        axes.set_ylim(lower, min(upper, 100.0))
    axes.set_title(f"{metric[:1].upper()}{metric[1:]} against latency (teacher: red star)")
    axes.grid(True, alpha=0.3)
    if missing:
        canvas.supxlabel("not plotted: " + ", ".join(r.name for r in missing), fontsize=7)
    return save_png(canvas, png_path)


def plot_latency_vs_sequence_length(rows: Sequence[Row | Mapping[str, Any]], png_path: str | os.PathLike[str]) -> Path:
    """p50 latency against sequence length, one line per row, with the p50–p99 band shaded."""
    canvas = figure()
    axes = canvas.add_subplot()
    drawn = 0
    for row in map(as_row, rows):
        lengths = [n for n in sequence_lengths([row]) if latency_ms(row, n) is not None]
        if not lengths:
            continue
        p50 = [latency_ms(row, n) for n in lengths]
        p99 = [latency_ms(row, n, "p99_ms") for n in lengths]
        teacher = row.role == "teacher"
        (line,) = axes.plot(lengths, p50, marker="o", linewidth=2.5 if teacher else 1.5, label=row.name,
                            color="tab:red" if teacher else None)
        axes.fill_between(lengths, p50, p99, color=line.get_color(), alpha=0.15)
        drawn += 1
    if drawn:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no successful measurement", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("sequence length (tokens)")
    axes.set_ylabel("latency (ms): p50 line, p50–p99 band")
    axes.set_title("Latency against sequence length")
    axes.grid(True, alpha=0.3)
    return save_png(canvas, png_path)


def plot_confusion_matrices(matrices: Sequence[tuple[str, Sequence[Sequence[int]]]], labels: Sequence[str],
                            png_path: str | os.PathLike[str]) -> Path:
    """One panel per (model name, confusion matrix): rows the true label, columns the predicted one, each cell its
    count, shaded by the fraction of its row (so a small class's errors show as clearly as a large one's)."""
    import numpy as np

    count = max(1, len(matrices))
    canvas = figure(width=3.6 * count, height=3.6)
    for index, (name, matrix) in enumerate(matrices, start=1):
        values = np.asarray(matrix, dtype=np.int64)
        shown = list(labels) if len(labels) == len(values) else [str(i) for i in range(len(values))]
        rows = values.sum(axis=1, keepdims=True)
        fractions = values / np.where(rows == 0, 1, rows)
        axes = canvas.add_subplot(1, count, index)
        axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(len(values)):
            for j in range(len(values)):
                axes.text(j, i, str(values[i, j]), ha="center", va="center", fontsize=8,
                          color="white" if fractions[i, j] > 0.5 else "black")
        axes.set_xticks(range(len(shown)), shown, rotation=45, ha="right", fontsize=7)
        axes.set_yticks(range(len(shown)), shown, fontsize=7)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(name, fontsize=8)
    return save_png(canvas, png_path)
