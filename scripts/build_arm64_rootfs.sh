#!/usr/bin/env bash
# Build an arm64 Debian root filesystem that runs under QEMU user-mode emulation, with a venv holding aarch64
# wheels of numpy, onnxruntime and ai-edge-litert: the local ARM target of the benchmark harness
# (tinybert_edge.benchmarks.arm.run_qemu).
#
#   sudo scripts/build_arm64_rootfs.sh [ROOTFS]        (default: <repo>/.arm64-rootfs, git-ignored)
#
# From nothing: installs Debian's qemu-user-static, binfmt-support and debootstrap on the host, registers the
# qemu-aarch64 binfmt handler (mounting binfmt_misc if needed), debootstraps bookworm (minbase + python3), copies
# the host's CA bundle in, creates /venv and pip-installs the wheels from PyPI (binary wheels only: nothing is
# compiled under emulation). Idempotent: each finished step leaves a marker under ROOTFS/.tinybert-edge/ and is
# skipped on the next run; the binfmt registration (lost at reboot) is checked every time.
#
# Environment overrides:
#   DEBIAN_MIRROR            debootstrap mirror            (default http://deb.debian.org/debian)
#   ARM_PIP_PACKAGES         wheels installed in /venv     (default "numpy onnxruntime ai-edge-litert")
#   ARM_PIP_INDEX_URL        pip index inside the chroot   (default: pip's own, PyPI)
set -euo pipefail

SUITE=bookworm
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOTFS="${1:-${REPO_ROOT}/.arm64-rootfs}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PIP_PACKAGES="${ARM_PIP_PACKAGES:-numpy onnxruntime ai-edge-litert}"
HOST_PACKAGES=(qemu-user-static binfmt-support debootstrap)
STARTED=$(date +%s)

log() { printf '[build_arm64_rootfs] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root (debootstrap, binfmt_misc and chroot need it): sudo $0 ${1:-}"
command -v apt-get >/dev/null || die "this script uses Debian's packages; apt-get is not on this machine"
mkdir -p "$(dirname "$ROOTFS")"
ROOTFS="$(cd "$(dirname "$ROOTFS")" && pwd)/$(basename "$ROOTFS")"
MARKERS="$ROOTFS/.tinybert-edge"

# The chroot must not see the host's pip configuration or variables (find-links to host folders, constraints).
in_chroot() {
    local -a keep=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
    local name
    for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [[ -n "${!name:-}" ]] && keep+=("$name=${!name}")
    done
    env -i "${keep[@]}" chroot "$ROOTFS" "$@"
}

# 1. Host packages.
missing=()
for package in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing host packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "host packages present: ${HOST_PACKAGES[*]}"
fi

# 2. The binfmt handler that hands aarch64 executables to qemu-aarch64-static (checked on every run).
if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    log "mounting binfmt_misc"
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc \
        || die "cannot mount binfmt_misc (a container without the privilege to do so cannot run foreign binaries)"
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    log "registering the qemu-aarch64 binfmt handler"
    update-binfmts --enable qemu-aarch64 || die "update-binfmts --enable qemu-aarch64 failed"
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "the qemu-aarch64 binfmt handler is registered but disabled"
# The fix-binary flag (F) opens the emulator at registration, so a chroot needs no copy of it inside (Debian's has it).
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "the qemu-aarch64 binfmt handler lacks the fix-binary flag (F); reinstall Debian's qemu-user-static"

# 3. The root filesystem. A folder this script did not start is never deleted or overwritten.
if [[ ! -e "$MARKERS/debootstrap.done" ]]; then
    if [[ -d "$ROOTFS" && -n "$(ls -A "$ROOTFS")" ]]; then
        [[ -e "$MARKERS/started" ]] || die "'$ROOTFS' exists, is not empty and was not made by this script; pass another folder"
        log "removing the unfinished root filesystem at $ROOTFS"
        rm -rf --one-file-system "$ROOTFS"
    fi
    mkdir -p "$MARKERS"
    touch "$MARKERS/started"
    log "debootstrap --arch=arm64 $SUITE into $ROOTFS (minutes: the second stage runs under emulation)"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$ROOTFS" "$MIRROR" || die "debootstrap failed; rerun this script to start the root filesystem over"
    touch "$MARKERS/debootstrap.done"
else
    log "root filesystem present: $ROOTFS"
fi

# 4. TLS and DNS as the host has them (refreshed on every run; cheap).
cp -f /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
cp -fL /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true

# 5. The venv and its aarch64 wheels.
if [[ ! -e "$MARKERS/venv.done" ]]; then
    log "creating /venv inside the root filesystem"
    rm -rf "$ROOTFS/venv" "$MARKERS/wheels.done"
    in_chroot /usr/bin/python3 -m venv /venv
    touch "$MARKERS/venv.done"
fi
if [[ ! -e "$MARKERS/wheels.done" || "$(cat "$MARKERS/wheels.done")" != "$PIP_PACKAGES" ]]; then
    log "pip install (aarch64 wheels only) into /venv: $PIP_PACKAGES"
    index=()
    [[ -n "${ARM_PIP_INDEX_URL:-}" ]] && index=(--index-url "$ARM_PIP_INDEX_URL")
    # shellcheck disable=SC2086  # PIP_PACKAGES is a word list
    in_chroot /venv/bin/python -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
        "${index[@]}" $PIP_PACKAGES
    printf '%s' "$PIP_PACKAGES" > "$MARKERS/wheels.done"
else
    log "wheels present in /venv: $PIP_PACKAGES"
fi

# 6. Prove the emulated interpreter imports both runtimes.
# versions.json is what tinybert_edge.benchmarks.arm looks for: it exists only once this check has passed.
rm -f "$MARKERS/versions.json"
in_chroot /venv/bin/python - <<'EOF' > "$MARKERS/versions.json.tmp"
import importlib.metadata, json, platform
import numpy, onnxruntime, ai_edge_litert.interpreter  # noqa: F401  (the import is the check)
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                  **{name: importlib.metadata.version(name) for name in ("numpy", "onnxruntime", "ai-edge-litert")}}))
EOF
mv "$MARKERS/versions.json.tmp" "$MARKERS/versions.json"
log "versions: $(cat "$MARKERS/versions.json")"
log "done in $(( $(date +%s) - STARTED )) s"
echo "$ROOTFS"
