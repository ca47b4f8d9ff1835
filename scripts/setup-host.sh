#!/usr/bin/env bash
# Installs what building and testing Tessera needs on a Debian 12 host, and nothing
# that is already there: QEMU 10 (bookworm-backports), dtc, the pinned Rust toolchain
# and its aarch64 target, cargo-fuzz. Idempotent; safe to run on every `cargo xtask run`.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
qemu_ok() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || return 1
    local major
    major=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1)
    [ "${major:-0}" -ge 9 ]
}
qemu_ok || need_apt+=(qemu)
command -v dtc >/dev/null 2>&1 || need_apt+=(dtc)
# mkfs.ext4 and debugfs: the passthrough HIL test builds and reads back an ext4 disk image.
{ command -v mkfs.ext4 && command -v debugfs; } >/dev/null 2>&1 || need_apt+=(e2fsprogs)

if [ ${#need_apt[@]} -gt 0 ]; then
    # bookworm-backports carries qemu-system-arm 10.0. The entry reuses the mirror URI
    # this machine's apt sources already name, so no host is hard-wired here.
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
        if [ -z "$uri" ]; then
            uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)
        fi
        if [ -z "$uri" ]; then
            echo "setup-host: no Debian mirror found in the apt sources; add bookworm-backports by hand" >&2
            exit 1
        fi
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
            | $SUDO tee /etc/apt/sources.list.d/tessera-backports.sources >/dev/null
    fi
    $SUDO apt-get update -q
    pkgs=()
    for p in "${need_apt[@]}"; do
        case $p in
            qemu) $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports qemu-system-arm ;;
            dtc) pkgs+=(device-tree-compiler) ;;
            e2fsprogs) pkgs+=(e2fsprogs) ;;
        esac
    done
    if [ ${#pkgs[@]} -gt 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"
    fi
fi

# rust-toolchain.toml names the channel, components and target; this installs them.
cd "$(dirname "$0")/.."
if command -v rustup >/dev/null 2>&1; then
    rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
    for target in aarch64-unknown-none aarch64-unknown-none-softfloat; do
        rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    done
    rustup component list --installed | grep -q llvm-tools || rustup component add llvm-tools
fi

# cargo-fuzz, for scripts/fuzz.sh (from crates.io; it runs on the pinned stable toolchain with
# RUSTC_BOOTSTRAP=1). Built once, then found on PATH.
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# The default demo runs Debian's arm64 kernel with a busybox initramfs (fetched from the
# Debian archive, never committed). Fast when already there.
bash scripts/fetch-linux.sh
