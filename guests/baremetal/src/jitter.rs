//! Heartbeat timing: the deadline schedule, lateness in counter ticks, nanoseconds from
//! CNTFRQ_EL0, and the running min/avg/max the `jitter` command prints.
//!
//! All times are CNTVCT_EL0 ticks, compared with wrapping arithmetic (DDI 0487 D12.1: the
//! count is 64 bits wide and may wrap in principle).

/// True if `now` is at or past `deadline` (wrapping: within half the counter's range).
pub const fn is_due(now: u64, deadline: u64) -> bool {
    now.wrapping_sub(deadline) < u64::MAX / 2
}

/// How late `now` is for `deadline`, in ticks; 0 if it is early.
pub const fn lateness_ticks(now: u64, deadline: u64) -> u64 {
    if is_due(now, deadline) {
        now.wrapping_sub(deadline)
    } else {
        0
    }
}

/// `ticks` at `frequency` Hz in nanoseconds, rounded down; saturates; 0 if `frequency` is 0.
pub fn ticks_to_ns(ticks: u64, frequency: u64) -> u64 {
    if frequency == 0 {
        return 0;
    }
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(frequency);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The heartbeat period in ticks for `ms` milliseconds at `frequency` Hz (at least 1 tick).
pub fn period_ticks(ms: u32, frequency: u64) -> Option<u64> {
    let ticks = frequency.checked_mul(u64::from(ms))? / 1000;
    Some(ticks.max(1))
}

/// The deadline after `due`: one period on, or, if that has already passed at `now`, one
/// period from `now` (missed beats are skipped, not burst).
pub const fn next_deadline(due: u64, period: u64, now: u64) -> u64 {
    let next = due.wrapping_add(period);
    if is_due(now, next) {
        now.wrapping_add(period)
    } else {
        next
    }
}

/// Running lateness statistics, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

/// [`JitterStats`] in nanoseconds, ready to print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterSummary {
    pub count: u64,
    pub min_ns: u64,
    pub avg_ns: u64,
    pub max_ns: u64,
}

impl JitterStats {
    pub const fn new() -> Self {
        Self {
            count: 0,
            min: 0,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, late_ticks: u64) {
        if self.count == 0 {
            self.min = late_ticks;
            self.max = late_ticks;
        } else {
            self.min = self.min.min(late_ticks);
            self.max = self.max.max(late_ticks);
        }
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(u128::from(late_ticks));
    }

    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The statistics in nanoseconds at `frequency` Hz; all zero before the first sample.
    /// The average is taken over the tick sum, then converted, so it does not lose a tick
    /// per sample to rounding.
    pub fn summary(&self, frequency: u64) -> JitterSummary {
        if self.count == 0 || frequency == 0 {
            return JitterSummary {
                count: self.count,
                ..JitterSummary::default()
            };
        }
        let avg_ns = self.sum * 1_000_000_000 / u128::from(frequency) / u128::from(self.count);
        JitterSummary {
            count: self.count,
            min_ns: ticks_to_ns(self.min, frequency),
            avg_ns: u64::try_from(avg_ns).unwrap_or(u64::MAX),
            max_ns: ticks_to_ns(self.max, frequency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's CNTFRQ_EL0 for cortex-a57 on `virt`: 62.5 MHz (16 ns per tick).
    const QEMU_FREQUENCY: u64 = 62_500_000;

    #[test]
    fn lateness_wraps_and_never_goes_negative() {
        assert_eq!(lateness_ticks(110, 100), 10);
        assert_eq!(lateness_ticks(100, 100), 0);
        assert_eq!(lateness_ticks(90, 100), 0, "early");
        assert_eq!(lateness_ticks(5, u64::MAX - 4), 10, "across the wrap");
        assert!(is_due(5, u64::MAX) && !is_due(u64::MAX, 5));
    }

    #[test]
    fn nanoseconds() {
        assert_eq!(ticks_to_ns(1, QEMU_FREQUENCY), 16);
        assert_eq!(ticks_to_ns(62_500_000, QEMU_FREQUENCY), 1_000_000_000);
        assert_eq!(ticks_to_ns(3, 1_000_000_000), 3);
        assert_eq!(ticks_to_ns(1, 3), 333_333_333);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX, "saturates");
        assert_eq!(ticks_to_ns(5, 0), 0);
    }

    #[test]
    fn periods() {
        assert_eq!(period_ticks(100, QEMU_FREQUENCY), Some(6_250_000));
        assert_eq!(period_ticks(1, 10), Some(1), "at least one tick");
        assert_eq!(period_ticks(u32::MAX, u64::MAX), None);
    }

    #[test]
    fn schedule_skips_missed_beats() {
        assert_eq!(next_deadline(1000, 100, 1005), 1100);
        assert_eq!(next_deadline(1000, 100, 1099), 1100);
        // Two periods late: the next beat is a full period from now, not a burst.
        assert_eq!(next_deadline(1000, 100, 1250), 1350);
        assert_eq!(next_deadline(u64::MAX - 10, 100, u64::MAX), 89);
    }

    #[test]
    fn statistics() {
        let mut stats = JitterStats::new();
        assert_eq!(stats.summary(QEMU_FREQUENCY), JitterSummary::default());
        for late in [10, 2, 30] {
            stats.record(late);
        }
        assert_eq!(stats.count(), 3);
        assert_eq!(
            stats.summary(QEMU_FREQUENCY),
            JitterSummary {
                count: 3,
                min_ns: 32,
                avg_ns: 224,
                max_ns: 480
            }
        );
        // The average keeps fractions of a tick: (1 + 2) / 2 = 1.5 ticks = 24 ns.
        let mut stats = JitterStats::new();
        stats.record(1);
        stats.record(2);
        assert_eq!(stats.summary(QEMU_FREQUENCY).avg_ns, 24);
        assert_eq!(stats.summary(0).count, 2);
    }
}
