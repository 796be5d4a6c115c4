"""The sweep: every (sequence length, batch size, threads) point of a row, as a list and as a Markdown table.

`BenchConfig.grid()` defines the points; `bench` measures each in its own subprocess and keeps them in `Row.sweep`.
Reports written before sweeps existed (and pipeline reports) only have `Row.latency`, the headline point per
sequence length; `sweep_points` reads both.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from tinybert_edge.benchmarks.readme import format_number, markdown_cell
from tinybert_edge.benchmarks.rows import Row, as_row


def sweep_points(row: Row | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every measurement of a row: its `sweep` list, else its headline `latency` entries (older reports)."""
    row = as_row(row)
    if row.sweep:
        return list(row.sweep)
    return [m for m in row.latency.values() if m]


def point_key(measurement: Mapping[str, Any]) -> tuple[int, int, int]:
    """(seq_len, batch_size, threads): what identifies a point of the grid."""
    return int(measurement["seq_len"]), int(measurement["batch_size"]), int(measurement["threads"])


def render_sweep_markdown(rows: Iterable[Row | Mapping[str, Any]]) -> str:
    """One line per row and grid point: latency percentiles, throughput, memory, cold start and roofline."""
    header = ["model", "seq", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "examples/s", "peak RSS MB",
              "cold start ms", "G(FL)OP/s", "% of roofline", "notes"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
    for row in map(as_row, rows):
        points = sorted(sweep_points(row), key=point_key)
        if not points:
            lines.append(f"| {markdown_cell(row.name)} |" + " — |" * (len(header) - 2)
                         + f" {markdown_cell(row.error or '')} |")
            continue
        for m in points:
            stats = m.get("stats") or {}
            roofline = m.get("roofline") or {}
            cells = [markdown_cell(row.name), *(str(v) for v in point_key(m))]
            if m.get("error") or not stats:
                cells += ["—"] * (len(header) - 5) + [markdown_cell(f"error: {m.get('error')}")]
            else:
                cells += [format_number(stats.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s")]
                cells += [format_number(m.get("peak_rss_mb")), format_number(m.get("cold_start_ms"))]
                cells += [format_number(roofline.get("achieved_gops")),
                          "—" if roofline.get("fraction_of_roofline") is None else f"{100 * roofline['fraction_of_roofline']:.1f}%",
                          ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def grid_of(rows: Sequence[Row | Mapping[str, Any]]) -> list[tuple[int, int, int]]:
    """Every (seq_len, batch_size, threads) any row was measured at, ascending."""
    return sorted({point_key(m) for row in rows for m in sweep_points(row)})
