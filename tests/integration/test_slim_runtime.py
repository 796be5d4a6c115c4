"""The runtime installs on a device without the training stack: `pip install tinybert-edge[runtime-onnx]` into a
clean virtual environment brings numpy, the Rust tokenizer and ONNX Runtime, no torch and no transformers, and runs
a bundle to the same predictions as the full install."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, sys
from tinybert_edge import load_bundle, verify
model = load_bundle(sys.argv[1])
texts = json.loads(sys.argv[2])
print(json.dumps({"labels": [p.label for p in model.predict(texts)], "tokenizer": model.tokenizer.kind,
                  "verified": verify(sys.argv[1])["passed"],
                  "absent": [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None],
                  "imported": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(ROOT / "tests" / "unit"))  # the tiny in-process BERTs the unit tests build
    import tiny_bert
    from tinybert_edge.app.bundle import package
    from tinybert_edge.converters import ExportConfig, export

    root = tmp_path_factory.mktemp("slim")
    model = tiny_bert.save_classifier(root / "model", layers=1, hidden=16, heads=2)
    export(model, root / "artifacts", formats=("onnx",), config=ExportConfig(sequence_buckets=(32,)))
    return package(root / "artifacts", root / "bundle.zip", runtimes=("onnxruntime",))


@pytest.fixture(scope="module")
def slim_python(tmp_path_factory):
    env = tmp_path_factory.mktemp("venv") / "slim"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[runtime-onnx]"],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.skip(f"the slim install could not reach a package index: {done.stderr.strip().splitlines()[-1:]}")
    return python


def test_a_bundle_runs_without_the_training_stack(bundle, slim_python):
    from tinybert_edge.runtime.bundle import load_bundle

    texts = ["good great fine", "bad awful poor", "the movie was", ""]
    done = subprocess.run([str(slim_python), "-c", PROBE, str(bundle), json.dumps(texts)], capture_output=True,
                          text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["absent"] == ["torch", "transformers"] and result["imported"] == []
    assert result["tokenizer"] == "rust" and result["verified"]
    assert result["labels"] == [p.label for p in load_bundle(bundle, tokenizer="python").predict(texts)]


def test_training_commands_name_the_extra_they_need(slim_python, tmp_path):
    done = subprocess.run([str(slim_python), "-m", "tinybert_edge", "finetune", str(tmp_path), "--data", "x.csv"],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 2
    assert "pip install 'tinybert-edge[train]'" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([str(slim_python), "-c", "import tinybert_edge; tinybert_edge.finetune"],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode != 0 and "MissingDependencyError" in done.stderr and "[train]" in done.stderr
