"""Untrusted files never run code: the sources hold no unsafe loader, and a booby-trapped pickle is refused.
A hostile bundle (zip traversal, absolute names, symlinks) is refused with nothing extracted or written anywhere,
and a tampered one is refused before any of its bytes reach the tokenizer or ONNX Runtime."""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import record, symlink_entry, tree, zip_with
from tinybert_edge.app.cli import EXIT_USER_ERROR, main
from tinybert_edge.errors import BundleError, ModelError

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tinybert_edge", "converters", "benchmarks")


def _sources() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (ROOT / folder).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every call that could run code from a file or a string."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                found.append((node.value.lineno, "trust_remote_code not literally False"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "dill.loads", "joblib.load",
                    "pickle.Unpickler", "marshal.loads", "shelve.open"):
            found.append((node.lineno, name))
        if name in ("np.load", "numpy.load"):
            allow = _keyword(node, "allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append((node.lineno, f"{name}(allow_pickle=...)"))
        if name == "torch.load" or (last == "load" and name.startswith("torch.")):
            weights_only = _keyword(node, "weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append((node.lineno, "torch.load without weights_only=True"))
        if name == "yaml.load" or name == "yaml.load_all":
            loader = _keyword(node, "Loader")
            loader_name = _dotted(loader) if loader is not None else (
                _dotted(node.args[1]) if len(node.args) > 1 else "")
            if not loader_name.endswith(("SafeLoader", "CSafeLoader")):
                found.append((node.lineno, f"{name} without SafeLoader"))
        if name in ("yaml.unsafe_load", "yaml.full_load"):
            found.append((node.lineno, name))
        if name in ("eval", "exec", "builtins.eval", "builtins.exec", "compile"):
            found.append((node.lineno, name))
    return found


def test_scanner_finds_each_unsafe_pattern():
    bad = (
        "import pickle, torch, yaml\npickle.load(f)\npickle.loads(b)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
        "yaml.load(s)\nyaml.load(s, Loader=yaml.Loader)\neval('1')\nexec('x=1')\n"
        "m.from_pretrained(p, trust_remote_code=True)\nnp.load(p, allow_pickle=True)\n"
    )
    good = ("torch.load(p, map_location='cpu', weights_only=True)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
            "m.from_pretrained(p, trust_remote_code=False)\nnp.load(p)\n")
    assert len(unsafe_calls(ast.parse(bad))) == 10
    assert unsafe_calls(ast.parse(good)) == []


def test_sources_hold_no_unsafe_loader():
    sources = _sources()
    assert len(sources) > 30
    problems = []
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in unsafe_calls(tree)]
    assert problems == [], "\n".join(problems)


class _Payload:
    """Unpickling this object calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _trapped_model(folder: Path, teacher: Path, marker: Path) -> Path:
    folder.mkdir()
    for file in teacher.iterdir():
        if file.name != "model.safetensors":
            (folder / file.name).write_bytes(file.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"bert.pooler.dense.weight": _Payload(marker)}))
    return folder


def test_trapped_pickle_weights_are_not_executed(tmp_path, teacher, train_csv, capsys):
    from tinybert_edge.models import load_classifier

    marker = tmp_path / "pwned"
    model = _trapped_model(tmp_path / "model", teacher, marker)
    # The payload is real: plain unpickling would run it (in a child process, so this test stays clean).
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.load(open(sys.argv[1], 'rb'))",
                            str(model / "pytorch_model.bin")], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and marker.exists(), probe.stderr
    marker.unlink()
    record("malicious_pickle")

    with pytest.raises(ModelError, match="pytorch_model.bin"):
        load_classifier(model, role="teacher")
    assert not marker.exists()
    code = main(["distill", str(model), str(tmp_path / "student"), "--data", str(train_csv)])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and "error:" in err and "Traceback" not in err
    assert not marker.exists(), "unpickling the weights ran the payload"
    assert not (tmp_path / "student").exists()


def test_trapped_pickle_checkpoint_is_refused_on_resume(tmp_path):
    from tinybert_edge.training.loop import load_checkpoint
    from tinybert_edge.errors import DistillationError

    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "intermediate.ckpt"
    import torch

    torch.save({"module": _Payload(marker), "step": 1}, checkpoint)
    with pytest.raises(DistillationError, match="unreadable"):
        load_checkpoint(checkpoint, "digest")
    assert not marker.exists()
    record("malicious_pickle")


def test_config_toml_cannot_execute_code(tmp_path):
    from tinybert_edge.config import PipelineConfig
    from tinybert_edge.errors import ConfigError

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.toml"
    path.write_text(f'name = "__import__(\'os\').system(\'touch {marker}\')"\n!!python/object:os.system ["x"]\n')
    with pytest.raises(ConfigError):
        PipelineConfig.from_toml(path)
    path.write_text(f'name = "__import__(\'pathlib\').Path(\'{marker}\').touch()"\n')
    assert PipelineConfig.from_toml(path).name.startswith("__import__")  # kept as a string, never evaluated
    assert not marker.exists() and not os.path.exists(marker)


# --- bundles from untrusted hands ------------------------------------------------------------------------------------

def _zip_replacing(bundle: Path, target: Path, name: str, entry: zipfile.ZipInfo, payload: bytes) -> Path:
    """A zip of `bundle` in which the file `name` is replaced by `entry` (a symlink, say)."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(bundle.iterdir()):
            if path.name != name:
                archive.write(path, path.name)
        archive.writestr(entry, payload)
    return target


HOSTILE_ZIPS = {
    # name: (what the zip holds beyond the bundle, the phrase of the refusal)
    "dotdot-entry": (lambda b, t, out: zip_with(b, t, zipfile.ZipInfo("../escaped.txt"), b"pwned"), "plain names"),
    "nested-dotdot-entry": (lambda b, t, out: zip_with(b, t, zipfile.ZipInfo("sub/../../escaped.txt"), b"pwned"),
                            "plain names"),
    "absolute-entry": (lambda b, t, out: zip_with(b, t, zipfile.ZipInfo(str(out / "escaped.txt")), b"pwned"),
                       "plain names"),
    "backslash-entry": (lambda b, t, out: zip_with(b, t, zipfile.ZipInfo("..\\escaped.txt"), b"pwned"),
                        "plain names"),
    "symlink-out-of-the-bundle": (lambda b, t, out: zip_with(b, t, symlink_entry("escape"),
                                                             str(out / "secret.txt").encode()), "symlink"),
    "symlink-as-vocab": (lambda b, t, out: _zip_replacing(b, t, "vocab.txt", symlink_entry("vocab.txt"),
                                                          str(out / "vocab.txt").encode()), "symlink"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_ZIPS))
def test_hostile_zip_is_refused_and_nothing_is_extracted(kind, bundle, tmp_path, monkeypatch, capsys):
    from tinybert_edge.runtime.bundle import verify
    from tinybert_edge.runtime.bundle import load_bundle

    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret", encoding="utf-8")
    shutil.copyfile(bundle / "vocab.txt", outside / "vocab.txt")  # the real vocab: a followed link would pass
    build, phrase = HOSTILE_ZIPS[kind]
    path = build(bundle, work / "bundle.zip", outside)
    monkeypatch.chdir(work)  # a relative `../` would land in tmp_path, an absolute name in outside/
    before = tree(tmp_path)
    for reader in (load_bundle, verify):
        with pytest.raises(BundleError, match=phrase):
            reader(path)
    assert main(["verify", str(path)]) == EXIT_USER_ERROR
    assert phrase in capsys.readouterr().err
    assert tree(tmp_path) == before, "reading the bundle wrote, extracted or removed a file"
    assert not (tmp_path / "escaped.txt").exists() and not (outside / "escaped.txt").exists()
    record("hostile_bundle", what=kind)


def test_folder_bundle_with_a_symlink_to_a_valid_file_outside_is_refused(bundle, tmp_path):
    """The link points at a byte-identical vocab.txt: following it would pass the checksum, so only the symlink
    check stands between the bundle and a file outside it."""
    from tinybert_edge.runtime.bundle import verify
    from tinybert_edge.runtime.bundle import load_bundle

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(bundle / "vocab.txt", outside / "vocab.txt")
    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    (folder / "vocab.txt").unlink()
    os.symlink(outside / "vocab.txt", folder / "vocab.txt")
    before = tree(tmp_path)
    for reader in (load_bundle, verify):
        with pytest.raises(BundleError, match="symlink 'vocab.txt'"):
            reader(folder)
    assert tree(tmp_path) == before
    record("hostile_bundle", what="folder-symlink")


class _Spy:
    """Counts calls to a function (and passes them on), so a test can prove what was never reached."""

    def __init__(self, real) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def _flip(path: Path, fraction: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * fraction)] ^= 0x20
    path.write_bytes(bytes(data))


TAMPERINGS = {
    # name: (change to a copy of the bundle folder, the phrase of the refusal)
    "model-one-byte": (lambda f, e: _flip(f / "model.onnx"), "'model.onnx' does not match its sha256"),
    "model-replaced-by-another-graph": (lambda f, e: shutil.copyfile(e / "onnx-fp32" / "model.onnx", f / "model.onnx"),
                                        "'model.onnx' has"),
    "vocab-same-size": (lambda f, e: _flip(f / "vocab.txt", 0.3), "'vocab.txt' does not match its sha256"),
    "unicode-tables-one-byte": (lambda f, e: _flip(f / "unicode_tables.txt", 0.9),
                                "'unicode_tables.txt' does not match"),
    "golden-one-byte": (lambda f, e: _flip(f / "golden.json", 0.5), "'golden.json' does not match"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERINGS))
@pytest.mark.parametrize("form", ["folder", "zip"])
def test_tampered_bundle_never_reaches_the_tokenizer_or_the_runtime(kind, form, bundle, onnx_export, tmp_path,
                                                                     monkeypatch):
    import onnxruntime

    from tinybert_edge.runtime.bundle import verify
    from tinybert_edge.runtime import bundle as rt

    sessions = _Spy(onnxruntime.InferenceSession)
    vocabularies = _Spy(rt.parse_vocab)
    tables = _Spy(rt.UnicodeTables)
    monkeypatch.setattr(onnxruntime, "InferenceSession", sessions)
    monkeypatch.setattr(rt, "parse_vocab", vocabularies)
    monkeypatch.setattr(rt, "UnicodeTables", tables)

    # The spies see the untampered bundle: they would notice a tampered one reaching the same calls.
    rt.load_bundle(bundle)
    assert (sessions.calls, vocabularies.calls, tables.calls) == (1, 1, 1)

    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    change, phrase = TAMPERINGS[kind]
    change(folder, onnx_export)
    path = folder if form == "folder" else zip_with(folder, tmp_path / "bundle.zip")
    for reader in (rt.load_bundle, verify):
        with pytest.raises(BundleError, match=phrase):
            reader(path)
    assert (sessions.calls, vocabularies.calls, tables.calls) == (1, 1, 1), "a tampered file was used"
    record("hostile_bundle", what=f"tampered {kind} ({form})")
