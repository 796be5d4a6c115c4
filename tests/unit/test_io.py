"""Atomic writes leave the old output or the new one, never a half-written one; digests and the lazy registry."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tinybert_edge.errors import ConfigError, TinyBertEdgeError
from tinybert_edge.io import (
    atomic_path,
    folder_size_bytes,
    sha256_file,
    sha256_tree,
    write_json_atomic,
    write_text_atomic,
)
from tinybert_edge.registry import Registry


class Boom(Exception):
    pass


def leftovers(parent: Path) -> list[str]:
    """Temporary siblings atomic_path may create (hidden names, so os.listdir rather than a shell glob)."""
    return sorted(n for n in os.listdir(parent) if n.endswith(".partial") or ".old-" in n)


# ---------------------------------------------------------------- files


def test_atomic_file_new(tmp_path):
    final = tmp_path / "out" / "report.json"  # parent is created
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        assert not final.exists()
        tmp.write_text("new")
        assert not final.exists()  # nothing visible until the body finishes
    assert final.read_text() == "new"
    assert leftovers(final.parent) == []


def test_atomic_file_replaces_existing(tmp_path):
    final = tmp_path / "model.bin"
    final.write_text("old")
    with atomic_path(str(final)) as tmp:
        tmp.write_text("new")
        assert final.read_text() == "old"
    assert final.read_text() == "new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_file_failure_keeps_previous(tmp_path, error):
    final = tmp_path / "model.bin"
    final.write_text("old")
    with pytest.raises(error):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise error()
    assert final.read_text() == "old"
    assert leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]


def test_atomic_file_failure_without_previous(tmp_path):
    final = tmp_path / "model.bin"
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise Boom()
    assert not final.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_failure_before_anything_written(tmp_path):
    final = tmp_path / "model.bin"
    with pytest.raises(Boom):
        with atomic_path(final):
            raise Boom()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- folders


def make_folder(path: Path, files: dict[str, str]) -> None:
    path.mkdir()
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)


def read_folder(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_atomic_folder_new(tmp_path):
    final = tmp_path / "bundle"
    with atomic_path(final) as tmp:
        make_folder(tmp, {"model.onnx": "m", "meta/config.json": "{}"})
        assert not final.exists()
    assert read_folder(final) == {"model.onnx": "m", "meta/config.json": "{}"}
    assert leftovers(tmp_path) == []


def test_atomic_folder_replaces_existing(tmp_path):
    final = tmp_path / "bundle"
    make_folder(final, {"old.txt": "old", "model.onnx": "v1"})
    with atomic_path(final) as tmp:
        make_folder(tmp, {"model.onnx": "v2"})
        assert read_folder(final) == {"old.txt": "old", "model.onnx": "v1"}
    assert read_folder(final) == {"model.onnx": "v2"}  # no stale files from the old folder
    assert leftovers(tmp_path) == []
    assert os.listdir(tmp_path) == ["bundle"]


def test_atomic_folder_failure_keeps_previous(tmp_path):
    final = tmp_path / "bundle"
    make_folder(final, {"model.onnx": "v1"})
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            make_folder(tmp, {"model.onnx": "half", "sub/x": "y"})
            raise Boom()
    assert read_folder(final) == {"model.onnx": "v1"}
    assert leftovers(tmp_path) == []
    assert os.listdir(tmp_path) == ["bundle"]


def test_atomic_folder_failure_without_previous(tmp_path):
    with pytest.raises(Boom):
        with atomic_path(tmp_path / "bundle") as tmp:
            make_folder(tmp, {"a": "b"})
            raise Boom()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- unwritable parent and helpers


def test_unwritable_parent(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(TinyBertEdgeError) as info:
        with atomic_path(blocker / "x"):
            pytest.fail("the body must not run")
    assert str(blocker) in str(info.value)
    assert "writable output path" in str(info.value)
    assert blocker.read_text() == "a file, not a folder"


def test_write_text_and_json_atomic(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "héllo\n")
    assert path == tmp_path / "a.txt"
    assert path.read_bytes() == "héllo\n".encode()
    json_path = write_json_atomic(tmp_path / "r.json", {"p": tmp_path / "x", "n": 1.5, "l": [1, 2]})
    assert json.loads(json_path.read_text()) == {"p": str(tmp_path / "x"), "n": 1.5, "l": [1, 2]}
    assert leftovers(tmp_path) == []


def test_write_json_atomic_numpy_and_failure(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "r.json"
    write_json_atomic(path, {"v": np.array([1, 2]), "f": np.float64(0.5)})
    assert json.loads(path.read_text()) == {"v": [1, 2], "f": 0.5}
    with pytest.raises(TypeError, match="cannot serialise object"):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"v": [1, 2], "f": 0.5}  # the failed write left the old report


# ---------------------------------------------------------------- digests


def test_sha256_file_known_value(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(path, chunk=1) == sha256_file(path)


def test_sha256_tree_stable_and_sensitive(tmp_path):
    a = tmp_path / "a"
    make_folder(a, {"model.onnx": "weights", "sub/config.json": "{}"})
    b = tmp_path / "b"
    make_folder(b, {"sub/config.json": "{}", "model.onnx": "weights"})  # same tree, other creation order
    digest = sha256_tree(a)
    assert len(digest) == 64
    assert sha256_tree(a) == digest
    assert sha256_tree(b) == digest  # independent of where the folder lives

    (b / "model.onnx").write_text("weightz")
    assert sha256_tree(b) != digest
    (b / "model.onnx").write_text("weights")
    assert sha256_tree(b) == digest

    (b / "model.onnx").rename(b / "renamed.onnx")
    assert sha256_tree(b) != digest  # names count, not only contents
    (b / "renamed.onnx").rename(b / "model.onnx")

    (b / "extra").write_text("")
    assert sha256_tree(b) != digest


def test_sha256_tree_patterns(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, {"model.onnx": "m", "log.txt": "run 1"})
    only_models = sha256_tree(folder, patterns=("*.onnx",))
    (folder / "log.txt").write_text("run 2")
    assert sha256_tree(folder, patterns=("*.onnx",)) == only_models
    (folder / "model.onnx").write_text("m2")
    assert sha256_tree(folder, patterns=("*.onnx",)) != only_models


def test_folder_size_bytes(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, {"a": "12345", "sub/b": "678"})
    assert folder_size_bytes(folder) == 8
    assert folder_size_bytes(folder / "a") == 5


# ---------------------------------------------------------------- registry


def test_registry_lazy_module_attribute(tmp_path, monkeypatch):
    module_name = "tbe_lazy_registry_probe"
    (tmp_path / f"{module_name}.py").write_text("VALUE = {'answer': 42}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module_name, raising=False)

    registry: Registry = Registry("backend")
    registry.register("probe", f"{module_name}:VALUE")
    assert "probe" in registry
    assert module_name not in sys.modules  # registering does not import

    value = registry.get("probe")
    assert value == {"answer": 42}
    assert module_name in sys.modules
    assert registry.get("probe") is value  # imported once, then cached


def test_registry_decorator_and_listing():
    registry: Registry = Registry("converter")

    @registry.register("b")
    def b() -> str:
        return "b"

    registry.register("a", "json:dumps")
    assert b() == "b"
    assert registry.names() == ["a", "b"]
    assert list(registry) == ["a", "b"]
    assert registry.get("a") is json.dumps
    assert registry.get("b") is b


def test_registry_unknown_and_duplicate():
    registry: Registry = Registry("backend")
    registry.register("onnx", "json:loads")
    registry.register("tflite", "json:dumps")
    with pytest.raises(ConfigError, match="unknown backend 'coreml'; available: onnx, tflite"):
        registry.get("coreml")
    with pytest.raises(ValueError, match="duplicate backend 'onnx'"):
        registry.register("onnx", "json:dumps")
    assert registry.get("onnx") is json.loads
