#!/usr/bin/env bash
# Boots a built system's Linux VM natively (no hypervisor) with exactly the layout Tessera
# gives it: its image at the RAM base, its initrd and generated DTB where `cargo xtask build`
# placed them, entered at EL1 with x0 = the DTB. If Linux reaches the shell here, the
# generated device tree and placement are right, and a failure under Tessera is Tessera's.
#
#   scripts/linux/boot-native.sh [<out dir> [<vm index>]] [-- <extra qemu args>]
#   default: target/tessera/qemu-virt/linux, VM 0 (build it first: cargo xtask build
#   dts/systems/qemu-virt/linux.dts).
#
# QEMU's virt machine always puts its own DTB in the first MiB of RAM when it boots no
# -kernel, so the image's first MiB is loaded elsewhere and copied into place by an
# eight-instruction stub, which then sets x0 and jumps to the image (booting.rst). The VM's
# vCPUs are QEMU's CPUs: -smp is the VM's vCPU count; PSCI is QEMU's (HVC without EL2/EL3).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/tessera/qemu-virt/linux
index=0
if [ $# -gt 0 ] && [ "$1" != -- ]; then out=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != -- ]; then index=$1; shift; fi
[ "${1:-}" = -- ] && shift

dtb="$out/vm$index.dtb" image="$out/vm$index.img" initrd="$out/vm$index.initrd"
for f in "$dtb" "$image"; do
    [ -s "$f" ] || { echo "boot-native: $f is missing (cargo xtask build first)" >&2; exit 1; }
done
# Read the layout back from the generated tree: the RAM base, the vCPUs, the initrd.
ram=$(fdtget -t x "$dtb" "/$(fdtget -l "$dtb" / | grep '^memory@' | head -n1)" reg)
read -r _ ram_lo _ size_lo <<<"$ram"
base=$((16#$ram_lo)) size=$((16#$size_lo))
vcpus=$(fdtget -l "$dtb" /cpus | grep -c '^cpu@')
# The DTB's IPA is not in the tree: the build puts it in the highest free 2 MiB slot, which
# is what the hypervisor's tables say; take it from system.rs.
dtb_ipa=$(grep -o 'dtb_ipa: 0x[0-9a-f]*' "$out/system.rs" | sed -n "$((index + 1))p" | cut -d' ' -f2)
[ -n "$dtb_ipa" ] || { echo "boot-native: no dtb_ipa for VM $index in $out/system.rs" >&2; exit 1; }
dtb_ipa=$((dtb_ipa))

loaders=(-device "loader,file=$dtb,addr=$dtb_ipa,force-raw=on")
if fdtget "$dtb" /chosen linux,initrd-start >/dev/null 2>&1; then
    read -r hi lo <<<"$(fdtget -t x "$dtb" /chosen linux,initrd-start)"
    loaders+=(-device "loader,file=$initrd,addr=$(( (16#$hi << 32) | 16#$lo )),force-raw=on")
fi

work="$out/native-vm$index"   # the split image and the stub; exec leaves no one to clean up
mkdir -p "$work"
head_size=$((1 << 20))
stage=$((dtb_ipa - (16 << 20)))   # 16 MiB below the DTB: free in a Linux VM's RAM
stub=$((dtb_ipa + (2 << 20) - 0x1000))
head -c "$head_size" "$image" >"$work/head.bin"
tail -c +"$((head_size + 1))" "$image" >"$work/tail.bin"
# movz xN, #(v >> 16), lsl #16 (DDI 0487 C6.2.226); every address here is 64 KiB aligned.
movz() { printf '%08x' $(( 0xd2a00000 | (($2 >> 16) & 0xffff) << 5 | $1 )); }
words=(
    "$(movz 1 "$stage")" "$(movz 2 "$base")" "$(movz 3 "$head_size")"
    f8408424   # 1: ldr x4, [x1], #8
    f8008444   #    str x4, [x2], #8
    f1002063   #    subs x3, x3, #8
    54ffffa1   #    b.ne 1b
    "$(movz 0 "$dtb_ipa")"
    aa1f03e1 aa1f03e2 aa1f03e3   # x1 = x2 = x3 = 0
    "$(movz 4 "$base")"
    d61f0080   # br x4
)
for w in "${words[@]}"; do
    printf "\\x${w:6:2}\\x${w:4:2}\\x${w:2:2}\\x${w:0:2}"
done >"$work/stub.bin"

exec qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a57 -smp "$vcpus" \
    -m "$(( (base - 0x40000000 + size) >> 20 ))M" -nographic -no-reboot \
    -device "loader,file=$work/head.bin,addr=$stage,force-raw=on" \
    -device "loader,file=$work/tail.bin,addr=$((base + head_size)),force-raw=on" \
    "${loaders[@]}" \
    -device "loader,file=$work/stub.bin,addr=$stub,force-raw=on,cpu-num=0" "$@"
