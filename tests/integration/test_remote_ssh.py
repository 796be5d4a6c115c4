"""The remote target over real ssh and scp: an sshd started on 127.0.0.1 with throwaway keys stands in for a board.

The runner, the artifact and the inputs are pushed with scp, run with ssh, and the JSON pulled back, exactly as
for a Raspberry Pi; the remote python is this machine's (numpy and onnxruntime installed), so the pulled logits
must equal a local run's. Skips where OpenSSH's server is not installed (`apt-get install openssh-server`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.benchmarks.arm import RunnerSettings, cross_platform_check, run_local, run_remote

pytestmark = pytest.mark.slow

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
QUICK = RunnerSettings(threads=1, warmup=1, min_iterations=3, min_seconds=0.0, timeout_s=300)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None or shutil.which("ssh-keygen") is None or shutil.which("scp") is None:
        pytest.skip("OpenSSH server/client not installed (apt-get install openssh-server)")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = _free_port()
    (folder / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
        f"PidFile {folder / 'sshd.pid'}", "Subsystem sftp internal-sftp", ""]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.skip(f"sshd would not start here: {server.stderr.read()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.skip("sshd did not listen within 20 s")
    options = [f"IdentityFile={folder / 'client_key'}", f"UserKnownHostsFile={folder / 'known_hosts'}",
               "StrictHostKeyChecking=accept-new", "IdentitiesOnly=yes"]
    user = os.environ.get("USER") or ("root" if os.geteuid() == 0 else os.getlogin())
    yield f"ssh://{user}@127.0.0.1:{port}", options
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def artifact_and_inputs(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("remote")
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64,
                                                     max_position_embeddings=64, num_labels=2)).eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 64, size=(6, 16), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[:, 12:] = 0
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    onnx_path = folder / "model.onnx"
    torch.onnx.export(model, (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(arrays["token_type_ids"])),
                      str(onnx_path), input_names=list(arrays), output_names=["logits"], opset_version=17,
                      dynamic_axes={name: {0: "batch", 1: "seq"} for name in arrays}, dynamo=False)
    inputs = folder / "inputs.npz"
    np.savez(inputs, **arrays)
    return onnx_path, inputs


def test_runner_round_trip_over_real_ssh_matches_a_local_run(sshd, artifact_and_inputs, tmp_path):
    destination, options = sshd
    artifact, inputs = artifact_and_inputs
    remote_dir = tmp_path / "on-the-board"
    local = run_local(artifact, inputs, QUICK)
    remote = run_remote(destination, artifact, inputs, QUICK, python=sys.executable, ssh_options=options,
                        remote_dir=str(remote_dir))
    assert remote.ok, remote.error
    assert remote.emulated is False and remote.target.startswith("ssh:") and remote.runtime == "onnxruntime"
    assert len(remote.samples_ms) >= QUICK.min_iterations
    check = cross_platform_check(local, remote)
    assert check["difference"]["argmax_agreement"] == 1.0 and check["difference"]["max_abs_diff"] < 1e-5, check
    assert not remote_dir.exists()  # the pushed files are removed from the device afterwards


def test_a_host_that_refuses_the_key_is_a_result_that_says_why(sshd, artifact_and_inputs):
    destination, options = sshd
    artifact, inputs = artifact_and_inputs
    wrong = [o for o in options if not o.startswith("IdentityFile=")] + ["IdentityFile=/nonexistent/key"]
    remote = run_remote(destination, artifact, inputs, QUICK, python=sys.executable, ssh_options=wrong)
    assert not remote.ok and "unreachable or not writable" in remote.error
