//! The HIL harness: build a Tessera system, boot it on a [`Target`], and check what it says.
//!
//! A [`Target`] is anything that can boot an image and expose its console, its hypervisor log
//! and its exit: [`Qemu`] today, a real board (UART + power switch) later. Tests are written
//! against the trait, so the same scenario can run on both.
//!
//! Console lines from VMs are tagged `[<vm>] text` by the hypervisor's console mux. The mux's
//! input switch is Ctrl-] followed by a digit `1`–`9` (VM index + 1), answered by
//! `[mux] input -> <name>`.
//!
//! Expectations search the console from a *mark* ([`ConsoleLog::mark`]); they never consume
//! lines, so two VMs' output may interleave in any order.

mod build;
mod console;
mod defmt_log;
mod error;
pub mod interrupts;
mod qemu;
pub mod rt;

pub use build::{build_guest_image, build_system, build_system_with_features, workspace_root};
pub use console::{ConsoleLog, Line, split_tag};
pub use defmt_log::decode_defmt;
pub use error::{Error, Result};
pub use qemu::{Qemu, QemuOptions};

use std::process::ExitStatus;
use std::time::Duration;

/// The default time one expectation may take (TCG on a busy host is slow).
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The byte that starts the mux's input-switch sequence (Ctrl-]).
pub const MUX_ESCAPE: u8 = 0x1d;

/// The bytes that switch the mux's input to VM `index` (0-based).
pub fn mux_switch(index: usize) -> [u8; 2] {
    assert!(index < 9, "the mux switches between VMs 0..=8 only");
    [MUX_ESCAPE, b'1' + index as u8]
}

/// A booted system under test.
pub trait Target {
    /// The console as lines (what the serial port said since boot).
    fn console(&self) -> &ConsoleLog;

    /// Sends raw bytes to the serial port.
    fn send(&mut self, bytes: &[u8]) -> Result<()>;

    /// The hypervisor's log, decoded from the start. An incomplete last frame is ignored.
    fn hv_log(&self) -> Result<Vec<String>>;

    /// Waits up to `timeout` for the system to stop by itself.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus>;

    /// Powers the target off now. Also done on drop.
    fn kill(&mut self);

    /// Marks "now" in the console: later `expect_*` calls see only lines from here on.
    fn mark(&self) -> usize {
        self.console().mark()
    }

    /// The first line since the mark containing `pattern`.
    fn expect_line(&self, pattern: &str, timeout: Duration) -> Result<String> {
        self.console().expect_line(pattern, timeout)
    }

    /// The first line since the mark tagged `[vm]` whose text contains `pattern`.
    fn expect_line_from(&self, vm: &str, pattern: &str, timeout: Duration) -> Result<String> {
        self.console().expect_line_from(vm, pattern, timeout)
    }

    /// A snapshot of every console line since boot.
    fn lines(&self) -> Vec<Line> {
        self.console().lines()
    }

    /// Polls the hypervisor log until a line after the first `skip` lines contains every
    /// word in `words` (case-insensitive).
    fn expect_hv_log(&self, skip: usize, words: &[&str], timeout: Duration) -> Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.hv_log()?;
            if let Some(line) = log.iter().skip(skip).find(|line| contains_all(line, words)) {
                return Ok(line.clone());
            }
            if std::time::Instant::now() >= deadline || self.console().is_closed() {
                let tail: Vec<String> = log.iter().rev().take(40).rev().cloned().collect();
                return Err(Error::HvLogTimeout {
                    words: words.iter().map(|w| w.to_string()).collect(),
                    hv_tail: tail,
                    console_tail: self.console().tail(40),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `line` contains every word, ignoring ASCII case.
pub fn contains_all(line: &str, words: &[&str]) -> bool {
    let line = line.to_ascii_lowercase();
    words
        .iter()
        .all(|word| line.contains(&word.to_ascii_lowercase()))
}

/// Builds `dts` (cached) and boots it on the target chosen by `TESSERA_HIL_TARGET`
/// (only `qemu`, the default, exists so far).
pub fn boot_system(dts: &std::path::Path, options: QemuOptions) -> Result<Box<dyn Target>> {
    match std::env::var("TESSERA_HIL_TARGET").as_deref() {
        Ok("qemu") | Err(_) => {
            let image = build_system(dts)?;
            Ok(Box::new(Qemu::boot(&image, options)?))
        }
        Ok(other) => Err(Error::UnknownTarget(other.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn mux_switch_bytes() {
        assert_eq!(mux_switch(0), [0x1d, b'1']);
        assert_eq!(mux_switch(1), [0x1d, b'2']);
        assert_eq!(mux_switch(8), [0x1d, b'9']);
    }

    #[test]
    fn contains_all_ignores_case() {
        assert!(contains_all(
            "INFO vm alpha: PSCI SYSTEM_OFF",
            &["alpha", "off"]
        ));
        assert!(!contains_all("vm beta: SYSTEM_OFF", &["alpha", "off"]));
        assert!(contains_all("anything", &[]));
    }
}
