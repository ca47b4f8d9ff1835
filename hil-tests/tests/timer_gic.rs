//! The virtual-timer fast path (`hv/arch/src/vectors.S`, `docs/design.md` "Exits") follows
//! what the guest tells its GIC about the timer's PPI, as the vGIC model does: disabled, it
//! is not delivered and stays pending until enabled again; masked by the guest's priority
//! mask, it waits until its priority is raised above the mask, including a timer interrupt
//! the vectors had already loaded into the list register. Every test is named `timer_gic_*`.
//!
//! System: `hil-tests/systems/timer-gic.dts` (`t`: heartbeat every 20 ms, CPU 1, null pool).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch};

const SYSTEM: &str = "hil-tests/systems/timer-gic.dts";
const VM: &str = "t";
const BEAT: &str = "t: heartbeat ";
/// 25 heartbeat periods: a timer that is delivered beats many times in it.
const QUIET: Duration = Duration::from_millis(500);
/// GICR_ISENABLER0, GICR_ICENABLER0, GICR_IPRIORITYR6 (INTIDs 24-27) in the SGI frame
/// (IHI 0069 12.10), and the timer's bit and priority byte there.
const ISENABLER0: u64 = 0x100;
const ICENABLER0: u64 = 0x180;
const IPRIORITYR6: u64 = 0x418;
const TIMER_BIT: u32 = 1 << 27;
const TIMER_BYTE_SHIFT: u32 = 24;

struct Guest {
    target: Box<dyn Target>,
    sgi_frame: u64,
}

impl Guest {
    fn boot() -> Self {
        let mut target = boot_system(Path::new(SYSTEM), QemuOptions::default()).unwrap();
        let line = target.expect_line_from(VM, "t: rt mode: gicv3", EXPECT_TIMEOUT).unwrap();
        let redistributor = line
            .split("redistributor ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| panic!("no redistributor in {line:?}"));
        target.expect_line_from(VM, "t: heartbeat 3 late", EXPECT_TIMEOUT).unwrap();
        target.send(&mux_switch(0)).unwrap();
        target.expect_line_from("mux", "input -> t", EXPECT_TIMEOUT).unwrap();
        Guest { target, sgi_frame: redistributor + 0x1_0000 }
    }

    fn command(&mut self, line: &str, done: &str) {
        self.target.mark();
        self.target.send(format!("{line}\r").as_bytes()).unwrap();
        self.target.expect_line_from(VM, done, EXPECT_TIMEOUT).unwrap();
    }

    fn poke(&mut self, offset: u64, value: u32) {
        self.command(&format!("poke {:#x} {value:#x}", self.sgi_frame + offset), "poke done");
    }

    fn timer_priority(&mut self, priority: u8) {
        self.poke(IPRIORITYR6, u32::from(priority) << TIMER_BYTE_SHIFT);
    }

    /// Heartbeats during `QUIET` from now.
    fn beats_while_waiting(&mut self) -> usize {
        let start = self.target.mark();
        std::thread::sleep(QUIET);
        self.target.console().count_from(VM, BEAT, start)
    }

    /// Three heartbeats arrive from now.
    fn expect_beats(&mut self, what: &str) {
        let start = self.target.mark();
        if let Err(error) = self.target.console().expect_count_from(VM, BEAT, 3, EXPECT_TIMEOUT) {
            panic!("{what}: the heartbeat did not resume: {error}");
        }
        self.target.console().set_mark(start);
    }
}

/// Disabled in the guest's redistributor, the timer is not delivered; enabled again, it is.
/// Masked by ICC_PMR_EL1 (its priority 0xa0, the mask 0x90), it is not delivered; raised to
/// 0x80, it is: the list register the vectors loaded (pending, masked) takes the new priority.
/// Masked, then disabled while pending, then unmasked: still nothing until it is enabled.
#[test]
fn timer_gic_fast_path_follows_enable_and_priority() {
    let mut guest = Guest::boot();
    assert!(guest.beats_while_waiting() >= 10, "the heartbeat runs at 20 ms");

    guest.poke(ICENABLER0, TIMER_BIT);
    let disabled = guest.beats_while_waiting();
    guest.poke(ISENABLER0, TIMER_BIT);
    guest.expect_beats("enabled again");
    assert!(disabled <= 1, "{disabled} heartbeats with the timer PPI disabled");

    guest.command("pmr 90", "pmr 0x90 done");
    guest.timer_priority(0xa0);
    let masked = guest.beats_while_waiting();
    assert!(masked <= 1, "{masked} heartbeats with the timer masked by priority");
    guest.timer_priority(0x80);
    guest.expect_beats("priority raised above the mask");

    guest.timer_priority(0xa0);
    let masked = guest.beats_while_waiting();
    assert!(masked <= 1, "{masked} heartbeats with the timer masked by priority");
    guest.poke(ICENABLER0, TIMER_BIT);
    guest.timer_priority(0x80);
    let disabled = guest.beats_while_waiting();
    assert!(disabled <= 1, "{disabled} heartbeats with the timer PPI disabled");
    guest.poke(ISENABLER0, TIMER_BIT);
    guest.expect_beats("enabled again, unmasked");

    guest.command("pmr ff", "pmr 0xff done");
    guest.expect_beats("mask open");
    guest.command("ping", "pong t");
}
