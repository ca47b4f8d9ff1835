//! The host-testable half of the attack guest: which addresses, function IDs and commands it
//! uses, and what it is told to aim at. The EL1 binary (`main.rs`, `probe.rs`) adds the
//! accesses themselves and the exception bookkeeping.
//!
//! The guest's contract with the isolation tests (console lines, commands) is in
//! `guests/attack/README.md`; keep the two in step.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod command;
pub mod plan;
pub mod smccc;
pub mod targets;

/// `error-device=<hex>` in the bootargs: a device window the VM owns where every access
/// returns a bus error (`dts/systems/qemu-virt/isolation.dts` maps one at an address QEMU
/// virt leaves unassigned). Other words are ignored.
pub fn error_device(bootargs: &str) -> Option<u64> {
    bootargs
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix("error-device="))
        .and_then(tessera_guest_baremetal::hex::parse_u64)
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The access faulted, or was answered without reaching anything outside the VM.
    Denied,
    /// The access reached (or showed) something outside the VM.
    Escape,
}

impl Verdict {
    pub const fn from_escape(escaped: bool) -> Self {
        if escaped { Verdict::Escape } else { Verdict::Denied }
    }
}

impl core::fmt::Display for Verdict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Verdict::Denied => "denied",
            Verdict::Escape => "ESCAPE",
        })
    }
}

/// Probes and escapes so far (the `probes=N escapes=E` summary line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub probes: u64,
    pub escapes: u64,
}

impl Tally {
    pub fn record(&mut self, verdict: Verdict) {
        self.probes += 1;
        if verdict == Verdict::Escape {
            self.escapes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_device_from_bootargs() {
        assert_eq!(error_device("quiet error-device=0xa004000"), Some(0xa00_4000));
        assert_eq!(error_device("error-device=zz"), None);
        assert_eq!(error_device(""), None);
    }

    #[test]
    fn tally_counts_escapes() {
        let mut tally = Tally::default();
        tally.record(Verdict::Denied);
        tally.record(Verdict::Escape);
        tally.record(Verdict::Denied);
        assert_eq!(tally, Tally { probes: 3, escapes: 1 });
        assert_eq!(Verdict::from_escape(true).to_string(), "ESCAPE");
        assert_eq!(Verdict::from_escape(false).to_string(), "denied");
    }
}
