//! Harness self-tests that need no hypervisor: the bare-metal guest booted directly at EL1
//! under QEMU `virt`. They check the guest's console contract and the harness together.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, Qemu, QemuOptions, Target, build_guest_image};

fn boot(smp: u32, bootargs: &str) -> Qemu {
    let image = build_guest_image().unwrap();
    let options = QemuOptions::native()
        .smp(smp)
        .append(bootargs)
        .hard_timeout(Duration::from_secs(90));
    Qemu::boot(&image, options).unwrap()
}

#[test]
fn native_hello_ping_and_off() {
    let mut qemu = boot(2, "");
    let hello = qemu
        .expect_line("hello from native:", EXPECT_TIMEOUT)
        .unwrap();
    assert!(
        hello.contains("el1, 2 cpus, memory 0x40000000+0x40000000, uart 0x9000000"),
        "{hello}"
    );
    qemu.mark();
    qemu.send(b"ping\r").unwrap();
    qemu.expect_line("pong native", EXPECT_TIMEOUT).unwrap();
    qemu.send(b"off\r").unwrap();
    let status = qemu
        .wait_exit(EXPECT_TIMEOUT)
        .expect("SYSTEM_OFF makes QEMU exit");
    assert!(status.success(), "{status}");
    assert!(qemu.hv_log().unwrap().is_empty(), "no hypervisor, no log");
}

#[test]
fn native_smp_heartbeat_and_abort() {
    let mut qemu = boot(4, "heartbeat=200 smp=1");
    for cpu in 1..4 {
        qemu.expect_line(
            &format!("native: cpu {cpu} up (mpidr 0x8000000{cpu})"),
            EXPECT_TIMEOUT,
        )
        .unwrap();
    }
    qemu.expect_line("native: heartbeat 2", EXPECT_TIMEOUT)
        .unwrap();
    // Above 1 GiB of RAM nothing is mapped on `virt`: QEMU reports a synchronous external abort.
    qemu.mark();
    qemu.send(b"poke 90000000\r").unwrap();
    qemu.expect_line("guest: abort caught at 0x90000000", EXPECT_TIMEOUT)
        .unwrap();
    qemu.expect_line("poke done", EXPECT_TIMEOUT).unwrap();
    let mark = qemu.mark();
    qemu.send(b"ping\r").unwrap();
    qemu.expect_line("pong native", EXPECT_TIMEOUT).unwrap();
    // The heartbeat goes on after the abort.
    let beats = qemu
        .console()
        .lines_since(mark)
        .iter()
        .filter(|l| l.text.contains("heartbeat"))
        .count();
    if beats < 2 {
        qemu.console().set_mark(mark);
        qemu.console()
            .wait_for("two heartbeats after the abort", EXPECT_TIMEOUT, |lines| {
                (lines
                    .iter()
                    .filter(|l| l.text.contains("heartbeat"))
                    .count()
                    >= 2)
                    .then_some(())
            })
            .unwrap();
    }
}

#[test]
fn native_bootargs_problems_and_usage() {
    let mut qemu = boot(1, "smp=2 nonsense");
    qemu.expect_line("native: ignoring bad bootarg value 'smp=2'", EXPECT_TIMEOUT)
        .unwrap();
    qemu.expect_line(
        "native: ignoring bootarg 'nonsense' is not key=value",
        EXPECT_TIMEOUT,
    )
    .unwrap();
    qemu.expect_line("hello from native: el1, 1 cpus", EXPECT_TIMEOUT)
        .unwrap();
    qemu.send(b"peek\rfrob\rhvc 84000000\r").unwrap();
    qemu.expect_line("usage: peek <hex>", EXPECT_TIMEOUT)
        .unwrap();
    qemu.expect_line("unknown command 'frob' (try help)", EXPECT_TIMEOUT)
        .unwrap();
    // PSCI_VERSION: QEMU implements PSCI 1.1 → 0x10001.
    qemu.expect_line("hvc 0x84000000 -> x0=0x1000", EXPECT_TIMEOUT)
        .unwrap();
}

#[test]
fn native_hard_timeout_kills_qemu() {
    let image = build_guest_image().unwrap();
    let options = QemuOptions::native()
        .smp(1)
        .hard_timeout(Duration::from_secs(3));
    let mut qemu = Qemu::boot(&image, options).unwrap();
    qemu.expect_line("hello from native", EXPECT_TIMEOUT)
        .unwrap();
    let status = qemu
        .wait_exit(Duration::from_secs(20))
        .expect("the watchdog kills QEMU");
    assert!(!status.success());
    let error = qemu
        .expect_line("never printed", EXPECT_TIMEOUT)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("hard timeout") && error.contains("hello from native"),
        "{error}"
    );
}
