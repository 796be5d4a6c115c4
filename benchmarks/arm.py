"""The ARM target, host side: run `arm_runner.py` on an arm64 machine and bring its JSON back.

Two ways, one runner (benchmarks/arm_runner.py, numpy + one runtime, no torch):
    run_qemu(rootfs, ...)    a local arm64 root filesystem under QEMU user-mode emulation (built by
                             scripts/build_arm64_rootfs.sh): proves the artifact loads, runs and agrees with x86 on
                             ARM. Its timings are labelled `emulated` and belong in no table beside native numbers.
    run_remote(spec, ...)    a real device: `ssh://user@host[:port]` (scp push, ssh run, scp pull) or
                             `adb[:SERIAL]` (adb push, adb shell, adb pull).
    run_local(...)           the same runner on this machine: the x86 reference for `compare_outputs`.

A missing root filesystem, an unreachable device or a runner that fails gives an `ArmResult` whose `error` says
why; nothing here raises for a target that cannot be measured, so the rest of a report still completes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.stats import LatencyStats
from tinybert_edge.converters.parity import row_cosine
from tinybert_edge.errors import BenchmarkError, ConfigError

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("arm_runner.py")
DEFAULT_ROOTFS = Path(__file__).resolve().parents[1] / ".arm64-rootfs"
BUILD_SCRIPT = "scripts/build_arm64_rootfs.sh"
ROOTFS_PYTHON = "/venv/bin/python"
BUILT_MARKER = ".tinybert-edge/versions.json"
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def build_command(rootfs: str | os.PathLike[str] = DEFAULT_ROOTFS) -> str:
    return f"sudo {BUILD_SCRIPT} {rootfs}"


# --- run settings and results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunnerSettings:
    """What the runner is told: threads, batch, run rules (warm-up, then >= min_iterations and >= min_seconds)."""

    threads: int = 1
    batch_size: int = 1
    warmup: int = 5
    min_iterations: int = 20
    min_seconds: float = 2.0
    max_rows: int | None = None
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        for name in ("threads", "batch_size", "min_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} = {value!r} is not allowed; allowed: an integer >= 1")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"warmup = {self.warmup!r} is not allowed; allowed: an integer >= 0")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 1):
            raise ConfigError(f"max_rows = {self.max_rows!r} is not allowed; allowed: None or an integer >= 1")
        for name in ("min_seconds", "timeout_s"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise ConfigError(f"{name} = {getattr(self, name)!r} is not allowed; allowed: a number >= 0")

    def runner_args(self, model: str, inputs: str, out: str) -> list[str]:
        args = ["--model", model, "--inputs", inputs, "--out", out, "--threads", str(self.threads),
                "--batch-size", str(self.batch_size), "--warmup", str(self.warmup),
                "--min-iterations", str(self.min_iterations), "--min-seconds", repr(float(self.min_seconds))]
        if self.max_rows is not None:
            args += ["--max-rows", str(self.max_rows)]
        return args


@dataclass
class ArmResult:
    """One artifact run by the runner on one target. Times in ms; `logits` is [rows, labels] float32."""

    target: str
    artifact: str
    emulated: bool
    runtime: str | None = None
    samples_ms: list[float] = field(default_factory=list, repr=False)
    stats: LatencyStats | None = None
    logits: np.ndarray | None = field(default=None, repr=False)
    cold_start_ms: float | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    seq_len: int | None = None
    bucket: int | None = None
    threads: int | None = None
    platform: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.stats is not None

    @classmethod
    def from_runner(cls, target: str, artifact: str, emulated: bool, data: Mapping[str, Any]) -> "ArmResult":
        """The runner's JSON as a result; statistics derived again from the raw samples (LatencyStats)."""
        result = cls(target=target, artifact=artifact, emulated=emulated, platform=dict(data.get("platform") or {}),
                     versions=dict(data.get("versions") or {}), error=data.get("error"))
        if result.error is not None:
            return result
        result.runtime = data["runtime"]
        result.samples_ms = [float(v) for v in data["samples_ms"]]
        result.stats = LatencyStats.from_samples(result.samples_ms, int(data["batch_size"]))
        result.logits = np.asarray(data["logits"], dtype=np.float32)
        for name in ("cold_start_ms", "load_ms", "first_inference_ms"):
            setattr(result, name, float(data[name]))
        result.seq_len, result.bucket, result.threads = data["seq_len"], data.get("bucket"), data["threads"]
        return result

    def to_dict(self, with_logits: bool = False) -> dict[str, Any]:
        """JSON-ready. Every timing carries the `emulated` label, so no table can take it for a native number."""
        stats = None if self.stats is None else {**self.stats.summary(), "emulated": self.emulated}
        out = {
            "target": self.target, "artifact": self.artifact, "emulated": self.emulated, "runtime": self.runtime,
            "seq_len": self.seq_len, "bucket": self.bucket, "threads": self.threads, "stats": stats,
            "cold_start_ms": self.cold_start_ms, "load_ms": self.load_ms,
            "first_inference_ms": self.first_inference_ms, "platform": self.platform, "versions": self.versions,
            "error": self.error, "samples_ms": list(self.samples_ms),
        }
        if with_logits:
            out["logits"] = None if self.logits is None else self.logits.tolist()
        return out


# --- transports --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    def why(self) -> str:
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.returncode}"


Transport = Callable[[Sequence[str], float], CommandResult]


def subprocess_transport(command: Sequence[str], timeout_s: float, env: Mapping[str, str] | None = None) -> CommandResult:
    """Run a command here; a missing program or a timeout comes back as a failed CommandResult."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except FileNotFoundError:
        return CommandResult(127, stderr=f"'{command[0]}' is not installed on this machine")
    except subprocess.TimeoutExpired:
        return CommandResult(124, stderr=f"timed out after {timeout_s:g} s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def _read_result(path: Path, target: str, artifact: str, emulated: bool, ran: CommandResult) -> ArmResult:
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            return ArmResult(target, artifact, emulated, error=f"the runner's result is not JSON: {exc}")
        try:
            return ArmResult.from_runner(target, artifact, emulated, data)
        except (KeyError, TypeError, ValueError, BenchmarkError) as exc:
            return ArmResult(target, artifact, emulated, error=f"the runner's result is incomplete: {exc!r}")
    return ArmResult(target, artifact, emulated, error=f"the runner wrote no result: {ran.why()}")


def _check_files(artifact: Path, inputs_npz: Path) -> str | None:
    if not artifact.is_file():
        return f"artifact '{artifact}' does not exist"
    if artifact.suffix not in (".onnx", ".tflite"):
        return f"artifact '{artifact}' is neither .onnx nor .tflite"
    if not inputs_npz.is_file():
        return f"inputs '{inputs_npz}' do not exist"
    return None


def run_local(artifact: str | os.PathLike[str], inputs_npz: str | os.PathLike[str],
              settings: RunnerSettings = RunnerSettings(), python: str = sys.executable) -> ArmResult:
    """The runner on this machine (the reference side of `compare_outputs`), in its own subprocess."""
    artifact, inputs_npz = Path(artifact), Path(inputs_npz)
    target = f"local:{platform.machine()}"
    if (problem := _check_files(artifact, inputs_npz)) is not None:
        return ArmResult(target, str(artifact), False, error=problem)
    with tempfile.TemporaryDirectory(prefix="tinybert-edge-arm-") as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, **{name: str(settings.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
        ran = subprocess_transport([python, str(RUNNER), *settings.runner_args(str(artifact), str(inputs_npz), str(out))],
                                   settings.timeout_s, env=env)
        return _read_result(out, target, str(artifact), False, ran)


# --- QEMU user-mode emulation ------------------------------------------------------------------------------------


def qemu_problem(rootfs: Path) -> str | None:
    """Why the arm64 root filesystem cannot run the runner here, or None when it can."""
    if not (rootfs / BUILT_MARKER).is_file():  # written by the build script once its last check passed
        return f"no finished arm64 root filesystem at '{rootfs}'; build it with: {build_command(rootfs)}"
    if os.geteuid() != 0:
        return f"chroot into '{rootfs}' needs root; run as root (or sudo)"
    try:
        entry = BINFMT_ENTRY.read_text(encoding="utf-8")
    except OSError:
        return f"the qemu-aarch64 binfmt handler is not registered (after a reboot); rerun: {build_command(rootfs)}"
    if not entry.startswith("enabled"):
        return "the qemu-aarch64 binfmt handler is disabled; enable it: update-binfmts --enable qemu-aarch64"
    return None


def qemu_command(rootfs: Path, job: str, settings: RunnerSettings, model_name: str) -> list[str]:
    """The host command that runs the runner inside `rootfs` (job: the folder inside the chroot holding the files).

    The environment is emptied so the chroot sees none of the host's pip or thread settings. Neither /proc nor /sys
    is mounted inside: QEMU 7.2 (bookworm) passes the host's x86 /proc/cpuinfo through, and with the host's /sys
    ONNX Runtime's cpuinfo crashed (SIGSEGV); without them it warns and runs. The emulated CPU's features come
    from the auxiliary vector (the runner's `hwcaps`)."""
    runner = [ROOTFS_PYTHON, f"{job}/arm_runner.py",
              *settings.runner_args(f"{job}/{model_name}", f"{job}/inputs.npz", f"{job}/result.json")]
    env = ["env", "-i", f"PATH={CLEAN_PATH}", "HOME=/root", "LANG=C.UTF-8", f"OMP_NUM_THREADS={settings.threads}"]
    return [*env, "chroot", str(rootfs), *runner]


def run_qemu(rootfs: str | os.PathLike[str], artifact: str | os.PathLike[str], inputs_npz: str | os.PathLike[str],
             settings: RunnerSettings = RunnerSettings(), transport: Transport | None = None) -> ArmResult:
    """Copy the runner, the artifact and the inputs into `rootfs`, run them under QEMU user-mode emulation
    (`chroot ROOTFS /venv/bin/python ...`) and pull the JSON back. Every timing is labelled emulated."""
    rootfs, artifact, inputs_npz = Path(rootfs).resolve(), Path(artifact), Path(inputs_npz)
    target = f"qemu-aarch64:{rootfs}"
    problem = _check_files(artifact, inputs_npz) or qemu_problem(rootfs)
    if problem is not None:
        return ArmResult(target, str(artifact), True, error=problem)
    job = f"/work/job-{os.getpid()}-{secrets.token_hex(4)}"
    host_job = rootfs / job.lstrip("/")
    host_job.mkdir(parents=True)
    try:
        shutil.copy2(RUNNER, host_job / "arm_runner.py")
        shutil.copy2(artifact, host_job / artifact.name)
        shutil.copy2(inputs_npz, host_job / "inputs.npz")
        command = qemu_command(rootfs, job, settings, artifact.name)
        log.info("running %s under QEMU in %s", artifact.name, rootfs)
        ran = (transport or subprocess_transport)(command, settings.timeout_s)
        return _read_result(host_job / "result.json", target, str(artifact), True, ran)
    finally:
        shutil.rmtree(host_job, ignore_errors=True)


# --- remote devices (ssh, adb) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteSpec:
    """`ssh://user@host[:port]`, `user@host` or `host` (ssh); `adb`, `adb:SERIAL` or `adb://SERIAL` (adb)."""

    kind: str
    destination: str = ""
    port: int | None = None
    # Extra `-o KEY=VALUE` options for ssh and scp (an IdentityFile, a ProxyJump, a known-hosts file).
    ssh_options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "RemoteSpec":
        text = text.strip()
        if text in ("adb", "adb:", "adb://"):
            return cls("adb")
        for prefix in ("adb://", "adb:"):
            if text.startswith(prefix):
                return cls("adb", text[len(prefix) :])
        body = text[len("ssh://") :] if text.startswith("ssh://") else text
        host, _, port = body.rpartition(":") if body.count(":") == 1 else (body, "", "")
        if not host or any(c.isspace() for c in host) or host.startswith("-") or (port and not port.isdigit()):
            raise ConfigError(f"target = {text!r} is not allowed; allowed: ssh://user@host[:port], user@host, "
                              f"adb or adb:SERIAL")
        return cls("ssh", host, int(port) if port else None)

    @property
    def label(self) -> str:
        if self.kind == "adb":
            return f"adb:{self.destination or 'default'}"
        return f"ssh:{self.destination}" + (f":{self.port}" if self.port else "")

    def shell(self, command: str) -> list[str]:
        if self.kind == "adb":
            return ["adb", *self._serial(), "shell", command]
        return ["ssh", *self._ssh_options("-p"), self.destination, command]

    def push(self, local: Path, remote: str) -> list[str]:
        if self.kind == "adb":
            return ["adb", *self._serial(), "push", str(local), remote]
        return ["scp", "-q", *self._ssh_options("-P"), str(local), f"{self.destination}:{remote}"]

    def pull(self, remote: str, local: Path) -> list[str]:
        if self.kind == "adb":
            return ["adb", *self._serial(), "pull", remote, str(local)]
        return ["scp", "-q", *self._ssh_options("-P"), f"{self.destination}:{remote}", str(local)]

    def _serial(self) -> list[str]:
        return ["-s", self.destination] if self.destination else []

    def _ssh_options(self, port_flag: str) -> list[str]:
        # BatchMode: fail at once instead of waiting for a password nobody will type.
        options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
        for option in self.ssh_options:
            options += ["-o", option]
        return options + ([port_flag, str(self.port)] if self.port else [])


def remote_commands(spec: RemoteSpec, artifact: Path, inputs_npz: Path, result: Path, settings: RunnerSettings,
                    remote_dir: str, python: str = "python3") -> dict[str, list[list[str]]]:
    """The commands of one remote run, by phase: setup (mkdir, pushes), run, pull, cleanup."""
    q = shlex.quote
    runner_args = settings.runner_args(artifact.name, "inputs.npz", "result.json")
    run = (f"cd {q(remote_dir)} && OMP_NUM_THREADS={settings.threads} {q(python)} arm_runner.py "
           + " ".join(q(a) for a in runner_args))
    return {
        "setup": [spec.shell(f"rm -rf {q(remote_dir)} && mkdir -p {q(remote_dir)}"),
                  spec.push(RUNNER, f"{remote_dir}/arm_runner.py"),
                  spec.push(artifact, f"{remote_dir}/{artifact.name}"),
                  spec.push(inputs_npz, f"{remote_dir}/inputs.npz")],
        "run": [spec.shell(run)],
        "pull": [spec.pull(f"{remote_dir}/result.json", result)],
        "cleanup": [spec.shell(f"rm -rf {q(remote_dir)}")],
    }


def run_remote(host_spec: str, artifact: str | os.PathLike[str], inputs_npz: str | os.PathLike[str],
               settings: RunnerSettings = RunnerSettings(), transport: Transport | None = None,
               python: str = "python3", remote_dir: str | None = None,
               ssh_options: Sequence[str] = ()) -> ArmResult:
    """Push the runner with the artifact and inputs to a real device, run it there with its `python` (numpy and
    the runtime installed), pull the JSON back. adb's default folder is /data/local/tmp (writable by the shell
    user); ssh's is /tmp. `ssh_options` are `KEY=VALUE` options for ssh and scp. Native timings: `emulated` is
    False."""
    spec = RemoteSpec.parse(host_spec)
    bad = [o for o in ssh_options if "=" not in o or o.startswith("-") or any(c.isspace() for c in o.split("=")[0])]
    if bad:
        raise ConfigError(f"ssh option(s) {bad} not allowed; allowed: KEY=VALUE as ssh -o takes it, e.g. "
                          "IdentityFile=~/.ssh/board")
    if ssh_options:
        spec = dataclasses.replace(spec, ssh_options=tuple(ssh_options))
    artifact, inputs_npz = Path(artifact), Path(inputs_npz)
    if (problem := _check_files(artifact, inputs_npz)) is not None:
        return ArmResult(spec.label, str(artifact), False, error=problem)
    transport = transport or subprocess_transport
    token = secrets.token_hex(4)
    remote_dir = remote_dir or ("/data/local/tmp" if spec.kind == "adb" else "/tmp") + f"/tinybert-edge-{token}"
    with tempfile.TemporaryDirectory(prefix="tinybert-edge-remote-") as tmp:
        result_path = Path(tmp) / "result.json"
        phases = remote_commands(spec, artifact, inputs_npz, result_path, settings, remote_dir, python)
        for command in phases["setup"]:
            done = transport(command, 600.0)
            if done.returncode != 0:
                return ArmResult(spec.label, str(artifact), False,
                                 error=f"{spec.label} unreachable or not writable ({command[0]} failed): {done.why()}")
        try:
            ran = transport(phases["run"][0], settings.timeout_s)
            # A failed runner still writes {"error": ...}; pull it to say why.
            pulled = transport(phases["pull"][0], 600.0)
        finally:
            transport(phases["cleanup"][0], 120.0)
        if pulled.returncode != 0:
            failed = f"; the runner failed: {ran.why()}" if ran.returncode != 0 else ""
            return ArmResult(spec.label, str(artifact), False,
                             error=f"could not pull the result from {spec.label}: {pulled.why()}{failed}")
        return _read_result(result_path, spec.label, str(artifact), False, ran)


# --- cross-platform output differences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputDifference:
    """How far one platform's logits are from another's on the same input rows."""

    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    min_cosine: float
    mean_cosine: float

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def compare_outputs(x86_logits: Any, arm_logits: Any) -> OutputDifference:
    """Max and mean absolute difference, argmax agreement (fraction of rows) and per-row cosine similarity."""
    ref = np.asarray(x86_logits, dtype=np.float64)
    got = np.asarray(arm_logits, dtype=np.float64)
    if ref.shape != got.shape or ref.ndim != 2 or ref.shape[0] == 0:
        raise BenchmarkError(f"logits to compare must be [rows, labels] of one shape; got {ref.shape} and {got.shape}")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(got))):
        raise BenchmarkError("logits hold NaN or infinity; the artifact's outputs cannot be compared")
    diff = np.abs(ref - got)
    cosine = row_cosine(ref, got)
    return OutputDifference(
        rows=int(ref.shape[0]),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        argmax_agreement=float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1))),
        min_cosine=float(cosine.min()),
        mean_cosine=float(cosine.mean()),
    )


def cross_platform_check(reference: ArmResult, candidate: ArmResult) -> dict[str, Any]:
    """One row of the cross-platform report: the candidate's run, and its logits against the reference's."""
    row: dict[str, Any] = {"artifact": candidate.artifact, "reference": reference.target,
                           "target": candidate.target, "emulated": candidate.emulated, "difference": None}
    if not reference.ok or not candidate.ok:
        row["error"] = candidate.error or f"reference run failed: {reference.error}"
        return row
    try:
        row["difference"] = compare_outputs(reference.logits, candidate.logits).to_dict()
    except BenchmarkError as exc:
        row["error"] = str(exc)
    return row


def render_markdown(results: Sequence[ArmResult], checks: Sequence[Mapping[str, Any]]) -> str:
    """Native and emulated timings in separate tables (never one beside the other), then the output differences."""
    def table(rows: Sequence[ArmResult]) -> list[str]:
        lines = ["| artifact | target | runtime | seq (bucket) | p50 ms | p90 ms | p99 ms | n | status |",
                 "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for r in rows:
            name = Path(r.artifact).name
            if not r.ok:
                lines.append(f"| {name} | {r.target} | | | | | | | {r.error} |")
                continue
            seq = f"{r.seq_len}" + (f" ({r.bucket})" if r.bucket else "")
            s = r.stats
            lines.append(f"| {name} | {r.target} | {r.runtime} | {seq} | {s.p50_ms:.2f} | {s.p90_ms:.2f} | "
                         f"{s.p99_ms:.2f} | {s.n} | ok |")
        return lines

    out: list[str] = []
    native = [r for r in results if not r.emulated]
    emulated = [r for r in results if r.emulated]
    if native:
        out += ["### Native", "", *table(native), ""]
    if emulated:
        out += ["### Emulated (QEMU user-mode; these times say nothing about a real ARM CPU)", "", *table(emulated), ""]
    if checks:
        out += ["### Cross-platform output differences", "",
                "| artifact | reference | target | rows | max abs diff | mean abs diff | argmax agreement | min cosine |",
                "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for c in checks:
            d = c.get("difference")
            if d is None:
                out.append(f"| {Path(c['artifact']).name} | {c['reference']} | {c['target']} | | | | | {c.get('error')} |")
            else:
                out.append(f"| {Path(c['artifact']).name} | {c['reference']} | {c['target']} | {d['rows']} | "
                           f"{d['max_abs_diff']:.3g} | {d['mean_abs_diff']:.3g} | {d['argmax_agreement']:.4f} | "
                           f"{d['min_cosine']:.6f} |")
        out.append("")
    return "\n".join(out)


# --- inputs ------------------------------------------------------------------------------------------------------


def tokenize_to_npz(tokenizer_dir: str | os.PathLike[str], texts: Sequence[str], path: str | os.PathLike[str],
                    max_length: int) -> Path:
    """Tokenize real texts on the host (transformers) into the .npz the runner reads: int64 [rows, max_length]."""
    from transformers import AutoTokenizer

    from tinybert_edge.io import atomic_path

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
    arrays = {name: np.asarray(encoded[name], dtype=np.int64)
              for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return Path(path)


# --- command line: python -m tinybert_edge.benchmarks.arm ---------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from tinybert_edge.io import write_json_atomic, write_text_atomic

    parser = argparse.ArgumentParser(description="Run artifacts on ARM targets and compare their outputs with x86.")
    parser.add_argument("--artifact", action="append", required=True, help=".onnx or .tflite (repeatable)")
    parser.add_argument("--inputs", required=True, help=".npz of tokenized rows")
    parser.add_argument("--out", required=True, help="report .json (a .md is written beside it)")
    parser.add_argument("--rootfs", default=None, help=f"arm64 root filesystem (QEMU); default {DEFAULT_ROOTFS}")
    parser.add_argument("--remote", action="append", default=[], help="ssh://user@host[:port] or adb[:SERIAL]")
    parser.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to ssh and scp as -o KEY=VALUE (repeatable), e.g. IdentityFile=~/.ssh/board")
    parser.add_argument("--remote-python", default="python3", help="python on the remote device (default python3)")
    parser.add_argument("--no-qemu", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-iterations", type=int, default=10)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-rows", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = RunnerSettings(threads=args.threads, warmup=args.warmup, min_iterations=args.min_iterations,
                              min_seconds=args.min_seconds, max_rows=args.max_rows)
    results: list[ArmResult] = []
    checks: list[dict[str, Any]] = []
    for artifact in args.artifact:
        reference = run_local(artifact, args.inputs, settings)
        results.append(reference)
        candidates = [] if args.no_qemu else [run_qemu(args.rootfs or DEFAULT_ROOTFS, artifact, args.inputs, settings)]
        candidates += [run_remote(spec, artifact, args.inputs, settings, python=args.remote_python,
                                  ssh_options=args.ssh_option) for spec in args.remote]
        for candidate in candidates:
            results.append(candidate)
            checks.append(cross_platform_check(reference, candidate))
    report = {"schema": "tinybert-edge/arm-report/1", "results": [r.to_dict() for r in results], "checks": checks}
    write_json_atomic(args.out, report)
    write_text_atomic(Path(args.out).with_suffix(".md"), render_markdown(results, checks))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
