#!/usr/bin/env bash
# Runs every Tessera test: host unit tests, the firmware builds, lints, a short fuzz run, and the HIL tests
# that boot images under QEMU. Installs what is missing first. This is the README's test
# command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs QEMU, dtc and the Rust target, and fetches Debian's arm64 kernel and builds the
# busybox initramfs for Linux guests (target/linux/); quick when all is there.
bash scripts/setup-host.sh

echo "== firmware builds (hypervisor: aarch64-unknown-none-softfloat, guest: aarch64-unknown-none)" >&2
cargo build --release --target aarch64-unknown-none-softfloat -p tessera-qemu-virt
# With the RTDS scheduler and VM watchdogs (`cargo xtask build` enables each only for a
# system that uses it).
cargo build --release --target aarch64-unknown-none-softfloat -p tessera-qemu-virt --features rtds,watchdog
cargo build --release --target aarch64-unknown-none -p tessera-guest-baremetal -p tessera-guest-bench -p tessera-guest-attack

echo "== clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p tessera-kernel -p tessera-arch --all-targets --features tessera-kernel/rtds,tessera-kernel/watchdog,tessera-kernel/direct -- -D warnings
# The hypervisor crates for the target too: their asm paths are compiled out on the host.
cargo clippy --release --target aarch64-unknown-none-softfloat -p tessera-qemu-virt -p tessera-kernel \
    -p tessera-arch -p tessera-drivers -p tessera-core -p tessera-vdev -p tessera-config -- -D warnings
cargo clippy --release --target aarch64-unknown-none-softfloat -p tessera-qemu-virt -p tessera-kernel \
    -p tessera-arch --features tessera-qemu-virt/rtds,tessera-qemu-virt/watchdog,tessera-qemu-virt/direct -- -D warnings
cargo clippy --release --target aarch64-unknown-none -p tessera-guest-baremetal -p tessera-guest-bench -p tessera-guest-attack -- -D warnings
cargo clippy --release --target aarch64-unknown-none -p tessera-linux-udp-echo -- -D warnings

echo "== fuzz (every target a few seconds, from the committed seeds)" >&2
bash scripts/fuzz.sh 5

echo "== tests (host unit tests, then HIL tests under QEMU)" >&2
cargo test --workspace
