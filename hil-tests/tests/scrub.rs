//! A VM's RAM is scrubbed on demand (`hv/kernel/src/scrub.rs`): at load only the blocks it
//! is loaded into are zeroed, the others are zeroed on the guest's first touch. These tests
//! check what the guest can observe: what it wrote is there while it runs, and nothing of it
//! survives a restart, in a block that was touched and in one that was loaded eagerly.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch};

const FOUNDATION: &str = "hil-tests/systems/foundation.dts";

/// A block of beta's RAM (IPA 0x4000_0000, 32 MiB) far from its image and DTB: parked at
/// load, zeroed when first touched.
const LAZY_WORD: &str = "41000040";
/// A word of beta's image block (0x4020_0000, scrubbed eagerly at load) past the end of the
/// guest's image, BSS and stacks.
const EAGER_WORD: &str = "403ffff0";

fn peek(target: &mut dyn Target, address: &str) -> String {
    target.mark();
    target.send(format!("peek {address}\r").as_bytes()).unwrap();
    target
        .expect_line_from("beta", &format!("peek 0x{address} = "), EXPECT_TIMEOUT)
        .unwrap()
}

fn poke(target: &mut dyn Target, address: &str, value: &str) {
    target.mark();
    target.send(format!("poke {address} {value}\r").as_bytes()).unwrap();
    target
        .expect_line_from("beta", "poke done", EXPECT_TIMEOUT)
        .unwrap();
}

#[test]
fn scrub_restart_leaves_nothing_of_the_previous_run() {
    let options = QemuOptions::default()
        .smp(4)
        .hard_timeout(Duration::from_secs(150));
    let mut target = boot_system(Path::new(FOUNDATION), options).unwrap();
    target
        .expect_line_from("beta", "beta: heartbeat 1", EXPECT_TIMEOUT)
        .unwrap();
    target.send(&mux_switch(1)).unwrap();
    target
        .expect_line_from("mux", "input -> beta", EXPECT_TIMEOUT)
        .unwrap();

    // Never touched: reads zero (the first touch scrubs the block).
    assert!(peek(&mut *target, LAZY_WORD).ends_with("= 0x0"));
    poke(&mut *target, LAZY_WORD, "cafe");
    poke(&mut *target, EAGER_WORD, "beef");
    assert!(peek(&mut *target, LAZY_WORD).ends_with("= 0xcafe"));
    assert!(peek(&mut *target, EAGER_WORD).ends_with("= 0xbeef"));

    target.mark();
    target.send(b"reset\r").unwrap();
    target
        .expect_line_from("beta", "hello from beta", EXPECT_TIMEOUT)
        .unwrap();
    target
        .expect_line_from("beta", "beta: heartbeat 1", EXPECT_TIMEOUT)
        .unwrap();
    let lazy = peek(&mut *target, LAZY_WORD);
    let eager = peek(&mut *target, EAGER_WORD);
    assert!(lazy.ends_with("= 0x0"), "previous run's data visible: {lazy}");
    assert!(eager.ends_with("= 0x0"), "previous run's data visible: {eager}");
    // Alpha, untouched by beta's restart, still answers.
    target.send(&mux_switch(0)).unwrap();
    target
        .expect_line_from("mux", "input -> alpha", EXPECT_TIMEOUT)
        .unwrap();
    target.send(b"ping\r").unwrap();
    target
        .expect_line_from("alpha", "pong alpha", EXPECT_TIMEOUT)
        .unwrap();
}
