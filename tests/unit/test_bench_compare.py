"""`bench compare A B`: a synthetic 1.5x slow-down is flagged, a rerun from the same distribution is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.benchmarks.compare import compare_reports, noise_test, render_diff_markdown
from tinybert_edge.benchmarks.latency import Measurement
from tinybert_edge.benchmarks.stats import LatencyStats
from tinybert_edge.app.cli import main
from tinybert_edge.errors import ConfigError


def _measurement(samples, seq_len=128, batch=1, threads=2, error=None) -> dict:
    m = Measurement(backend="onnxruntime", path="m", seq_len=seq_len, batch_size=batch, threads=threads, error=error)
    if error is None:
        m.samples_ms = [float(v) for v in samples]
        m.stats = LatencyStats.from_samples(m.samples_ms, batch)
    return m.to_dict()


def _samples(seed: int, n: int = 300, scale: float = 5.0) -> np.ndarray:
    # Latency-like: positive, right-skewed, a few percent of spread.
    return scale * np.random.default_rng(seed).lognormal(0.0, 0.08, n)


def _report(samples_by_name: dict, sweep: bool = True) -> dict:
    rows = []
    for name, samples in samples_by_name.items():
        m = _measurement(samples) if samples is not None else _measurement([], error="ModelError: cannot load")
        row = {"name": name, "latency": {"128": m}}
        if sweep:
            row["sweep"] = [m, _measurement(np.asarray(samples if samples is not None else [1.0]) * 3, batch=8)
                            if samples is not None else _measurement([], batch=8, error="ModelError: cannot load")]
        rows.append(row)
    return {"schema_version": 1, "rows": rows}


def _write(tmp_path: Path, name: str, report: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


@pytest.mark.parametrize("method", ["mann-whitney", "bootstrap"])
def test_a_synthetic_regression_is_flagged_and_a_rerun_is_not(method):
    a = _samples(0)
    slower = compare_reports(_report({"int8": a}), _report({"int8": a * 1.5}), method=method)
    assert [p.verdict for p in slower.points] == ["regression", "regression"]
    assert slower.points[0].relative_change == pytest.approx(0.5)
    rerun = compare_reports(_report({"int8": a}), _report({"int8": _samples(1)}), method=method)
    assert [p.verdict for p in rerun.points] == ["same", "same"] and not rerun.regressions
    faster = compare_reports(_report({"int8": a}), _report({"int8": a / 1.5}), method=method)
    assert {p.verdict for p in faster.points} == {"improvement"} and not faster.regressions


def test_a_significant_but_tiny_slow_down_is_not_a_regression():
    a = _samples(0, n=3000)
    # 2% slower: any test finds it with 3000 samples, but it is below the 5% minimum effect.
    assert noise_test(a, a * 1.02)["slower"]
    assert not compare_reports(_report({"x": a}), _report({"x": a * 1.02})).regressions
    assert compare_reports(_report({"x": a}), _report({"x": a * 1.02}), min_effect=0.01).regressions


def test_failed_missing_and_pipeline_rows():
    a, b = _report({"teacher": _samples(0), "int8": _samples(1), "gone": _samples(2)}), \
        _report({"teacher": _samples(3), "int8": None, "new": _samples(4)}, sweep=False)
    verdicts = {(p.name, p.batch_size): p.verdict for p in compare_reports(a, b).points}
    assert verdicts[("teacher", 1)] == "same" and verdicts[("teacher", 8)] == "only in A"
    assert verdicts[("int8", 1)] == "failed in B"
    assert verdicts[("gone", 1)] == "only in A" and verdicts[("new", 1)] == "only in B"
    table = render_diff_markdown(compare_reports(a, b))
    assert "**failed in B**" in table and "B: ModelError: cannot load" in table and "1 regression" in table


def test_cli_compare_exit_codes(tmp_path, capsys):
    a = _write(tmp_path, "a.json", _report({"int8": _samples(0)}))
    same = _write(tmp_path, "same.json", _report({"int8": _samples(1)}))
    slow = _write(tmp_path, "slow.json", _report({"int8": _samples(0) * 1.5}))
    assert main(["bench", "compare", a, same]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["bench", "compare", a, slow]) == 1
    out = capsys.readouterr().out
    assert out.startswith("| model | seq | batch | threads |") and "+50.0%" in out and "**regression**" in out


@pytest.mark.parametrize("content", [None, "not json {", json.dumps({"rows": "x"}), json.dumps([1, 2])])
def test_cli_compare_bad_input_exits_2_with_one_error_line(tmp_path, capsys, content):
    good = _write(tmp_path, "a.json", _report({"int8": _samples(0)}))
    bad = tmp_path / "b.json"
    if content is not None:
        bad.write_text(content)
    assert main(["bench", "compare", good, str(bad)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "b.json" in err[0]


def test_compare_refuses_bad_settings():
    with pytest.raises(ConfigError, match="alpha"):
        compare_reports(_report({}), _report({}), alpha=1.5)
    with pytest.raises(ConfigError, match="min_effect"):
        compare_reports(_report({}), _report({}), min_effect=-0.1)
