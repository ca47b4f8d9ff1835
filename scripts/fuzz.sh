#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each: `scripts/fuzz.sh [seconds]`
# (default 5 per target; `scripts/fuzz.sh 600` for a long run). Each run starts from the
# committed seeds in fuzz/corpus/<target>/ and writes what it discovers to target/fuzz-corpus/
# (not committed). A crash stops the script with the failing input in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly-only flags; the pinned stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. The targets are safe Rust, so no sanitizer (`--sanitizer none`), but
# debug assertions are on (`-a`): an integer overflow is a finding.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-5}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing; scripts/setup-host.sh installs it" >&2
    exit 1
fi

# The fuzz crate is outside the workspace, so the workspace clippy run does not see it.
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

targets=$(cargo fuzz list --fuzz-dir fuzz)
cargo fuzz build --fuzz-dir fuzz --sanitizer none -a

summary=()
for target in $targets; do
    work="target/fuzz-corpus/$target"
    mkdir -p "$work" "fuzz/corpus/$target"
    log="target/fuzz-corpus/$target.log"
    echo "== fuzz $target (${seconds}s)" >&2
    # libFuzzer's first corpus directory collects new inputs; the committed seeds stay as they are.
    if ! cargo fuzz run --fuzz-dir fuzz --sanitizer none -a "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/ (log: $log)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
    summary+=("$(printf '%-12s %10s runs %8s exec/s  cov %s' "$target" "${runs:-?}" "${speed:-?}" "${cov:-?}")")
done
printf 'FUZZ %s\n' "${summary[@]}"
