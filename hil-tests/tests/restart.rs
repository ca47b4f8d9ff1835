//! VM restart and watchdog tests: a restart scrubs the VM's memory and reloads it from the
//! pristine copies, the watchdog restarts a VM that stops kicking, `fault-policy = "restart"`
//! restarts a VM on a stray access, Linux's `reboot -f` restarts only Linux, and in every case
//! the other VM's virtual-timer heartbeat goes on without a gap.
//!
//! Systems: `hil-tests/systems/restart.dts` (`dog`: two vCPUs, `heartbeat=100 rt=1` (a
//! virtual-timer heartbeat, which must come back after each restart), `wdog=100` kicks at
//! its 100 ms wakes,
//! `watchdog-ms = <500>`, `fault-policy = "restart"`, owns the PL031 RTC with a reset
//! sequence; `rt`: `heartbeat=100 rt=1`) and `dts/systems/qemu-virt/passthrough.dts` (Linux
//! with a virtio-blk disk, beside `rt`). Every test is named `restart_*` or `watchdog_*`.
//!
//! QEMU runs with `-icount shift=3,sleep=off` (8 ns of virtual time per instruction): virtual
//! time then depends on the instructions run, not on how busy the host is, so rt's heartbeats
//! are a clock for the virtual time between two console lines (a descheduled QEMU would
//! otherwise show up as missed beats). Shift 3 rather than 0 keeps a virtual second near a
//! wall second while dog's console loop spins.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hil_tests::rt::{self, Heartbeat};
use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch, workspace_root};

const SYSTEM: &str = "hil-tests/systems/restart.dts";
const DOG: &str = "dog";
const RT: &str = "rt";
/// dog's banner: name, both vCPUs and its memory come from its device tree.
const DOG_HELLO: &str = "hello from dog: el1, 2 cpus, memory 0x40000000+0x2000000";
/// rt's heartbeat period and dog's watchdog period (restart.dts).
const BEAT_MS: u64 = 100;
const WATCHDOG_MS: u64 = 500;
/// How much later than its period the watchdog may restart dog (virtual time): the timer is
/// taken within microseconds, but a beat may straddle either end of the window.
const SLACK_MS: u64 = 200;
/// Under -icount a virtual second costs several seconds of wall time on a loaded host.
const TIMEOUT: Duration = Duration::from_secs(90);

/// A line in dog's RAM that neither its image (at 0x40000000, tens of KiB) nor its device
/// tree (at 0x41e00000) covers.
const MARKER: u64 = 0x4100_0000;

fn icount_options() -> QemuOptions {
    let mut options = QemuOptions::default().hard_timeout(Duration::from_secs(300));
    options.extra_args.extend(["-icount".into(), "shift=3,sleep=off".into()]);
    options
}

/// Boots restart.dts and waits until dog runs both vCPUs and kicks, and rt beats.
fn boot_dog() -> Box<dyn Target> {
    let target = boot_system(Path::new(SYSTEM), icount_options()).unwrap();
    target.expect_line_from(DOG, DOG_HELLO, TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: cpu 1 up", TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: wdog: kicking every 100 ms", TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: heartbeat 1 late", TIMEOUT).unwrap();
    target.expect_line_from(RT, "rt: heartbeat 1 ", TIMEOUT).unwrap();
    target
}

/// dog came back whole after a restart at line `from`: banner, second vCPU, kicks, and its
/// virtual-timer heartbeat (its timer, vGIC and CNTVOFF were reset for the new boot: beats
/// count from 1 again).
fn expect_dog_back(target: &dyn Target, from: usize) {
    target.console().set_mark(from);
    target.expect_line_from(DOG, DOG_HELLO, TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: cpu 1 up", TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: wdog: kicking every 100 ms", TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: heartbeat 1 late", TIMEOUT).unwrap();
    target.expect_line_from(DOG, "dog: heartbeat 3 late", TIMEOUT).unwrap();
}

/// dog reads its RTC's data register (PL031 RTCDR, offset 0: seconds).
fn rtc_seconds(target: &mut dyn Target) -> u64 {
    let mark = target.mark();
    target.send(b"peek 9010000\r").unwrap();
    let line = target.expect_line_from(DOG, "peek 0x9010000 = 0x", EXPECT_TIMEOUT).unwrap();
    target.console().set_mark(mark);
    let hex = line.rsplit("0x").next().unwrap_or_default().trim();
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("no RTC value in {line:?}"))
}

/// rt's heartbeats in the lines from `from` up to (not including) `to`.
fn beats_between(target: &dyn Target, from: usize, to: usize) -> Vec<Heartbeat> {
    let lines = target.console().lines();
    let stream: String = lines[from..to.min(lines.len())]
        .iter()
        .filter_map(|line| line.tag().filter(|(tag, _)| *tag == RT).map(|(_, text)| text))
        .collect();
    rt::heartbeats(&stream, RT)
}

/// The index of the first `[hv]` line at or after `from` containing `pattern`, waiting for it.
fn expect_hv_line(target: &dyn Target, from: usize, pattern: &str, timeout: Duration) -> usize {
    target.console().set_mark(from);
    let line = target.expect_line_from("hv", pattern, timeout).unwrap();
    eprintln!("console: {line}");
    let lines = target.console().lines();
    (from..lines.len())
        .find(|&i| lines[i].is_from("hv", pattern))
        .unwrap_or_else(|| panic!("[hv] {pattern:?} was matched across a cut line"))
}

/// rt beat throughout, without a gap, and never restarted.
fn assert_rt_undisturbed(target: &dyn Target) {
    let beats = rt::heartbeats(&target.console().stream_from(RT, 0), RT);
    assert!(beats.len() >= 3, "rt beat only {} times", beats.len());
    assert_eq!(rt::gaps(&beats), [], "rt's heartbeats skipped (or rt restarted)");
    assert_eq!(target.console().count_from(RT, "hello from rt", 0), 1, "rt started once");
    eprintln!("rt: {} beats, k {}..{}, no gap", beats.len(), beats[0].k, beats[beats.len() - 1].k);
}

/// A restart (PSCI SYSTEM_RESET, `on-system-reset` "restart") scrubs the VM's RAM: a marker
/// written before it reads 0 after it; the image and device tree are reloaded intact (dog
/// boots again, its banner's facts come from the tree) and both vCPUs start again; dog's
/// passed-through RTC got its reset sequence (its count starts again from 0); rt beats on.
#[test]
fn restart_scrubs_ram_and_reloads_image_and_dtb() {
    let mut target = boot_dog();
    target.mark();
    // The RTC counts seconds since 1970 (QEMU starts it at the host's time).
    let before = rtc_seconds(&mut *target);
    assert!(before > 1_600_000_000, "the RTC holds the host's time: {before}");
    target.send(format!("poke {MARKER:x} cafef00d\r").as_bytes()).unwrap();
    target.expect_line_from(DOG, "poke done", EXPECT_TIMEOUT).unwrap();
    target.send(format!("peek {MARKER:x}\r").as_bytes()).unwrap();
    target
        .expect_line_from(DOG, &format!("peek {MARKER:#x} = 0xcafef00d"), EXPECT_TIMEOUT)
        .unwrap();

    let reset = target.mark();
    target.send(b"reset\r").unwrap();
    expect_hv_line(&*target, reset, "VM dog: restarting (PSCI SYSTEM_RESET)", TIMEOUT);
    expect_dog_back(&*target, reset);
    target.send(format!("peek {MARKER:x}\r").as_bytes()).unwrap();
    let peek = target
        .expect_line_from(DOG, &format!("peek {MARKER:#x} = 0x"), EXPECT_TIMEOUT)
        .unwrap();
    assert!(peek.ends_with(&format!("peek {MARKER:#x} = 0x0")), "the marker survived the restart: {peek}");
    let after = rtc_seconds(&mut *target);
    assert!(after < 60, "the RTC was not reset by its reset-writes: {after} s");
    let said = target.expect_hv_log(0, &["dog", "device 0x9010000 reset"], EXPECT_TIMEOUT).unwrap();
    eprintln!("hv log: {said}; RTC {before} s before the restart, {after} s after");
    assert_eq!(target.console().count_from(DOG, "hello from dog", reset), 1, "dog restarted once");
    target.mark();
    target.console().expect_count_from(RT, "rt: heartbeat ", 3, TIMEOUT).unwrap();
    assert_rt_undisturbed(&*target);
}

/// dog kicks every 100 ms and survives many 500 ms periods; when it stops kicking, the
/// watchdog restarts it within the period plus slack (rt's beats count the virtual time),
/// and it comes back kicking and survives again; a second stop is caught again (the restart
/// re-armed the watchdog); rt, which has no watchdog, gets NOT_SUPPORTED for a kick; rt beats
/// on without a gap.
#[test]
fn watchdog_restarts_a_vm_that_stops_kicking() {
    let mut target = boot_dog();
    // Four periods and more of kicking: no restart.
    let kicking = target.mark();
    target
        .console()
        .expect_count_from(RT, "rt: heartbeat ", (4 * WATCHDOG_MS / BEAT_MS) as usize, TIMEOUT)
        .unwrap();
    target.console().assert_absent_from("hv", "watchdog", 0).unwrap();
    assert_eq!(target.console().count_from(DOG, "hello from dog", 0), 1);
    eprintln!("dog survived {} beats of kicking", beats_between(&*target, kicking, usize::MAX).len());

    let stop = target.mark();
    target.send(b"wdog stop\r").unwrap();
    target.expect_line_from(DOG, "dog: wdog: stopped kicking", EXPECT_TIMEOUT).unwrap();
    let expired = expect_hv_line(&*target, stop, "VM dog: restarting (watchdog expired)", TIMEOUT);
    let waited = beats_between(&*target, stop, expired).len() as u64;
    eprintln!("watchdog expired {waited} beats ({} ms) after `wdog stop`", waited * BEAT_MS);
    // The last kick came at most 100 ms before `wdog stop`, so the deadline was 400–500 ms
    // after it; allow one beat either side for where the window cuts the beats.
    assert!(
        waited >= (WATCHDOG_MS - BEAT_MS) / BEAT_MS - 1,
        "the watchdog expired early: {waited} beats after the last kick"
    );
    assert!(
        waited <= (WATCHDOG_MS + SLACK_MS) / BEAT_MS,
        "the watchdog expired late: {waited} beats after the last kick"
    );
    let said = target.expect_hv_log(0, &["dog", "watchdog expired"], EXPECT_TIMEOUT).unwrap();
    eprintln!("hv log: {said}");

    // dog boots again and kicks again (its bootargs), and keeps running past several periods.
    expect_dog_back(&*target, expired);
    let again = target.mark();
    target
        .console()
        .expect_count_from(RT, "rt: heartbeat ", (3 * WATCHDOG_MS / BEAT_MS) as usize, TIMEOUT)
        .unwrap();
    assert_eq!(target.console().count_from("hv", "watchdog expired", again), 0, "a kicking dog was restarted");
    assert_eq!(target.console().count_from(DOG, "hello from dog", 0), 2, "dog restarted exactly once");

    // The restart armed the watchdog again: a second stop is caught too.
    let stop = target.mark();
    target.send(b"wdog stop\r").unwrap();
    let expired = expect_hv_line(&*target, stop, "VM dog: restarting (watchdog expired)", TIMEOUT);
    let waited = beats_between(&*target, stop, expired).len() as u64;
    assert!(waited <= (WATCHDOG_MS + SLACK_MS) / BEAT_MS, "second expiry {waited} beats after the stop");
    target.console().set_mark(expired);
    target.expect_line_from(DOG, DOG_HELLO, TIMEOUT).unwrap();

    // rt has no watchdog: the kick is an unknown call to it.
    target.send(&mux_switch(1)).unwrap();
    target.expect_line_from("mux", "input -> rt", EXPECT_TIMEOUT).unwrap();
    target.send(b"hvc c6000002\r").unwrap();
    target
        .expect_line_from(RT, "hvc 0xc6000002 -> x0=0xffffffffffffffff", EXPECT_TIMEOUT)
        .unwrap();
    assert_rt_undisturbed(&*target);
}

/// `fault-policy = "restart"`: dog's store outside its memory restarts dog (both vCPUs), and
/// only dog; it answers again afterwards.
#[test]
fn restart_on_fault_restarts_only_that_vm() {
    let mut target = boot_dog();
    let fault = target.mark();
    target.send(b"poke 10000000\r").unwrap();
    let restarted = expect_hv_line(&*target, fault, "VM dog: restarting (access outside its memory)", TIMEOUT);
    let said = target.expect_hv_log(0, &["dog", "data abort", "0x10000000"], EXPECT_TIMEOUT).unwrap();
    eprintln!("hv log: {said}");
    expect_dog_back(&*target, restarted);
    target.console().assert_absent_from(DOG, "poke done", fault).unwrap();
    target.send(b"ping\r").unwrap();
    target.expect_line_from(DOG, "pong dog", EXPECT_TIMEOUT).unwrap();
    target.mark();
    target.console().expect_count_from(RT, "rt: heartbeat ", 3, TIMEOUT).unwrap();
    assert_rt_undisturbed(&*target);
}

/// Makes sure the kernel and initramfs are there (`scripts/fetch-linux.sh`, a no-op when
/// they are up to date).
fn ensure_linux() {
    let script = workspace_root().join("scripts/fetch-linux.sh");
    let output = Command::new(&script).output().unwrap();
    assert!(output.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&output.stderr));
}

/// What the file on the test disk says.
const KNOWN: &str = "tessera-restart-known-file";

/// A 16 MiB ext4 image in `dir` holding `/hello.txt` = [`KNOWN`] (mkfs.ext4 from e2fsprogs,
/// which `scripts/setup-host.sh` installs).
fn make_disk(dir: &Path) -> std::path::PathBuf {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), format!("{KNOWN}\n")).unwrap();
    let image = dir.join("disk.img");
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d", content.to_str().unwrap(), image.to_str().unwrap(), "16M"])
        .status()
        .unwrap();
    assert!(status.success(), "mkfs.ext4 failed");
    image
}

/// Linux's `reboot -f` (PSCI SYSTEM_RESET) with its passed-through virtio-blk disk mounted
/// restarts the Linux VM alone: the hypervisor runs the transports' reset sequence
/// (passthrough.dts: virtio-mmio Status := 0), Linux boots to its shell again and mounts and
/// reads the same disk; rt's heartbeat, beside it, shows no gap from its first beat to the
/// end. (`linux.rs` measures rt's lateness under Linux; it has no reboot.)
#[test]
fn restart_linux_reboot_restarts_only_linux_and_resets_its_disk() {
    const LINUX: &str = "linux";
    const SHELL: Duration = Duration::from_secs(240);
    ensure_linux();
    let dir = tempfile::tempdir().unwrap();
    let disk = make_disk(dir.path());
    let mut options = icount_options().hard_timeout(Duration::from_secs(600));
    options.extra_args.extend([
        "-drive".to_string(),
        format!("file={},if=none,format=raw,id=blk0", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=blk0".into(),
    ]);
    let mut target = boot_system(Path::new("dts/systems/qemu-virt/passthrough.dts"), options).unwrap();
    let mount = b"mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt && echo MOUNTED-$((6*7))\r";
    target.expect_line_from(LINUX, "TESSERA-LINUX-UP ", SHELL).unwrap();
    target.expect_line_from(LINUX, "linux# ", SHELL).unwrap();
    target.mark();
    target.send(mount).unwrap();
    target.expect_line_from(LINUX, KNOWN, SHELL).unwrap();
    target.expect_line_from(LINUX, "MOUNTED-42", SHELL).unwrap();

    // Rebooted with the disk mounted and its queues live.
    let reboot = target.mark();
    target.send(b"reboot -f\r").unwrap();
    expect_hv_line(&*target, reboot, "VM linux: restarting (PSCI SYSTEM_RESET)", SHELL);
    for transport in ["0xa003e00", "0xa003c00"] {
        let said = target
            .expect_hv_log(0, &["linux", &format!("device {transport} reset")], EXPECT_TIMEOUT)
            .unwrap();
        eprintln!("hv log: {said}");
    }
    target.console().set_mark(reboot);
    target.expect_line_from(LINUX, "TESSERA-LINUX-UP ", SHELL).unwrap();
    target.expect_line_from(LINUX, "linux# ", SHELL).unwrap();
    target.mark();
    target.send(mount).unwrap();
    target.expect_line_from(LINUX, KNOWN, SHELL).unwrap();
    target.expect_line_from(LINUX, "MOUNTED-42", SHELL).unwrap();
    assert_eq!(target.console().count_from(LINUX, "TESSERA-LINUX-UP ", 0), 2, "Linux booted twice");
    assert_rt_undisturbed(&*target);
}
