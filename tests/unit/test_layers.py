"""The package's dependencies point one way: core <- converters <- benchmarks <- application <- facade.

Every import statement of every module counts, function-local ones included (a function-local import hides a cycle
from readers, not from the design). Relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where each installed package's sources live (pyproject's package-dir).
SOURCES = {"tinybert_edge": ROOT / "tinybert_edge", "tinybert_edge.converters": ROOT / "converters",
           "tinybert_edge.benchmarks": ROOT / "benchmarks"}
LAYERS = ("core", "converters", "benchmarks", "application", "facade")


def layer_of(module: str) -> str:
    """The layer a module of the SDK belongs to, from its name alone."""
    if module in ("tinybert_edge", "tinybert_edge.__main__"):
        return "facade"
    if module.startswith(("tinybert_edge.app.", "tinybert_edge.benchmarks.suites.")) or module in (
            "tinybert_edge.app", "tinybert_edge.benchmarks.suites"):
        return "application"  # the CLI, the pipeline, reports, bundle writing; the suites are programs on top too
    if module == "tinybert_edge.benchmarks" or module.startswith("tinybert_edge.benchmarks."):
        return "benchmarks"
    if module == "tinybert_edge.converters" or module.startswith("tinybert_edge.converters."):
        return "converters"
    return "core"


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "tinybert_edge" and parts and parts[0] in ("converters", "benchmarks"):
                continue
            found[name] = path
    return found


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file that names an SDK module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from tinybert_edge import app` imports the submodule tinybert_edge.app
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return [(line, name) for line, name in found if name == "tinybert_edge" or name.startswith("tinybert_edge.")]


MODULES = modules()


def test_the_walker_sees_every_layer():
    seen = {layer_of(name) for name in MODULES}
    assert seen == set(LAYERS), seen
    assert layer_of("tinybert_edge.runtime.bundle") == "core"
    assert layer_of("tinybert_edge.app.pipeline") == "application"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    rank = LAYERS.index(layer_of(module))
    upward = [f"line {line}: {name} ({layer_of(name)})" for line, name in imports_of(module, MODULES[module])
              if LAYERS.index(layer_of(name)) > rank]
    assert not upward, f"{module} ({layer_of(module)}) imports upward: " + "; ".join(upward)


def test_an_upward_import_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from tinybert_edge.app.pipeline import pipeline\n", encoding="utf-8")
    found = imports_of("tinybert_edge.models", bad)
    assert [(line, layer_of(name)) for line, name in found] == [(2, "application")]
