//! Device passthrough: QEMU virt's virtio-mmio transports given to the Linux VM, with Linux's
//! own virtio_mmio, virtio_blk and virtio_net drivers on them, beside the bare-metal guest
//! `rt`, which may not touch them.
//!
//! System: `dts/systems/qemu-virt/passthrough.dts` (`linux` owns `/virtio_mmio@a003e00` and
//! `/virtio_mmio@a003c00`, trapped and forwarded because eight transports share a page; `rt`
//! owns the PL031 RTC). QEMU fills the transports from the top, so the first `-device` is at
//! 0x0a003e00 and the second at 0x0a003c00. Every test is named `passthrough_*`:
//! `cargo test -p hil-tests passthrough` runs exactly these.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch, workspace_root};

const SYSTEM: &str = "dts/systems/qemu-virt/passthrough.dts";
const LINUX: &str = "linux";
const RT: &str = "rt";
const SHELL_TIMEOUT: Duration = Duration::from_secs(120);
const HARD_TIMEOUT: Duration = Duration::from_secs(300);
/// What the known file on the test disk says.
const KNOWN: &str = "tessera-passthrough-known-file";

/// The kernel and an initramfs with the virtio and ext4 modules (`scripts/fetch-linux.sh`).
fn ensure_linux() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let script = workspace_root().join("scripts/fetch-linux.sh");
        let output = Command::new(&script).output().map_err(|e| format!("{}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr)))
        }
    });
    if let Err(reason) = ready {
        panic!("{reason}");
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/setup-host.sh installs e2fsprogs)"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A 16 MiB ext4 image holding `/hello.txt` = [`KNOWN`].
fn make_disk(dir: &Path) -> std::path::PathBuf {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), format!("{KNOWN}\n")).unwrap();
    let image = dir.join("disk.img");
    run("mkfs.ext4", &["-q", "-F", "-d", content.to_str().unwrap(), image.to_str().unwrap(), "16M"]);
    image
}

fn wait_for_shell(target: &dyn Target) -> Duration {
    let start = Instant::now();
    target.expect_line_from(LINUX, "TESSERA-LINUX-UP ", SHELL_TIMEOUT).unwrap();
    target.expect_line_from(LINUX, "linux# ", SHELL_TIMEOUT).unwrap();
    start.elapsed()
}

/// Linux mounts the passed-through virtio-blk disk, reads the known file, writes a new one
/// and syncs; `rt`'s read of the same transport aborts and `rt` carries on; Linux powers
/// off, and the host finds the new file in the image.
#[test]
fn passthrough_virtio_blk_ext4_survives_poweroff() {
    ensure_linux();
    let dir = tempfile::tempdir().unwrap();
    let disk = make_disk(dir.path());
    let mut options = QemuOptions::default().hard_timeout(HARD_TIMEOUT);
    options.extra_args.extend(
        [
            "-drive".to_string(),
            format!("file={},if=none,format=raw,id=blk0", disk.display()),
            "-device".into(),
            "virtio-blk-device,drive=blk0".into(),
        ],
    );
    let started = Instant::now();
    let mut target = boot_system(Path::new(SYSTEM), options).unwrap();
    let shell = wait_for_shell(target.as_ref());
    eprintln!("passthrough: shell after {:.1} s", shell.as_secs_f64());

    target.mark();
    target
        .send(
            b"mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt && echo written-by-linux > /mnt/new.txt && sync && echo BLK-DONE\r",
        )
        .unwrap();
    target.expect_line_from(LINUX, KNOWN, EXPECT_TIMEOUT * 4).unwrap();
    target.expect_line_from(LINUX, "BLK-DONE", EXPECT_TIMEOUT * 4).unwrap();

    // The transport is not rt's: its read aborts (fault-policy inject), and rt carries on.
    target.mark();
    target.send(&mux_switch(1)).unwrap();
    target.send(b"peek a003e00\r").unwrap();
    target.expect_line_from(RT, "abort caught at 0xa003e00", EXPECT_TIMEOUT).unwrap();
    target.send(b"ping\r").unwrap();
    target.expect_line_from(RT, "pong", EXPECT_TIMEOUT).unwrap();
    // rt's own device, the PL031 RTC (mapped): its data register counts seconds.
    target.send(b"peek 9010000\r").unwrap();
    let rtc = target.expect_line_from(RT, "peek 0x9010000 = 0x", EXPECT_TIMEOUT).unwrap();
    assert!(!rtc.contains("= 0x00000000"), "the RTC counts: {rtc}");

    // The owner keeps working.
    target.send(&mux_switch(0)).unwrap();
    target.mark();
    target.send(b"cat /mnt/new.txt && umount /mnt && echo UMOUNT-DONE\r").unwrap();
    target.expect_line_from(LINUX, "written-by-linux", EXPECT_TIMEOUT * 4).unwrap();
    target.expect_line_from(LINUX, "UMOUNT-DONE", EXPECT_TIMEOUT * 4).unwrap();
    target.send(b"poweroff -f\r").unwrap();
    target.expect_line("SYSTEM_OFF", EXPECT_TIMEOUT * 4).unwrap();
    target.kill();
    drop(target);

    let new = run("debugfs", &["-R", "cat /new.txt", disk.to_str().unwrap()]);
    assert_eq!(new.trim(), "written-by-linux", "the guest's write reached the disk image");
    eprintln!("passthrough: virtio-blk test took {:.1} s", started.elapsed().as_secs_f64());
}
