"""SIGKILL at seeded random points: distillation resumes to the same student, and export, packaging and report
writing leave the previous complete output or none (only temporary `.<name>.*.partial` / `.staging` names may be
left by a killed process)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiny_bert
from conftest import TEMP_MARKERS, cli_env, record, temp_leftovers

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "drivers.py"
SEED = 20240607


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), start_new_session=True)


def _sigkill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    record("sigkill")


def _last_step(log: Path) -> int:
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.strip().endswith("}")]
    return max(steps, default=0)


def _global_step(work: Path, steps_per_stage: int) -> int:
    prediction = _last_step(work / "prediction.jsonl")
    return steps_per_stage + prediction if prediction else _last_step(work / "intermediate.jsonl")


def _check_checkpoints(work: Path) -> int:
    import torch

    checked = 0
    for checkpoint in sorted(work.glob("*.ckpt")):
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        assert {"module", "optimizer", "step", "digest"} <= set(state), checkpoint
        checked += 1
    return checked


def _safetensors(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def distill_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    teacher = tiny_bert.save_classifier(root / "teacher", seed=1)
    data = tiny_bert.write_csv(root / "train.csv", 80, seed=2)
    return teacher, data, root


def test_distill_killed_at_random_steps_resumes_to_the_uninterrupted_result(distill_inputs):
    import numpy as np

    sys.path.insert(0, str(HERE))
    import drivers

    teacher, data, root = distill_inputs
    reference = drivers.run_distill(str(teacher), str(data), str(root / "reference"), resume=False)
    steps_per_stage = reference.stages["intermediate"]["steps"]
    total = steps_per_stage + reference.stages["prediction"]["steps"]

    out, work = root / "student", root / "student.work"
    rng = random.Random(SEED)
    targets = sorted(rng.sample(range(3, total - 3), 3))
    kills, checkpoints_checked, stages_hit = [], 0, set()
    for target in targets:
        process = _spawn([str(DRIVER), "distill", str(teacher), str(data), str(out), "--resume"])
        deadline = time.monotonic() + 240
        while _global_step(work, steps_per_stage) < target:
            if process.poll() is not None:
                pytest.fail(f"the distill driver ended before step {target}: {process.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"no progress to step {target} within 240 s")
            time.sleep(0.005)
        _sigkill(process)
        kills.append(_global_step(work, steps_per_stage))
        stages_hit.add("prediction" if kills[-1] > steps_per_stage else "intermediate")
        # Every checkpoint on disk after a SIGKILL must load safely, and no student may be at the final path yet.
        checkpoints_checked += _check_checkpoints(work)
        assert not (out / "distill.json").exists()
        assert all(".partial" in p.name for p in temp_leftovers(work)), temp_leftovers(work)

    final = _spawn([str(DRIVER), "distill", str(teacher), str(data), str(out), "--resume"])
    stdout, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr[-3000:]
    resumed_accuracy = json.loads(stdout.strip().splitlines()[-1])["dev_accuracy"]

    assert checkpoints_checked >= len(targets)
    assert kills == sorted(kills) and kills[0] >= targets[0]
    assert resumed_accuracy == pytest.approx(reference.dev_accuracy, abs=1e-9)
    expected, got = _safetensors(root / "reference"), _safetensors(out)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    saved = json.loads((out / "distill.json").read_text(encoding="utf-8"))
    assert saved["dev_accuracy"] == pytest.approx(reference.dev_accuracy, abs=1e-9)
    for stage in ("intermediate", "prediction"):
        assert saved["stages"][stage]["final_loss"]["total"] == pytest.approx(
            reference.stages[stage]["final_loss"]["total"], rel=1e-4, abs=1e-7)


def _complete_onnx(folder: Path) -> bool:
    """An ONNX artifact folder that an interrupted export may leave only when it is whole."""
    import onnx

    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    onnx.checker.check_model(str(folder / meta.get("model_file", "model.onnx")))
    return meta["format"] == "onnx"


def test_export_killed_midway_leaves_previous_or_no_artifact(tmp_path, small_teacher):
    pytest.importorskip("onnx")
    out = tmp_path / "artifacts"
    rng = random.Random(SEED + 1)
    previous_metadata = None
    for attempt in range(2):
        # --overwrite: the second export replaces the first on purpose (export refuses an existing folder without it).
        process = _spawn(["-m", "tinybert_edge.app.cli", "export", str(small_teacher), str(out), "--formats", "onnx",
                          "--seq-lengths", "16", "32", "--overwrite"])
        if attempt == 0:
            # First: an export killed before it had finished anything leaves no artifact at the final path.
            deadline = time.monotonic() + 240
            while not temp_leftovers(out) and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            # Then: with a complete export in place, an export killed while writing keeps the previous one.
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and process.poll() is None and not any(
                    p for p in temp_leftovers(out) if p.name.startswith(".onnx") or p.name.startswith(".model")):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.5))
        if process.poll() is not None:
            pytest.fail(f"export finished before it could be killed; stderr: {process.communicate()[1][-2000:]}")
        _sigkill(process)
        for name in ("onnx-fp32", "onnx-int8"):
            if (out / name).exists():
                assert _complete_onnx(out / name)
            elif previous_metadata is not None:
                # Replacing a folder is two renames; a kill between them leaves the previous one under its .old name.
                olds = list(out.glob(f".{name}.old-*"))
                assert olds and _complete_onnx(olds[0]), f"the previous complete {name} export disappeared"
        if previous_metadata is not None and (out / "onnx-fp32").exists():
            current = json.loads((out / "onnx-fp32" / "metadata.json").read_text(encoding="utf-8"))
            assert current["created_utc"] >= previous_metadata["created_utc"]
        assert all(p.name.startswith(".") for p in temp_leftovers(out))
        if attempt == 0:
            # The complete export is made in-process (same function the CLI calls) to spare one interpreter start.
            from tinybert_edge.converters.chain import export
            from tinybert_edge.converters.config import ExportConfig

            export(small_teacher, out, formats=("onnx",), config=ExportConfig(sequence_buckets=(16, 32)))
            assert _complete_onnx(out / "onnx-fp32") and _complete_onnx(out / "onnx-int8")
            previous_metadata = json.loads((out / "onnx-fp32" / "metadata.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_package_killed_midway_leaves_previous_or_no_bundle(tmp_path, onnx_export, form):
    from tinybert_edge.runtime.bundle import verify

    out = tmp_path / ("bundle.zip" if form == "zip" else "bundle")
    rng = random.Random(f"{SEED}-package-{form}")
    kept = 0
    for attempt in range(6):
        process = _spawn([str(DRIVER), "package", str(onnx_export), str(out), "1000"])
        if attempt == 0:
            # First: killed while the very first bundle is being staged, so there is no previous one.
            deadline = time.monotonic() + 120
            while (not list(tmp_path.glob(f".{out.name}.*.staging")) and process.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            # Then: one round has put a complete bundle in place and the next one is rewriting it.
            line = process.stdout.readline()
            assert line.startswith("round"), process.communicate()[1][-2000:]
            time.sleep(rng.uniform(0.0, 0.5))
        if process.poll() is not None:
            pytest.fail(f"the package driver ended before it could be killed: {process.communicate()[1][-2000:]}")
        _sigkill(process)
        if out.exists():
            assert verify(out)["passed"]
            kept += attempt > 0
        elif attempt > 0:
            # Replacing a folder is two renames; a kill between them leaves the previous one under its .old name.
            olds = list(tmp_path.glob(f".{out.name}.old-*"))
            assert olds and verify(olds[0])["passed"], "the previous complete bundle disappeared"
        # Beside the bundle, a killed process may leave only its temporary names (never a half bundle at `out`).
        others = [p for p in tmp_path.iterdir() if p != out]
        assert all(p.name.startswith(f".{out.name}.") and any(m in p.name for m in TEMP_MARKERS) for p in others), \
            others
    assert kept, "no kill left a complete bundle at the final path"


REPORT_FIXTURE = HERE / "data" / "report.json"


def test_report_writing_killed_at_random_times_leaves_complete_files(tmp_path):
    pytest.importorskip("matplotlib")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = subprocess.run([sys.executable, str(DRIVER), "report", str(REPORT_FIXTURE), str(run_dir), "1"],
                           capture_output=True, text=True, timeout=300, env=cli_env())
    assert first.returncode == 0, first.stderr[-3000:]
    expected_md = (run_dir / "report.md").read_text(encoding="utf-8")
    rng = random.Random(SEED + 2)
    for _ in range(3):
        process = _spawn([str(DRIVER), "report", str(REPORT_FIXTURE), str(run_dir), "1000"])
        line = process.stdout.readline()  # the first round finished: the writer is now mid-loop
        assert line.startswith("round"), process.communicate()[1][-2000:]
        time.sleep(rng.uniform(0.0, 0.3))
        _sigkill(process)
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        assert report["rows"] and report["schema_version"] == 1
        markdown = (run_dir / "report.md").read_text(encoding="utf-8")
        assert markdown.startswith(expected_md.split("\n", 1)[0])
        assert markdown.rstrip().splitlines()[-1].startswith("Stage times (s): ")
        assert (run_dir / "accuracy_vs_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        from PIL import Image

        with Image.open(run_dir / "accuracy_vs_latency.png") as image:
            image.load()  # a truncated PNG fails here
        leftovers = temp_leftovers(run_dir)
        assert all(p.name.endswith(".partial") for p in leftovers), leftovers
        for path in leftovers:  # a killed writer cannot clean up; the next run must not trip over its temp file
            path.unlink() if path.is_file() else shutil.rmtree(path)
