//! Trap configuration seen from a guest: the debug registers (MDCR_EL2.TDA, TDOSA, TDRA) trap
//! and read as zero / ignore writes, and the VM carries on (docs/threat-model.md).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, boot_system};

#[test]
fn traps_debug_registers_read_as_zero_and_ignore_writes() {
    let options = QemuOptions::default().smp(2).hard_timeout(Duration::from_secs(120));
    let mut target = boot_system(Path::new("hil-tests/systems/pair.dts"), options).unwrap();
    target.expect_line_from("alpha", "hello from alpha", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from("beta", "beta: heartbeat 1", EXPECT_TIMEOUT).unwrap();

    let start = target.mark();
    // A breakpoint on the guest's own entry point: natively DBGBVR0_EL1 would read back
    // 0x40200000 and DBGBCR0_EL1 0x1e3.
    target.send(b"debug 40200000\r").unwrap();
    target
        .expect_line_from("alpha", "debug bvr0=0x0 bcr0=0x0 mdscr=0x0 oslsr=0x0 mdrar=0x0", EXPECT_TIMEOUT)
        .unwrap();
    // The VM was neither stopped nor given an abort: it still answers, and beta still beats.
    target.send(b"ping\r").unwrap();
    target.expect_line_from("alpha", "pong alpha", EXPECT_TIMEOUT).unwrap();
    target.mark();
    target.expect_line_from("beta", "heartbeat", EXPECT_TIMEOUT).unwrap();
    target.console().assert_absent_from("alpha", "exception", start).unwrap();
    target.console().assert_absent_from("hv", "alpha", start).unwrap();
}
