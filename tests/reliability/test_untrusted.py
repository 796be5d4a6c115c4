"""Untrusted files never run code: the sources hold no unsafe loader, and a booby-trapped pickle is refused."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import pytest

from conftest import record
from tinybert_edge.cli import EXIT_USER_ERROR, main
from tinybert_edge.errors import ModelError

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
    from tinybert_edge.engine import load_checkpoint
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
