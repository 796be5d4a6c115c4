"""The ARM target: the standalone runner (buckets, padding, run rules, statistics) on a tiny ONNX graph built with
onnx.helper, the QEMU and remote command construction with fake transports, and the output comparison.

Nothing here needs an arm64 root filesystem or a device; tests/integration/test_arm_qemu.py runs the real thing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from tinybert_edge.benchmarks import arm, arm_runner
from tinybert_edge.benchmarks.arm import (
    ArmResult,
    CommandResult,
    RemoteSpec,
    RunnerSettings,
    compare_outputs,
    cross_platform_check,
    qemu_command,
    remote_commands,
    render_markdown,
    run_local,
    run_qemu,
    run_remote,
)
from tinybert_edge.benchmarks.stats import LatencyStats
from tinybert_edge.errors import BenchmarkError, ConfigError

QUICK = RunnerSettings(threads=1, warmup=1, min_iterations=4, min_seconds=0.0, timeout_s=120)
WEIGHTS = np.array([[0.01, -0.01]], dtype=np.float32)
BIAS = np.array([0.0, 1.0], dtype=np.float32)


def _expected_logits(inputs: dict[str, np.ndarray]) -> np.ndarray:
    total = (inputs["input_ids"] * inputs["attention_mask"] + inputs["token_type_ids"]).sum(axis=1, keepdims=True)
    return total.astype(np.float32) @ WEIGHTS + BIAS


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """logits = sum(ids * mask + segments) @ W + b: a classifier-shaped graph with dynamic [batch, seq] int64 inputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    names = ("input_ids", "attention_mask", "token_type_ids")
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in names]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])
    nodes = [
        helper.make_node("Mul", ["input_ids", "attention_mask"], ["masked"]),
        helper.make_node("Add", ["masked", "token_type_ids"], ["tokens"]),
        helper.make_node("Cast", ["tokens"], ["tokens_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["tokens_f", "axes"], ["total"], keepdims=1),
        helper.make_node("MatMul", ["total", "weights"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
    ]
    initializers = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
                    numpy_helper.from_array(WEIGHTS, "weights"), numpy_helper.from_array(BIAS, "bias")]
    graph = helper.make_graph(nodes, "tiny_classifier", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(7, 12), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[:, 9:] = 0
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    path = tmp_path_factory.mktemp("inputs") / "inputs.npz"
    np.savez(path, **arrays)
    return path, arrays


# --- the runner --------------------------------------------------------------------------------------------------


def test_runner_imports_only_the_standard_library_numpy_and_runtimes():
    tree = ast.parse(Path(arm_runner.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party <= {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime"}, third_party


def test_bucket_selection_takes_the_smallest_signature_that_fits():
    assert arm_runner.select_bucket([128, 64], 10) == 64
    assert arm_runner.select_bucket([64, 128], 64) == 64
    assert arm_runner.select_bucket([64, 128], 65) == 128
    with pytest.raises(arm_runner.RunnerError, match="longer than every signature"):
        arm_runner.select_bucket([64, 128], 129)


def test_padding_fills_zeros_and_casts():
    batch = {"input_ids": np.array([[5, 6, 7]]), "attention_mask": np.array([[1, 1, 0]])}
    padded = arm_runner.pad_rows(batch, 5, ("input_ids", "attention_mask", "token_type_ids"), np.int32)
    assert padded["input_ids"].tolist() == [[5, 6, 7, 0, 0]]
    assert padded["attention_mask"].tolist() == [[1, 1, 0, 0, 0]]
    assert padded["token_type_ids"].tolist() == [[0, 0, 0, 0, 0]]  # absent from the batch: zeros
    assert all(a.dtype == np.int32 for a in padded.values())


class _FakeSignature:
    """A LiteRT signature runner of batch 1 that records what it was fed and returns [sum of ids, length]."""

    def __init__(self, length: int) -> None:
        self.length, self.calls = length, []

    def __call__(self, **feed):
        self.calls.append({k: v.copy() for k, v in feed.items()})
        ids = feed["input_ids"]
        return {"logits": np.stack([ids.sum(axis=1), np.full(len(ids), self.length)], axis=1).astype(np.float32)}


def test_litert_model_runs_rows_in_the_smallest_fitting_signature():
    model = object.__new__(arm_runner.LiteRtModel)
    small, large = _FakeSignature(8), _FakeSignature(16)
    names = ("input_ids", "attention_mask", "token_type_ids")
    model.signatures = {8: (small, 1, names, "logits"), 16: (large, 1, names, "logits")}
    batch = {"input_ids": np.array([[1, 2, 3], [4, 5, 0]]), "attention_mask": np.array([[1, 1, 1], [1, 1, 0]]),
             "token_type_ids": np.zeros((2, 3), dtype=np.int64)}
    logits = model.run(batch)
    assert logits.tolist() == [[6.0, 8.0], [9.0, 8.0]]
    assert len(small.calls) == 2 and not large.calls  # batch-1 signature: one call per row
    assert small.calls[0]["input_ids"].tolist() == [[1, 2, 3, 0, 0, 0, 0, 0]]
    assert small.calls[0]["input_ids"].dtype == np.int32
    model.run({name: np.ones((1, 9), dtype=np.int64) for name in names})
    assert len(large.calls) == 1 and large.calls[0]["input_ids"].shape == (1, 16)


def test_time_calls_needs_both_min_iterations_and_min_seconds():
    now = [0]

    def clock() -> int:  # every reading advances 1 ms
        now[0] += 1_000_000
        return now[0]

    calls = []
    samples, _ = arm_runner.time_calls(calls.append, [0, 1, 2], warmup=2, min_iterations=3, min_seconds=0.0, clock=clock)
    assert len(samples) == 3 and len(calls) == 5 and all(s == 1.0 for s in samples)
    calls.clear()
    samples, wall = arm_runner.time_calls(calls.append, [0], warmup=0, min_iterations=3, min_seconds=0.02, clock=clock)
    assert len(samples) > 3 and wall >= 0.02  # the seconds rule keeps it going past the iterations


def test_runner_statistics_match_latency_stats():
    samples = [float(v) for v in range(1, 101)]
    summary = arm_runner.latency_summary(samples, batch_size=2)
    stats = LatencyStats.from_samples(samples, batch_size=2)
    for key, value in stats.summary().items():
        assert summary[key] == pytest.approx(value), key


def test_runner_on_a_tiny_onnx_model_in_its_own_process(tiny_onnx, inputs):
    path, arrays = inputs
    result = run_local(tiny_onnx, path, RunnerSettings(batch_size=3, warmup=1, min_iterations=5, min_seconds=0.05))
    assert result.ok, result.error
    assert result.emulated is False and result.runtime == "onnxruntime"
    np.testing.assert_allclose(result.logits, _expected_logits(arrays), rtol=1e-6)  # every row, batch 3 of 7 rows
    assert result.stats.n >= 5 and len(result.samples_ms) == result.stats.n and result.stats.batch_size == 3
    assert result.seq_len == 12 and result.bucket is None and result.threads == 1
    assert result.platform["machine"] and isinstance(result.platform["cpuinfo_asimddp"], bool)
    assert "onnxruntime" in result.versions and "numpy" in result.versions
    assert result.cold_start_ms == pytest.approx(result.load_ms + result.first_inference_ms)


def test_runner_failure_is_a_result_with_the_reason(tmp_path, inputs):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    result = run_local(broken, inputs[0], QUICK)
    assert not result.ok and "broken.onnx" in result.error
    out = tmp_path / "r.json"
    code = subprocess.run([sys.executable, arm_runner.__file__, "--model", str(broken), "--inputs", str(inputs[0]),
                           "--out", str(out)], capture_output=True, text=True).returncode
    assert code == 1 and "error" in json.loads(out.read_text())
    missing = run_local(tmp_path / "absent.tflite", inputs[0], QUICK)
    assert "does not exist" in missing.error


# --- QEMU --------------------------------------------------------------------------------------------------------


def test_missing_rootfs_is_an_error_row_that_names_the_build_command(tmp_path, tiny_onnx, inputs):
    result = run_qemu(tmp_path / "no-rootfs", tiny_onnx, inputs[0], QUICK)
    assert not result.ok and result.emulated is True
    assert "scripts/build_arm64_rootfs.sh" in result.error
    assert result.to_dict()["error"] == result.error


def test_qemu_command_chroots_with_a_clean_environment(tmp_path):
    command = qemu_command(tmp_path, "/work/job", RunnerSettings(threads=2), "m.tflite")
    assert command[:2] == ["env", "-i"] and "OMP_NUM_THREADS=2" in command
    assert not any(c.startswith(("PIP_", "PYTHONPATH")) for c in command)
    chroot = command[command.index("chroot"):]
    assert chroot[:4] == ["chroot", str(tmp_path), "/venv/bin/python", "/work/job/arm_runner.py"]
    assert chroot[4:] == RunnerSettings(threads=2).runner_args(
        "/work/job/m.tflite", "/work/job/inputs.npz", "/work/job/result.json")


def test_run_qemu_copies_runs_pulls_and_labels_emulated(tmp_path, tiny_onnx, inputs, monkeypatch):
    """The transport stands in for chroot: it maps the chroot paths back onto the root filesystem and runs the
    runner with this interpreter, so copying, pulling, cleanup and labelling are the real code."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "venv/bin").mkdir(parents=True)
    (rootfs / "venv/bin/python").write_text("")
    monkeypatch.setattr(arm, "qemu_problem", lambda _: None)
    seen: list[list[str]] = []

    def fake_chroot(command: Sequence[str], timeout_s: float) -> CommandResult:
        seen.append(list(command))
        runner = command[command.index("chroot") + 3 :]
        mapped = [str(rootfs) + a if a.startswith("/work/") else a for a in runner]
        done = subprocess.run([sys.executable, *mapped], capture_output=True, text=True)
        return CommandResult(done.returncode, done.stdout, done.stderr)

    result = run_qemu(rootfs, tiny_onnx, inputs[0], QUICK, transport=fake_chroot)
    assert result.ok, result.error
    assert result.emulated is True and result.to_dict()["stats"]["emulated"] is True
    assert result.target.startswith("qemu-aarch64:")
    np.testing.assert_allclose(result.logits, _expected_logits(inputs[1]), rtol=1e-6)
    assert len(seen) == 1 and not list((rootfs / "work").iterdir())  # the job folder is gone


# --- remote devices ----------------------------------------------------------------------------------------------


class FakeTransport:
    """Records every command; answers `pull` by writing a runner result where the command says, like scp would."""

    def __init__(self, result: dict | None, fail_first: int | None = None) -> None:
        self.commands: list[list[str]] = []
        self.result, self.fail_first = result, fail_first

    def __call__(self, command: Sequence[str], timeout_s: float) -> CommandResult:
        self.commands.append(list(command))
        if self.fail_first is not None:
            return CommandResult(self.fail_first, stderr="ssh: connect to host board port 22: No route to host")
        pulling = "pull" in command or (command[0] == "scp" and ":" in command[-2])
        if pulling and self.result is not None:
            Path(command[-1]).write_text(json.dumps(self.result))
        return CommandResult(0)


def _runner_result(rows: int = 2) -> dict:
    return {"schema": arm_runner.SCHEMA, "runtime": "onnxruntime", "samples_ms": [2.0, 3.0, 4.0], "batch_size": 1,
            "logits": [[0.5, -0.5]] * rows, "cold_start_ms": 9.0, "load_ms": 7.0, "first_inference_ms": 2.0,
            "seq_len": 12, "bucket": None, "threads": 4, "platform": {"machine": "aarch64"}, "versions": {}}


def test_remote_spec_parsing():
    assert RemoteSpec.parse("ssh://pi@board:2222") == RemoteSpec("ssh", "pi@board", 2222)
    assert RemoteSpec.parse("pi@board") == RemoteSpec("ssh", "pi@board", None)
    assert RemoteSpec.parse("adb") == RemoteSpec("adb", "")
    assert RemoteSpec.parse("adb:R58M12345") == RemoteSpec("adb", "R58M12345")
    for bad in ("", "ssh://", "pi@board:port", "-oProxyCommand=x"):
        with pytest.raises(ConfigError, match="target"):
            RemoteSpec.parse(bad)


def test_ssh_commands_push_run_pull_and_clean_up(tmp_path, tiny_onnx, inputs):
    fake = FakeTransport(_runner_result())
    settings = RunnerSettings(threads=4, warmup=3, min_iterations=50, min_seconds=5.0)
    result = run_remote("ssh://pi@board:2222", tiny_onnx, inputs[0], settings, transport=fake, remote_dir="/tmp/tbe")
    assert result.ok and result.emulated is False and result.target == "ssh:pi@board:2222"
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-p", "2222", "pi@board"]
    scp = ["scp", "-q", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-P", "2222"]
    c = fake.commands
    assert c[0] == [*ssh, "rm -rf /tmp/tbe && mkdir -p /tmp/tbe"]
    assert c[1] == [*scp, str(arm.RUNNER), "pi@board:/tmp/tbe/arm_runner.py"]
    assert c[2] == [*scp, str(tiny_onnx), "pi@board:/tmp/tbe/tiny.onnx"]
    assert c[3] == [*scp, str(inputs[0]), "pi@board:/tmp/tbe/inputs.npz"]
    assert c[4][:-1] == ssh
    assert c[4][-1] == ("cd /tmp/tbe && OMP_NUM_THREADS=4 python3 arm_runner.py --model tiny.onnx --inputs inputs.npz "
                        "--out result.json --threads 4 --batch-size 1 --warmup 3 --min-iterations 50 --min-seconds 5.0")
    assert c[5][:-1] == [*scp, "pi@board:/tmp/tbe/result.json"]
    assert c[6] == [*ssh, "rm -rf /tmp/tbe"]
    assert len(c) == 7


def test_adb_commands_use_the_serial_and_data_local_tmp(tiny_onnx, inputs):
    fake = FakeTransport(_runner_result())
    result = run_remote("adb:R58M", tiny_onnx, inputs[0], QUICK, transport=fake,
                        python="/data/data/com.termux/files/usr/bin/python")
    assert result.ok and result.target == "adb:R58M"
    assert all(cmd[:3] == ["adb", "-s", "R58M"] for cmd in fake.commands)
    verbs = [cmd[3] for cmd in fake.commands]
    assert verbs == ["shell", "push", "push", "push", "shell", "pull", "shell"]
    remote_dir = fake.commands[1][-1].rsplit("/", 1)[0]
    assert remote_dir.startswith("/data/local/tmp/tinybert-edge-")
    assert "/data/data/com.termux/files/usr/bin/python arm_runner.py" in fake.commands[4][-1]
    assert fake.commands[6][-1] == f"rm -rf {remote_dir}"


def test_unreachable_host_is_an_error_row_not_a_crash(tiny_onnx, inputs):
    fake = FakeTransport(None, fail_first=255)
    result = run_remote("pi@board", tiny_onnx, inputs[0], QUICK, transport=fake)
    assert not result.ok and "ssh:pi@board unreachable" in result.error and "No route to host" in result.error
    assert len(fake.commands) == 1  # nothing more is tried once the first command fails
    with_no_ssh = run_remote("pi@board", tiny_onnx, inputs[0], QUICK,
                             transport=lambda cmd, t: arm.subprocess_transport(["no-such-program-xyz", *cmd[1:]], t))
    assert "not installed" in with_no_ssh.error


def test_remote_runner_error_comes_back_with_its_reason(tiny_onnx, inputs):
    fake = FakeTransport({"schema": arm_runner.SCHEMA, "error": "RunnerError: the model takes 'x'"})
    result = run_remote("adb", tiny_onnx, inputs[0], QUICK, transport=fake)
    assert result.error == "RunnerError: the model takes 'x'" and fake.commands[-1][-1].startswith("rm -rf")


def test_remote_commands_quote_paths(tmp_path):
    spec = RemoteSpec.parse("pi@board")
    phases = remote_commands(spec, Path("/x/my model.onnx"), Path("/x/in.npz"), tmp_path / "r.json", QUICK, "/tmp/a b")
    assert phases["setup"][0][-1] == "rm -rf '/tmp/a b' && mkdir -p '/tmp/a b'"
    assert "--model 'my model.onnx'" in phases["run"][0][-1]


# --- output comparison and report --------------------------------------------------------------------------------


def test_compare_outputs_on_known_values():
    x86 = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    arm64 = np.array([[1.0, 0.1], [0.0, 2.0], [4.0, 3.0]])
    diff = compare_outputs(x86, arm64)
    assert diff.rows == 3
    assert diff.max_abs_diff == pytest.approx(1.0)
    assert diff.mean_abs_diff == pytest.approx((0.1 + 1 + 1) / 6)
    assert diff.argmax_agreement == pytest.approx(2 / 3)
    assert diff.min_cosine == pytest.approx(24 / 25)
    same = compare_outputs(x86, x86)
    assert same.max_abs_diff == 0.0 and same.argmax_agreement == 1.0 and same.min_cosine == pytest.approx(1.0)
    with pytest.raises(BenchmarkError, match="one shape"):
        compare_outputs(x86, x86[:2])
    with pytest.raises(BenchmarkError, match="NaN"):
        compare_outputs(x86, np.full_like(x86, np.nan))


def test_report_keeps_emulated_timings_apart():
    native = ArmResult.from_runner("local:x86_64", "m.onnx", False, _runner_result())
    emulated = ArmResult.from_runner("qemu-aarch64:/r", "m.onnx", True, {**_runner_result(), "samples_ms": [90.0]})
    failed = ArmResult("ssh:pi@board", "m.onnx", False, error="ssh:pi@board unreachable")
    checks = [cross_platform_check(native, emulated), cross_platform_check(native, failed)]
    assert checks[0]["difference"]["argmax_agreement"] == 1.0 and checks[0]["emulated"] is True
    assert checks[1]["difference"] is None and "unreachable" in checks[1]["error"]
    text = render_markdown([native, emulated, failed], checks)
    native_part, emulated_part = text.split("### Emulated")
    assert "90.00" not in native_part and "90.00" in emulated_part.split("### Cross-platform")[0]
    assert "unreachable" in native_part
    assert json.loads(json.dumps(emulated.to_dict()))["stats"]["emulated"] is True


def test_runner_settings_validate():
    with pytest.raises(ConfigError, match="threads"):
        RunnerSettings(threads=0)
    with pytest.raises(ConfigError, match="max_rows"):
        RunnerSettings(max_rows=0)


def test_build_script_parses_and_builds_what_the_host_side_expects():
    script = Path(arm.__file__).resolve().parents[1] / arm.BUILD_SCRIPT
    assert script.stat().st_mode & 0o111, "the build script must be executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    for needed in ("debootstrap --arch=arm64", "qemu-user-static", "update-binfmts --enable qemu-aarch64",
                   "python3 -m venv /venv", arm.BUILT_MARKER.split("/")[-1], "--only-binary=:all:"):
        assert needed in text, needed


def test_ssh_options_reach_ssh_and_scp_and_bad_ones_are_refused(tiny_onnx, inputs):
    fake = FakeTransport(_runner_result())
    result = run_remote("pi@board:2222", tiny_onnx, inputs[0], QUICK, transport=fake,
                        ssh_options=["IdentityFile=/keys/board", "ProxyJump=gate"])
    assert result.ok and len(fake.commands) == 7
    for command in fake.commands:
        assert command[0] in ("ssh", "scp")
        at = command.index("IdentityFile=/keys/board")
        assert command[at - 1] == "-o" and command[at + 1:at + 3] == ["-o", "ProxyJump=gate"]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        run_remote("pi@board", tiny_onnx, inputs[0], QUICK, transport=fake, ssh_options=["-oProxyCommand=x"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        run_remote("pi@board", tiny_onnx, inputs[0], QUICK, transport=fake, ssh_options=["IdentityFile"])
