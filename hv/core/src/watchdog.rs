//! A VM's watchdog, as deadlines on the generic counter.
//!
//! The watchdog runs from the VM's start: its first deadline is `first_ms` after the start
//! (a boot takes longer than a period), and every kick (`TESSERA_WDOG_KICK`) moves the
//! deadline to `period_ms` after the kick. The hypervisor keeps the deadline in one place
//! that any vCPU's kick overwrites and arms a timer on one CPU of the VM. A kick does not
//! touch the timer: when it fires, [`check`] compares the deadline with the count and says
//! whether the VM missed it or the timer goes again at the (moved) deadline. So a kick costs
//! one store, and the timer fires at most once per period while the guest keeps kicking.

use tessera_config::Watchdog;

/// A watchdog's periods in counter ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timing {
    pub period_ticks: u64,
    pub first_ticks: u64,
}

/// What the watchdog's timer interrupt decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Check {
    /// The deadline has passed without a kick: apply the VM's `on-watchdog`. `late_ticks` is
    /// how long ago it passed (how late the timer was taken).
    Expired { late_ticks: u64 },
    /// A kick moved the deadline on: set the timer to fire at `deadline`.
    Rearm { deadline: u64 },
}

/// Counter ticks in `ms` milliseconds at `frequency` Hz (CNTFRQ_EL0), rounded up, so a
/// period is never shorter than asked; saturates rather than wrapping.
pub fn ms_to_ticks(ms: u32, frequency: u64) -> u64 {
    // ceil(ms * frequency / 1000) with frequency = 1000 * kilo + rest, without a 128-bit
    // division (its library routine would cost the hypervisor image 800 bytes).
    let ms = u64::from(ms);
    let (kilo, rest) = (frequency / 1000, frequency % 1000);
    ms.checked_mul(kilo)
        .and_then(|whole| whole.checked_add((ms * rest).div_ceil(1000)))
        .unwrap_or(u64::MAX)
}

impl Timing {
    pub fn new(watchdog: &Watchdog, frequency: u64) -> Self {
        Self {
            period_ticks: ms_to_ticks(watchdog.period_ms, frequency),
            first_ticks: ms_to_ticks(watchdog.first_ms, frequency),
        }
    }

    /// The first deadline of a VM started at count `start`.
    pub fn first_deadline(&self, start: u64) -> u64 {
        start.saturating_add(self.first_ticks)
    }

    /// The deadline after a kick at count `now`.
    pub fn kicked(&self, now: u64) -> u64 {
        now.saturating_add(self.period_ticks)
    }
}

/// The timer fired (or its CPU looked) at count `now`, with the deadline at `deadline`.
pub fn check(deadline: u64, now: u64) -> Check {
    if now >= deadline {
        Check::Expired { late_ticks: now - deadline }
    } else {
        Check::Rearm { deadline }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_config::ExitAction;

    /// QEMU virt's generic counter (CNTFRQ_EL0 = 62.5 MHz).
    const QEMU_HZ: u64 = 62_500_000;

    const DOG: Watchdog = Watchdog { period_ms: 200, first_ms: 1000, action: ExitAction::Restart };

    #[test]
    fn milliseconds_to_ticks() {
        assert_eq!(ms_to_ticks(1, QEMU_HZ), 62_500);
        assert_eq!(ms_to_ticks(200, QEMU_HZ), 12_500_000);
        assert_eq!(ms_to_ticks(1, 1_000_000_000), 1_000_000);
        // Rounded up: 1 ms at 24 MHz + 1 Hz is 24000.001 ticks.
        assert_eq!(ms_to_ticks(1, 24_000_001), 24_001);
        // The split arithmetic agrees with the exact 128-bit value, and saturates.
        for (ms, hz) in [(u32::MAX, 62_500_000), (7, 999), (u32::MAX, 1_000_000_000_999), (3, u64::MAX)] {
            let exact = (u128::from(ms) * u128::from(hz)).div_ceil(1000);
            assert_eq!(ms_to_ticks(ms, hz), u64::try_from(exact).unwrap_or(u64::MAX), "{ms} ms at {hz} Hz");
        }
        assert_eq!(ms_to_ticks(u32::MAX, u64::MAX), u64::MAX);
        assert_eq!(ms_to_ticks(0, QEMU_HZ), 0);
    }

    #[test]
    fn first_deadline_then_kicks_move_it() {
        let timing = Timing::new(&DOG, QEMU_HZ);
        assert_eq!(timing, Timing { period_ticks: 12_500_000, first_ticks: 62_500_000 });
        let start = 5_000;
        let first = timing.first_deadline(start);
        assert_eq!(first, start + 62_500_000);
        // Before the first deadline nothing expires: the timer goes again at it.
        assert_eq!(check(first, first - 1), Check::Rearm { deadline: first });
        // A kick at 100 ms (before the first deadline) moves the deadline to 300 ms.
        let kick_at = start + 6_250_000;
        let deadline = timing.kicked(kick_at);
        assert_eq!(deadline, start + 18_750_000);
        assert_eq!(check(deadline, first - 1), Check::Expired { late_ticks: first - 1 - deadline });
    }

    #[test]
    fn a_timer_set_before_a_kick_rearms_at_the_new_deadline() {
        let timing = Timing::new(&DOG, QEMU_HZ);
        let armed_for = timing.kicked(0);
        // The guest kicks at 150 ms; the timer armed for 200 ms fires then.
        let deadline = timing.kicked(9_375_000);
        assert_eq!(check(deadline, armed_for), Check::Rearm { deadline: 21_875_000 });
        // No kick since: at the new deadline it has expired, on the dot.
        assert_eq!(check(deadline, deadline), Check::Expired { late_ticks: 0 });
        assert_eq!(check(deadline, deadline + 7), Check::Expired { late_ticks: 7 });
    }

    #[test]
    fn deadlines_saturate_instead_of_wrapping() {
        let timing = Timing::new(&DOG, QEMU_HZ);
        assert_eq!(timing.kicked(u64::MAX - 1), u64::MAX);
        assert_eq!(timing.first_deadline(u64::MAX), u64::MAX);
        assert_eq!(check(u64::MAX, u64::MAX - 1), Check::Rearm { deadline: u64::MAX });
    }
}
