//! Fail-stop tests: a hypervisor panic and a hypervisor stack overflow each end in a report
//! on the console (reason, CPU, ESR/FAR/ELR/SPSR/SP) and every CPU halting, never in a
//! silent reboot or a system that limps on.
//!
//! The faults are provoked through the test-only `fault-test` feature (vendor hypervisor
//! calls 0xC600FF00 = panic, 0xC600FF01 = stack overflow, `hv/kernel/src/run.rs`), which only
//! this test's build of `hil-tests/systems/fault-test.dts` enables. alpha (CPU 0) makes the
//! call; beta (CPU 1) prints a heartbeat every 500 ms, which must stop.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, Qemu, QemuOptions, Target, build_system_with_features};

const SYSTEM: &str = "hil-tests/systems/fault-test.dts";

/// How long beta must stay silent after the report: six heartbeat periods.
const SILENCE: Duration = Duration::from_secs(3);

fn boot() -> Qemu {
    let image = build_system_with_features(Path::new(SYSTEM), "fault-test").unwrap();
    let options = QemuOptions::default().smp(2).hard_timeout(Duration::from_secs(120));
    Qemu::boot(&image, options).unwrap()
}

/// Boots, makes alpha issue `function`, and checks the report's first line contains
/// `reason` and the hypervisor log has a line with every word of `logged`, then that every
/// CPU has stopped. Returns the report's register line.
fn provoke(function: &str, reason: &str, logged: &[&str]) -> String {
    let mut target = boot();
    target.expect_line_from("alpha", "hello from alpha", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from("beta", "beta: heartbeat 2", EXPECT_TIMEOUT).unwrap();

    target.send(format!("hvc {function}\r").as_bytes()).unwrap();
    let first = target.expect_line_from("hv", "FATAL: hypervisor", EXPECT_TIMEOUT).unwrap();
    assert!(first.contains(reason), "report names the reason `{reason}`: {first}");
    assert!(first.contains("CPU 0"), "report names the failing CPU (alpha's, 0): {first}");
    let registers = target.expect_line_from("hv", "FATAL: CPU 0 ESR_EL2=0x", EXPECT_TIMEOUT).unwrap();
    for register in ["FAR_EL2=0x", "ELR_EL2=0x", "SPSR_EL2=0x", "SP=0x"] {
        assert!(registers.contains(register), "{register} in {registers}");
    }
    target.expect_line_from("hv", "FATAL: all CPUs halted", EXPECT_TIMEOUT).unwrap();
    target.expect_hv_log(0, logged, EXPECT_TIMEOUT).unwrap();
    target
        .expect_hv_log(0, &["on CPU 0", "ESR_EL2, FAR_EL2, ELR_EL2, SPSR_EL2, SP = [0x", "all CPUs halted"], EXPECT_TIMEOUT)
        .unwrap();

    // Every CPU stops: beta (on CPU 1) prints nothing more, nothing reboots, and the
    // machine does not power off by itself either.
    let halted = target.mark();
    std::thread::sleep(SILENCE);
    target.console().assert_absent_from("beta", "heartbeat", halted).unwrap();
    let after: Vec<String> = target.console().lines_since(halted).iter().map(|l| l.text.clone()).collect();
    assert!(after.iter().all(|line| !line.contains("hello from")), "nothing rebooted: {after:?}");
    assert!(target.wait_exit(Duration::from_millis(200)).is_none(), "the halted machine stays up (no silent reset)");
    registers
}

#[test]
fn fail_stop_panic_reports_and_halts_every_cpu() {
    let registers = provoke(
        "c600ff00",
        "panic on CPU 0: fault-test: deliberate panic at hv/kernel/src/run.rs:",
        &["hypervisor failed", "fault-test: deliberate panic", "stack overflow: false"],
    );
    assert!(!registers.contains("SP=0x0 "), "{registers}");
}

#[test]
fn fail_stop_stack_overflow_hits_the_guard_page_and_halts_every_cpu() {
    let registers = provoke(
        "c600ff01",
        "synchronous exception at EL2 on CPU 0: stack overflow",
        &["hypervisor failed", "EL2 exception", "stack overflow: true"],
    );
    // A data abort taken at EL2 (EC 0x25) on the guard page.
    let esr = registers.split("ESR_EL2=0x").nth(1).unwrap().split(' ').next().unwrap();
    let esr = u64::from_str_radix(esr, 16).unwrap();
    assert_eq!(esr >> 26, 0x25, "ESR_EL2 {esr:#x} is a current-EL data abort");
}
