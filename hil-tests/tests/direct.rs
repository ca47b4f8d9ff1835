//! Direct-interrupt mode (`docs/direct-mode.md`): a bare-metal guest that takes its own
//! interrupts on the physical GIC CPU interface, beside a victim VM. Every test is named
//! `direct_*`: `cargo test -p hil-tests direct` runs exactly these.
//!
//! System: `hil-tests/systems/direct.dts` (`rt`: direct, CPUs 1 and 2; `victim`: CPU 0,
//! `canary=1`).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch};

const SYSTEM: &str = "hil-tests/systems/direct.dts";
const RT: &str = "rt";
const VICTIM: &str = "victim";
const HARD_TIMEOUT: Duration = Duration::from_secs(600);

fn boot() -> Box<dyn Target> {
    boot_system(Path::new(SYSTEM), QemuOptions::default().hard_timeout(HARD_TIMEOUT)).unwrap()
}

/// Both guests are up and their timers tick; the console focus is on `rt`.
fn wait_ready(target: &mut dyn Target) {
    target.expect_line_from(VICTIM, "victim: rt mode: gicv3", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(VICTIM, "victim: heartbeat 1 late", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(RT, "rt: rt mode: gicv3", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(RT, "rt: heartbeat 3 late", EXPECT_TIMEOUT).unwrap();
    target.send(&mux_switch(1)).unwrap();
    target.expect_line_from("mux", "input -> rt", EXPECT_TIMEOUT).unwrap();
}

#[test]
fn direct_guest_boots_and_its_timer_ticks() {
    let mut target = boot();
    wait_ready(target.as_mut());
    target.send(b"ping\r").unwrap();
    target.expect_line_from(RT, "pong rt", EXPECT_TIMEOUT).unwrap();
}
