"""A new user's first hour, scripted with real `tinybert-edge` processes on tiny models (issue 20): five mistakes, each
ending in one clear line, exit 2 and nothing half-written, and the corrected command then working as typed; stdout of
`pipeline --quiet` is the report and nothing else; other libraries' output only with --verbose."""

from __future__ import annotations

import re
import shlex

import tiny_bert
from conftest import error_lines, run_cli

# A line the SDK itself wrote on stderr: its log records (plain format off a terminal) and its closing line.
SDK_LINE = re.compile(r"^(\d\d:\d\d:\d\d )?(DEBUG|INFO|WARNING|ERROR) tinybert_edge[.:]|^Report written to "
                      r"|^Next, the on-device bundle: |^error: ")


def third_party_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not SDK_LINE.match(line)]


def _one_error(done, phrase: str) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and phrase in lines[0], done.stderr[-3000:]
    return lines[0]


def test_five_mistakes_then_the_fixed_commands_work(tmp_path, teacher):
    runs = tmp_path / "runs"
    data = tmp_path / "reviews.csv"
    # Mistake 1: the label column has another name. Nothing is created, so the fixed command is not refused.
    data.write_text("text,stars\n" + "".join(f"{t},{y}\n" for t, y in zip(*tiny_bert.sentences(40))), encoding="utf-8")
    pipeline = ["pipeline", "--quiet", "--teacher", str(teacher), "--data", str(data), "--name", "x", "--runs-dir",
                str(runs), "--student", "teacher-layers:2", "--sequence-lengths", "16", "--formats", "onnx",
                "--threads", "1", "--bench-min-seconds", "0.05", "--distill-max-train-examples", "16", "--no-progress"]
    _one_error(run_cli(pipeline), "--label-column")
    assert not runs.exists() or not any(runs.iterdir())
    tiny_bert.write_csv(data, 40)  # the user fixes the file and runs the same command again
    done = run_cli(pipeline)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (runs / "x" / "report.md").read_text(encoding="utf-8")
    assert done.stdout == report + "\n"  # stdout is the report only
    package = f"tinybert-edge package {runs / 'x' / 'artifacts'} {runs / 'x' / 'bundle.zip'}"
    assert package in report
    assert done.stderr.splitlines()[-1] == f"Next, the on-device bundle: {package}"  # how the run ends
    assert third_party_lines(done.stderr) == []
    packaged = run_cli(shlex.split(package)[1:])  # the printed next step works as typed
    assert packaged.returncode == 0 and (runs / "x" / "bundle.zip").is_file(), packaged.stderr[-3000:]

    # Mistake 2: resuming with a changed setting names it instead of silently keeping the old one.
    line = _one_error(run_cli([*pipeline, "--resume", "--distill-max-train-examples", "8"]), "distill.max_train_examples")
    assert "16 then, 8 now" in line

    # Mistake 3: a typo in the data path suggests the close match; the corrected command works.
    _one_error(run_cli(["evaluate", str(teacher), "--data", str(tmp_path / "reveiws.csv")]), "did you mean 'reviews.csv'?")
    done = run_cli(["evaluate", str(teacher), "--data", str(data)])
    assert done.returncode == 0 and done.stdout.startswith("accuracy "), done.stderr[-2000:]

    # Mistake 4: similarity scores as class labels. Mistake 5: a file with one class only.
    scores = tmp_path / "stsb.csv"
    scores.write_text("text,score\n" + "".join(f"sentence {i},{i % 5 + 0.25}\n" for i in range(20)), encoding="utf-8")
    student = tmp_path / "student"
    _one_error(run_cli(["distill", str(teacher), str(student), "--data", str(scores), "--label-column", "score"]),
               "regression")
    one = tmp_path / "one.csv"
    one.write_text("text,label\n" + "".join(f"good day {i},pos\n" for i in range(20)), encoding="utf-8")
    _one_error(run_cli(["distill", str(teacher), str(student), "--data", str(one)]), "two classes")
    assert not student.exists() and not (tmp_path / "student.work").exists()


def test_other_libraries_are_quiet_unless_verbose(tmp_path, small_teacher):
    def export(out: str) -> list[str]:
        return ["export", str(small_teacher), str(tmp_path / out), "--formats", "onnx", "--seq-lengths", "16"]

    done = run_cli(export("a"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert third_party_lines(done.stderr) == []
    assert [line.split()[:2] for line in done.stdout.splitlines()] == [["onnx", "fp32"], ["onnx", "int8"]]
    verbose = run_cli(["--verbose", *export("b")])
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert third_party_lines(verbose.stderr)  # ONNX Runtime's and the tracer's warnings, shown when asked for
    assert verbose.stdout.splitlines()[0].split()[:2] == ["onnx", "fp32"]
