"""The runtime installs on a device without the training stack: `pip install tinybert-edge[runtime-onnx]` into a
clean virtual environment brings numpy, the Rust tokenizer and ONNX Runtime, no torch and no transformers, and runs
a bundle to the same predictions as the full install. Where the arm64 root filesystem exists (`sudo
scripts/build_arm64_rootfs.sh`, or TINYBERT_EDGE_ARM_ROOTFS), the same install and run happen inside it under QEMU;
without it that test skips, naming the build command."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, platform, sys
from tinybert_edge import load_bundle, verify
model = load_bundle(sys.argv[1])
texts = json.loads(sys.argv[2])
print(json.dumps({"labels": [p.label for p in model.predict(texts)], "tokenizer": model.tokenizer.kind,
                  "verified": verify(sys.argv[1])["passed"], "machine": platform.machine(),
                  "absent": [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None],
                  "imported": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""
TEXTS = ["good great fine", "bad awful poor", "the movie was", ""]


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

    texts = TEXTS
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


# --- the same on arm64, under QEMU, where the root filesystem exists -----------------------------------------------

def _in_chroot(rootfs: Path, *command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `command` inside the arm64 root filesystem with an emptied environment (the host's pip and thread
    settings stay out), keeping only the proxy variables pip may need, as scripts/build_arm64_rootfs.sh does."""
    keep = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
    keep += [f"{name}={os.environ[name]}" for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
                                                        "HTTPS_PROXY", "NO_PROXY") if os.environ.get(name)]
    return subprocess.run(["env", "-i", *keep, "chroot", str(rootfs), *command], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def arm64_rootfs() -> Path:
    from tinybert_edge.benchmarks.arm import DEFAULT_ROOTFS, build_command, qemu_problem

    rootfs = Path(os.environ.get("TINYBERT_EDGE_ARM_ROOTFS", DEFAULT_ROOTFS))
    problem = qemu_problem(rootfs)
    if problem is not None:
        hint = "" if build_command(rootfs) in problem else f" (it builds with: {build_command(rootfs)})"
        pytest.skip(f"no arm64 root filesystem to install into: {problem}{hint}")
    return rootfs.resolve()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package as a device would get it: one pure-Python wheel, its dependencies left to pip on the device."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("tinybert_edge-*.whl")
    return built


def test_a_bundle_runs_on_arm64_without_the_training_stack(arm64_rootfs, bundle, wheel):
    """pip install <wheel>[runtime-onnx] into a fresh venv inside the arm64 root filesystem (aarch64 wheels only),
    then the same probe as on x86: torch and transformers absent, the Rust tokenizer, verify passes, same labels."""
    from tinybert_edge.runtime.bundle import load_bundle

    job = f"/work/slim-{os.getpid()}-{secrets.token_hex(4)}"
    host_job = arm64_rootfs / job.lstrip("/")
    host_job.mkdir(parents=True)
    try:
        shutil.copy2(wheel, host_job / wheel.name)
        shutil.copy2(bundle, host_job / bundle.name)
        made = _in_chroot(arm64_rootfs, "/usr/bin/python3", "-m", "venv", f"{job}/venv", timeout=600)
        assert made.returncode == 0, made.stderr[-2000:]
        installed = _in_chroot(arm64_rootfs, f"{job}/venv/bin/python", "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", "--only-binary=:all:",
                               f"{job}/{wheel.name}[runtime-onnx]", timeout=1800)
        if installed.returncode != 0:
            pytest.skip(f"the arm64 slim install could not reach a package index: "
                        f"{installed.stderr.strip().splitlines()[-1:]}")
        done = _in_chroot(arm64_rootfs, f"{job}/venv/bin/python", "-c", PROBE, f"{job}/{bundle.name}",
                          json.dumps(TEXTS), timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(host_job, ignore_errors=True)
    assert result["machine"] == "aarch64"
    assert result["absent"] == ["torch", "transformers"] and result["imported"] == []
    assert result["tokenizer"] == "rust" and result["verified"]
    assert result["labels"] == [p.label for p in load_bundle(bundle, tokenizer="python").predict(TEXTS)]
