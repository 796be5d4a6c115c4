"""`tinybert-edge bench compare A B`: diff two benchmark reports and flag latency regressions beyond the noise.

Both files may come from `tinybert-edge bench` (rows with a `sweep`) or from `tinybert-edge pipeline` (rows with
headline `latency` only). Measurements are matched by row name and (seq_len, batch_size, threads).

When is B slower than A? Every timed call is kept, so the noise is estimated from the samples themselves:
- with scipy: a one-sided Mann-Whitney U test (B's calls tend to take longer than A's) at level `alpha`;
- without scipy: a percentile-bootstrap confidence interval (1 - alpha) of median(B) - median(A) from numpy,
  significant when it excludes 0.
Consecutive calls are not independent (frequency scaling, neighbours on a shared machine), so with thousands of
samples a test finds differences too small to matter; a regression therefore also needs p50(B) / p50(A) - 1 >
`min_effect` (5% by default). Symmetrically, an improvement is significant and faster by more than `min_effect`.
A point that ran in A but failed in B is a regression too: a broken artifact is worse than a slow one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.readme import format_number, markdown_cell
from tinybert_edge.benchmarks.rows import as_row, measurement_ms
from tinybert_edge.benchmarks.stats import BOOTSTRAP_RESAMPLES
from tinybert_edge.benchmarks.sweep import point_key, sweep_points
from tinybert_edge.errors import ConfigError

METHODS = ("auto", "mann-whitney", "bootstrap")

VERDICTS = ("regression", "improvement", "same", "failed in B", "fixed in B", "failed in both", "only in A",
            "only in B", "no samples")


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A report.json from `bench` or `pipeline`; ConfigError when it is missing, not JSON, or has no rows."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"report '{path}' does not exist; pass the report.json of a `tinybert-edge bench` or pipeline run")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"report '{path}' is not JSON ({exc}); pass a report.json") from exc
    rows = report.get("rows") if isinstance(report, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rows):
        raise ConfigError(f"report '{path}' has no list of named rows; it is not a bench or pipeline report.json")
    return report


def noise_test(a: Sequence[float], b: Sequence[float], alpha: float = 0.01, method: str = "auto", seed: int = 0) -> dict[str, Any]:
    """Whether B's latencies are significantly higher (`slower`) or lower (`faster`) than A's, from the samples.

    Returns {"method", "slower", "faster", "p_slower", "p_faster"} (Mann-Whitney U, one-sided each way) or
    {"method", "slower", "faster", "ci_ms": [low, high]} (bootstrap CI of median(B) - median(A))."""
    if method not in METHODS:
        raise ConfigError(f"method = {method!r} is not allowed; allowed: {', '.join(METHODS)}")
    a_values, b_values = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if method in ("auto", "mann-whitney"):
        try:
            from scipy.stats import mannwhitneyu
        except ImportError:
            if method == "mann-whitney":
                raise ConfigError("method 'mann-whitney' needs scipy (pip install scipy); use 'bootstrap'") from None
        else:
            p_slower = float(mannwhitneyu(b_values, a_values, alternative="greater").pvalue)
            p_faster = float(mannwhitneyu(b_values, a_values, alternative="less").pvalue)
            return {"method": "mann-whitney", "slower": p_slower < alpha, "faster": p_faster < alpha,
                    "p_slower": p_slower, "p_faster": p_faster}
    rng = np.random.default_rng(seed)
    medians_a = np.median(rng.choice(a_values, (BOOTSTRAP_RESAMPLES, a_values.size)), axis=1)
    medians_b = np.median(rng.choice(b_values, (BOOTSTRAP_RESAMPLES, b_values.size)), axis=1)
    low, high = (float(v) for v in np.percentile(medians_b - medians_a, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
    return {"method": "bootstrap", "slower": low > 0, "faster": high < 0, "ci_ms": [low, high]}


@dataclass
class PointDiff:
    """One (row, seq_len, batch, threads) point of both reports."""

    name: str
    seq_len: int
    batch_size: int
    threads: int
    verdict: str
    a_p50_ms: float | None = None
    b_p50_ms: float | None = None
    relative_change: float | None = None
    test: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def regression(self) -> bool:
        return self.verdict in ("regression", "failed in B")


@dataclass
class Comparison:
    points: list[PointDiff]
    min_effect: float
    alpha: float
    # Median 1-minute load average over each report's measurements: a busy machine inflates every latency.
    load_a: float | None = None
    load_b: float | None = None

    @property
    def regressions(self) -> list[PointDiff]:
        return [p for p in self.points if p.regression]

    def to_dict(self) -> dict[str, Any]:
        return {"min_effect": self.min_effect, "alpha": self.alpha, "regressions": len(self.regressions),
                "load_a": self.load_a, "load_b": self.load_b, "points": [vars(p) for p in self.points]}


def _median_load(report: Mapping[str, Any]) -> float | None:
    loads = [m["load_avg_1m"] for row in report["rows"] for m in sweep_points(row)
             if isinstance(m.get("load_avg_1m"), (int, float))]
    return float(np.median(loads)) if loads else None


def _samples(measurement: Mapping[str, Any]) -> list[float] | None:
    if measurement.get("error") or not measurement.get("stats"):
        return None
    return [float(v) for v in measurement.get("samples_ms") or []]


def _diff(name: str, key: tuple[int, int, int], a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
          min_effect: float, alpha: float, method: str) -> PointDiff:
    point = PointDiff(name, *key, verdict="same")
    if a is None or b is None:
        point.verdict = "only in B" if a is None else "only in A"
        return point
    point.a_p50_ms, point.b_p50_ms = measurement_ms(a), measurement_ms(b)
    a_ok, b_ok = point.a_p50_ms is not None, point.b_p50_ms is not None
    if not a_ok or not b_ok:
        point.verdict = {(True, False): "failed in B", (False, True): "fixed in B"}.get((a_ok, b_ok), "failed in both")
        point.note = "; ".join(f"{label}: {m.get('error')}" for label, m in (("A", a), ("B", b)) if m.get("error"))
        return point
    point.relative_change = point.b_p50_ms / point.a_p50_ms - 1.0 if point.a_p50_ms else None
    a_samples, b_samples = _samples(a), _samples(b)
    if not a_samples or not b_samples or point.relative_change is None:
        point.verdict = "no samples"
        point.note = "raw samples missing; the noise cannot be estimated"
        return point
    point.test = noise_test(a_samples, b_samples, alpha, method)
    if point.test["slower"] and point.relative_change > min_effect:
        point.verdict = "regression"
    elif point.test["faster"] and point.relative_change < -min_effect:
        point.verdict = "improvement"
    return point


def compare_reports(
    a: Mapping[str, Any], b: Mapping[str, Any], min_effect: float = 0.05, alpha: float = 0.01, method: str = "auto"
) -> Comparison:
    """Diff two loaded reports point by point (see the module docstring for the rule that flags a regression)."""
    if isinstance(min_effect, bool) or not isinstance(min_effect, (int, float)) or not 0 <= min_effect < 10:
        raise ConfigError(f"min_effect = {min_effect!r} is not allowed; allowed: a fraction >= 0, e.g. 0.05 for 5%")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"alpha = {alpha!r} is not allowed; allowed: a level in (0, 1), e.g. 0.01")
    if method not in METHODS:
        raise ConfigError(f"method = {method!r} is not allowed; allowed: {', '.join(METHODS)}")

    def index(report: Mapping[str, Any]) -> dict[str, dict[tuple[int, int, int], Mapping[str, Any]]]:
        return {row.name: {point_key(m): m for m in sweep_points(row)} for row in map(as_row, report["rows"])}

    rows_a, rows_b = index(a), index(b)
    names = list(rows_a) + [n for n in rows_b if n not in rows_a]
    points = []
    for name in names:
        in_a, in_b = rows_a.get(name, {}), rows_b.get(name, {})
        for key in sorted(set(in_a) | set(in_b)):
            points.append(_diff(name, key, in_a.get(key), in_b.get(key), min_effect, alpha, method))
    return Comparison(points, float(min_effect), float(alpha), _median_load(a), _median_load(b))


def _evidence(point: PointDiff) -> str:
    test = point.test
    if not test:
        return "—"
    if test["method"] == "mann-whitney":
        p = test["p_slower"] if (point.relative_change or 0) >= 0 else test["p_faster"]
        return f"MWU p={p:.2g}"
    low, high = test["ci_ms"]
    return f"bootstrap Δmedian CI [{low:+.3g}, {high:+.3g}] ms"


def render_diff_markdown(comparison: Comparison, a_label: str = "A", b_label: str = "B") -> str:
    """A Markdown table, one line per point, and a one-line verdict."""
    header = ["model", "seq", "batch", "threads", f"{a_label} p50 ms", f"{b_label} p50 ms", "change", "evidence", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for p in comparison.points:
        change = "—" if p.relative_change is None else f"{100 * p.relative_change:+.1f}%"
        verdict = f"**{p.verdict}**" if p.regression else p.verdict
        if p.note:
            verdict += f" ({p.note})"
        lines.append("| " + " | ".join([
            markdown_cell(p.name), str(p.seq_len), str(p.batch_size), str(p.threads), format_number(p.a_p50_ms),
            format_number(p.b_p50_ms), change, _evidence(p), markdown_cell(verdict)]) + " |")
    n = len(comparison.regressions)
    summary = (f"{n} regression{'s' if n != 1 else ''}" if n else "no regression") + (
        f" (B slower than A beyond the noise at level {comparison.alpha:g} and by more than "
        f"{100 * comparison.min_effect:g}%, or failed in B)")
    if comparison.load_a is not None and comparison.load_b is not None:
        summary += (f"\n\nMedian 1-minute load average during the measurements: {a_label} {comparison.load_a:.2f}, "
                    f"{b_label} {comparison.load_b:.2f}")
        if abs(comparison.load_b - comparison.load_a) > 0.5:
            summary += " — the machine was not equally busy; rerun both on an idle machine before trusting a verdict"
    return "\n".join(lines) + "\n\n" + summary + "\n"


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], min_effect: float = 0.05, alpha: float = 0.01,
            method: str = "auto") -> Comparison:
    """Load two report.json files and diff them (the `tinybert-edge bench compare A B` command)."""
    return compare_reports(load_report(a), load_report(b), min_effect, alpha, method)
