"""A table of bad inputs through the command line: each ends with exit code 2, one `error:` line that names the
problem, no traceback (unless --debug, which re-raises the typed error) and nothing at the output path.

A second table does the same for bundles: `verify` on tampered, truncated, incomplete and hostile bundles, and
`package` onto outputs it must refuse."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import tiny_bert
from conftest import error_lines, run_cli, symlink_entry, temp_leftovers, tree, zip_with
from tinybert_edge.app.cli import EXIT_USER_ERROR, main
from tinybert_edge.errors import TinyBertEdgeError


@dataclass
class Env:
    """What a case may use: a scratch folder, a good teacher, good data, and the output paths to check."""

    tmp: Path
    teacher: Path
    data: Path

    @property
    def student(self) -> Path:
        return self.tmp / "student"

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    def distill(self, *extra: str, teacher: Path | None = None, data: Path | str | None = None) -> list[str]:
        return ["distill", str(teacher or self.teacher), str(self.student), "--data", str(data or self.data), *extra]

    def model_copy(self, name: str = "model", drop: tuple[str, ...] = ()) -> Path:
        folder = self.tmp / name
        folder.mkdir()
        for file in self.teacher.iterdir():
            if file.name not in drop:
                (folder / file.name).write_bytes(file.read_bytes())
        return folder

    def edit_config(self, folder: Path, **changes) -> Path:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return folder

    def pipeline(self, toml: str) -> list[str]:
        return ["pipeline", "--config", str(self.write("run.toml", toml)), "--runs-dir", str(self.tmp / "runs"),
                "--name", "x", "--no-progress"]


@dataclass
class Case:
    id: str
    argv: Callable[[Env], list[str]]
    phrase: str
    outputs: tuple[str, ...] = ("student", "student.work", "runs", "artifacts")


def _pickle_only_bin(env: Env) -> list[str]:
    folder = env.model_copy(drop=("model.safetensors",))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"bert.embeddings.word_embeddings.weight": [[0.0]]}))
    return env.distill(teacher=folder)


def _corrupt_safetensors(env: Env) -> list[str]:
    folder = env.model_copy()
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return env.distill(teacher=folder)


def _garbage_header_safetensors(env: Env) -> list[str]:
    folder = env.model_copy()
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    return env.distill(teacher=folder)


LATIN1 = "text,label\ncaf\xe9 tr\xe8s good,pos\nbad na\xefve,neg\n".encode("latin-1")
GOOD_ROWS = "".join(f"{t},{'neg' if i % 2 == 0 else 'pos'}\n" for i, t in enumerate(["bad day"] * 10))

CASES = [
    # --- data files -------------------------------------------------------------------------------------------
    Case("data-missing-file", lambda e: e.distill(data=e.tmp / "nowhere.csv"), "does not exist"),
    Case("data-empty-file", lambda e: e.distill(data=e.write("empty.csv", b"")), "empty"),
    Case("data-header-only", lambda e: e.distill(data=e.write("h.csv", "text,label\n")), "empty"),
    Case("data-wrong-columns", lambda e: e.distill(data=e.write("w.csv", "review,score\ngood,1\n")), "no label column"),
    Case("data-missing-text-column", lambda e: e.distill(data=e.write("t.csv", "body,label\ngood,pos\n")),
         "cannot find the text column"),
    Case("data-named-column-absent", lambda e: e.distill("--text-column", "review"), "no column 'review'"),
    Case("data-unknown-labels", lambda e: e.distill(data=tiny_bert.write_csv(e.tmp / "u.csv", 20, ("neg", "maybe"))),
         "'maybe'"),
    Case("data-binary-garbage", lambda e: e.distill(data=e.write("g.csv", bytes(range(256)) * 8)), "g.csv"),
    Case("data-non-utf8-strict", lambda e: e.distill("--encoding-errors", "strict", data=e.write("l.csv", LATIN1)),
         "not valid utf-8"),
    Case("data-unknown-encoding", lambda e: e.distill("--encoding", "no-such-codec"), "no-such-codec"),
    Case("data-directory-as-csv", lambda e: e.distill("--format", "csv", data=e.tmp), "directory"),
    Case("data-directory-not-a-dataset", lambda e: e.distill(data=(e.tmp / "folder").resolve()), "folder"),
    Case("data-unknown-extension", lambda e: e.distill(data=e.write("d.txt", "text,label\na,pos\n")),
         "cannot tell the format"),
    Case("data-jsonl-bad-json", lambda e: e.distill(data=e.write("j.jsonl", '{"text": "a", "label": "pos"}\n{oops\n')),
         "not valid JSON"),
    Case("data-jsonl-not-object", lambda e: e.distill(data=e.write("a.jsonl", '["a", "pos"]\n')), "not an object"),
    Case("data-tsv-ragged-row", lambda e: e.distill(data=e.write("r.tsv", "sentence\tlabel\na\tpos\nb\tneg\textra\n")),
         "tab-separated fields"),
    Case("data-empty-label", lambda e: e.distill(data=e.write("e.csv", "text,label\ngood,pos\nbad,\n")),
         "no value in the label column"),
    Case("data-all-texts-empty", lambda e: e.distill(data=e.write("n.csv", "text,label\n ,pos\n,neg\n")),
         "every row has an empty text"),
    Case("data-too-few-rows-to-split", lambda e: e.distill(data=e.write("f.csv", "text,label\ngood,pos\n")),
         "split is empty"),
    Case("data-pkg-path-not-installed", lambda e: e.distill(data="pkg://no_such_package_xyz/data.csv"),
         "not installed"),
    # --- model folders ----------------------------------------------------------------------------------------
    Case("model-folder-missing", lambda e: e.distill(teacher=e.tmp / "no-model"), "does not exist"),
    Case("model-missing-config", lambda e: e.distill(teacher=e.model_copy(drop=("config.json",))), "no config.json"),
    Case("model-missing-weights", lambda e: e.distill(teacher=e.model_copy(drop=("model.safetensors",))), "no weights"),
    Case("model-config-not-json", lambda e: e.distill(teacher=(lambda f: (f / "config.json").write_text("{oops") and f)(
        e.model_copy())), "config.json"),
    Case("model-pickle-only-bin", _pickle_only_bin, "pytorch_model.bin"),
    Case("model-wrong-architecture", lambda e: e.distill(teacher=e.edit_config(e.model_copy(), model_type="gpt2")),
         "'gpt2'"),
    Case("model-corrupted-safetensors", _corrupt_safetensors, "model.safetensors"),
    Case("model-garbage-safetensors", _garbage_header_safetensors, "model.safetensors"),
    Case("model-missing-tokenizer", lambda e: e.distill(teacher=e.model_copy(drop=(
        "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"))), "tokenizer"),
    Case("model-labels-disagree", lambda e: e.distill(teacher=e.edit_config(
        e.model_copy(), id2label={"0": "cold", "1": "hot"}, label2id={"cold": 0, "hot": 1})), "'hot'"),
    # --- config files -----------------------------------------------------------------------------------------
    Case("config-missing-file", lambda e: ["pipeline", "--config", str(e.tmp / "none.toml"), "--runs-dir",
                                           str(e.tmp / "runs")], "does not exist"),
    Case("config-bad-toml", lambda e: e.pipeline("name = \n[distill\n"), "not valid TOML"),
    Case("config-unknown-key", lambda e: e.pipeline('[distill]\nstudnet = "x"\n'), "studnet"),
    Case("config-unknown-table", lambda e: e.pipeline('[optimiser]\nlr = 1\n'), "optimiser"),
    Case("config-bad-type-number", lambda e: e.pipeline('[distill]\nbatch_size = "big"\n'), "batch_size"),
    Case("config-bad-type-list", lambda e: e.pipeline('sequence_lengths = "64"\n'), "sequence_lengths"),
    Case("config-negative-epochs", lambda e: e.pipeline("[distill]\nintermediate_epochs = -1\n"), "intermediate_epochs"),
    Case("config-zero-threads", lambda e: e.pipeline("threads = 0\n"), "threads"),
    Case("config-table-expected", lambda e: e.pipeline("distill = 3\n"), "must be a table"),
    Case("config-unknown-format", lambda e: e.pipeline('formats = ["pdf"]\n'), "'pdf'"),
    Case("config-bad-split", lambda e: e.pipeline("[data]\nsplit = [0.5, 0.5]\n"), "data.split"),
    Case("config-not-utf8", lambda e: ["pipeline", "--config", str(e.write("b.toml", b"name = \"\xff\"\n")),
                                       "--runs-dir", str(e.tmp / "runs")], "cannot be read"),
    # --- command-line arguments -------------------------------------------------------------------------------
    Case("cli-unknown-student-preset", lambda e: e.distill("--student", "tinybert-9l-999h"), "unknown student"),
    Case("cli-layer-map-out-of-range", lambda e: e.distill("--student", "teacher-layers:1,5"), "5"),
    Case("cli-layer-map-zero", lambda e: e.distill("--student", "teacher-layers:0"), "0"),
    Case("cli-negative-examples", lambda e: e.distill("--examples", "-4"), "max_train_examples"),
    Case("cli-negative-epochs", lambda e: e.distill("--intermediate-epochs", "-1"), "intermediate_epochs"),
    Case("cli-seq-length-above-max-positions", lambda e: ["export", str(e.teacher), str(e.tmp / "artifacts"),
                                                         "--seq-lengths", "128"], "max_position_embeddings"),
    Case("cli-export-output-under-a-file", lambda e: ["export", str(e.teacher), str(e.write("plain", "x") / "artifacts"),
                                                     "--seq-lengths", "16"],
         "regular file", ("plain/artifacts",)),
    Case("cli-distill-output-under-a-file", lambda e: ["distill", str(e.teacher), str(e.write("file", "x") / "student"),
                                                      "--data", str(e.data), "--student", "teacher-layers:2"],
         "file", ("file/student",)),
    Case("cli-evaluate-backend-mismatch", lambda e: ["evaluate", str(e.teacher), "--backend", "onnxruntime",
                                                    "--data", str(e.data)], "onnx"),
    Case("cli-bench-missing-flags", lambda e: ["bench", "--target", f"x=torch:{e.teacher}"], "--teacher"),
]


@pytest.fixture()
def env(tmp_path, teacher, train_csv) -> Env:
    (tmp_path / "folder").mkdir()
    return Env(tmp=tmp_path, teacher=teacher, data=train_csv)


def _outputs_absent(env: Env, case: Case) -> None:
    for name in case.outputs:
        assert not (env.tmp / name).exists(), f"partial output left at {name}"
    assert not temp_leftovers(env.tmp), temp_leftovers(env.tmp)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_error(case, env, capsys):
    argv = case.argv(env)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR, (code, captured.err[-3000:])
    assert "Traceback" not in captured.err + captured.out
    lines = error_lines(captured.err)
    assert len(lines) == 1, captured.err[-3000:]
    assert case.phrase.lower() in lines[0].lower(), lines[0]
    _outputs_absent(env, case)
    with pytest.raises(TinyBertEdgeError):  # --debug re-raises the typed error (the CLI shows its traceback)
        main(["--debug", *argv])


def test_bad_input_in_a_fresh_process_has_no_traceback_and_debug_shows_one(env):
    argv = CASES[0].argv(env)
    plain = run_cli(argv)
    assert plain.returncode == EXIT_USER_ERROR
    assert "Traceback" not in plain.stderr
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not exist" in lines[0], plain.stderr
    debug = run_cli(["--debug", *argv])
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "DataError" in debug.stderr
    _outputs_absent(env, CASES[0])


# --- bundles: `verify` on broken or hostile bundles, `package` onto outputs it must refuse --------------------------

@dataclass
class BundleEnv:
    """A scratch folder, a verified bundle folder (copied before any change) and the ONNX export it came from."""

    tmp: Path
    bundle: Path
    export: Path

    def copy(self, name: str = "copy") -> Path:
        target = self.tmp / name
        shutil.copytree(self.bundle, target)
        return target

    def edit(self, file: str, change: Callable[[bytes], bytes]) -> Path:
        folder = self.copy()
        (folder / file).write_bytes(change((folder / file).read_bytes()))
        return folder

    def without(self, file: str) -> Path:
        folder = self.copy()
        (folder / file).unlink()
        return folder

    def write(self, name: str, content: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content)
        return path

    def package(self, model: Path, out: Path, *extra: str) -> list[str]:
        return ["package", str(model), str(out), "--runtime", "onnxruntime", *extra]


def _flip_middle_byte(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    return bytes(flipped)


def _manifest_with(**changes) -> Callable[[bytes], bytes]:
    return lambda data: json.dumps({**json.loads(data), **changes}).encode("ascii")


def _truncated_zip(e: BundleEnv) -> Path:
    path = zip_with(e.bundle, e.tmp / "whole.zip")
    return e.write("cut.zip", path.read_bytes()[: path.stat().st_size // 2])


def _folder_with_symlink(e: BundleEnv) -> Path:
    folder = e.copy()
    os.symlink(e.write("outside.txt", b"secret"), folder / "extra")
    return folder


@dataclass
class BundleCase:
    id: str
    argv: Callable[[BundleEnv], list[str]]
    phrase: str


BUNDLE_CASES = [
    BundleCase("bundle-tampered-model-byte", lambda e: ["verify", str(e.edit("model.onnx", _flip_middle_byte))],
               "'model.onnx' does not match its sha256"),
    BundleCase("bundle-truncated-model", lambda e: ["verify", str(e.edit("model.onnx", lambda d: d[: len(d) // 3]))],
               "truncated or replaced"),
    BundleCase("bundle-missing-vocab", lambda e: ["verify", str(e.without("vocab.txt"))], "'vocab.txt' is missing"),
    BundleCase("bundle-missing-manifest", lambda e: ["verify", str(e.without("manifest.json"))], "no manifest.json"),
    BundleCase("bundle-unknown-schema-version", lambda e: ["verify", str(e.edit(
        "manifest.json", _manifest_with(schema_version=2)))], "schema_version 2"),
    BundleCase("bundle-manifest-not-json", lambda e: ["verify", str(e.edit("manifest.json", lambda d: d[:40]))],
               "not valid JSON"),
    BundleCase("bundle-zip-dotdot-entry",
               lambda e: ["verify", str(zip_with(e.bundle, e.tmp / "b.zip", zipfile.ZipInfo("../evil.txt")))],
               "plain names"),
    BundleCase("bundle-zip-absolute-entry", lambda e: ["verify", str(zip_with(
        e.bundle, e.tmp / "b.zip", zipfile.ZipInfo(str(e.tmp / "absolute-evil.txt"))))], "plain names"),
    BundleCase("bundle-zip-symlink-entry", lambda e: ["verify", str(zip_with(
        e.bundle, e.tmp / "b.zip", symlink_entry("escape"), b"../../../etc/passwd"))], "symlink"),
    BundleCase("bundle-zip-duplicate-entry", lambda e: ["verify", str(zip_with(
        e.bundle, e.tmp / "b.zip", zipfile.ZipInfo("vocab.txt"), b"[PAD]\n[UNK]\n"))], "twice"),
    BundleCase("bundle-not-a-zip", lambda e: ["verify", str(e.write("fake.zip", b"text,label\ngood,pos\n" * 20))],
               "neither a bundle folder nor a readable .zip"),
    BundleCase("bundle-truncated-zip", lambda e: ["verify", str(_truncated_zip(e))], "truncated"),
    BundleCase("bundle-folder-symlink", lambda e: ["verify", str(_folder_with_symlink(e))], "symlink"),
    BundleCase("bundle-missing-path", lambda e: ["verify", str(e.tmp / "nowhere.zip")], "does not exist"),
    BundleCase("package-onto-existing-output", lambda e: e.package(e.export, e.copy("existing")), "already exists"),
    BundleCase("package-onto-existing-zip", lambda e: e.package(e.export, zip_with(e.bundle, e.tmp / "old.zip")),
               "--overwrite"),
    BundleCase("package-folder-without-artifacts", lambda e: e.package(e.tmp / "empty", e.tmp / "out"),
               "no int8 artifact"),
    BundleCase("package-missing-model", lambda e: e.package(e.tmp / "nowhere", e.tmp / "out"), "neither an artifact"),
    BundleCase("package-precision-not-exported", lambda e: e.package(e.export, e.tmp / "out", "--precision", "fp16"),
               "no fp16 artifact"),
    BundleCase("package-output-under-a-file", lambda e: e.package(e.export, e.write("plain", b"x") / "bundle"),
               "regular file"),
]


@pytest.fixture()
def bundle_env(tmp_path, bundle, onnx_export) -> BundleEnv:
    (tmp_path / "empty").mkdir()
    return BundleEnv(tmp=tmp_path, bundle=bundle, export=onnx_export)


@pytest.mark.parametrize("case", BUNDLE_CASES, ids=[c.id for c in BUNDLE_CASES])
def test_bad_bundle_input_gives_one_clear_error(case, bundle_env, capsys):
    argv = case.argv(bundle_env)
    before = tree(bundle_env.tmp)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR, (code, captured.err[-3000:])
    assert "Traceback" not in captured.err + captured.out
    lines = error_lines(captured.err)
    assert len(lines) == 1, captured.err[-3000:]
    assert case.phrase.lower() in lines[0].lower(), lines[0]
    # Nothing written, extracted, replaced or left half-done: not a bundle, not a staging folder, not a temp file.
    assert tree(bundle_env.tmp) == before
    with pytest.raises(TinyBertEdgeError):
        main(["--debug", *argv])


def test_bad_bundle_in_a_fresh_process_has_no_traceback_and_debug_shows_one(bundle_env):
    argv = BUNDLE_CASES[0].argv(bundle_env)
    plain = run_cli(argv)
    assert plain.returncode == EXIT_USER_ERROR
    assert "Traceback" not in plain.stderr
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "sha256" in lines[0], plain.stderr
    debug = run_cli(["--debug", *argv])
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "BundleError" in debug.stderr
