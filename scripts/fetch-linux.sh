#!/usr/bin/env bash
# Fetches Debian's arm64 Linux kernel and busybox-static and builds the test initramfs for
# Linux guests:
#   target/linux/Image                the uncompressed arm64 Image (from /boot/vmlinuz-<ver>)
#   target/linux/VERSION              <ver>, e.g. 6.1.0-37-arm64
#   target/linux/initramfs.cpio.gz    busybox + scripts/linux/init, newc cpio, gzip
#   target/linux/debs/                the downloaded .deb files
# Only Debian's apt archive is used. Idempotent: when everything is there and up to date
# it returns at once without touching apt (set TESSERA_LINUX_REFRESH=1 to re-resolve).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/target/linux"
debs="$out/debs"
init_src="$root/scripts/linux/init"
self="$root/scripts/fetch-linux.sh"
echo_src="$root/guests/linux-udp-echo/src/main.rs"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
log() { echo "fetch-linux: $*" >&2; }

# Fast path: every output present and the initramfs newer than its inputs.
if [ -z "${TESSERA_LINUX_REFRESH:-}" ] && [ -s "$out/Image" ] && [ -s "$out/VERSION" ] \
    && [ -s "$out/initramfs.cpio.gz" ] && [ "$out/initramfs.cpio.gz" -nt "$init_src" ] \
    && [ "$out/initramfs.cpio.gz" -nt "$self" ] && [ "$out/initramfs.cpio.gz" -nt "$echo_src" ]; then
    exit 0
fi

need_tools=()
command -v cpio >/dev/null 2>&1 || need_tools+=(cpio)
command -v file >/dev/null 2>&1 || need_tools+=(file)

added_arch=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg"
    $SUDO dpkg --add-architecture arm64
    added_arch=1
fi
# apt-get update only when the arm64 lists are new or missing, or a tool is missing.
if [ "$added_arch" = 1 ] || ! apt-cache show linux-image-arm64:arm64 >/dev/null 2>&1 \
    || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1 \
    || { [ ${#need_tools[@]} -gt 0 ] && ! apt-cache show "${need_tools[@]}" >/dev/null 2>&1; }; then
    log "apt-get update"
    $SUDO apt-get update -q >&2 || log "apt-get update reported errors (unreachable third-party sources?); carrying on"
fi
if [ ${#need_tools[@]} -gt 0 ]; then
    log "installing ${need_tools[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_tools[@]}" >&2
fi

# The metapackage linux-image-arm64 depends on exactly one linux-image-<ver>-arm64.
kpkg=$(apt-cache depends linux-image-arm64:arm64 \
    | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\)\(:arm64\)\?$/\1/p' | head -n1)
if [ -z "$kpkg" ]; then
    log "cannot resolve the kernel package from linux-image-arm64:arm64's dependencies"
    exit 1
fi
version=${kpkg#linux-image-}
# Versions: two kernels can share <ver> across Debian revisions (ABI unchanged), so the
# package version is part of what decides whether to download again.
kdebver=$(apt-cache policy "$kpkg:arm64" | sed -n 's/^ *Candidate: //p')
bbdebver=$(apt-cache policy busybox-static:arm64 | sed -n 's/^ *Candidate: //p')
log "kernel $kpkg $kdebver, busybox-static $bbdebver"

mkdir -p "$debs"
# As root, apt downloads as `_apt`, which cannot write into the checkout; say so instead of
# letting apt warn about it.
apt_root=()
if [ -z "$SUDO" ]; then apt_root=(-o APT::Sandbox::User=root); fi
fetch_deb() { # <package> <version>
    local pkg=$1 ver=$2
    local file
    file=$(ls "$debs"/"${pkg}"_"${ver//:/%3a}"_arm64.deb 2>/dev/null || true)
    if [ -z "$file" ]; then
        log "downloading $pkg:arm64 $ver"
        (cd "$debs" && apt-get download -q "${apt_root[@]}" "$pkg:arm64=$ver" >&2)
        file=$(ls "$debs"/"${pkg}"_"${ver//:/%3a}"_arm64.deb)
    fi
    echo "$file"
}
kdeb=$(fetch_deb "$kpkg" "$kdebver")
bbdeb=$(fetch_deb busybox-static "$bbdebver")

stamp="$kpkg $kdebver busybox-static $bbdebver"
work="$out/work"
if [ ! -s "$out/Image" ] || [ "$(cat "$out/STAMP" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$work" && mkdir -p "$work/kernel"
    log "extracting the kernel"
    dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work/kernel" "./boot/vmlinuz-$version"
    vmlinuz="$work/kernel/boot/vmlinuz-$version"
    kind=$(file -b "$vmlinuz")
    case $kind in
        gzip*) gzip -dc "$vmlinuz" >"$out/Image.tmp" ;;
        *"EFI application"*|*"PE32+"*)
            # An EFI zboot image (CONFIG_EFI_ZBOOT): "zimg" at offset 4, the payload's
            # offset and size (LE32) at 8 and 12, the compression name at 24.
            if [ "$(dd if="$vmlinuz" bs=1 skip=4 count=4 status=none)" != zimg ]; then
                log "$vmlinuz is a PE image but not EFI zboot: $kind"; exit 1
            fi
            le32() { od -An -tu4 -j "$1" -N4 "$vmlinuz" | tr -d ' '; }
            comp=$(dd if="$vmlinuz" bs=1 skip=24 count=8 status=none | tr -d '\0')
            case $comp in
                gzip) dec=(gzip -dc) ;; zstd) dec=(zstd -dc) ;; xz) dec=(xz -dc) ;;
                lzma) dec=(xz -dc --format=lzma) ;; *) log "zboot compression $comp not handled"; exit 1 ;;
            esac
            tail -c +"$(( $(le32 8) + 1 ))" "$vmlinuz" | head -c "$(le32 12)" | "${dec[@]}" >"$out/Image.tmp" ;;
        *"Linux kernel ARM64 boot executable"*) cp "$vmlinuz" "$out/Image.tmp" ;;
        *) log "unexpected kernel format: $kind"; exit 1 ;;
    esac
    if [ "$(dd if="$out/Image.tmp" bs=1 skip=56 count=4 status=none)" != $'ARM\x64' ]; then
        log "the decompressed kernel has no arm64 Image header"; exit 1
    fi
    mv "$out/Image.tmp" "$out/Image"
    echo "$version" >"$out/VERSION"
    echo "$stamp" >"$out/STAMP"
    rm -f "$out/initramfs.cpio.gz"
fi

if [ ! -s "$out/initramfs.cpio.gz" ] || [ "$init_src" -nt "$out/initramfs.cpio.gz" ] \
    || [ "$self" -nt "$out/initramfs.cpio.gz" ] || [ "$echo_src" -nt "$out/initramfs.cpio.gz" ]; then
    log "building the initramfs"
    rm -rf "$work/bb" "$work/rootfs" "$work/mods" && mkdir -p "$work/bb" "$work/rootfs"
    dpkg-deb -x "$bbdeb" "$work/bb"
    r="$work/rootfs"
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root}
    cp "$work/bb/bin/busybox" "$r/bin/busybox"
    # The applet links are made at boot by /init (`busybox --install -s`): making them here
    # would mean running the arm64 binary on the host.
    install -m 0755 "$init_src" "$r/init"
    # Debian builds these as modules; /init loads them in this order (dependencies first):
    # virtio-mmio transports with virtio-blk (ext4 on it) and virtio-net, for the
    # passthrough tests (hil-tests/tests/passthrough.rs).
    mods="lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4 drivers/virtio/virtio_mmio
        drivers/block/virtio_blk net/core/failover drivers/net/net_failover drivers/net/virtio_net"
    mkdir -p "$r/lib/modules" "$work/mods"
    dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work/mods" \
        $(for m in $mods; do echo "./lib/modules/$version/kernel/$m.ko"; done)
    for m in $mods; do cp "$work/mods/lib/modules/$version/kernel/$m.ko" "$r/lib/modules/"; done
    # busybox has no UDP tool: a freestanding static UDP echo server (guests/linux-udp-echo).
    log "building udp-echo"
    cargo build -q --release --target aarch64-unknown-none -p tessera-linux-udp-echo >&2
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    install -m 0755 "$target_dir/aarch64-unknown-none/release/udp-echo" "$r/bin/udp-echo"
    # Same inputs, same bytes: fixed mtimes, owners, inode numbers and order, no gzip name.
    find "$r" -exec touch -h -d @0 {} +
    (cd "$r" && find . -mindepth 1 | LC_ALL=C sort \
        | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9n >"$out/initramfs.cpio.gz.tmp"
    mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
fi
log "ready: $(cat "$out/VERSION"), $out/Image, $out/initramfs.cpio.gz"
