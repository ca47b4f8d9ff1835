//! Foundation acceptance tests: two bare-metal guests side by side under Tessera on QEMU.
//! Each test boots a fresh QEMU; every expectation has a timeout and every boot a hard one.
//!
//! Systems: `hil-tests/systems/*.dts`. Guest contract: `guests/baremetal/README.md`.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch};

const FOUNDATION: &str = "hil-tests/systems/foundation.dts";
const FOUNDATION_STOP: &str = "hil-tests/systems/foundation-stop.dts";
const PAIR: &str = "hil-tests/systems/pair.dts";

/// What the hypervisor log must say (case-insensitive, every word on one line). Its exact
/// wording is not fixed yet, so the matchers live here and nowhere else.
mod hv_says {
    /// VM alpha called PSCI SYSTEM_OFF.
    pub const ALPHA_SYSTEM_OFF: &[&str] = &["alpha", "off"];
    /// VM alpha took a fault and was stopped (fault-policy "stop").
    pub const ALPHA_STOPPED: &[&str] = &["alpha", "stop"];
    /// VM beta called PSCI SYSTEM_RESET and is being restarted.
    pub const BETA_RESTARTING: &[&str] = &["beta", "restart", "reset"];
}

/// Heartbeats beta must print after something happened to alpha.
const MORE_BEATS: usize = 3;

fn boot(dts: &str, smp: u32) -> Box<dyn Target> {
    let options = QemuOptions::default()
        .smp(smp)
        .hard_timeout(Duration::from_secs(150));
    boot_system(Path::new(dts), options).unwrap()
}

/// Waits until both guests are in their console loops: both hellos, beta's second CPU, and
/// beta's first heartbeat (500 ms after beta's boot, so alpha's prompt is up by then too).
fn wait_ready(target: &dyn Target, beta_smp: bool) {
    target
        .expect_line_from("alpha", "hello from alpha: el1, 1 cpus", EXPECT_TIMEOUT)
        .unwrap();
    let beta_cpus = if beta_smp { "2 cpus" } else { "1 cpus" };
    target
        .expect_line_from(
            "beta",
            &format!("hello from beta: el1, {beta_cpus}"),
            EXPECT_TIMEOUT,
        )
        .unwrap();
    if beta_smp {
        target
            .expect_line_from("beta", "beta: cpu 1 up", EXPECT_TIMEOUT)
            .unwrap();
    }
    target
        .expect_line_from("beta", "beta: heartbeat 1", EXPECT_TIMEOUT)
        .unwrap();
}

fn hv_log_len(target: &dyn Target) -> usize {
    target.hv_log().unwrap().len()
}

/// 1. Both VMs say hello through the mux, and beta starts its second vCPU with PSCI CPU_ON.
#[test]
fn foundation_both_vms_boot_and_beta_starts_its_second_cpu() {
    let target = boot(FOUNDATION, 4);
    // The whole expected text is the pattern: the mux may cut alpha's (focused) line when
    // beta prints, and a match returns only the pieces the pattern spans.
    target
        .expect_line_from(
            "alpha",
            "hello from alpha: el1, 1 cpus, memory 0x40000000+0x2000000",
            EXPECT_TIMEOUT,
        )
        .unwrap();
    target
        .expect_line_from(
            "beta",
            "hello from beta: el1, 2 cpus, memory 0x40000000+0x2000000",
            EXPECT_TIMEOUT,
        )
        .unwrap();
    let up = target
        .expect_line_from("beta", "beta: cpu 1 up (mpidr 0x", EXPECT_TIMEOUT)
        .unwrap();
    assert!(up.ends_with("1)"), "vCPU 1's MPIDR has Aff0 = 1: {up}");
}

/// 2. Input goes only to the focused VM; Ctrl-] 2 moves the focus to beta.
#[test]
fn foundation_input_reaches_only_the_focused_vm() {
    let mut target = boot(FOUNDATION, 4);
    wait_ready(&*target, true);

    let start = target.mark();
    target.send(b"ping\r").unwrap();
    target
        .expect_line_from("alpha", "pong alpha", EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .assert_absent_from("beta", "pong", start)
        .unwrap();

    target.send(&mux_switch(1)).unwrap();
    target
        .expect_line_from("mux", "input -> beta", EXPECT_TIMEOUT)
        .unwrap();
    let switched = target.mark();
    target.send(b"ping\r").unwrap();
    target
        .expect_line_from("beta", "pong beta", EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .assert_absent_from("alpha", "pong", switched)
        .unwrap();
    assert_eq!(target.console().count_from("alpha", "pong", start), 1);
}

/// 3. Alpha powering off leaves beta running, and the hypervisor reports alpha's SYSTEM_OFF.
#[test]
fn foundation_alpha_off_leaves_beta_running() {
    let mut target = boot(FOUNDATION, 4);
    wait_ready(&*target, true);

    let hv_before = hv_log_len(&*target);
    target.send(b"off\r").unwrap();
    target
        .expect_line_from("alpha", "alpha: system off", EXPECT_TIMEOUT)
        .unwrap();
    let said = target
        .expect_hv_log(hv_before, hv_says::ALPHA_SYSTEM_OFF, EXPECT_TIMEOUT)
        .unwrap();
    eprintln!("hv log: {said}");

    let after_off = target.mark();
    target.send(b"ping\r").unwrap(); // still focused on alpha, which is off
    target
        .console()
        .expect_count_from("beta", "heartbeat", MORE_BEATS, EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .assert_absent_from("alpha", "pong", after_off)
        .unwrap();
    assert!(
        target.wait_exit(Duration::ZERO).is_none(),
        "the system keeps running"
    );
}

/// 4a. A stray store from alpha (fault-policy "inject") comes back as a synchronous external
/// abort that the guest survives.
#[test]
fn foundation_fault_inject_is_contained() {
    let mut target = boot(FOUNDATION, 4);
    wait_ready(&*target, true);

    target.mark();
    target.send(b"poke 10000000\r").unwrap();
    target
        .expect_line_from("alpha", "guest: abort caught at 0x10000000", EXPECT_TIMEOUT)
        .unwrap();
    target
        .expect_line_from("alpha", "poke done", EXPECT_TIMEOUT)
        .unwrap();

    target.mark();
    target.send(b"ping\r").unwrap();
    target
        .expect_line_from("alpha", "pong alpha", EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .expect_count_from("beta", "heartbeat", 1, EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .assert_absent_from("beta", "exception", 0)
        .unwrap();
}

/// 4b. The same stray store with fault-policy "stop" stops alpha (and only alpha).
#[test]
fn foundation_fault_stop_stops_only_alpha() {
    let mut target = boot(FOUNDATION_STOP, 4);
    wait_ready(&*target, true);

    let hv_before = hv_log_len(&*target);
    let poked = target.mark();
    target.send(b"poke 10000000\r").unwrap();
    let said = target
        .expect_hv_log(hv_before, hv_says::ALPHA_STOPPED, EXPECT_TIMEOUT)
        .unwrap();
    eprintln!("hv log: {said}");

    target.mark();
    target
        .console()
        .expect_count_from("beta", "heartbeat", MORE_BEATS, EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .assert_absent_from("alpha", "abort caught", poked)
        .unwrap();
    target
        .console()
        .assert_absent_from("alpha", "poke done", poked)
        .unwrap();
}

/// 5. The foundation system boots with QEMU `-smp 4`; a system on CPUs 0–1 also boots with
///    `-smp 2` (the board describes 4 CPUs; the missing ones must not matter).
#[test]
fn foundation_boots_with_4_and_2_host_cpus() {
    {
        let target = boot(FOUNDATION, 4);
        wait_ready(&*target, true);
    }
    let target = boot(PAIR, 2);
    wait_ready(&*target, false);
    target
        .console()
        .expect_count_from("beta", "heartbeat", 2, EXPECT_TIMEOUT)
        .unwrap();
}

/// 6. Beta's PSCI SYSTEM_RESET (on-system-reset defaults to "restart") restarts beta alone,
///    both of its vCPUs, from a fresh copy of its image; alpha keeps answering throughout.
#[test]
fn foundation_reset_restarts_only_that_vm() {
    let mut target = boot(FOUNDATION, 4);
    wait_ready(&*target, true);

    target.send(&mux_switch(1)).unwrap();
    target
        .expect_line_from("mux", "input -> beta", EXPECT_TIMEOUT)
        .unwrap();
    let hv_before = hv_log_len(&*target);
    let reset = target.mark();
    target.send(b"reset\r").unwrap();
    let said = target
        .expect_hv_log(hv_before, hv_says::BETA_RESTARTING, EXPECT_TIMEOUT)
        .unwrap();
    eprintln!("hv log: {said}");
    target
        .expect_line_from("beta", "hello from beta: el1, 2 cpus", EXPECT_TIMEOUT)
        .unwrap();
    target
        .expect_line_from("beta", "beta: cpu 1 up", EXPECT_TIMEOUT)
        .unwrap();
    target
        .expect_line_from("beta", "beta: heartbeat 1", EXPECT_TIMEOUT)
        .unwrap();
    assert_eq!(
        target
            .console()
            .count_from("beta", "hello from beta", reset),
        1,
        "beta restarted exactly once"
    );

    target.send(&mux_switch(0)).unwrap();
    target
        .expect_line_from("mux", "input -> alpha", EXPECT_TIMEOUT)
        .unwrap();
    target.send(b"ping\r").unwrap();
    target
        .expect_line_from("alpha", "pong alpha", EXPECT_TIMEOUT)
        .unwrap();
    target
        .console()
        .assert_absent_from("alpha", "hello from alpha", reset)
        .unwrap();
}
