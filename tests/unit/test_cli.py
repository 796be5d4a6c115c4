"""The command line on bad input: exit code 2 and one 'error:' line that names the problem and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.app.cli import EXIT_USER_ERROR, main
from tinybert_edge.errors import DataError, RunDirExistsError


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("model"), layers=1, hidden=16, heads=2)


@pytest.fixture()
def train_csv(tmp_path):
    return tiny_bert.write_csv(tmp_path / "train.csv", 20)


def _user_error(capsys, argv) -> str:
    """Run the CLI in-process; return its one stderr line after checking the exit code and the absence of a trace."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_evaluate_missing_data_path(capsys, tmp_path, model):
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(tmp_path / "nowhere" / "train.csv")])
    assert "does not exist" in line and "--data" in line


def test_evaluate_misspelled_data_path_lists_the_files_there(capsys, model, train_csv):
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(train_csv.with_name("trian.csv"))])
    assert "trian.csv" in line and "does not exist" in line
    assert "files there: train.csv" in line and "check the spelling" in line


def test_evaluate_csv_without_label_column(capsys, tmp_path, model):
    path = tmp_path / "data.csv"
    path.write_text("text,score\ngood movie,1\nbad movie,0\n")
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(path)])
    assert "no label column" in line and "['text', 'score']" in line and "--label-column" in line


def test_evaluate_empty_dataset_file(capsys, tmp_path, model):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(path)])
    assert "empty" in line and "--data" in line


def test_evaluate_unknown_label(capsys, tmp_path, model):
    path = tiny_bert.write_csv(tmp_path / "three.csv", 9, label_names=("neg", "maybe"))
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(path)])
    assert "'maybe'" in line and "['neg', 'pos']" in line


def test_evaluate_unknown_label_in_a_real_process(tmp_path, model):
    # In-process runs cannot see what importing torch/transformers prints to a fresh process's stderr.
    path = tiny_bert.write_csv(tmp_path / "three.csv", 9, label_names=("neg", "maybe"))
    done = subprocess.run([sys.executable, "-m", "tinybert_edge.app.cli", "evaluate", str(model), "--data", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'maybe'" in lines[0], done.stderr


def test_evaluate_good_input_prints_accuracy(capsys, model, train_csv):
    assert main(["evaluate", str(model), "--data", str(train_csv)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("accuracy ") and "on 20 examples (torch)" in captured.out


def test_distill_teacher_without_weights(capsys, tmp_path, model, train_csv):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text((model / "config.json").read_text())
    line = _user_error(capsys, ["distill", str(teacher), str(tmp_path / "student"), "--data", str(train_csv)])
    assert "no weights" in line and "save_pretrained" in line
    assert not (tmp_path / "student").exists()


def test_pipeline_existing_run_folder(capsys, tmp_path):
    (tmp_path / "runs" / "X").mkdir(parents=True)
    line = _user_error(capsys, ["pipeline", "--name", "X", "--runs-dir", str(tmp_path / "runs")])
    assert "already exists" in line and "--overwrite" in line and "--resume" in line


def test_pipeline_config_with_unknown_key(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[distill]\nstudnet = "tinybert-4l-312h"\n')
    line = _user_error(capsys, ["pipeline", "--config", str(path)])
    assert "studnet" in line and "allowed keys" in line and "student" in line


def test_pipeline_config_file_missing(capsys, tmp_path):
    line = _user_error(capsys, ["pipeline", "--config", str(tmp_path / "missing.toml")])
    assert "does not exist" in line and "--config" in line


def test_debug_reraises(tmp_path, model):
    with pytest.raises(DataError):
        main(["--debug", "evaluate", str(model), "--data", str(tmp_path / "missing.csv")])
    (tmp_path / "runs" / "X").mkdir(parents=True)
    with pytest.raises(RunDirExistsError):
        main(["--debug", "pipeline", "--name", "X", "--runs-dir", str(tmp_path / "runs")])


def test_no_command_prints_help(capsys):
    assert main([]) == EXIT_USER_ERROR
    assert "usage: tinybert-edge" in capsys.readouterr().out


def test_help_in_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "tinybert_edge.app.cli", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: tinybert-edge")
    for command in ("pipeline", "finetune", "distill", "export", "evaluate"):
        assert command in done.stdout
    assert "Traceback" not in done.stderr


def test_help_does_not_import_heavy_libraries():
    code = ("import sys\nfrom tinybert_edge.app.cli import build_parser\n"
            "try:\n    build_parser().parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
