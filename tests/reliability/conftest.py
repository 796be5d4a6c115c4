"""Shared pieces of the reliability suite: tiny models and data (from tests/unit/tiny_bert.py), subprocess helpers,
the check for half-written outputs, and the fault log that `benchmarks/suites/reliability.py` sums up.

Set TINYBERT_RELIABILITY_FAULTS to a file path and every test appends one JSON line per fault it injected
(a SIGKILL, a failing write) or per batch of fuzzing examples it ran; the suite runner reads that file.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Sequence

import pytest

UNIT_TESTS = Path(__file__).resolve().parents[1] / "unit"
if str(UNIT_TESTS) not in sys.path:
    sys.path.insert(0, str(UNIT_TESTS))

import tiny_bert  # noqa: E402

FAULT_LOG_ENV = "TINYBERT_RELIABILITY_FAULTS"
TEMP_MARKERS = (".partial", ".old-", ".staging")


def record(kind: str, count: int = 1, **details) -> None:
    """Append one fault (or fuzzing) record for the suite runner; a no-op when the suite is not collecting."""
    path = os.environ.get(FAULT_LOG_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "count": count, **details}) + "\n")


def temp_leftovers(folder: Path) -> list[Path]:
    """Files and folders that only the SDK's atomic writes create (`.<name>.*.partial`, `.<name>.old-<pid>`,
    `package`'s `.<name>.*.staging`)."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob(".*") if any(marker in p.name for marker in TEMP_MARKERS))


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop(FAULT_LOG_ENV, None)
    return env


def run_cli(args: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinybert_edge.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def teacher(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random classifier with labels neg/pos and its tokenizer (max_position_embeddings 64)."""
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("teacher") / "teacher")


@pytest.fixture(scope="session")
def small_teacher(tmp_path_factory) -> Path:
    """A 1-layer, 16-wide classifier: the cheapest model the CLI accepts."""
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("small") / "model", layers=1, hidden=16, heads=2)


@pytest.fixture(scope="session")
def train_csv(tmp_path_factory) -> Path:
    return tiny_bert.write_csv(tmp_path_factory.mktemp("data") / "train.csv", 40)


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder or link): equal before and after a command
    means the command wrote, extracted and deleted nothing there."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="session")
def onnx_export(small_teacher, tmp_path_factory) -> Path:
    """The small teacher exported to ONNX fp32 and int8 (one 16-token bucket): what `package` bundles."""
    pytest.importorskip("onnxruntime")
    from tinybert_edge.converters.chain import export
    from tinybert_edge.converters.config import ExportConfig

    out = tmp_path_factory.mktemp("export") / "artifacts"
    export(small_teacher, out, formats=("onnx",), config=ExportConfig(sequence_buckets=(16,)))
    return out


@pytest.fixture(scope="session")
def bundle(onnx_export, tmp_path_factory) -> Path:
    """A verified bundle folder of the int8 ONNX model (tests copy it before they change anything)."""
    from tinybert_edge.app.bundle import package

    return package(onnx_export, tmp_path_factory.mktemp("bundle") / "bundle", runtimes=("onnxruntime",))


@pytest.fixture(scope="session")
def bundle_zip(onnx_export, tmp_path_factory) -> Path:
    """The same model packaged as a .zip."""
    from tinybert_edge.app.bundle import package

    return package(onnx_export, tmp_path_factory.mktemp("bundle-zip") / "bundle.zip", runtimes=("onnxruntime",))


def zip_with(bundle: Path, target: Path, extra: zipfile.ZipInfo | None = None, payload: bytes = b"x") -> Path:
    """A zip of `bundle`'s files plus one hand-made entry (a `../` name, an absolute name, a symlink...)."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(bundle.iterdir()):
            archive.write(path, path.name)
        if extra is not None:
            archive.writestr(extra, payload)
    return target


def symlink_entry(name: str) -> zipfile.ZipInfo:
    """A zip entry whose Unix mode says symlink (what `zip --symlinks` writes); its payload is the link target."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: external_attr carries the mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info
